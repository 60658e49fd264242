// The official block-FP8 layout (Qwen/Qwen3-Next-80B-A3B-*-FP8, the DeepSeek-V3 convention):
// quant_method "fp8", fmt "e4m3", weight_block_size [128, 128]; a quantized `<m>.weight` is
// F8_E4M3 [N, K] with `<m>.weight_scale_inv` F32 [ceil(N / 128), ceil(K / 128)], which despite
// its name multiplies: W = e4m3(code) * scale_inv[n / 128][k / 128].
#pragma once
#include "io/quant_config.h"

namespace qnext {

Status parse_fp8_config(const nlohmann::json& q, const std::string& where, QuantConfig* out);
Result<ScaledMatrix> fp8_matrix(const Checkpoint& ck, const QuantConfig& qc, const TensorView& weight,
                                const std::string& module, int64_t rows, int64_t cols);

}  // namespace qnext
