// AVX-512 FP8 product for few tokens with float activations (decoding in exact mode, or where the
// bf16 stream of gemm_bf16.h does not run; scalar twin rows_fp8_scalar in fp8.cpp). Each row
// streams start to end (see stream_prefetch.h), 32 weights per step, converted in registers: the
// codes sign-extended to 16 bits and shifted left by 7 put the sign in bit 15 and the 7 low bits
// where an f16 of e4m3 / 256 keeps them (bit 14 would hold a copy of the sign: masked off), and
// vcvtph2ps widens 16 at a time, normal and subnormal codes alike. About 0.25 instructions per
// weight for one token, against a dequantize-to-buffer-then-FMA pass that reads and writes every
// weight twice. Each 128-weight group sums in its own registers (four chains per token: with two,
// one token waited on the FMA latency), then takes its scale (x 256).
#include <immintrin.h>

#include <algorithm>

#include "kernels/fp8.h"
#include "kernels/fp8_avx512.h"
#include "kernels/fp8_rows.h"
#include "kernels/stream_prefetch.h"

namespace qnext {

namespace {

inline void e4m3x32_div256(const uint8_t* p, __m512i keep, __m512& lo, __m512& hi) {
  const __m512i h = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  const __m512i f16 = _mm512_and_si512(_mm512_slli_epi16(h, 7), keep);
  lo = _mm512_cvtph_ps(_mm512_castsi512_si256(f16));
  hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(f16, 1));
}

template <int TT>
void row_tile(const Matrix& w, const float* x, float* y, int64_t ldy, int64_t r, int t0, StreamPrefetch& prefetch) {
  const uint8_t* row = w.row_ptr(r);
  const int64_t n = w.cols, G = w.group, srow = r / w.group_rows;
  const ScaleRow scales(w, srow);  // [scale_cols()]
  const __m512i keep = _mm512_set1_epi16(int16_t(0xBF80));  // the f16's sign, exponent and mantissa bits
  __m512 total[TT];
  float tail[TT];
  for (int j = 0; j < TT; ++j) total[j] = _mm512_setzero_ps(), tail[j] = 0;
  for (int64_t k0 = 0, g = 0; k0 < n; k0 += G, ++g) {
    const int64_t end = std::min(n, k0 + G);
    const float s = scales[g];
    // Four chains per token whatever TT, so a token's sum does not depend on the tokens beside it.
    __m512 acc[TT][4];
    for (int j = 0; j < TT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = _mm512_setzero_ps();
    auto step = [&](int64_t k, int a) {  // weights [k, k + 32) into chains a, a + 1
      __m512 w0, w1;
      e4m3x32_div256(row + k, keep, w0, w1);
      for (int j = 0; j < TT; ++j) {
        const float* xj = x + size_t(t0 + j) * size_t(n) + size_t(k);
        acc[j][a] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xj), acc[j][a]);
        acc[j][a + 1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xj + 16), acc[j][a + 1]);
      }
    };
    int64_t k = k0;
    for (; k + 64 <= end; k += 64) {
      prefetch.advance(row + k + 64);
      step(k, 0);
      step(k + 32, 2);
    }
    if (k + 32 <= end) {
      prefetch.advance(row + k + 32);
      step(k, 0);
      k += 32;
    }
    for (; k < end; ++k)
      for (int j = 0; j < TT; ++j) tail[j] += e4m3_to_f32(row[k]) * s * x[size_t(t0 + j) * size_t(n) + size_t(k)];
    const __m512 s256 = _mm512_set1_ps(s * 256.0f);
    for (int j = 0; j < TT; ++j)
      total[j] = _mm512_fmadd_ps(_mm512_add_ps(_mm512_add_ps(acc[j][0], acc[j][1]), _mm512_add_ps(acc[j][2], acc[j][3])), s256,
                                 total[j]);
  }
  for (int j = 0; j < TT; ++j) y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = _mm512_reduce_add_ps(total[j]) + tail[j];
}

// The same for the layout of the published checkpoints (128 x 128 blocks, rows a whole number of
// blocks; driven by fp8_rows.h), in the same order of sums: a group is eight straight steps of 16
// weights over four chains, the codes taken as e4m3 * 2^-120 with integer ops against the
// activations x 2^64 (xs: [TT, cols], the pass's tokens), then the group's scale x 2^56 once.
template <int TT>
struct RowG128 {
  static void run(const Matrix& w, const float* xs, float* y, int64_t ldy, int64_t r, int t0, const float* s56,
                  StreamPrefetch& prefetch) {
    const uint8_t* row = w.row_ptr(r);
    const int64_t n = w.cols;
    __m512 total[TT];
    for (int j = 0; j < TT; ++j) total[j] = _mm512_setzero_ps();
    for (int64_t k0 = 0, g = 0; k0 < n; k0 += 128, ++g) {
      prefetch.advance(row + k0 + 128);
      __m512 acc[TT][4];
      for (int j = 0; j < TT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = _mm512_setzero_ps();
      // Unrolled, so the accumulators stay in registers (as loops, g++ kept them in memory).
#pragma GCC unroll 8
      for (int step = 0; step < 8; ++step) {  // weights [k0 + 16 step, + 16) into chain step % 4
        const __m512 ws = e4m3x16_times_2m120(row + k0 + 16 * step);
        for (int j = 0; j < TT; ++j) {
          const float* xj = xs + size_t(j) * size_t(n) + size_t(k0 + 16 * step);
          acc[j][step % 4] = _mm512_fmadd_ps(ws, _mm512_loadu_ps(xj), acc[j][step % 4]);
        }
      }
      const __m512 s = _mm512_set1_ps(s56[g]);
      for (int j = 0; j < TT; ++j)
        total[j] = _mm512_fmadd_ps(_mm512_add_ps(_mm512_add_ps(acc[j][0], acc[j][1]), _mm512_add_ps(acc[j][2], acc[j][3])), s,
                                   total[j]);
    }
    for (int j = 0; j < TT; ++j) y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = _mm512_reduce_add_ps(total[j]);
  }
};

// Any group width and partial blocks (row_tile), passes of up to 4 tokens.
void rows_general(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  for (int t0 = 0; t0 < T; t0 += 4) {
    StreamPrefetch prefetch(w.row_ptr(r0), w.row_ptr(w.rows));
    const int tt = std::min(4, T - t0);
    for (int64_t r = r0; r < r1; ++r) {
      switch (tt) {
        case 1: row_tile<1>(w, x, y, ldy, r, t0, prefetch); break;
        case 2: row_tile<2>(w, x, y, ldy, r, t0, prefetch); break;
        case 3: row_tile<3>(w, x, y, ldy, r, t0, prefetch); break;
        default: row_tile<4>(w, x, y, ldy, r, t0, prefetch); break;
      }
    }
  }
}

}  // namespace

void rows_fp8_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (fp8_rows::fits(w)) fp8_rows::rows<RowG128, rows_general>(w, x, T, y, ldy, r0, r1);
  else rows_general(w, x, T, y, ldy, r0, r1);
}

}  // namespace qnext
