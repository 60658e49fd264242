#include "model/weights.h"

#include <cmath>
#include <map>

#include "io/quant_config.h"

namespace qnext {
namespace {

// Fetches tensors by their Hugging Face names; remembers the first error.
class Loader {
 public:
  Loader(const Checkpoint& ck, const Config& c, const QuantConfig& qc, QuantRecipe recipe, const WeightShare& share,
         std::vector<std::vector<uint8_t>>& owned)
      : ck_(ck), c_(c), qc_(qc), recipe_(recipe), share_(share), owned_(owned) {}
  std::string error;
  int expert = -1;  // the routed expert being loaded, -1 for every other matrix

  // The matrix as stored (float, Q8_0/Q4_0, FP8, int4), quantized now when the recipe says so.
  Matrix matrix(const std::string& name, int64_t rows, int64_t cols) {
    Matrix m = stored(name, rows, cols);
    if (!error.empty()) return {};
    // Another process's weights (expert parallelism) stay as stored: never touched here.
    const bool here = expert >= 0 ? share_.owns_expert(expert) : share_.dense;
    if (auto target = here ? quant_target(recipe_, name, m.dtype, cols) : std::nullopt) {
      auto& bytes = owned_.emplace_back(size_t(rows) * row_bytes(*target, cols));
      quantize_matrix(m, *target, bytes.data());
      return Matrix{*target, bytes.data(), rows, cols};
    }
    return m;
  }

  Matrix stored(const std::string& name, int64_t rows, int64_t cols) {
    if (!error.empty()) return {};
    if (const TensorView* qt = ck_.find(name); qt && qt->quant) {  // stored quantized by `qnext quantize`
      const std::vector<int64_t> want = {rows, int64_t(row_bytes(*qt->quant, cols))};
      if (cols % 32 != 0 || qt->shape != want) {
        TensorView w;
        w.shape = want;
        fail(*qt->file + ": tensor '" + name + "' (" + std::string(dtype_name(*qt->quant)) + ") has stored shape " +
             qt->shape_str() + ", expected " + w.shape_str() + " for [" + std::to_string(rows) + ", " +
             std::to_string(cols) + "]");
        return {};
      }
      return Matrix{*qt->quant, qt->data, rows, cols};
    }
    // Published quantized checkpoints: FP8 blocks or compressed-tensors int4, decided per module.
    const std::string module = name.size() > 7 ? name.substr(0, name.size() - 7) : name;  // minus ".weight"
    auto scaled = find_scaled_matrix(ck_, qc_, module, rows, cols);
    if (!scaled) {
      fail(scaled.error());
      return {};
    }
    if (const auto& sm = scaled.value()) {
      Matrix m{sm->dtype, sm->codes, rows, cols};
      m.scales = sm->scales;
      m.scale_dtype = sm->scale_dtype;
      m.group = sm->group;
      m.group_rows = sm->group_rows;
      m.zeros = sm->zeros;
      return m;
    }
    const TensorView* t = fetch(name, {rows, cols});
    if (!t) return {};
    if (t->dtype != DType::BF16 && t->dtype != DType::F16 && t->dtype != DType::F32) {
      fail(*t->file + ": tensor '" + name + "' has dtype " + std::string(dtype_name(t->dtype)) +
           ", expected BF16, F16 or F32");
      return {};
    }
    return Matrix{t->dtype, t->data, rows, cols};
  }

  std::vector<float> vec(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorView* t = fetch(name, shape);
    if (!t) return {};
    std::vector<float> out(size_t(t->numel()));
    for (size_t i = 0; i < out.size(); ++i) {
      switch (t->dtype) {
        case DType::BF16: out[i] = bf16_to_f32(reinterpret_cast<const uint16_t*>(t->data)[i]); break;
        case DType::F16: out[i] = f16_to_f32(reinterpret_cast<const uint16_t*>(t->data)[i]); break;
        case DType::F32: out[i] = reinterpret_cast<const float*>(t->data)[i]; break;
        default:
          fail(*t->file + ": tensor '" + name + "' has dtype " + std::string(dtype_name(t->dtype)) +
               ", expected BF16, F16 or F32");
          return {};
      }
    }
    return out;
  }

  NormScale zero_centered_norm(const std::string& name, int64_t n) {
    std::vector<float> w = vec(name, {n});
    for (float& x : w) x = 1.0f + x;
    return w;
  }

  MlpWeights mlp(const std::string& p, int64_t inter) {
    const int64_t H = c_.hidden_size;
    return {matrix(p + "gate_proj.weight", inter, H), matrix(p + "up_proj.weight", inter, H),
            matrix(p + "down_proj.weight", H, inter)};
  }

