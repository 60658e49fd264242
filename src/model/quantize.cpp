#include "model/quantize.h"

#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "io/json_parse.h"
#include "io/quant_config.h"
#include "kernels/quant.h"

namespace fs = std::filesystem;

namespace qnext {

Result<QuantRecipe> parse_recipe(const std::string& name) {
  if (name.empty() || name == "none") return QuantRecipe::None;
  if (name == "q8") return QuantRecipe::Q8;
  if (name == "q4") return QuantRecipe::Q4;
  if (name == "q4-mixed") return QuantRecipe::Q4Mixed;
  return err("unknown quantization type '" + name + "' (expected q8, q4 or q4-mixed)");
}

std::string recipe_name(QuantRecipe r) {
  switch (r) {
    case QuantRecipe::None: return "none";
    case QuantRecipe::Q8: return "q8";
    case QuantRecipe::Q4: return "q4";
    case QuantRecipe::Q4Mixed: return "q4-mixed";
  }
  return "?";
}

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::optional<DType> quant_target(QuantRecipe r, const TensorView& t) {
  if (t.quant || t.shape.size() != 2) return std::nullopt;
  if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32) return std::nullopt;
  return quant_target(r, t.name, t.dtype, t.shape[1]);
}

std::optional<DType> quant_target(QuantRecipe r, const std::string& name, DType stored, int64_t cols) {
  if (r == QuantRecipe::None || cols % kQuantBlock != 0 || is_quantized(stored)) return std::nullopt;
  if (stored != DType::BF16 && stored != DType::F16 && stored != DType::F32 && !has_scales(stored)) return std::nullopt;
  // The router decides which experts run: it stays exact. So does the one-row shared-expert gate.
  if (ends_with(name, "mlp.gate.weight") || ends_with(name, "shared_expert_gate.weight")) return std::nullopt;
  switch (r) {
    case QuantRecipe::Q8: return DType::Q8_0;
    case QuantRecipe::Q4: return DType::Q4_0;
    case QuantRecipe::Q4Mixed:
      return name.find(".mlp.experts.") != std::string::npos ? DType::Q4_0 : DType::Q8_0;
    case QuantRecipe::None: break;
  }
  return std::nullopt;
}

void quantize_matrix(const Matrix& src, DType target, uint8_t* dst) {
  const int64_t rows = src.rows, cols = src.cols;
  const size_t out_row = row_bytes(target, cols);
  global_pool().parallel_for(size_t(rows), [&](size_t r0, size_t r1, int) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (size_t r = r0; r < r1; ++r) {
      matrix_row_to_f32(src, int64_t(r), row.data());
      quantize_row(target, row.data(), cols, dst + r * out_row);
    }
  }, 8);
}

Result<Checkpoint> open_for_conversion(const std::string& src_dir, const std::string& out_dir) {
  auto ck = Checkpoint::open(src_dir);
  if (!ck) return err(ck.error());
  std::error_code ec;
  if (fs::equivalent(src_dir, out_dir, ec)) return err(out_dir + ": the output must not be the input directory");
  fs::create_directories(out_dir, ec);
  if (ec) return err(out_dir + ": cannot create directory: " + ec.message());
  return ck;
}

