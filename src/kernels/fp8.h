// Block-scaled FP8 weights (the official Qwen3-Next FP8 releases): e4m3fn codes [rows, cols], one
// byte per weight, and a scale per block of group_rows x group (128 x 128) weights, stored apart
// (Matrix::scales, f32 [ceil(rows / 128), ceil(cols / 128)]); w = e4m3(code) * scale. Partial
// blocks at the edges have their own scales. Products always run with float activations.
#pragma once
#include "kernels/weight_format.h"

namespace qnext {

void dequant_fp8_scalar(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
void dequant_fp8_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
void rows_fp8_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void rows_fp8_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void rows_fp8_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

}  // namespace qnext
