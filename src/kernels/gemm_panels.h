// The int8 GEMM for many tokens on AVX-512 VNNI (prefill, an expert's share of a prompt, a batch
// of decoding sequences): the weight rows in the lanes, every format's rows unpacked to unsigned
// levels by the format itself (PanelFormat), the same product for all of them
// (gemm_panels_avx512.cpp). Scalar twins: each format's int8 rows kernel (quant.cpp,
// ggml_blocks_q8.cpp, the converted rows of FP8 / int4), which compute the same integers.
//
// Each chunk of rows is unpacked and laid out in panels of 16 rows: per 4 k one 64-byte vector
// holds 4 levels of each of the 16 rows (a 16 x 16 dword transpose of the unpacked rows), per group
// of levels a vector of the 16 rows' scales, and for Q4_K / Q5_K per 32 k one of their mins. A
// token's 4 activations at that k are vpdpbusd's broadcast operand (s8), so one instruction dots
// 16 rows x 4 k for one token, and no lane idles whatever the token count. Up to 12 tokens' int32
// dots and float sums stay in registers. Per group the dots turn to float and take the rows'
// scales times the token's dx; a format's level offset (Q8_0 flipped to w + 128, Q4_0's nibble - 8,
// Q6_K's - 32) starts each group's dots as -offset times the token's sum over the group.
//
// This replaced GEMMs with 16 tokens in the lanes and the weights broadcast: ~10 tokens (an
// expert's share of a 512-token prompt) left 6 of 16 lanes idle, and every dot took a broadcast.
#pragma once
#include <cstdint>

#include "kernels/quant.h"

namespace qnext {

constexpr int kPanelRows = 16;  // weight rows per panel, one per int32 lane

// How a weight format fills panels: dot(row, x) = sum_g scale_g sum_{k in g} (level_k - offset) x_k
// (- min_j sum_{k in j} x_k per 32 k, Q4_K / Q5_K).
struct PanelFormat {
  int group;    // levels per scale: 16 (Q6_K) or 32
  int offset;   // carried by every level: 0 (Q4_K, Q5_K), 8 (Q4_0), 32 (Q6_K), 128 (Q8_0, FP8, int4)
  bool mins;    // Q4_K / Q5_K: a min per 32 levels
  // Rows [r, r + n) of w -> levels [n][stride bytes] (the first cols of each used), scales
  // [n][cols / group], mins [n][cols / 32] (negated: -dmin m) where `mins`.
  void (*unpack_rows)(const Matrix& w, int64_t r, int64_t n, uint8_t* levels, int64_t stride, float* scales, float* mins);
};

// Output rows [r0, r1) of y = x W^T for the activations xq [T, cols / 32] (matmul_q_rows' contract).
// cols a multiple of 32 (of 256 for the K-quants). Allocates only to grow its per-thread buffers.
void gemm_panels_avx512(const Matrix& w, const PanelFormat& f, const BlockQ8x* xq, int T, float* y, int64_t ldy,
                        int64_t r0, int64_t r1);

}  // namespace qnext
