// Group-scaled int4 weights in compressed-tensors' pack-quantized layout (W4A16, the "AWQ"
// releases): each row is ceil(cols / 8) int32 words, element k at bits [4 (k % 8), 4 (k % 8) + 4)
// of word k / 8 as u = q + 8; a scale per group of `group` weights along the row (Matrix::scales,
// [rows, ceil(cols / group)]) and, when asymmetric, a zero point z per (row, group) packed along
// the rows (Matrix::zeros). w = (q - z) * scale = (u - (z + 8)) * scale. Float activations.
#pragma once
#include "kernels/weight_format.h"

namespace qnext {

// The stored zero point of weight row r, group g, plus 8 (8 when symmetric).
inline int int4_zero_u(const Matrix& w, int64_t r, int64_t g) {
  if (!w.zeros) return 8;
  const uint32_t word = uint32_t(w.zeros[size_t((r / 8) * w.scale_cols() + g)]);
  return int((word >> (4 * (r % 8))) & 15);
}

void dequant_int4_scalar(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
void dequant_int4_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
void rows_int4_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void rows_int4_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

}  // namespace qnext
