// Products over llama.cpp's K-quant blocks (Q4_K, Q5_K, Q6_K) with int8 activations: the fast
// default for these formats, as for Q8_0 / Q4_0 (kernels/quant.h); exact mode keeps the float
// kernels of ggml_blocks.h.
//
// The activations are the same BlockQ8x blocks as Q8_0's (per 32 weights: float scale dx, int8 q,
// sum q), so a decode group quantizes each input once whatever the formats of the matrices it
// feeds, and each 32-block keeps its own scale (more precise than llama.cpp's Q8_K, one scale per
// 256). The weight levels are unsigned (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63), so they are the u8
// operand of u8 x s8 products (AVX-512 VNNI vpdpbusd, AVX2 vpmaddubsw) as stored, and the offsets
// come off once per group of weights from the activations' sums:
//
//   Q4_K / Q5_K sub-block j (32):  sum w x  =  (d sc_j) dx sum(q xq)  -  (dmin m_j) dx sum(xq)
//   Q6_K group g (16):             sum w x  =  (d sc_g) dx sum(q xq)  -  32 (d sc_g) dx sum_16(xq)
//
// Every integer dot is exact; only the float sums of the per-group terms round, so the SIMD kernels
// agree with the scalar twins to float rounding of those sums (not bit for bit: their orders differ).
// Decoding (rows_int8_*: any T, the rows streamed once per 3 tokens) allocates nothing in steady
// state; on AVX-512 VNNI, T >= kKQuantGemmMinTokens runs the panel GEMM (gemm_panels.h).
#pragma once
#include <cstdint>

#include "kernels/quant.h"
#include "kernels/weight_format.h"

namespace qnext {

// From this many tokens up the AVX-512 slot runs the VNNI GEMM (gemm_panels.h). Measured (one
// thread, 1024 x 2048 from cache, GFLOP/s rows / GEMM, 2-core Zen 5): Q4_K T 4: 163 / 146, 5: 165 /
// 166, 6: 183 / 201, 8: 176 / 247; Q6_K T 5: 176 / 161, 6: 184 / 180, 8: 178 / 220. The GEMM also
// reads a matrix larger than the caches once, where the row kernels read it once per 3 tokens.
constexpr int kKQuantGemmMinTokens = 6;

// One token's activations for one super-block (256 k) as the SIMD kernels read them: the 8
// BlockQ8x's bytes back to back, and per group of weights the scale dx of its block and dx times
// the sum of its activations. Q6_K: 16 groups of 16. Q4_K / Q5_K: 8 groups of 32, dx in lanes 0-7
// and the sums in lanes 8-15 (the kernels keep the scales in lanes 0-7 and the mins in 8-15 of
// one vector), zeros elsewhere. That is pack_kacts' layout, the AVX2 kernels'; the AVX-512 VNNI
// kernels pack their own into the same struct (ggml_blocks_q8_avx512.cpp: Q4_K / Q5_K levels in
// sub-block pairs, gd / gs interleaved with gs negated; Q6_K's gs times -32).
struct alignas(64) KActs {
  int8_t q[256];
  float gd[16];  // [group] dx
  float gs[16];  // [group] dx * sum(xq over the group)
};
// xq [nsb * 8] of one token -> out [nsb]; group 32 or 16.
void pack_kacts(const BlockQ8x* xq, int64_t nsb, int group, KActs* out);
// The row kernels keep the activations of a pass (up to 3 tokens) on their stack, so decoding
// allocates nothing whichever thread takes which rows: rows of up to 16384 weights (72 KiB);
// longer rows use a buffer per thread that grows once.
constexpr int64_t kMaxKActs = 64;

// Output rows [r0, r1) of y = x W^T; xq: [T, cols / 32] (matmul_q_rows' contract). Scalar twins,
// AVX2 (vpmaddubsw), AVX-512 VNNI (vpdpbusd; the AVX-512 slot of the table runs the AVX2 kernels
// on CPUs without VNNI) and the VNNI GEMM for many tokens.
#define QNEXT_GGML_INT8_KERNELS(name)                                                                        \
  void rows_int8_##name##_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1); \
  void rows_int8_##name##_avx2(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);   \
  void rows_int8_##name##_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);   \
  void gemm_int8_##name##_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);   \
  void rows_int8_##name##_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
QNEXT_GGML_INT8_KERNELS(q4_k)
QNEXT_GGML_INT8_KERNELS(q5_k)
QNEXT_GGML_INT8_KERNELS(q6_k)
#undef QNEXT_GGML_INT8_KERNELS

}  // namespace qnext
