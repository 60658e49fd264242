// Weights from a llama.cpp GGUF file of `qwen3next`: the tensor names (blk.N.*, token_embd,
// output, the MTP block's nextn.*) mapped to their roles, matrices used in place in their stored
// block format, and the converter's transforms undone (reference.md of each GGUF fixture lists
// them): norms are stored as 1 + w already, ssm_a is A = -exp(A_log) itself, the DeltaNet input
// projection is split into attn_qkv (conv channel order) and attn_gate (z), experts are stacked.
#include <cmath>

#include "kernels/weight_format.h"
#include "model/weights.h"

namespace qnext {
namespace {

class GgufLoader {
 public:
  GgufLoader(const GgufCheckpoint& g, const Config& c, QuantRecipe recipe, const WeightShare& share,
             std::vector<std::vector<uint8_t>>& owned)
      : g_(g), c_(c), recipe_(recipe), share_(share), owned_(owned) {}
  std::string error;
  int expert_being_loaded = -1;  // the routed expert being loaded, -1 for every other matrix

  // A matrix [rows, cols] in its stored format; `role` is the Hugging Face name, which decides
  // what a --quantize recipe does to a float matrix.
  Matrix matrix(const std::string& name, const std::string& role, int64_t rows, int64_t cols) {
    const GgufTensor* t = fetch(name, {rows, cols});
    if (!t) return {};
    return as_matrix(*t, role, t->data, rows, cols);
  }

  // Slice e of a stacked expert tensor [E, rows, cols].
  Matrix expert(const std::string& name, const std::string& role, int64_t e, int64_t rows, int64_t cols) {
    const GgufTensor* t = fetch(name, {c_.num_experts, rows, cols});
    if (!t) return {};
    const auto type = usable_type(*t);
    if (!type) return {};
    return as_matrix(*t, role, t->data + size_t(e) * size_t(rows) * row_bytes(*type, cols), rows, cols);
  }

  std::vector<float> vec(const std::string& name, const std::vector<int64_t>& shape) {
    const GgufTensor* t = fetch(name, shape);
    if (!t) return {};
    std::vector<float> out(size_t(t->numel()));
    const auto type = dtype_of_ggml(t->type);
    for (size_t i = 0; i < out.size(); ++i) {
      switch (type.value_or(DType::U8)) {
        case DType::F32: out[i] = reinterpret_cast<const float*>(t->data)[i]; break;
        case DType::F16: out[i] = f16_to_f32(reinterpret_cast<const uint16_t*>(t->data)[i]); break;
        case DType::BF16: out[i] = bf16_to_f32(reinterpret_cast<const uint16_t*>(t->data)[i]); break;
        default:
          fail(*t->file + ": tensor '" + name + "' is " + t->type_name() + ", expected F32, F16 or BF16");
          return {};
      }
    }
    return out;
  }

  const GgufTensor* find(const std::string& name) const { return g_.find(name); }

  MlpWeights mlp(const std::string& b, const std::string& suffix, const std::string& role, int64_t inter) {
    const int64_t H = c_.hidden_size;
    return {matrix(b + "ffn_gate" + suffix + ".weight", role + "gate_proj.weight", inter, H),
            matrix(b + "ffn_up" + suffix + ".weight", role + "up_proj.weight", inter, H),
            matrix(b + "ffn_down" + suffix + ".weight", role + "down_proj.weight", H, inter)};
  }

  // Block `i` (blk.i.) as decoder layer `role` ("model.layers.i." or "mtp.layers.0.").
  LayerWeights layer(int i, const std::string& role, LayerType type) {
    const std::string b = "blk." + std::to_string(i) + ".";
    const int64_t H = c_.hidden_size;
    LayerWeights l;
    l.type = type;
    l.is_moe = true;  // llama.cpp's qwen3next has MoE in every block
    l.input_norm = vec(b + "attn_norm.weight", {H});
    l.post_attention_norm = vec(b + "post_attention_norm.weight", {H});
    if (type == LayerType::FullAttention) {
      const int64_t D = c_.head_dim, nq = c_.num_q_heads, nkv = c_.num_kv_heads;
      const std::string a = role + "self_attn.";
      l.attn.q_proj = matrix(b + "attn_q.weight", a + "q_proj.weight", nq * 2 * D, H);
      l.attn.k_proj = matrix(b + "attn_k.weight", a + "k_proj.weight", nkv * D, H);
      l.attn.v_proj = matrix(b + "attn_v.weight", a + "v_proj.weight", nkv * D, H);
      l.attn.o_proj = matrix(b + "attn_output.weight", a + "o_proj.weight", H, nq * D);
      l.attn.q_norm = vec(b + "attn_q_norm.weight", {D});
      l.attn.k_norm = vec(b + "attn_k_norm.weight", {D});
    } else {
      const int64_t Hk = c_.linear_num_key_heads, Hv = c_.linear_num_value_heads, Dv = c_.linear_value_head_dim;
      const int64_t C = c_.linear_qkv_dim(), K = c_.linear_conv_kernel;
      const std::string g = role + "linear_attn.";
      l.gdn.in_proj_qkv = matrix(b + "attn_qkv.weight", g + "in_proj_qkvz.weight", C, H);
      l.gdn.in_proj_z = matrix(b + "attn_gate.weight", g + "in_proj_qkvz.weight", Hv * Dv, H);
      l.gdn.in_proj_ba = matrix(b + "ssm_ba.weight", g + "in_proj_ba.weight", 2 * Hv, H);
      l.gdn.conv = vec(b + "ssm_conv1d.weight", {C, K});
      l.gdn.A = vec(b + "ssm_a", {Hv});
      l.gdn.dt_bias = vec(b + "ssm_dt.bias", {Hv});
      l.gdn.norm = vec(b + "ssm_norm.weight", {Dv});
      l.gdn.out_proj = matrix(b + "ssm_out.weight", g + "out_proj.weight", H, Hv * Dv);
      (void)Hk;
    }
    const std::string m = role + "mlp.";
    const int64_t E = c_.num_experts, I = c_.moe_intermediate_size;
    l.moe.router = matrix(b + "ffn_gate_inp.weight", m + "gate.weight", E, H);
    l.moe.experts.resize(size_t(E));
    for (int64_t e = 0; e < E && error.empty(); ++e) {
      const std::string x = m + "experts." + std::to_string(e) + ".";
      MlpWeights& w = l.moe.experts[size_t(e)];
      expert_being_loaded = int(e);
      w.gate = expert(b + "ffn_gate_exps.weight", x + "gate_proj.weight", e, I, H);
      w.up = expert(b + "ffn_up_exps.weight", x + "up_proj.weight", e, I, H);
      w.down = expert(b + "ffn_down_exps.weight", x + "down_proj.weight", e, H, I);
    }
    expert_being_loaded = -1;
    l.moe.has_shared = c_.shared_expert_intermediate_size > 0;
    if (l.moe.has_shared) {
      l.moe.shared = mlp(b, "_shexp", m + "shared_expert.", c_.shared_expert_intermediate_size);
      // The converter writes this one-row gate as [H] or as [1, H].
      const std::string gate = b + "ffn_gate_inp_shexp.weight";
      const GgufTensor* t = g_.find(gate);
      if (t && t->shape == std::vector<int64_t>{H}) l.moe.shared_gate = as_matrix(*t, m + "shared_expert_gate.weight", t->data, 1, H);
      else l.moe.shared_gate = matrix(gate, m + "shared_expert_gate.weight", 1, H);
    }
    return l;
  }

