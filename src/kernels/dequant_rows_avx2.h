// The AVX2 float-activation product over any dequantizer (include only from *_avx2.cpp files):
// each weight row is dequantized a chunk at a time into a buffer on the stack (it stays in L1) and
// multiplied into up to 4 tokens at once with FMAs. Scalar twin: rows_f32_dequant_scalar.
#pragma once
#include <immintrin.h>

#include <algorithm>

#include "kernels/simd_avx2.h"
#include "kernels/weight_format.h"

namespace qnext::dequant_rows {

constexpr int64_t kChunk = 512;  // weights dequantized at once (2 KiB of floats)

template <DequantKernel D, int TT>
inline void row_tile(const Matrix& w, const float* x, float* y, int64_t ldy, int64_t r, int t0, float* buf) {
  const int64_t n = w.cols;
  __m256 acc[TT][2];
  float tail[TT];
  for (int j = 0; j < TT; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps(), tail[j] = 0;
  for (int64_t k0 = 0; k0 < n; k0 += kChunk) {
    const int64_t c = std::min(kChunk, n - k0), c16 = c & ~int64_t(15), c8 = c & ~int64_t(7);
    D(w, r, k0, c, buf);
    int64_t k = 0;
    for (; k < c16; k += 16) {
      const __m256 w0 = _mm256_load_ps(buf + k), w1 = _mm256_load_ps(buf + k + 8);
      for (int j = 0; j < TT; ++j) {
        const float* xj = x + size_t(t0 + j) * size_t(n) + size_t(k0 + k);
        acc[j][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xj), acc[j][0]);
        acc[j][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xj + 8), acc[j][1]);
      }
    }
    for (; k < c8; k += 8) {
      const __m256 w0 = _mm256_load_ps(buf + k);
      for (int j = 0; j < TT; ++j)
        acc[j][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + size_t(t0 + j) * size_t(n) + size_t(k0 + k)), acc[j][0]);
    }
    for (; k < c; ++k)
      for (int j = 0; j < TT; ++j) tail[j] += buf[k] * x[size_t(t0 + j) * size_t(n) + size_t(k0 + k)];
  }
  for (int j = 0; j < TT; ++j)
    y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = hsum_avx2(_mm256_add_ps(acc[j][0], acc[j][1])) + tail[j];
}

template <DequantKernel D>
void rows(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  alignas(32) float buf[kChunk];
  for (int t0 = 0; t0 < T; t0 += 4) {
    const int tt = std::min(4, T - t0);
    for (int64_t r = r0; r < r1; ++r) {
      switch (tt) {
        case 1: row_tile<D, 1>(w, x, y, ldy, r, t0, buf); break;
        case 2: row_tile<D, 2>(w, x, y, ldy, r, t0, buf); break;
        case 3: row_tile<D, 3>(w, x, y, ldy, r, t0, buf); break;
        default: row_tile<D, 4>(w, x, y, ldy, r, t0, buf); break;
      }
    }
  }
}

}  // namespace qnext::dequant_rows
