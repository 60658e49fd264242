#include "model/publish.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "kernels/matmul.h"
#include "model/quantize.h"

namespace fs = std::filesystem;

namespace qnext {

Result<PublishedLayout> parse_published_layout(const std::string& name) {
  if (name == "fp8") return PublishedLayout::Fp8;
  if (name == "w4a16") return PublishedLayout::W4A16;
  return err("unknown published layout '" + name + "' (expected fp8 or w4a16)");
}

namespace {

constexpr int64_t kBlock = 128;  // FP8 blocks 128 x 128; int4 groups of 128

bool selected(PublishedLayout layout, const TensorView& t) {
  if (t.shape.size() != 2 || t.name.size() < 7 || t.name.compare(t.name.size() - 7, 7, ".weight") != 0) return false;
  if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32) return false;
  if (layout == PublishedLayout::W4A16 && t.name.rfind("mtp.", 0) == 0) return false;
  for (const char* m : {"in_proj_qkvz.", "out_proj.", "q_proj.", "k_proj.", "v_proj.", "o_proj.", "gate_proj.", "up_proj.",
                        "down_proj."})
    if (t.name.find(m) != std::string::npos) return true;
  return layout == PublishedLayout::W4A16 && t.name.find("in_proj_ba.") != std::string::npos;
}

// Block (br, bc) scale: amax / 448 over the block.
void fp8_scales(const Matrix& w, float* scales) {
  const int64_t sr = (w.rows + kBlock - 1) / kBlock, sc = (w.cols + kBlock - 1) / kBlock;
  global_pool().parallel_for(size_t(sr), [&](size_t b, size_t e, int) {
    std::vector<float> row(size_t(w.cols));
    for (size_t br = b; br < e; ++br) {
      std::vector<float> amax(size_t(sc), 0.0f);
      for (int64_t r = int64_t(br) * kBlock; r < std::min(w.rows, int64_t(br + 1) * kBlock); ++r) {
        matrix_row_to_f32(w, r, row.data());
        for (int64_t k = 0; k < w.cols; ++k) amax[size_t(k / kBlock)] = std::max(amax[size_t(k / kBlock)], std::fabs(row[size_t(k)]));
      }
      for (int64_t c = 0; c < sc; ++c) scales[br * size_t(sc) + size_t(c)] = amax[size_t(c)] > 0 ? amax[size_t(c)] / 448.0f : 1.0f;
    }
  });
}

void fp8_codes(const Matrix& w, uint8_t* codes) {
  const int64_t sc = (w.cols + kBlock - 1) / kBlock;
  std::vector<float> scales(size_t((w.rows + kBlock - 1) / kBlock * sc));
  fp8_scales(w, scales.data());
  global_pool().parallel_for(size_t(w.rows), [&](size_t b, size_t e, int) {
    std::vector<float> row(size_t(w.cols));
    for (size_t r = b; r < e; ++r) {
      matrix_row_to_f32(w, int64_t(r), row.data());
      for (int64_t k = 0; k < w.cols; ++k)
        codes[r * size_t(w.cols) + size_t(k)] = f32_to_e4m3(row[size_t(k)] / scales[r / kBlock * size_t(sc) + size_t(k / kBlock)]);
    }
  }, 8);
}

// Symmetric int4, group 128: scale = amax / 7.5 (as BF16), q = clamp(round(w / scale), -8, 7).
void int4_rows(const Matrix& w, int32_t* packed, uint16_t* scales) {
  const int64_t groups = (w.cols + kBlock - 1) / kBlock, words = (w.cols + 7) / 8;
  global_pool().parallel_for(size_t(w.rows), [&](size_t b, size_t e, int) {
    std::vector<float> row(size_t(w.cols));
    std::vector<float> s(static_cast<size_t>(groups));
    for (size_t r = b; r < e; ++r) {
      matrix_row_to_f32(w, int64_t(r), row.data());
      for (int64_t g = 0; g < groups; ++g) {
        float amax = 0;
        for (int64_t k = g * kBlock; k < std::min(w.cols, (g + 1) * kBlock); ++k) amax = std::max(amax, std::fabs(row[size_t(k)]));
        const uint16_t s16 = f32_to_bf16(amax > 0 ? amax / 7.5f : 1.0f);
        s[size_t(g)] = bf16_to_f32(s16);
        if (scales) scales[r * size_t(groups) + size_t(g)] = s16;
      }
      if (!packed) continue;
      for (int64_t wd = 0; wd < words; ++wd) {
        uint32_t word = 0;
        for (int j = 0; j < 8 && wd * 8 + j < w.cols; ++j) {
          const int64_t k = wd * 8 + j;
          const float q = std::clamp(std::nearbyint(row[size_t(k)] / s[size_t(k / kBlock)]), -8.0f, 7.0f);
          word |= uint32_t(int(q) + 8) << (4 * j);
        }
        packed[r * size_t(words) + size_t(wd)] = int32_t(word);
      }
    }
  }, 8);
}

}  // namespace