  LayerWeights layer(const std::string& p, LayerType type, bool is_moe) {
    const int64_t H = c_.hidden_size;
    LayerWeights l;
    l.type = type;
    l.is_moe = is_moe;
    l.input_norm = zero_centered_norm(p + "input_layernorm.weight", H);
    l.post_attention_norm = zero_centered_norm(p + "post_attention_layernorm.weight", H);
    if (type == LayerType::FullAttention) {
      const int64_t D = c_.head_dim, nq = c_.num_q_heads, nkv = c_.num_kv_heads;
      const std::string a = p + "self_attn.";
      l.attn.q_proj = matrix(a + "q_proj.weight", nq * 2 * D, H);
      l.attn.k_proj = matrix(a + "k_proj.weight", nkv * D, H);
      l.attn.v_proj = matrix(a + "v_proj.weight", nkv * D, H);
      l.attn.o_proj = matrix(a + "o_proj.weight", H, nq * D);
      l.attn.q_norm = zero_centered_norm(a + "q_norm.weight", D);
      l.attn.k_norm = zero_centered_norm(a + "k_norm.weight", D);
    } else {
      const int64_t Hk = c_.linear_num_key_heads, Hv = c_.linear_num_value_heads;
      const int64_t Dk = c_.linear_key_head_dim, Dv = c_.linear_value_head_dim, r = Hv / Hk;
      const int64_t C = c_.linear_qkv_dim(), K = c_.linear_conv_kernel;
      const std::string g = p + "linear_attn.";
      l.gdn.in_proj_qkvz = matrix(g + "in_proj_qkvz.weight", Hk * (2 * Dk + 2 * r * Dv), H);
      l.gdn.in_proj_ba = matrix(g + "in_proj_ba.weight", Hk * 2 * r, H);
      l.gdn.conv = vec(g + "conv1d.weight", {C, 1, K});
      l.gdn.A = vec(g + "A_log", {Hv});
      for (float& a : l.gdn.A) a = -std::exp(a);
      l.gdn.dt_bias = vec(g + "dt_bias", {Hv});
      l.gdn.norm = vec(g + "norm.weight", {Dv});
      l.gdn.out_proj = matrix(g + "out_proj.weight", H, Hv * Dv);
    }
    const std::string m = p + "mlp.";
    if (is_moe) {
      const int64_t E = c_.num_experts;
      l.moe.router = matrix(m + "gate.weight", E, H);
      l.moe.experts.reserve(size_t(E));
      for (int64_t e = 0; e < E && error.empty(); ++e) {
        expert = int(e);
        l.moe.experts.push_back(mlp(m + "experts." + std::to_string(e) + ".", c_.moe_intermediate_size));
      }
      expert = -1;
      l.moe.has_shared = c_.shared_expert_intermediate_size > 0;
      if (l.moe.has_shared) {
        l.moe.shared = mlp(m + "shared_expert.", c_.shared_expert_intermediate_size);
        l.moe.shared_gate = matrix(m + "shared_expert_gate.weight", 1, H);
      }
    } else {
      l.mlp = mlp(m, c_.intermediate_size);
    }
    return l;
  }

 private:
  const TensorView* fetch(const std::string& name, const std::vector<int64_t>& shape) {
    if (!error.empty()) return nullptr;
    auto t = ck_.get(name, shape);
    if (!t) {
      fail(t.error());
      return nullptr;
    }
    return t.value();
  }
  void fail(std::string msg) {
    if (error.empty()) error = std::move(msg);
  }

