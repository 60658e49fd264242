// `qnext quantize` from a llama.cpp GGUF file: a qnext checkpoint in the Hugging Face layout. The
// GGUF's tensors are mapped to their roles by Weights::load_gguf (the one place that knows the
// GGUF names), and every Hugging Face tensor is rebuilt from those roles with the converter's
// transforms undone the other way round: norms back to zero-centered (x - 1), A back to A_log,
// the DeltaNet input projection regrouped per key head, experts as separate matrices. Matrices
// are requantized from their dequantized rows; the rest is written as F32. One tensor is held at
// a time, so a 45 GB file converts in a few GB of memory.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "kernels/quant.h"
#include "kernels/weight_format.h"
#include "model/quantize.h"
#include "model/weights.h"

namespace fs = std::filesystem;

namespace qnext {
namespace {

// Row r of a [rows, cols] matrix as floats: out[cols].
using RowSource = std::function<void(int64_t r, float* out)>;

// A matrix row in float, through the active ISA's dequantizer (bit-exact with the scalar one).
void dequant_row(const Matrix& m, int64_t r, float* out) {
  const WeightFormat& f = weight_format(m.dtype);
  DequantKernel k = f.dequant[int(active_isa())];
  (k ? k : f.dequant[int(Isa::Scalar)])(m, r, 0, m.cols, out);
}

// One tensor of the output: its header entry and how its bytes are made.
struct Planned {
  TensorSpec spec;
  std::optional<DType> quant;              // the block format of a U8 tensor
  std::function<void(uint8_t*)> fill;      // writes spec.nbytes() bytes
};

// Lists the Hugging Face tensors of a model (names as model/weights.cpp reads them) with the
// recipe applied; nothing is computed until a tensor's fill runs.
class Planner {
 public:
  Planner(QuantRecipe recipe, const Config& c) : recipe_(recipe), c_(c) {}
  std::vector<Planned> out;
  std::string error;

  void rows(const std::string& name, int64_t rows, int64_t cols, RowSource src) {
    const auto target = quant_target(recipe_, name, DType::F32, cols);
    Planned p;
    p.quant = target;
    p.spec = target ? TensorSpec{name, DType::U8, {rows, int64_t(row_bytes(*target, cols))}}
                    : TensorSpec{name, DType::F32, {rows, cols}};
    p.fill = [rows, cols, target, src = std::move(src)](uint8_t* dst) {
      const size_t out_row = target ? row_bytes(*target, cols) : size_t(cols) * sizeof(float);
      global_pool().parallel_for(size_t(rows), [&](size_t r0, size_t r1, int) {
        std::vector<float> row(target ? size_t(cols) : 0);  // [cols]; F32 rows go straight to dst
        for (size_t r = r0; r < r1; ++r) {
          float* f = target ? row.data() : reinterpret_cast<float*>(dst + r * out_row);
          src(int64_t(r), f);
          if (target) quantize_row(*target, f, cols, dst + r * out_row);
        }
      }, 8);
    };
    out.push_back(std::move(p));
  }

  void matrix(const std::string& name, const Matrix& m) {
    if (!m.data) return fail(name + ": no matrix for this role in the GGUF");
    rows(name, m.rows, m.cols, [m](int64_t r, float* o) { dequant_row(m, r, o); });
  }

  void floats(const std::string& name, std::vector<int64_t> shape, std::vector<float> v) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (int64_t(v.size()) != n) return fail(name + ": " + std::to_string(v.size()) + " values for its shape");
    Planned p;
    p.spec = {name, DType::F32, std::move(shape)};
    p.fill = [v = std::move(v)](uint8_t* dst) { std::memcpy(dst, v.data(), v.size() * sizeof(float)); };
    out.push_back(std::move(p));
  }

  // Zero-centered RMSNorm weights: stored in HF as w, held (like GGUF) as 1 + w.
  void norm(const std::string& name, NormScale s) {
    for (float& x : s) x -= 1.0f;
    const auto n = int64_t(s.size());
    floats(name, {n}, std::move(s));
  }

  void mlp(const std::string& p, const MlpWeights& m) {
    matrix(p + "gate_proj.weight", m.gate);
    matrix(p + "up_proj.weight", m.up);
    matrix(p + "down_proj.weight", m.down);
  }

