#include "model/quantize.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/thread_pool.h"
#include "io/checkpoint.h"
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
  if (r == QuantRecipe::None || t.quant || t.shape.size() != 2 || t.shape[1] % kQuantBlock != 0) return std::nullopt;
  if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32) return std::nullopt;
  // The router decides which experts run: it stays exact. So does the one-row shared-expert gate.
  if (ends_with(t.name, "mlp.gate.weight") || ends_with(t.name, "shared_expert_gate.weight")) return std::nullopt;
  switch (r) {
    case QuantRecipe::Q8: return DType::Q8_0;
    case QuantRecipe::Q4: return DType::Q4_0;
    case QuantRecipe::Q4Mixed:
      return t.name.find(".mlp.experts.") != std::string::npos ? DType::Q4_0 : DType::Q8_0;
    case QuantRecipe::None: break;
  }
  return std::nullopt;
}

void quantize_matrix(const TensorView& t, DType target, uint8_t* dst) {
  const int64_t rows = t.shape[0], cols = t.shape[1];
  const Matrix src{t.dtype, t.data, rows, cols};
  const size_t out_row = row_bytes(target, cols);
  global_pool().parallel_for(size_t(rows), [&](size_t r0, size_t r1, int) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (size_t r = r0; r < r1; ++r) {
      matrix_row_to_f32(src, int64_t(r), row.data());
      quantize_row(target, row.data(), cols, dst + r * out_row);
    }
  }, 8);
}

Status quantize_checkpoint(const std::string& src_dir, QuantRecipe recipe, const std::string& out_dir,
                           const std::function<void(size_t, size_t)>& progress) {
  if (recipe == QuantRecipe::None) return err("quantize: no quantization type given");
  auto ck = Checkpoint::open(src_dir);
  if (!ck) return err(ck.error());
  std::error_code ec;
  if (fs::equivalent(src_dir, out_dir, ec)) return err(out_dir + ": the output must not be the input directory");
  fs::create_directories(out_dir, ec);
  if (ec) return err(out_dir + ": cannot create directory: " + ec.message());

  size_t total = 0, done = 0;
  for (const auto& f : ck->files())
    for (const auto& t : f.tensors()) total += t.nbytes;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (const auto& f : ck->files()) {
    const std::string shard = fs::path(f.path()).filename().string();
    std::vector<TensorSpec> specs;
    std::vector<std::optional<DType>> targets;
    std::map<std::string, std::string> metadata = {{"format", "pt"}, {"qnext.recipe", recipe_name(recipe)}};
    for (const auto& t : f.tensors()) {
      const auto target = quant_target(recipe, t);
      targets.push_back(target);
      if (target) {
        specs.push_back({t.name, DType::U8, {t.shape[0], int64_t(row_bytes(*target, t.shape[1]))}});
        metadata[std::string(kQuantKeyPrefix) + t.name] = std::string(dtype_name(*target));
      } else {
        specs.push_back({t.name, t.dtype, t.shape});
      }
      weight_map[t.name] = shard;
    }
    Status st = write_safetensors((fs::path(out_dir) / shard).string(), specs, [&](size_t i, uint8_t* dst) {
      const TensorView& t = f.tensors()[i];
      if (targets[i]) quantize_matrix(t, *targets[i], dst);
      else std::memcpy(dst, t.data, t.nbytes);
      done += t.nbytes;
      if (progress) progress(done, total);
    }, metadata);
    if (!st) return st;
  }
  nlohmann::ordered_json index = {{"metadata", {{"qnext.recipe", recipe_name(recipe)}}}, {"weight_map", weight_map}};
  std::ofstream(fs::path(out_dir) / "model.safetensors.index.json") << index.dump(2) << "\n";
  // Everything else a model directory holds (config, tokenizer, generation config, templates).
  for (const char* name : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                           "chat_template.jinja", "vocab.json", "merges.txt", "special_tokens_map.json"}) {
    const fs::path src = fs::path(src_dir) / name;
    if (fs::exists(src)) fs::copy_file(src, fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return err((fs::path(out_dir) / name).string() + ": cannot copy: " + ec.message());
  }
  return Ok{};
}

}  // namespace qnext