 private:
  const GgufTensor* fetch(const std::string& name, const std::vector<int64_t>& shape) {
    if (!error.empty()) return nullptr;
    auto t = g_.get(name, shape);
    if (!t) {
      fail(t.error());
      return nullptr;
    }
    return t.value();
  }

  // The tensor's format if qnext has kernels for it.
  std::optional<DType> usable_type(const GgufTensor& t) {
    const auto type = dtype_of_ggml(t.type);
    if (!type || !weight_format(*type).rows_f32[0]) {
      fail(*t.file + ": tensor '" + t.name + "' is stored as " + t.type_name() +
           ", which qnext does not compute yet (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K do)");
      return std::nullopt;
    }
    return type;
  }

  Matrix as_matrix(const GgufTensor& t, const std::string& role, const uint8_t* data, int64_t rows, int64_t cols) {
    const auto type = usable_type(t);
    if (!type) return {};
    Matrix m{*type, data, rows, cols};
    // Another process's weights (expert parallelism) stay as stored: never touched here.
    const bool here = expert_being_loaded >= 0 ? share_.owns_expert(expert_being_loaded) : share_.dense;
    if (auto target = here ? quant_target(recipe_, role, m.dtype, cols) : std::nullopt) {
      auto& bytes = owned_.emplace_back(size_t(rows) * row_bytes(*target, cols));
      quantize_matrix(m, *target, bytes.data());
      return Matrix{*target, bytes.data(), rows, cols};
    }
    return m;
  }

  void fail(std::string msg) {
    if (error.empty()) error = std::move(msg);
  }

  const GgufCheckpoint& g_;
  const Config& c_;
  QuantRecipe recipe_;
  WeightShare share_;
  std::vector<std::vector<uint8_t>>& owned_;
};

}  // namespace

Result<Weights> Weights::load_gguf(GgufCheckpoint gguf, const Config& c, QuantRecipe recipe, const WeightShare& share) {
  if (c.linear_value_head_dim > 1024 || c.head_dim > 1024) return err(gguf.path() + ": head dims above 1024 are not supported");
  Weights w;
  w.gguf = std::move(gguf);
  w.share = share;
  GgufLoader L(w.gguf, c, recipe, share, w.quantized_at_load);
  const int64_t V = c.vocab_size, H = c.hidden_size;
  w.embed = L.matrix("token_embd.weight", "model.embed_tokens.weight", V, H);
  if (L.find("output.weight")) w.lm_head = L.matrix("output.weight", "lm_head.weight", V, H);
  else w.lm_head = w.embed;
  for (int i = 0; i < c.num_layers && L.error.empty(); ++i)
    w.layers.push_back(L.layer(i, "model.layers." + std::to_string(i) + ".", c.layer_types[size_t(i)]));
  w.final_norm = L.vec("output_norm.weight", {H});
  // The MTP block follows the decoder blocks; community conversions may leave it out.
  const std::string n = "blk." + std::to_string(c.num_layers) + ".nextn.";
  if (L.error.empty() && L.find(n + "eh_proj.weight")) {
    MtpWeights m;
    m.fc = L.matrix(n + "eh_proj.weight", "mtp.fc.weight", H, 2 * H);
    m.pre_fc_norm_embedding = L.vec(n + "enorm.weight", {H});
    m.pre_fc_norm_hidden = L.vec(n + "hnorm.weight", {H});
    m.norm = L.vec(n + "shared_head_norm.weight", {H});
    m.layer = L.layer(c.num_layers, "mtp.layers.0.", LayerType::FullAttention);
    w.mtp = std::move(m);
  }
  if (!L.error.empty()) return err(L.error);
  return w;
}

}  // namespace qnext
