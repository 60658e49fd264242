// AVX2 + FMA variant of matmul_rows (scalar twin in matmul.cpp). Weights are widened to float in
// registers. One token streams the rows one after another; more tokens run a 4-row x up-to-3-token
// tile of accumulators that reuses every weight load across tokens.
#include <immintrin.h>

#include <algorithm>

#include "kernels/simd_avx2.h"
#include "kernels/matmul.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

struct LoadBf16 {
  static __m256 load8(const uint8_t* row, int64_t k) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float load1(const uint8_t* row, int64_t k) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]); }
};
struct LoadF16 {
  static __m256 load8(const uint8_t* row, int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
  }
  static float load1(const uint8_t* row, int64_t k) { return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]); }
};
struct LoadF32 {
  static __m256 load8(const uint8_t* row, int64_t k) { return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k); }
  static float load1(const uint8_t* row, int64_t k) { return reinterpret_cast<const float*>(row)[k]; }
};

// The tiles also prefetch the rows kPrefetchRows below them, or the loads stall past what the
// hardware prefetcher covers.
constexpr int kPrefetchRows = 4;

// y[t][r] for R rows starting at r and TT tokens starting at t.
template <typename L, int R, int TT>
inline void tile(const Matrix& w, const float* x, float* y, int64_t ldy, int64_t r, int t) {
  const int64_t n = w.cols, n8 = n & ~int64_t(7);
  const uint8_t* rows[R];
  const uint8_t* ahead[R];
  for (int i = 0; i < R; ++i) {
    rows[i] = w.row_ptr(r + i);
    ahead[i] = w.row_ptr(std::min(w.rows - 1, r + i + kPrefetchRows));
  }
  const int bytes_per_step = int(8 * dtype_size(w.dtype));  // bytes of one row per 8 weights
  const float* xs[TT];
  for (int j = 0; j < TT; ++j) xs[j] = x + size_t(t + j) * size_t(n);
  __m256 acc[R][TT];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < n8; k += 8) {
    __m256 xv[TT];
    for (int j = 0; j < TT; ++j) xv[j] = _mm256_loadu_ps(xs[j] + k);
    if ((k & 31) == 0)
      for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(ahead[i]) + k * bytes_per_step / 8, _MM_HINT_T0);
    for (int i = 0; i < R; ++i) {
      __m256 wv = L::load8(rows[i], k);
      for (int j = 0; j < TT; ++j) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) {
      float s = hsum_avx2(acc[i][j]);
      for (int64_t k = n8; k < n; ++k) s += L::load1(rows[i], k) * xs[j][k];
      y[size_t(t + j) * size_t(ldy) + size_t(r + i)] = s;
    }
}

template <typename L, int R>
inline void row_block(const Matrix& w, const float* x, int t0, int t1, float* y, int64_t ldy, int64_t r) {
  int t = t0;
  for (; t + 3 <= t1; t += 3) tile<L, R, 3>(w, x, y, ldy, r, t);
  if (t1 - t == 2) tile<L, R, 2>(w, x, y, ldy, r, t);
  else if (t1 - t == 1) tile<L, R, 1>(w, x, y, ldy, r, t);
}

// One token: rows one after another, four accumulators over consecutive 8-weight steps, each
// 32-weight step's lines prefetched kStreamAhead bytes ahead into L2 (see stream_prefetch.h).
template <typename L>
void run_stream(const Matrix& w, const float* x, float* y, int64_t r0, int64_t r1) {
  const int64_t n = w.cols, n32 = n & ~int64_t(31), n8 = n & ~int64_t(7);
  const int64_t bytes_per_weight = int64_t(dtype_size(w.dtype));
  const int lines_per_step = int(32 * bytes_per_weight / 64);  // the step's weights' cache lines
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row_ptr(r);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t k = 0;
    for (; k < n32; k += 32) {
      prefetch_lines<_MM_HINT_T1>(row + k * bytes_per_weight, kStreamAhead, lines_per_step);
      for (int u = 0; u < 4; ++u) acc[u] = _mm256_fmadd_ps(L::load8(row, k + 8 * u), _mm256_loadu_ps(x + k + 8 * u), acc[u]);
    }
    for (; k < n8; k += 8) acc[0] = _mm256_fmadd_ps(L::load8(row, k), _mm256_loadu_ps(x + k), acc[0]);
    float s = hsum_avx2(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; k < n; ++k) s += L::load1(row, k) * x[k];
    y[r] = s;
  }
}

template <typename L>
void run(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (T == 1) {
    run_stream<L>(w, x, y, r0, r1);
    return;
  }
  constexpr int kTokenBlock = 24;  // x block stays in L2 while the weight rows stream by
  for (int t0 = 0; t0 < T; t0 += kTokenBlock) {
    const int t1 = std::min(T, t0 + kTokenBlock);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) row_block<L, 4>(w, x, t0, t1, y, ldy, r);
    for (; r < r1; ++r) row_block<L, 1>(w, x, t0, t1, y, ldy, r);
  }
}

}  // namespace

void matmul_rows_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  switch (w.dtype) {
    case DType::BF16: run<LoadBf16>(w, x, T, y, ldy, r0, r1); return;
    case DType::F16: run<LoadF16>(w, x, T, y, ldy, r0, r1); return;
    default: run<LoadF32>(w, x, T, y, ldy, r0, r1); return;
  }
}

}  // namespace qnext