Status quantize_checkpoint(const std::string& src_dir, QuantRecipe recipe, const std::string& out_dir,
                           const std::function<void(size_t, size_t)>& progress) {
  if (recipe == QuantRecipe::None) return err("quantize: no quantization type given");
  auto ck = open_for_conversion(src_dir, out_dir);
  if (!ck) return err(ck.error());

  auto qc = read_quant_config(src_dir);
  if (!qc) return err(qc.error());
  // Published FP8 / int4 matrices (codes + scale tensors) are requantized from their dequantized
  // rows; their side tensors go with them. Those the recipe leaves alone are copied as they are.
  struct Scaled {
    Matrix m;
    std::optional<DType> target;
  };
  std::map<std::string, Scaled> scaled;  // module -> its matrix
  bool kept_scaled = false;
  for (const auto& f : ck->files())
    for (const auto& t : f.tensors()) {
      const auto module = scaled_codes_module(t);
      if (!module || t.shape.size() != 2) continue;
      int64_t cols = t.shape[1];
      if (const TensorView* sh = ck->find(*module + ".weight_shape"); sh && sh->dtype == DType::I64 && sh->numel() == 2)
        cols = reinterpret_cast<const int64_t*>(sh->data)[1];
      auto sm = find_scaled_matrix(ck.value(), qc.value(), *module, t.shape[0], cols);
      if (!sm) return err(sm.error());
      if (!sm.value()) continue;
      Matrix m{sm.value()->dtype, sm.value()->codes, t.shape[0], cols};
      m.scales = sm.value()->scales, m.scale_dtype = sm.value()->scale_dtype;
      m.group = sm.value()->group, m.group_rows = sm.value()->group_rows, m.zeros = sm.value()->zeros;
      const auto target = quant_target(recipe, *module + ".weight", m.dtype, cols);
      kept_scaled = kept_scaled || !target;
      scaled[*module] = {m, target};
    }
  auto converted = [&](const std::string& module) {
    auto it = scaled.find(module);
    return it != scaled.end() && it->second.target;
  };
  auto side_of_converted = [&](const std::string& name) {
    if (!is_scale_side_tensor(name)) return false;
    return converted(name.substr(0, name.rfind(".weight_")));
  };

  size_t total = 0, done = 0;
  for (const auto& f : ck->files())
    for (const auto& t : f.tensors()) total += t.nbytes;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (const auto& f : ck->files()) {
    const std::string shard = fs::path(f.path()).filename().string();
    std::vector<TensorSpec> specs;
    std::vector<const TensorView*> sources;      // [specs]
    std::vector<std::optional<DType>> targets;   // [specs]
    std::vector<const Matrix*> matrices;         // [specs]: what a target is computed from
    std::deque<Matrix> float_matrices;           // the float sources (stable addresses)
    std::map<std::string, std::string> metadata = {{"format", "pt"}, {"qnext.recipe", recipe_name(recipe)}};
    for (const auto& t : f.tensors()) {
      if (side_of_converted(t.name)) {
        done += t.nbytes;
        continue;
      }
      std::string name = t.name;
      std::optional<DType> target;
      const Matrix* src = nullptr;
      if (const auto module = scaled_codes_module(t); module && converted(*module)) {
        name = *module + ".weight";
        src = &scaled[*module].m;
        target = scaled[*module].target;
      } else if ((target = quant_target(recipe, t))) {
        src = &float_matrices.emplace_back(Matrix{t.dtype, t.data, t.shape[0], t.shape[1]});
      }
      sources.push_back(&t);
      targets.push_back(target);
      matrices.push_back(src);
      if (target) {
        specs.push_back({name, DType::U8, {src->rows, int64_t(row_bytes(*target, src->cols))}});
        metadata[std::string(kQuantKeyPrefix) + name] = std::string(dtype_name(*target));
      } else {
        specs.push_back({name, t.dtype, t.shape});
      }
      weight_map[name] = shard;
    }
    Status st = write_safetensors((fs::path(out_dir) / shard).string(), specs, [&](size_t i, uint8_t* dst) {
      const TensorView& t = *sources[i];
      if (targets[i]) quantize_matrix(*matrices[i], *targets[i], dst);
      else std::memcpy(dst, t.data, t.nbytes);
      done += t.nbytes;
      if (progress) progress(done, total);
    }, metadata);
    if (!st) return st;
  }
  nlohmann::ordered_json index = {{"metadata", {{"qnext.recipe", recipe_name(recipe)}}}, {"weight_map", weight_map}};
  std::ofstream(fs::path(out_dir) / "model.safetensors.index.json") << index.dump(2) << "\n";
  // Everything else a model directory holds (config, tokenizer, generation config, templates).
  // Once every published quantized matrix is requantized, the config no longer describes them.
  if (qc->method != QuantMethod::None && !kept_scaled) {
    auto config = read_config_json(src_dir);
    if (!config) return err(config.error());
    config->erase("quantization_config");
    std::ofstream(fs::path(out_dir) / "config.json") << config->dump(2) << "\n";
  } else {
    std::error_code ec;
    fs::copy_file(fs::path(src_dir) / "config.json", fs::path(out_dir) / "config.json",
                  fs::copy_options::overwrite_existing, ec);
    if (ec) return err(out_dir + "/config.json: cannot copy: " + ec.message());
  }
  return copy_side_files(src_dir, out_dir);
}

Result<nlohmann::ordered_json> read_config_json(const std::string& src_dir) {
  std::ifstream in(fs::path(src_dir) / "config.json", std::ios::binary);
  if (!in) return err(src_dir + "/config.json: cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_json<nlohmann::ordered_json>(text.str(), src_dir + "/config.json");
}

Status copy_side_files(const std::string& src_dir, const std::string& out_dir) {
  for (const char* name : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                           "vocab.json", "merges.txt", "special_tokens_map.json"}) {
    const fs::path src = fs::path(src_dir) / name;
    std::error_code ec;
    if (fs::exists(src)) fs::copy_file(src, fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return err((fs::path(out_dir) / name).string() + ": cannot copy: " + ec.message());
  }
  return Ok{};
}

}  // namespace qnext