  void layer(const std::string& p, const LayerWeights& l) {
    norm(p + "input_layernorm.weight", l.input_norm);
    norm(p + "post_attention_layernorm.weight", l.post_attention_norm);
    if (l.type == LayerType::FullAttention) {
      const std::string a = p + "self_attn.";
      matrix(a + "q_proj.weight", l.attn.q_proj);
      matrix(a + "k_proj.weight", l.attn.k_proj);
      matrix(a + "v_proj.weight", l.attn.v_proj);
      matrix(a + "o_proj.weight", l.attn.o_proj);
      norm(a + "q_norm.weight", l.attn.q_norm);
      norm(a + "k_norm.weight", l.attn.k_norm);
    } else {
      deltanet(p + "linear_attn.", l.gdn);
    }
    const std::string m = p + "mlp.";
    if (!l.is_moe) return mlp(m, l.mlp);
    matrix(m + "gate.weight", l.moe.router);
    for (size_t e = 0; e < l.moe.experts.size(); ++e) mlp(m + "experts." + std::to_string(e) + ".", l.moe.experts[e]);
    if (l.moe.has_shared) {
      mlp(m + "shared_expert.", l.moe.shared);
      matrix(m + "shared_expert_gate.weight", l.moe.shared_gate);
    }
  }

 private:
  void deltanet(const std::string& g, const DeltaNetWeights& w) {
    const int64_t Hk = c_.linear_num_key_heads, Hv = c_.linear_num_value_heads;
    const int64_t Dk = c_.linear_key_head_dim, Dv = c_.linear_value_head_dim, rDv = Hv / Hk * Dv;
    if (w.in_proj_qkvz.data) {
      matrix(g + "in_proj_qkvz.weight", w.in_proj_qkvz);
    } else if (!w.in_proj_qkv.data || !w.in_proj_z.data) {
      fail(g + "in_proj_qkvz.weight: no input projection in the GGUF");
    } else {
      // HF groups the rows per key head h: [q_h Dk | k_h Dk | v_h rDv | z_h rDv]. The GGUF keeps
      // qkv as [q all heads | k all | v all] (the conv's channel order) and z apart; the two may be
      // stored in different block formats.
      const Matrix qkv = w.in_proj_qkv, z = w.in_proj_z;
      const int64_t group = 2 * Dk + 2 * rDv;
      rows(g + "in_proj_qkvz.weight", Hk * group, qkv.cols, [=](int64_t r, float* o) {
        const int64_t h = r / group, k = r % group;
        if (k < Dk) dequant_row(qkv, h * Dk + k, o);
        else if (k < 2 * Dk) dequant_row(qkv, Hk * Dk + h * Dk + (k - Dk), o);
        else if (k < 2 * Dk + rDv) dequant_row(qkv, 2 * Hk * Dk + h * rDv + (k - 2 * Dk), o);
        else dequant_row(z, h * rDv + (k - 2 * Dk - rDv), o);
      });
    }
    matrix(g + "in_proj_ba.weight", w.in_proj_ba);
    floats(g + "conv1d.weight", {c_.linear_qkv_dim(), 1, c_.linear_conv_kernel}, w.conv);
    std::vector<float> a_log(w.A.size());  // A = -exp(A_log)
    for (size_t i = 0; i < a_log.size(); ++i) a_log[i] = std::log(-w.A[i]);
    floats(g + "A_log", {Hv}, std::move(a_log));
    floats(g + "dt_bias", {Hv}, w.dt_bias);
    floats(g + "norm.weight", {Dv}, w.norm);  // the gated norm is plain, not 1 + w
    matrix(g + "out_proj.weight", w.out_proj);
  }

  void fail(std::string m) {
    if (error.empty()) error = std::move(m);
  }

