#include "model/config.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <type_traits>

#include "kernels/conv.h"

namespace qnext {

bool Config::is_moe_layer(int layer) const {
  if (num_experts <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return (layer + 1) % std::max(1, decoder_sparse_step) == 0;
}

namespace {

// Reads config keys with messages that name the file and the key.
struct Reader {
  const nlohmann::json& j;
  std::string where;
  std::string error;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }

  template <typename T>
  void required(const char* key, T* out) {
    if (!error.empty()) return;
    if (!has(key)) {
      error = where + ": missing key '" + key + "'";
      return;
    }
    read(key, out);
  }
  template <typename T>
  void optional(const char* key, T* out) {
    if (error.empty() && has(key)) read(key, out);
  }
  static bool is_int32(const nlohmann::json& v) {
    return v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT32_MAX)) &&
           v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX;
  }

  template <typename T>
  void read(const char* key, T* out) {
    if constexpr (std::is_same_v<T, int>) {  // no silent narrowing: 4294967424 is not 128
      const auto& v = j[key];
      if (!is_int32(v)) {
        error = where + ": key '" + key + "' must be an integer in the 32-bit range, not " + v.dump();
        return;
      }
    }
    if constexpr (std::is_same_v<T, std::vector<int>>) {  // nor in lists; [1e300] was undefined behaviour
      const auto& v = j[key];
      if (v.is_array())
        for (const auto& x : v)
          if (!is_int32(x)) {
            error = where + ": key '" + key + "' must hold integers in the 32-bit range, not " + x.dump();
            return;
          }
    }
    try {
      *out = j[key].get<T>();
    } catch (const nlohmann::json::exception&) {
      error = where + ": key '" + key + "' has the wrong type (" + j[key].dump() + ")";
    }
  }
};

// The RoPE dict: a non-empty rope_scaling wins over rope_parameters, which may be nested per layer type.
nlohmann::json rope_dict(const nlohmann::json& j) {
  nlohmann::json rp;
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object() && !j["rope_scaling"].empty()) rp = j["rope_scaling"];
  else if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) rp = j["rope_parameters"];
  if (rp.is_object() && rp.contains("full_attention") && rp["full_attention"].is_object()) rp = rp["full_attention"];
  return rp.is_object() ? rp : nlohmann::json::object();
}

}  // namespace

