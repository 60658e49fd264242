// The float GEMM for BF16 weights and many tokens on AVX-512 (prefill's dense projections, the
// busier experts): the weight rows in the lanes. Scalar twin: matmul_rows_scalar (matmul.cpp).
//
// Each pair of 16-row panels is transposed (16 x 16 words in registers) and widened to float once,
// so each panel's vector at k holds its 16 rows' weights: [cols][16] per panel. A token's x[k] is
// the FMA's broadcast operand, so one load of each of the two panels serves 6 tokens x 32 rows (12
// FMAs per 2 vector loads and 6 broadcasts), where the row kernel (matmul_avx512.cpp: k in the
// lanes) loads 4 weight vectors and 6 activation vectors per 4 x 6 FMAs. Each lane's sum runs over
// k in order, as the scalar twin's does. One Zen 5 core (BM_Bf16Terms, GFLOP/s, the row kernel of
// 4 x 6 tiles against this one's first form, which widened before a transpose per 16 k): 16 tokens
// 126-130 / 106-112, 24 tokens 115-127 / 129-135, 64 tokens 120-127 / 174-178, 512 tokens 132-141
// / 206-210; the bf16 transpose then gained ~5-10% below 64 tokens. Below kFloatPanelMinTokens the
// unpacking costs more than the lanes save.
#include <immintrin.h>

#include <vector>

#include "kernels/matmul.h"
#include "kernels/transpose_avx512.h"

namespace qnext {
namespace {

constexpr int kTileTokens = 6;  // x 2 panels: 12 accumulators, 2 weight vectors, the broadcasts

struct alignas(64) Lanes {  // the 16 rows of a panel at one k
  float row[16];
};

// 16 BF16 rows [r, r + 16) -> panel [cols][16] floats. Transposed while still bf16: each row's
// 32 weights (one cache line) are 16 words of two k each, so one 16 x 16 word transpose gives, per
// pair of k, the 16 rows' two weights in each lane; the even k's float is the word shifted up 16,
// the odd k's the word with its low half cleared. Prefetches the same columns of the rows `ahead`
// (the next pair of panels) as it goes, so the next unpacking finds them in cache.
void unpack_panel(const Matrix& w, int64_t r, const uint8_t* const* ahead, Lanes* panel) {
  const int64_t cols = w.cols;
  const uint8_t* rows[16];
  for (int i = 0; i < 16; ++i) rows[i] = w.row_ptr(r + i);
  const __m512i high = _mm512_set1_epi32(int32_t(0xFFFF0000u));
  for (int64_t k = 0; k < cols; k += 32) {
    __m512i pairs[16], lanes[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
      if (ahead[i]) _mm_prefetch(reinterpret_cast<const char*>(ahead[i] + 2 * k), _MM_HINT_T0);
      pairs[i] = _mm512_loadu_si512(rows[i] + 2 * k);
    }
    transpose16(pairs, lanes);
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) {
      _mm512_store_si512(panel[k + 2 * j].row, _mm512_slli_epi32(lanes[j], 16));
      _mm512_store_si512(panel[k + 2 * j + 1].row, _mm512_and_si512(lanes[j], high));
    }
  }
}

// Tokens [t, t + TT) against P panels (P x 16 rows from r): y[t + j][r + 16 p + lane].
template <int P, int TT>
inline void tile(const Lanes* panels, int64_t cols, const float* x, int t, float* y, int64_t ldy, int64_t r) {
  __m512 acc[P][TT];
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < TT; ++j) acc[p][j] = _mm512_setzero_ps();
  const float* xs[TT];
  for (int j = 0; j < TT; ++j) xs[j] = x + size_t(t + j) * size_t(cols);
  for (int64_t k = 0; k < cols; ++k) {
    __m512 wv[P];
    for (int p = 0; p < P; ++p) wv[p] = _mm512_load_ps(panels[size_t(p) * size_t(cols) + size_t(k)].row);
    for (int j = 0; j < TT; ++j) {
      const __m512 xb = _mm512_set1_ps(xs[j][k]);
      for (int p = 0; p < P; ++p) acc[p][j] = _mm512_fmadd_ps(wv[p], xb, acc[p][j]);
    }
  }
  for (int j = 0; j < TT; ++j)
    for (int p = 0; p < P; ++p) _mm512_storeu_ps(y + size_t(t + j) * size_t(ldy) + size_t(r + 16 * p), acc[p][j]);
}

// All T tokens against P panels, in tiles as even as they go (13 tokens: 4 + 4 + 5).
template <int P>
void all_tokens(const Lanes* panels, int64_t cols, const float* x, int T, float* y, int64_t ldy, int64_t r) {
  const int tiles = (T + kTileTokens - 1) / kTileTokens;
  for (int i = 0, t = 0; i < tiles; ++i) {
    const int tt = (T - t) / (tiles - i);
    switch (tt) {
      case 6: tile<P, 6>(panels, cols, x, t, y, ldy, r); break;
      case 5: tile<P, 5>(panels, cols, x, t, y, ldy, r); break;
      case 4: tile<P, 4>(panels, cols, x, t, y, ldy, r); break;
      case 3: tile<P, 3>(panels, cols, x, t, y, ldy, r); break;
      case 2: tile<P, 2>(panels, cols, x, t, y, ldy, r); break;
      default: tile<P, 1>(panels, cols, x, t, y, ldy, r); break;
    }
    t += tt;
  }
}

}  // namespace

void gemm_float_panels_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t cols = w.cols;
  if (w.dtype != DType::BF16 || cols % 32 != 0) {  // not what the panels read: the row kernel
    matmul_rows_avx512(w, x, T, y, ldy, r0, r1);
    return;
  }
  // [2][cols]: two panels of 16 rows, [cols][16] floats each; grows to the widest matrix, then stays
  thread_local std::vector<Lanes> panels;
  if (panels.size() < size_t(2 * cols)) panels.resize(size_t(2 * cols));
  int64_t r = r0;
  while (r + 16 <= r1) {
    const int P = r + 32 <= r1 ? 2 : 1;
    for (int p = 0; p < P; ++p) {
      const uint8_t* ahead[16];  // the panel 32 rows on, where this thread's range has it
      for (int i = 0; i < 16; ++i) ahead[i] = r + 32 + 16 * p + i < r1 ? w.row_ptr(r + 32 + 16 * p + i) : nullptr;
      unpack_panel(w, r + 16 * p, ahead, panels.data() + size_t(p) * size_t(cols));
    }
    if (P == 2) all_tokens<2>(panels.data(), cols, x, T, y, ldy, r);
    else all_tokens<1>(panels.data(), cols, x, T, y, ldy, r);
    r += 16 * P;
  }
  if (r < r1) matmul_rows_avx512(w, x, T, y, ldy, r, r1);  // under 16 rows left: the row kernel
}

}  // namespace qnext