  QuantRecipe recipe_;
  const Config& c_;
};

// Every tensor of the model, in the order a Hugging Face checkpoint lists them.
Planner plan(const Weights& w, const Config& c, QuantRecipe recipe) {
  Planner p(recipe, c);
  p.matrix("model.embed_tokens.weight", w.embed);
  for (size_t i = 0; i < w.layers.size(); ++i) p.layer("model.layers." + std::to_string(i) + ".", w.layers[i]);
  p.norm("model.norm.weight", w.final_norm);
  if (w.lm_head.data != w.embed.data) p.matrix("lm_head.weight", w.lm_head);  // else tie_word_embeddings
  if (w.mtp) {
    p.matrix("mtp.fc.weight", w.mtp->fc);
    p.norm("mtp.pre_fc_norm_embedding.weight", w.mtp->pre_fc_norm_embedding);
    p.norm("mtp.pre_fc_norm_hidden.weight", w.mtp->pre_fc_norm_hidden);
    p.norm("mtp.norm.weight", w.mtp->norm);
    p.layer("mtp.layers.0.", w.mtp->layer);
  }
  return p;
}

// The directory that holds the GGUF (a conversion must not write there: a directory with both a
// .gguf and config.json is ambiguous as --model).
fs::path input_dir(const std::string& gguf_path) {
  std::error_code ec;
  if (fs::is_directory(gguf_path, ec)) return gguf_path;
  const fs::path parent = fs::path(gguf_path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

Status write_config(const Config& c, const std::string& out_dir) {
  const std::string text = c.to_json().dump(2);
  const std::string path = (fs::path(out_dir) / "config.json").string();
  // The file must describe this model exactly: what to_json leaves out would be lost silently.
  auto back = Config::parse(text, path);
  if (!back || !(back.value() == c))
    return err(path + ": the configuration does not survive config.json" + (back ? "" : " (" + back.error() + ")"));
  std::ofstream out(path, std::ios::binary);
  out << text << "\n";
  out.close();
  if (!out) return err(path + ": write failed");
  return Ok{};
}

}  // namespace

Status quantize_gguf(const std::string& gguf_path, QuantRecipe recipe, const std::string& out_dir,
                     const std::function<void(size_t, size_t)>& progress, size_t shard_bytes) {
  if (recipe == QuantRecipe::None) return err("quantize: no quantization type given");
  auto gguf = GgufCheckpoint::open(gguf_path);
  if (!gguf) return Error{gguf.error()};
  std::error_code ec;
  if (fs::equivalent(input_dir(gguf->path()), out_dir, ec))
    return err(out_dir + ": the output must not be the directory holding the input " + gguf->path());
  auto config = Config::from_gguf(gguf.value());
  if (!config) return Error{config.error()};
  // Every matrix as stored (no --quantize): the recipe is applied to the dequantized rows below.
  auto weights = Weights::load_gguf(std::move(gguf.value()), config.value(), QuantRecipe::None);
  if (!weights) return Error{weights.error()};
  const Weights& w = weights.value();
  Planner p = plan(w, config.value(), recipe);
  if (!p.error.empty()) return err(w.gguf.path() + ": " + p.error);

  fs::create_directories(out_dir, ec);
  if (ec) return err(out_dir + ": cannot create directory: " + ec.message());

  // Shards in tensor order, each closed before it would pass shard_bytes.
  std::vector<std::vector<size_t>> shards;  // [shard] -> indices into p.out
  size_t total = 0, in_shard = 0;
  for (size_t i = 0; i < p.out.size(); ++i) {
    const size_t n = p.out[i].spec.nbytes();
    if (shards.empty() || (in_shard > 0 && in_shard + n > shard_bytes)) shards.emplace_back(), in_shard = 0;
    shards.back().push_back(i);
    in_shard += n;
    total += n;
  }
  auto shard_name = [&](size_t s) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    return std::string(buf);
  };
  // Not ordered_json: its objects insert in linear time, and the 80B model has ~75,000 tensors.
  nlohmann::json weight_map = nlohmann::json::object();
  size_t done = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    std::vector<TensorSpec> specs;  // [tensors of this shard]
    std::map<std::string, std::string> metadata = {{"format", "pt"}, {"qnext.recipe", recipe_name(recipe)}};
    for (size_t i : shards[s]) {
      const Planned& t = p.out[i];
      specs.push_back(t.spec);
      if (t.quant) metadata[std::string(kQuantKeyPrefix) + t.spec.name] = std::string(dtype_name(*t.quant));
      weight_map[t.spec.name] = shard_name(s);
    }
    Status st = write_safetensors((fs::path(out_dir) / shard_name(s)).string(), specs, [&](size_t k, uint8_t* dst) {
      const Planned& t = p.out[shards[s][k]];
      t.fill(dst);
      done += t.spec.nbytes();
      if (progress) progress(done, total);
    }, metadata);
    if (!st) return st;
  }
  const nlohmann::json index = {{"metadata", {{"qnext.recipe", recipe_name(recipe)}, {"total_size", total}}},
                                {"weight_map", weight_map}};
  const fs::path index_path = fs::path(out_dir) / "model.safetensors.index.json";
  std::ofstream index_out(index_path, std::ios::binary);
  index_out << index.dump(2) << "\n";
  index_out.close();
  if (!index_out) return err(index_path.string() + ": write failed");

  if (Status st = write_config(config.value(), out_dir); !st) return st;
  auto tok = write_gguf_tokenizer_files(w.gguf, out_dir);
  if (!tok) return Error{tok.error()};
  return Ok{};
}

}  // namespace qnext