Result<Config> Config::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return err(where + ": not a JSON object");
  Config c;
  Reader r{j, where, {}};
  std::string model_type;
  r.required("model_type", &model_type);
  if (r.error.empty() && model_type != "qwen3_next")
    return err(where + ": model_type is '" + model_type + "', qnext runs only 'qwen3_next'");
  r.required("vocab_size", &c.vocab_size);
  r.required("hidden_size", &c.hidden_size);
  r.required("num_hidden_layers", &c.num_layers);
  r.required("num_attention_heads", &c.num_q_heads);
  r.required("num_key_value_heads", &c.num_kv_heads);
  r.optional("head_dim", &c.head_dim);
  r.optional("rms_norm_eps", &c.rms_norm_eps);
  r.optional("tie_word_embeddings", &c.tie_word_embeddings);
  r.optional("max_position_embeddings", &c.max_position_embeddings);
  r.optional("bos_token_id", &c.bos_token_id);
  r.required("linear_num_key_heads", &c.linear_num_key_heads);
  r.required("linear_num_value_heads", &c.linear_num_value_heads);
  r.required("linear_key_head_dim", &c.linear_key_head_dim);
  r.required("linear_value_head_dim", &c.linear_value_head_dim);
  r.required("linear_conv_kernel_dim", &c.linear_conv_kernel);
  r.required("num_experts", &c.num_experts);
  r.required("num_experts_per_tok", &c.num_experts_per_tok);
  r.required("moe_intermediate_size", &c.moe_intermediate_size);
  r.required("intermediate_size", &c.intermediate_size);
  r.optional("shared_expert_intermediate_size", &c.shared_expert_intermediate_size);
  r.optional("norm_topk_prob", &c.norm_topk_prob);
  r.optional("decoder_sparse_step", &c.decoder_sparse_step);
  r.optional("mlp_only_layers", &c.mlp_only_layers);
  r.optional("num_nextn_predict_layers", &c.num_mtp_layers);
  if (!r.error.empty()) return err(r.error);

  if (r.has("eos_token_id")) {
    if (j["eos_token_id"].is_array()) r.read("eos_token_id", &c.eos_token_ids);
    else {
      int eos = -1;
      r.read("eos_token_id", &eos);
      c.eos_token_ids = {eos};
    }
  }
  if (r.has("hidden_act") && j["hidden_act"] != "silu")
    return err(where + ": hidden_act " + j["hidden_act"].dump() + " is not supported (only silu)");
  if (r.has("attention_bias") && j["attention_bias"] == true)
    return err(where + ": attention_bias=true is not supported by Qwen3-Next");
  if (c.head_dim == 0 && c.num_q_heads > 0) c.head_dim = c.hidden_size / c.num_q_heads;

  // Sizes are checked against a floor and generous maxima before anything is sized by them (the
  // 80B model: vocab 151936, hidden 2048, 48 layers, 512 experts), so a hostile config gets a
  // message, not a multi-gigabyte allocation or a negative size. Every integer the forward pass
  // sizes buffers by is in this one table.
  struct Limit {
    const char* key;
    int value, min, max;
  };
  for (const Limit& l : {Limit{"vocab_size", c.vocab_size, 1, 1 << 24}, Limit{"hidden_size", c.hidden_size, 1, 1 << 16},
                         Limit{"num_hidden_layers", c.num_layers, 1, 1024},
                         Limit{"num_attention_heads", c.num_q_heads, 1, 1024},
                         Limit{"num_key_value_heads", c.num_kv_heads, 1, 1024}, Limit{"head_dim", c.head_dim, 0, 4096},
                         Limit{"linear_num_key_heads", c.linear_num_key_heads, 1, 1024},
                         Limit{"linear_num_value_heads", c.linear_num_value_heads, 0, 1024},
                         Limit{"linear_key_head_dim", c.linear_key_head_dim, 0, 4096},
                         Limit{"linear_value_head_dim", c.linear_value_head_dim, 0, 4096},
                         Limit{"linear_conv_kernel_dim", c.linear_conv_kernel, 1, kMaxConvTaps},
                         Limit{"num_experts", c.num_experts, 0, 1 << 16},
                         Limit{"moe_intermediate_size", c.moe_intermediate_size, 0, 1 << 20},
                         Limit{"intermediate_size", c.intermediate_size, 0, 1 << 20},
                         Limit{"shared_expert_intermediate_size", c.shared_expert_intermediate_size, 0, 1 << 20},
                         Limit{"decoder_sparse_step", c.decoder_sparse_step, 0, 1024},
                         Limit{"num_nextn_predict_layers", c.num_mtp_layers, 0, 16}})
    if (l.value < l.min || l.value > l.max)
      return err(where + ": " + l.key + " = " + std::to_string(l.value) + " is outside the supported range " +
                 std::to_string(l.min) + ".." + std::to_string(l.max));

  // Layer kinds: explicit layer_types, else every full_attention_interval-th layer is full attention.
  if (r.has("layer_types")) {
    std::vector<std::string> names;
    r.read("layer_types", &names);
    if (!r.error.empty()) return err(r.error);
    for (const auto& n : names) {
      if (n == "linear_attention") c.layer_types.push_back(LayerType::LinearAttention);
      else if (n == "full_attention") c.layer_types.push_back(LayerType::FullAttention);
      else return err(where + ": layer_types has unknown kind '" + n + "'");
    }
    if (int(c.layer_types.size()) != c.num_layers)
      return err(where + ": layer_types has " + std::to_string(c.layer_types.size()) + " entries but num_hidden_layers is " +
                 std::to_string(c.num_layers));
  } else {
    int interval = 4;
    r.optional("full_attention_interval", &interval);
    if (interval <= 0) return err(where + ": full_attention_interval must be positive");
    for (int i = 0; i < c.num_layers; ++i)
      c.layer_types.push_back((i + 1) % interval ? LayerType::LinearAttention : LayerType::FullAttention);
  }

  // RoPE: theta and partial factor may live in the rope dict (newer transformers) or at top level.
  nlohmann::json rp = rope_dict(j);
  Reader rr{rp, where + " (rope parameters)", {}};
  r.optional("rope_theta", &c.rope_theta);
  rr.optional("rope_theta", &c.rope_theta);
  if (r.has("partial_rotary_factor")) r.read("partial_rotary_factor", &c.partial_rotary_factor);
  else rr.optional("partial_rotary_factor", &c.partial_rotary_factor);
  std::string rope_type = "default";
  if (rr.has("rope_type")) rr.read("rope_type", &rope_type);
  else rr.optional("type", &rope_type);
  if (rope_type == "yarn") {
    RopeScaling& y = c.rope_scaling;
    y.yarn = true;
    y.original_max_position = c.max_position_embeddings;
    rr.optional("original_max_position_embeddings", &y.original_max_position);
    if (rr.has("factor")) rr.read("factor", &y.factor);
    else if (y.original_max_position > 0) y.factor = c.max_position_embeddings / y.original_max_position;
    double v = 0;
    if (rr.has("beta_fast") && (rr.read("beta_fast", &v), v != 0)) y.beta_fast = v;
    if (rr.has("beta_slow") && (rr.read("beta_slow", &v), v != 0)) y.beta_slow = v;
    rr.optional("truncate", &y.truncate);
    rr.optional("attention_factor", &y.attention_factor);
    rr.optional("mscale", &y.mscale);
    rr.optional("mscale_all_dim", &y.mscale_all_dim);
    if (y.original_max_position <= 0) return err(where + ": yarn rope scaling needs original_max_position_embeddings");
  } else if (rope_type != "default") {
    return err(where + ": rope_type '" + rope_type + "' is not supported (default or yarn)");
  }
  if (!r.error.empty()) return err(r.error);
  if (!rr.error.empty()) return err(rr.error);
  if (!(c.partial_rotary_factor >= 0 && c.partial_rotary_factor <= 1))  // 1e300 overflowed int below
    return err(where + ": partial_rotary_factor must be in [0, 1], not " + std::to_string(c.partial_rotary_factor));
  c.rotary_dim = int(c.head_dim * c.partial_rotary_factor);

  // Sanity of the dimensions the forward pass relies on (ranges were checked above).
  if (c.num_q_heads % c.num_kv_heads) return err(where + ": num_attention_heads is not a multiple of num_key_value_heads");
  if (c.linear_num_value_heads % c.linear_num_key_heads)
    return err(where + ": linear_num_value_heads is not a multiple of linear_num_key_heads");
  if (c.rotary_dim % 2 || c.rotary_dim > c.head_dim) return err(where + ": partial_rotary_factor gives an odd or too large rotary dim");
  if (c.num_experts > 0 && (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts))
    return err(where + ": num_experts_per_tok must be in 1..num_experts");
  return c;
}