Status write_published_layout(const std::string& src_dir, PublishedLayout layout, const std::string& out_dir,
                              const std::function<void(size_t, size_t)>& progress) {
  auto ck = open_for_conversion(src_dir, out_dir);
  if (!ck) return err(ck.error());
  size_t total = 0, done = 0;
  for (const auto& f : ck->files())
    for (const auto& t : f.tensors()) total += t.nbytes;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  std::vector<std::string> unconverted;
  for (const auto& f : ck->files()) {
    const std::string shard = fs::path(f.path()).filename().string();
    enum class Part { Copy, Codes, Scales, Shape };
    std::vector<TensorSpec> specs;
    std::vector<std::pair<const TensorView*, Part>> parts;
    for (const auto& t : f.tensors()) {
      if (!selected(layout, t)) {
        specs.push_back({t.name, t.dtype, t.shape});
        parts.push_back({&t, Part::Copy});
        if (t.shape.size() == 2 && t.name.rfind("model.embed_tokens", 0) != 0) unconverted.push_back(t.name.substr(0, t.name.size() - 7));
        continue;
      }
      const std::string m = t.name.substr(0, t.name.size() - 7);
      const int64_t N = t.shape[0], K = t.shape[1];
      if (layout == PublishedLayout::Fp8) {
        specs.push_back({t.name, DType::F8_E4M3, {N, K}});
        specs.push_back({m + ".weight_scale_inv", DType::F32, {(N + kBlock - 1) / kBlock, (K + kBlock - 1) / kBlock}});
        parts.push_back({&t, Part::Codes});
        parts.push_back({&t, Part::Scales});
      } else {
        specs.push_back({m + ".weight_packed", DType::I32, {N, (K + 7) / 8}});
        specs.push_back({m + ".weight_scale", DType::BF16, {N, (K + kBlock - 1) / kBlock}});
        specs.push_back({m + ".weight_shape", DType::I64, {2}});
        parts.push_back({&t, Part::Codes});
        parts.push_back({&t, Part::Scales});
        parts.push_back({&t, Part::Shape});
      }
    }
    for (const auto& s : specs) weight_map[s.name] = shard;
    Status st = write_safetensors((fs::path(out_dir) / shard).string(), specs, [&](size_t i, uint8_t* dst) {
      const TensorView& t = *parts[i].first;
      const Matrix w = t.shape.size() == 2 ? Matrix{t.dtype, t.data, t.shape[0], t.shape[1]} : Matrix{};
      switch (parts[i].second) {
        case Part::Copy: std::memcpy(dst, t.data, t.nbytes); done += t.nbytes; break;
        case Part::Codes:
          if (layout == PublishedLayout::Fp8) fp8_codes(w, dst);
          else int4_rows(w, reinterpret_cast<int32_t*>(dst), nullptr);
          done += t.nbytes;
          break;
        case Part::Scales:
          if (layout == PublishedLayout::Fp8) fp8_scales(w, reinterpret_cast<float*>(dst));
          else int4_rows(w, nullptr, reinterpret_cast<uint16_t*>(dst));
          break;
        case Part::Shape: {
          const int64_t shape[2] = {w.rows, w.cols};
          std::memcpy(dst, shape, sizeof shape);
          break;
        }
      }
      if (progress) progress(done, total);
    }, {{"format", "pt"}});
    if (!st) return st;
  }
  nlohmann::ordered_json index = {{"metadata", nlohmann::ordered_json::object()}, {"weight_map", weight_map}};
  std::ofstream(fs::path(out_dir) / "model.safetensors.index.json") << index.dump(2) << "\n";
  auto parsed = read_config_json(src_dir);
  if (!parsed) return err(parsed.error());
  nlohmann::ordered_json& config = parsed.value();
  if (layout == PublishedLayout::Fp8) {
    config["quantization_config"] = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"modules_to_not_convert", unconverted},
                                     {"quant_method", "fp8"}, {"weight_block_size", {kBlock, kBlock}}};
  } else {
    nlohmann::ordered_json weights = {{"actorder", nullptr}, {"block_structure", nullptr}, {"dynamic", false},
                                      {"group_size", kBlock}, {"num_bits", 4}, {"observer", "minmax"},
                                      {"strategy", "group"}, {"symmetric", true}, {"type", "int"}};
    config["quantization_config"] = {
        {"config_groups", {{"group_0", {{"format", "pack-quantized"}, {"input_activations", nullptr},
                                        {"output_activations", nullptr}, {"targets", {"Linear"}}, {"weights", weights}}}}},
        {"format", "pack-quantized"}, {"ignore", unconverted}, {"quant_method", "compressed-tensors"},
        {"quantization_status", "compressed"}};
  }
  std::ofstream(fs::path(out_dir) / "config.json") << config.dump(2) << "\n";
  return copy_side_files(src_dir, out_dir);
}

}  // namespace qnext
