#include "model/synth.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace qnext {

Result<Config> preset_config(const std::string& name) {
  Config c;
  c.bos_token_id = 151643;
  c.eos_token_ids = {151645};
  c.rope_theta = 10000000;
  c.partial_rotary_factor = 0.25;
  c.max_position_embeddings = 262144;
  c.rms_norm_eps = 1e-6f;
  c.linear_conv_kernel = 4;
  c.norm_topk_prob = true;
  c.vocab_size = 151936;
  if (name == "qwen3-next-80b-a3b") {
    c.hidden_size = 2048;
    c.num_layers = 48;
    c.num_q_heads = 16;
    c.num_kv_heads = 2;
    c.head_dim = 256;
    c.linear_num_key_heads = 16;
    c.linear_num_value_heads = 32;
    c.linear_key_head_dim = 128;
    c.linear_value_head_dim = 128;
    c.num_experts = 512;
    c.num_experts_per_tok = 10;
    c.moe_intermediate_size = 512;
    c.shared_expert_intermediate_size = 512;
    c.intermediate_size = 5120;
  } else if (name == "tiny") {
    c.hidden_size = 128;
    c.num_layers = 4;
    c.num_q_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 64;
    c.linear_num_key_heads = 2;
    c.linear_num_value_heads = 4;
    c.linear_key_head_dim = 32;
    c.linear_value_head_dim = 32;
    c.num_experts = 16;
    c.num_experts_per_tok = 4;
    c.moe_intermediate_size = 64;
    c.shared_expert_intermediate_size = 64;
    c.intermediate_size = 256;
  } else {
    return err("unknown preset '" + name + "' (known: qwen3-next-80b-a3b, tiny)");
  }
  c.rotary_dim = int(c.head_dim * c.partial_rotary_factor);
  for (int i = 0; i < c.num_layers; ++i)
    c.layer_types.push_back((i + 1) % 4 ? LayerType::LinearAttention : LayerType::FullAttention);
  return c;
}

static void add_layer(std::vector<SynthTensor>& out, const Config& c, const std::string& p, LayerType type, bool moe) {
  const int64_t H = c.hidden_size;
  out.push_back({p + "input_layernorm.weight", {H}});
  out.push_back({p + "post_attention_layernorm.weight", {H}});
  if (type == LayerType::FullAttention) {
    const int64_t D = c.head_dim;
    out.push_back({p + "self_attn.q_proj.weight", {c.num_q_heads * 2 * D, H}});
    out.push_back({p + "self_attn.k_proj.weight", {c.num_kv_heads * D, H}});
    out.push_back({p + "self_attn.v_proj.weight", {c.num_kv_heads * D, H}});
    out.push_back({p + "self_attn.o_proj.weight", {H, c.num_q_heads * D}});
    out.push_back({p + "self_attn.q_norm.weight", {D}});
    out.push_back({p + "self_attn.k_norm.weight", {D}});
  } else {
    const int64_t Hk = c.linear_num_key_heads, Hv = c.linear_num_value_heads;
    const int64_t Dk = c.linear_key_head_dim, Dv = c.linear_value_head_dim, r = Hv / Hk;
    out.push_back({p + "linear_attn.in_proj_qkvz.weight", {Hk * (2 * Dk + 2 * r * Dv), H}});
    out.push_back({p + "linear_attn.in_proj_ba.weight", {Hk * 2 * r, H}});
    out.push_back({p + "linear_attn.conv1d.weight", {c.linear_qkv_dim(), 1, c.linear_conv_kernel}});
    out.push_back({p + "linear_attn.A_log", {Hv}});
    out.push_back({p + "linear_attn.dt_bias", {Hv}});
    out.push_back({p + "linear_attn.norm.weight", {Dv}});
    out.push_back({p + "linear_attn.out_proj.weight", {H, Hv * Dv}});
  }
  auto mlp = [&](const std::string& m, int64_t I) {
    out.push_back({m + "gate_proj.weight", {I, H}});
    out.push_back({m + "up_proj.weight", {I, H}});
    out.push_back({m + "down_proj.weight", {H, I}});
  };
  if (moe) {
    out.push_back({p + "mlp.gate.weight", {c.num_experts, H}});
    for (int e = 0; e < c.num_experts; ++e) mlp(p + "mlp.experts." + std::to_string(e) + ".", c.moe_intermediate_size);
    if (c.shared_expert_intermediate_size > 0) {
      mlp(p + "mlp.shared_expert.", c.shared_expert_intermediate_size);
      out.push_back({p + "mlp.shared_expert_gate.weight", {1, H}});
    }
  } else {
    mlp(p + "mlp.", c.intermediate_size);
  }
}