Result<Config> Config::parse(std::string_view text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return err(where + ": malformed JSON: " + e.what());
  }
  return from_json(j, where);
}

Result<Config> Config::load(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return err(path + ": cannot open (is --model a Hugging Face model directory?)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

nlohmann::json Config::to_json() const {
  nlohmann::json j;
  j["architectures"] = {"Qwen3NextForCausalLM"};
  j["model_type"] = "qwen3_next";
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_ids.size() == 1 ? nlohmann::json(eos_token_ids[0]) : nlohmann::json(eos_token_ids);
  j["decoder_sparse_step"] = decoder_sparse_step;
  j["full_attention_interval"] = 4;
  j["head_dim"] = head_dim;
  j["hidden_act"] = "silu";
  j["hidden_size"] = hidden_size;
  j["initializer_range"] = 0.02;
  j["intermediate_size"] = intermediate_size;
  std::vector<std::string> types;
  for (auto t : layer_types) types.push_back(t == LayerType::FullAttention ? "full_attention" : "linear_attention");
  j["layer_types"] = types;
  j["linear_conv_kernel_dim"] = linear_conv_kernel;
  j["linear_key_head_dim"] = linear_key_head_dim;
  j["linear_num_key_heads"] = linear_num_key_heads;
  j["linear_num_value_heads"] = linear_num_value_heads;
  j["linear_value_head_dim"] = linear_value_head_dim;
  j["max_position_embeddings"] = max_position_embeddings;
  j["mlp_only_layers"] = mlp_only_layers;
  j["moe_intermediate_size"] = moe_intermediate_size;
  j["norm_topk_prob"] = norm_topk_prob;
  j["num_attention_heads"] = num_q_heads;
  j["num_experts"] = num_experts;
  j["num_experts_per_tok"] = num_experts_per_tok;
  j["num_hidden_layers"] = num_layers;
  j["num_nextn_predict_layers"] = num_mtp_layers;
  j["num_key_value_heads"] = num_kv_heads;
  j["output_router_logits"] = false;
  j["partial_rotary_factor"] = partial_rotary_factor;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_scaling"] = nullptr;
  if (rope_scaling.yarn) {
    const RopeScaling& y = rope_scaling;
    j["rope_scaling"] = {{"rope_type", "yarn"},      {"factor", y.factor},
                         {"original_max_position_embeddings", y.original_max_position},
                         {"beta_fast", y.beta_fast}, {"beta_slow", y.beta_slow},
                         {"truncate", y.truncate},   {"attention_factor", y.attention_factor},
                         {"mscale", y.mscale},       {"mscale_all_dim", y.mscale_all_dim}};
  }
  j["rope_theta"] = rope_theta;
  j["router_aux_loss_coef"] = 0.001;
  j["shared_expert_intermediate_size"] = shared_expert_intermediate_size;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["torch_dtype"] = "bfloat16";
  j["use_cache"] = true;
  j["use_sliding_window"] = false;
  j["vocab_size"] = vocab_size;
  return j;
}

}  // namespace qnext
