// compressed-tensors "pack-quantized" int4 (llm-compressor's W4A16 and the Qwen3-Next "AWQ"
// releases): quant_method "compressed-tensors", format "pack-quantized", config_groups whose
// weights are {num_bits: 4, type: int, strategy: group | channel, group_size, symmetric}.
// Per module: `<m>.weight_packed` I32 [N, ceil(K / 8)] (element k at bits 4 (k % 8) of word k / 8,
// stored q + 8), `<m>.weight_scale` [N, ceil(K / g)], `<m>.weight_shape` [N, K], and when
// asymmetric `<m>.weight_zero_point` I32 [ceil(N / 8), ceil(K / g)] packed along N.
#pragma once
#include "io/quant_config.h"

namespace qnext {

Status parse_compressed_tensors_config(const nlohmann::json& q, const std::string& where, QuantConfig* out);
Result<ScaledMatrix> int4_matrix(const Checkpoint& ck, const QuantConfig& qc, const TensorView& packed,
                                 const std::string& module, int64_t rows, int64_t cols);

}  // namespace qnext
