// Block-scaled FP8 weights (the official Qwen3-Next FP8 releases): e4m3fn codes [rows, cols], one
// byte per weight, and a scale per block of group_rows x group (128 x 128) weights, stored apart
// (Matrix::scales, f32 [ceil(rows / 128), ceil(cols / 128)]); w = e4m3(code) * scale. Partial
// blocks at the edges have their own scales. Decoding (1-3 tokens) runs on bf16 dot products where
// the CPU has AVX512-BF16 and GFNI and the rows are whole 64-column steps (the codes
// converted as they stream, gemm_bf16.h: fp8_streams), with float activations elsewhere and in
// exact mode; 4+ tokens on a CPU with AVX-512 VNNI and VBMI
// take the int8 GEMM of Q8_0 (kernels/quant.h) over int8 copies of the rows (below), elsewhere bf16
// dot products or float (gemm_bf16.h, matmul.h).
#pragma once
#include "kernels/weight_format.h"

namespace qnext {

void dequant_fp8_scalar(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
void dequant_fp8_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
void rows_fp8_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void rows_fp8_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void rows_fp8_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

// FP8 rows as int8 blocks of 32 (the fast default's prefill, on Q8_0's VNNI GEMM). Each segment of
// a row (up to 128 codes inside one scale block) takes S = the exponent field of its largest
// magnitude (less one, 0 for subnormals: 0..14). A code of significand I (8 + mantissa; the
// mantissa for subnormals) and exponent e (e4m3 = I * 2^(max(e, 1) - 10)) becomes the integer
// round(I * 2^(max(e, 1) - 1 - S + 3)): at most 15 * 8 = 120, exact for codes within 3 binades of
// the segment's largest, smaller ones rounded (half away from zero). Each block of 32 then has
// d = scale * 2^(S - 12), so q * d is the weight. Not exact: bounded by `qnext kld` against exact
// mode, as Q8_0's int8 activations are.
inline int fp8_segment_shift(int largest_magnitude) {  // S from the segment's largest (code & 0x7f)
  return (largest_magnitude >> 3 > 1 ? largest_magnitude >> 3 : 1) - 1;
}
int8_t fp8_code_to_int8(uint8_t code, int shift);  // the integer of one code under S, signed
const int8_t* fp8_int8_tables();                   // [15][128]: fp8_code_to_int8 of codes 0..127 under S
inline float fp8_int8_block_scale(float scale, int shift) {  // scale * 2^(S - 12): exact (S <= 14)
  return scale * (float(1 << shift) * (1.0f / 4096.0f));
}
// Whether products of T tokens over w take int8 activations (weight_format.h's int8_fits):
// T >= kVnniGemmMinTokens, AVX-512 with VNNI and VBMI, rows and blocks in whole 32s.
bool fp8_int8_fits(Isa isa, const Matrix& w, int T);
// Row r: q[cols] int8, d[cols / 32]. The scalar twin, and the AVX-512 VBMI kernel (vpermt2b
// through fp8_int8_tables; only where the CPU has VBMI). NaN codes (0x7f, 0xff; none in real
// checkpoints) read as +-480 * scale here, where the float kernels give NaN.
void fp8_row_to_int8_scalar(const Matrix& w, int64_t r, int8_t* q, float* d);
void fp8_row_to_int8_avx512(const Matrix& w, int64_t r, int8_t* q, float* d);
// The scalar twin of the int8 product (rows_int8): each row converted, then integer block dots.
void rows_fp8_int8_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

}  // namespace qnext
