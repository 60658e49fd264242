// Config from a GGUF file: llama.cpp's `qwen3next` keys turned into the config.json a Hugging Face
// checkpoint would carry, then the same parser and range checks (Config::from_json).
#include <cmath>

#include "model/config.h"

namespace qnext {
namespace {

class GgufKeys {
 public:
  explicit GgufKeys(const GgufCheckpoint& g) : g_(g) {}
  std::string error;

  // An integer key; `required` ones missing are an error naming the key.
  int64_t integer(const std::string& key, bool required = true, int64_t fallback = 0) {
    const nlohmann::json* v = g_.meta(key);
    if (!v) {
      if (required) fail("metadata key '" + key + "' is missing");
      return fallback;
    }
    if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > INT32_MAX) {
      fail("metadata key '" + key + "' is " + gguf_shown(*v) + ", expected a non-negative 32-bit integer");
      return fallback;
    }
    return v->get<int64_t>();
  }
  double number(const std::string& key, bool required, double fallback) {
    const nlohmann::json* v = g_.meta(key);
    if (!v) {
      if (required) fail("metadata key '" + key + "' is missing");
      return fallback;
    }
    if (!v->is_number()) {
      fail("metadata key '" + key + "' is " + gguf_shown(*v) + ", expected a number");
      return fallback;
    }
    return v->get<double>();
  }
  const nlohmann::json* find(const std::string& key) const { return g_.meta(key); }
  void fail(std::string m) {
    if (error.empty()) error = g_.path() + ": " + std::move(m);
  }

 private:
  const GgufCheckpoint& g_;
};

}  // namespace

Result<Config> Config::from_gguf(const GgufCheckpoint& gguf) {
  GgufKeys k(gguf);
  const nlohmann::json* arch = k.find("general.architecture");
  if (!arch || !arch->is_string()) return err(gguf.path() + ": metadata key 'general.architecture' is missing");
  if (arch->get<std::string>() != "qwen3next")
    return err(gguf.path() + ": architecture '" + arch->get<std::string>() + "'; qnext runs only 'qwen3next' (Qwen3-Next)");
  const std::string a = "qwen3next.";

  nlohmann::json j;
  j["model_type"] = "qwen3_next";
  const int64_t blocks = k.integer(a + "block_count");
  const int64_t mtp_blocks = k.integer(a + "nextn_predict_layers", false, 0);
  if (k.error.empty() && (mtp_blocks > 1 || mtp_blocks >= blocks))
    k.fail("nextn_predict_layers " + std::to_string(mtp_blocks) + " of block_count " + std::to_string(blocks) +
           " (qnext reads one MTP block)");
  const int64_t layers = blocks - mtp_blocks;
  j["num_hidden_layers"] = layers;
  j["hidden_size"] = k.integer(a + "embedding_length");
  j["intermediate_size"] = k.integer(a + "feed_forward_length", false, 0);
  j["moe_intermediate_size"] = k.integer(a + "expert_feed_forward_length");
  j["shared_expert_intermediate_size"] = k.integer(a + "expert_shared_feed_forward_length", false, 0);
  j["num_experts"] = k.integer(a + "expert_count");
  j["num_experts_per_tok"] = k.integer(a + "expert_used_count");
  // llama.cpp's qwen3next always renormalizes the top-k routing weights and has no dense layers.
  j["norm_topk_prob"] = true;
  j["decoder_sparse_step"] = 1;
  j["mlp_only_layers"] = nlohmann::json::array();
  j["num_attention_heads"] = k.integer(a + "attention.head_count");
  j["num_key_value_heads"] = k.integer(a + "attention.head_count_kv");
  const int64_t head_dim = k.integer(a + "attention.key_length");
  const int64_t value_dim = k.integer(a + "attention.value_length", false, head_dim);
  if (k.error.empty() && value_dim != head_dim)
    k.fail("attention.value_length " + std::to_string(value_dim) + " differs from key_length " + std::to_string(head_dim));
  j["head_dim"] = head_dim;
  j["rms_norm_eps"] = k.number(a + "attention.layer_norm_rms_epsilon", true, 1e-6);
  const int64_t rot = k.integer(a + "rope.dimension_count", false, head_dim);
  j["partial_rotary_factor"] = head_dim > 0 ? double(rot) / double(head_dim) : 1.0;
  j["rope_theta"] = k.number(a + "rope.freq_base", false, 10000.0);
  j["max_position_embeddings"] = k.integer(a + "context_length", false, 262144);
  if (const nlohmann::json* type = k.find(a + "rope.scaling.type"); type && type->is_string() && *type != "none") {
    nlohmann::json y;
    y["rope_type"] = *type;
    y["factor"] = k.number(a + "rope.scaling.factor", true, 1.0);
    if (k.find(a + "rope.scaling.original_context_length"))
      y["original_max_position_embeddings"] = k.integer(a + "rope.scaling.original_context_length");
    j["rope_scaling"] = y;
  }
  // The linear-attention (Gated DeltaNet) sizes, in llama.cpp's SSM vocabulary.
  const int64_t Hk = k.integer(a + "ssm.group_count"), Hv = k.integer(a + "ssm.time_step_rank");
  const int64_t inner = k.integer(a + "ssm.inner_size");
  j["linear_num_key_heads"] = Hk;
  j["linear_num_value_heads"] = Hv;
  j["linear_key_head_dim"] = k.integer(a + "ssm.state_size");
  j["linear_value_head_dim"] = Hv > 0 ? inner / Hv : 0;
  if (k.error.empty() && (Hv == 0 || inner % Hv != 0))
    k.fail("ssm.inner_size " + std::to_string(inner) + " is not a multiple of ssm.time_step_rank " + std::to_string(Hv));
  j["linear_conv_kernel_dim"] = k.integer(a + "ssm.conv_kernel");
  // Which layers are DeltaNet: recurrent_layers per block, else every full_attention_interval-th is attention.
  std::vector<std::string> types;
  if (const nlohmann::json* rec = k.find(a + "attention.recurrent_layers")) {
    if (!rec->is_array() || int64_t(rec->size()) < layers) {
      k.fail("attention.recurrent_layers has " + std::to_string(rec->is_array() ? rec->size() : 0) +
             " entries for " + std::to_string(layers) + " layers");
    } else {
      for (int64_t i = 0; i < layers; ++i) {
        const auto& b = (*rec)[size_t(i)];
        if (!b.is_boolean()) {
          k.fail("attention.recurrent_layers[" + std::to_string(i) + "] is " + gguf_shown(b) + ", not a bool");
          break;
        }
        types.push_back(b.get<bool>() ? "linear_attention" : "full_attention");
      }
    }
  } else {
    const int64_t interval = k.integer(a + "full_attention_interval", false, 4);
    for (int64_t i = 0; i < layers; ++i)
      types.push_back(interval > 0 && (i + 1) % interval == 0 ? "full_attention" : "linear_attention");
  }
  j["layer_types"] = types;
  const GgufTensor* embed = gguf.find("token_embd.weight");
  if (!embed || embed->shape.size() != 2) k.fail("tensor 'token_embd.weight' is missing or not a matrix");
  else j["vocab_size"] = embed->shape[0];
  j["tie_word_embeddings"] = gguf.find("output.weight") == nullptr;
  j["eos_token_id"] = k.integer("tokenizer.ggml.eos_token_id", false, 0);
  j["bos_token_id"] = k.integer("tokenizer.ggml.bos_token_id", false, 0);
  if (!k.error.empty()) return err(k.error);
  return from_json(j, gguf.path());
}

}  // namespace qnext