  const Checkpoint& ck_;
  const Config& c_;
  const QuantConfig& qc_;
  QuantRecipe recipe_;
  WeightShare share_;
  std::vector<std::vector<uint8_t>>& owned_;
};

}  // namespace

Result<Weights> Weights::load(const std::string& dir, const Config& c, QuantRecipe recipe, const WeightShare& share) {
  if (c.linear_value_head_dim > 1024 || c.head_dim > 1024)
    return err(dir + "/config.json: head dims above 1024 are not supported");
  auto qc = read_quant_config(dir);
  if (!qc) return err(qc.error());
  auto ck = Checkpoint::open(dir);
  if (!ck) return err(ck.error());
  Weights w;
  w.checkpoint = std::move(ck.value());
  w.quant = qc.value();
  w.share = share;
  Loader L(w.checkpoint, c, w.quant, recipe, share, w.quantized_at_load);
  const int64_t V = c.vocab_size, H = c.hidden_size;
  w.embed = L.matrix("model.embed_tokens.weight", V, H);
  if (c.tie_word_embeddings && !w.checkpoint.find("lm_head.weight")) w.lm_head = w.embed;
  else w.lm_head = L.matrix("lm_head.weight", V, H);
  for (int i = 0; i < c.num_layers && L.error.empty(); ++i)
    w.layers.push_back(L.layer("model.layers." + std::to_string(i) + ".", c.layer_types[size_t(i)], c.is_moe_layer(i)));
  w.final_norm = L.zero_centered_norm("model.norm.weight", H);
  // MTP is optional: community quantizations often drop it.
  if (L.error.empty() && w.checkpoint.has_prefix("mtp.")) {
    MtpWeights m;
    m.fc = L.matrix("mtp.fc.weight", H, 2 * H);
    m.pre_fc_norm_embedding = L.zero_centered_norm("mtp.pre_fc_norm_embedding.weight", H);
    m.pre_fc_norm_hidden = L.zero_centered_norm("mtp.pre_fc_norm_hidden.weight", H);
    m.norm = L.zero_centered_norm("mtp.norm.weight", H);
    m.layer = L.layer("mtp.layers.0.", LayerType::FullAttention, c.is_moe_layer(0));
    w.mtp = std::move(m);
  }
  if (!L.error.empty()) return err(L.error);
  return w;
}

size_t Weights::file_bytes() const { return checkpoint.total_bytes() + gguf.total_bytes(); }
size_t Weights::file_count() const { return checkpoint.files().size() + gguf.file_count(); }
void Weights::prefault() const {
  if (share.ranks == 1) {
    // A file copied into memory is resident already (touching it again took seconds for a 9 GB one).
    for (const MappedFile* f : mapped_files())
      if (!f->in_memory()) prefault_pages(f->data(), f->size());
    return;
  }
  auto touch = [](const Matrix& m) {
    m.for_each_part([](const void* p, size_t bytes) { prefault_pages(static_cast<const uint8_t*>(p), bytes); });
  };
  if (share.dense) for_each_matrix(touch, false);
  for (const MoeWeights* moe : moe_blocks())
    for (size_t e = 0; e < moe->experts.size(); ++e)
      if (share.owns_expert(int(e))) touch(moe->experts[e].gate), touch(moe->experts[e].up), touch(moe->experts[e].down);
}

void Weights::for_each_matrix(const std::function<void(const Matrix&)>& fn, bool routed_experts) const {
  auto mlp = [&](const MlpWeights& m) { fn(m.gate), fn(m.up), fn(m.down); };
  auto layer = [&](const LayerWeights& l) {
    if (l.type == LayerType::FullAttention) fn(l.attn.q_proj), fn(l.attn.k_proj), fn(l.attn.v_proj), fn(l.attn.o_proj);
    else if (l.gdn.in_proj_qkvz.data) fn(l.gdn.in_proj_qkvz), fn(l.gdn.in_proj_ba), fn(l.gdn.out_proj);
    else fn(l.gdn.in_proj_qkv), fn(l.gdn.in_proj_z), fn(l.gdn.in_proj_ba), fn(l.gdn.out_proj);
    if (!l.is_moe) return mlp(l.mlp);
    fn(l.moe.router);
    if (routed_experts)
      for (const auto& e : l.moe.experts) mlp(e);
    if (l.moe.has_shared) mlp(l.moe.shared), fn(l.moe.shared_gate);
  };
  fn(embed);
  if (lm_head.data != embed.data) fn(lm_head);
  for (const auto& l : layers) layer(l);
  if (mtp) fn(mtp->fc), layer(mtp->layer);
}

std::vector<const MoeWeights*> Weights::moe_blocks() const {
  std::vector<const MoeWeights*> out;
  for (const auto& l : layers)
    if (l.is_moe) out.push_back(&l.moe);
  if (mtp && mtp->layer.is_moe) out.push_back(&mtp->layer.moe);
  return out;
}

std::vector<const MappedFile*> Weights::mapped_files() const {
  std::vector<const MappedFile*> out;
  for (const auto& f : checkpoint.files()) out.push_back(&f.mapped());
  for (const auto& f : gguf.mapped_files()) out.push_back(f.get());
  return out;
}

Status Weights::copy_into_memory() const {
  for (const MappedFile* f : mapped_files())
    if (Status st = f->copy_into_memory(); !st) return st;
  return Ok{};
}

size_t Weights::huge_page_bytes() const {
  size_t total = 0;
  const std::string smaps = read_smaps();  // once: reading it walks every mapping's page tables
  for (const MappedFile* f : mapped_files()) total += f->huge_page_bytes(smaps);
  return total;
}

void Weights::prefault_dense() const {
  for_each_matrix([](const Matrix& m) {
    m.for_each_part([](const void* p, size_t bytes) { prefault_pages(static_cast<const uint8_t*>(p), bytes); });
  }, false);
}

}  // namespace qnext