std::vector<SynthTensor> checkpoint_tensors(const Config& c, bool with_mtp) {
  const int64_t H = c.hidden_size;
  std::vector<SynthTensor> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, H}});
  for (int i = 0; i < c.num_layers; ++i)
    add_layer(out, c, "model.layers." + std::to_string(i) + ".", c.layer_types[size_t(i)], c.is_moe_layer(i));
  out.push_back({"model.norm.weight", {H}});
  out.push_back({"lm_head.weight", {c.vocab_size, H}});
  if (with_mtp) {
    out.push_back({"mtp.fc.weight", {H, 2 * H}});
    out.push_back({"mtp.pre_fc_norm_embedding.weight", {H}});
    out.push_back({"mtp.pre_fc_norm_hidden.weight", {H}});
    out.push_back({"mtp.norm.weight", {H}});
    add_layer(out, c, "mtp.layers.0.", LayerType::FullAttention, c.is_moe_layer(0));
  }
  return out;
}

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Fills a tensor with values whose scale keeps activations near unit size; each tensor's values
// depend only on (seed, name), so shards can be written in any order and in parallel.
void fill_tensor(const SynthTensor& t, uint64_t seed, uint16_t* dst, size_t n) {
  float lo = -1, hi = 1;
  const std::string& name = t.name;
  if (ends_with(name, "A_log")) lo = 0.0f, hi = 2.7f;  // decay rates exp(A_log) in [1, 15]
  else if (ends_with(name, "dt_bias")) lo = -1.0f, hi = 1.0f;
  else if (ends_with(name, "linear_attn.norm.weight")) lo = 0.9f, hi = 1.1f;  // plain norm: w near 1
  else if (ends_with(name, "norm.weight") || ends_with(name, "layernorm.weight")) lo = -0.1f, hi = 0.1f;  // used as 1 + w
  else if (ends_with(name, "conv1d.weight")) lo = -0.5f, hi = 0.5f;
  else if (name == "model.embed_tokens.weight") lo = -1.0f, hi = 1.0f;
  else if (t.shape.size() == 2) {
    const float a = std::sqrt(3.0f / float(t.shape[1]));
    lo = -a, hi = a;
  }
  const uint64_t base = seed ^ hash_name(name);
  const size_t block = 1 << 16;
  global_pool().parallel_for((n + block - 1) / block, [&](size_t b0, size_t b1, int) {
    for (size_t b = b0; b < b1; ++b) {
      uint64_t s = base + b * 0x632be59bd9b4e019ull;
      const size_t end = std::min(n, (b + 1) * block);
      for (size_t i = b * block; i < end; ++i) {
        const float u = float(splitmix(s) >> 40) * (1.0f / 16777216.0f);
        dst[i] = f32_to_bf16(lo + (hi - lo) * u);
      }
    }
  });
}

}  // namespace

Status synthesize_checkpoint(const Config& c, uint64_t seed, const std::string& out_dir, bool with_mtp,
                             size_t shard_bytes, const std::function<void(size_t, size_t)>& progress) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return err(out_dir + ": cannot create directory: " + ec.message());
  const auto tensors = checkpoint_tensors(c, with_mtp);

  // Group tensors into shards of about shard_bytes each.
  std::vector<std::vector<size_t>> shards(1);
  size_t in_shard = 0, total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    size_t bytes = 2;
    for (int64_t d : tensors[i].shape) bytes *= size_t(d);
    if (in_shard > 0 && in_shard + bytes > shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(i);
    in_shard += bytes;
    total += bytes;
  }

  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  size_t written = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    char fname[64];
    std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::vector<TensorSpec> specs;
    for (size_t i : shards[s]) {
      specs.push_back({tensors[i].name, DType::BF16, tensors[i].shape});
      weight_map[tensors[i].name] = fname;
    }
    Status st = write_safetensors((fs::path(out_dir) / fname).string(), specs,
                                  [&](size_t j, uint8_t* dst) {
                                    const size_t n = specs[j].nbytes() / 2;
                                    fill_tensor(tensors[shards[s][j]], seed, reinterpret_cast<uint16_t*>(dst), n);
                                    written += n * 2;
                                    if (progress) progress(written, total);
                                  },
                                  {{"format", "pt"}});
    if (!st) return st;
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::ofstream(fs::path(out_dir) / "model.safetensors.index.json") << index.dump(2) << "\n";
  nlohmann::json config = c.to_json();
  if (with_mtp) config["num_nextn_predict_layers"] = 1;
  std::ofstream(fs::path(out_dir) / "config.json") << config.dump(2) << "\n";
  return Ok{};
}

}  // namespace qnext
