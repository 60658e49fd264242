// Checkpoints published already quantized: config.json's quantization_config names the method,
// and each module's tensors say how it is stored (decided per module; ignore lists are advisory):
//   <m>.weight_packed (+ weight_scale, weight_shape[, weight_zero_point])  -> int4 (compressed_tensors.h)
//   <m>.weight F8_E4M3 + <m>.weight_scale_inv                              -> block FP8 (fp8.h)
//   <m>.weight BF16 / F16 / F32                                            -> as stored
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/checkpoint.h"

namespace qnext {

enum class QuantMethod { None, Fp8, CompressedTensors };

struct QuantConfig {
  QuantMethod method = QuantMethod::None;
  // fp8: weight_block_size [rows, cols]
  int64_t block_rows = 128, block_cols = 128;
  // compressed-tensors pack-quantized: num_bits, group_size (0: one group per row, strategy
  // "channel"), symmetric
  int bits = 4;
  int64_t group = 128;
  bool symmetric = true;
  std::vector<std::string> unquantized;  // modules_to_not_convert / ignore, as listed (advisory)
  std::string summary() const;           // "fp8 e4m3, blocks 128x128", "compressed-tensors int4, group 32, asymmetric"
};

// Reads dir/config.json's quantization_config (method None without one). Errors name the file and field.
Result<QuantConfig> read_quant_config(const std::string& dir);
Result<QuantConfig> parse_quant_config(const nlohmann::json& config, const std::string& where);
Result<QuantConfig> parse_quant_config_text(std::string_view config_json, const std::string& where);  // config.json's text

// A matrix whose codes and scales are separate tensors (F8_E4M3 or I4), checked against its shape.
struct ScaledMatrix {
  DType dtype = DType::F8_E4M3;
  const uint8_t* codes = nullptr;  // [rows, row_bytes(dtype, cols)]
  const void* scales = nullptr;    // [ceil(rows / group_rows), ceil(cols / group)]
  DType scale_dtype = DType::F32;
  int64_t group = 0, group_rows = 1;
  const int32_t* zeros = nullptr;  // I4 asymmetric: [ceil(rows / 8), ceil(cols / group)]
};

// The weight of `module` (HF name without ".weight") when it is stored in a scaled format;
// nullopt when it is a plain `<module>.weight` (or absent). Errors name the tensor and the field.
Result<std::optional<ScaledMatrix>> find_scaled_matrix(const Checkpoint& ck, const QuantConfig& qc,
                                                       const std::string& module, int64_t rows, int64_t cols);

// Tensors that belong to a scaled matrix besides its codes (weight_scale_inv, weight_scale,
// weight_shape, weight_zero_point), and the module of a scaled matrix's codes tensor
// (`<m>.weight_packed`, or an F8_E4M3 `<m>.weight`); nullopt for anything else.
bool is_scale_side_tensor(const std::string& name);
std::optional<std::string> scaled_codes_module(const TensorView& t);

}  // namespace qnext
