// AVX-512 variant of matmul_rows (scalar twin in matmul.cpp). Weights are widened to float in
// registers. One token streams the rows one after another; more tokens run a 4-row x up-to-6-token
// tile of accumulators that reuses every weight load across tokens (BF16 from kFloatPanelMinTokens
// tokens goes to the float panels instead: gemm_float_panels_avx512.cpp).
#include <immintrin.h>

#include <algorithm>

#include "kernels/matmul.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

struct LoadBf16 {
  static __m512 load16(const uint8_t* row, int64_t k) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * k));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static float load1(const uint8_t* row, int64_t k) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]); }
};
struct LoadF16 {
  static __m512 load16(const uint8_t* row, int64_t k) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * k)));
  }
  static float load1(const uint8_t* row, int64_t k) { return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]); }
};
struct LoadF32 {
  static __m512 load16(const uint8_t* row, int64_t k) { return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k); }
  static float load1(const uint8_t* row, int64_t k) { return reinterpret_cast<const float*>(row)[k]; }
};

// The tiles also prefetch the rows kPrefetchRows below them (as the AVX2 variant does), or the
// loads stall past what the hardware prefetcher covers.
constexpr int kPrefetchRows = 4;
constexpr int kTileTokens = 6;  // x 4 rows: 24 accumulators, 6 activation vectors, a weight vector

template <typename L, int R, int TT>
inline void tile(const Matrix& w, const float* x, float* y, int64_t ldy, int64_t r, int t) {
  const int64_t n = w.cols, n16 = n & ~int64_t(15);
  const uint8_t* rows[R];
  const uint8_t* ahead[R];
  for (int i = 0; i < R; ++i) {
    rows[i] = w.row_ptr(r + i);
    ahead[i] = w.row_ptr(std::min(w.rows - 1, r + i + kPrefetchRows));
  }
  const int64_t bytes_per_weight = int64_t(dtype_size(w.dtype));
  const float* xs[TT];
  for (int j = 0; j < TT; ++j) xs[j] = x + size_t(t + j) * size_t(n);
  __m512 acc[R][TT];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < n16; k += 16) {
    __m512 xv[TT];
    for (int j = 0; j < TT; ++j) xv[j] = _mm512_loadu_ps(xs[j] + k);
    if (bytes_per_weight == 4 || (k & 31) == 0)  // one cache line of each row ahead per 64 bytes read
      for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(ahead[i]) + k * bytes_per_weight, _MM_HINT_T0);
    for (int i = 0; i < R; ++i) {
      __m512 wv = L::load16(rows[i], k);
      for (int j = 0; j < TT; ++j) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) {
      float s = _mm512_reduce_add_ps(acc[i][j]);
      for (int64_t k = n16; k < n; ++k) s += L::load1(rows[i], k) * xs[j][k];
      y[size_t(t + j) * size_t(ldy) + size_t(r + i)] = s;
    }
}

template <typename L, int R>
inline void row_block(const Matrix& w, const float* x, int t0, int t1, float* y, int64_t ldy, int64_t r) {
  const int tiles = (t1 - t0 + kTileTokens - 1) / kTileTokens;  // as even as they go: 10 tokens 5 + 5
  for (int i = 0, t = t0; i < tiles; ++i) {
    const int tt = (t1 - t) / (tiles - i);
    switch (tt) {
      case 6: tile<L, R, 6>(w, x, y, ldy, r, t); break;
      case 5: tile<L, R, 5>(w, x, y, ldy, r, t); break;
      case 4: tile<L, R, 4>(w, x, y, ldy, r, t); break;
      case 3: tile<L, R, 3>(w, x, y, ldy, r, t); break;
      case 2: tile<L, R, 2>(w, x, y, ldy, r, t); break;
      default: tile<L, R, 1>(w, x, y, ldy, r, t); break;
    }
    t += tt;
  }
}

// One token: rows one after another, four accumulators over consecutive 16-weight steps, each
// 64-weight step's lines prefetched kStreamAhead bytes ahead into L2 (see stream_prefetch.h).
template <typename L>
void run_stream(const Matrix& w, const float* x, float* y, int64_t r0, int64_t r1) {
  const int64_t n = w.cols, n64 = n & ~int64_t(63), n16 = n & ~int64_t(15);
  const int64_t bytes_per_weight = int64_t(dtype_size(w.dtype));
  const int lines_per_step = int(64 * bytes_per_weight / 64);  // the step's weights' cache lines
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row_ptr(r);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t k = 0;
    for (; k < n64; k += 64) {
      prefetch_lines<_MM_HINT_T1>(row + k * bytes_per_weight, kStreamAhead, lines_per_step);
      for (int u = 0; u < 4; ++u) acc[u] = _mm512_fmadd_ps(L::load16(row, k + 16 * u), _mm512_loadu_ps(x + k + 16 * u), acc[u]);
    }
    for (; k < n16; k += 16) acc[0] = _mm512_fmadd_ps(L::load16(row, k), _mm512_loadu_ps(x + k), acc[0]);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
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

void matmul_rows_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  switch (w.dtype) {
    case DType::BF16: run<LoadBf16>(w, x, T, y, ldy, r0, r1); return;
    case DType::F16: run<LoadF16>(w, x, T, y, ldy, r0, r1); return;
    default: run<LoadF32>(w, x, T, y, ldy, r0, r1); return;
  }
}

}  // namespace qnext
