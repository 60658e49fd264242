// The FP8 row product over the published layout (128 x 128 blocks, rows a whole number of 128-weight
// groups) for few tokens, around an ISA's row kernel: passes of up to 4 tokens, each pass's
// activations x 2^64 in a buffer, each row block's scales x 2^56 converted once. The row kernels
// (fp8_avx2.cpp, fp8_avx512.cpp) take the codes as e4m3 * 2^-120 with integer ops, and these powers
// of two make their products e4m3 * x * scale again (exact unless one falls below 2^-70 of its
// row's scale, where it rounds as an f32 subnormal). That needs |x| and |scale| below 2^64: calls
// or row blocks outside it go to the ISA's general kernel (Fallback) instead. Subnormal codes become
// f32 subnormals: a process that sets DAZ (flush denormal inputs) would read them as 0 here.
// Include only from those two files: everything here has internal linkage, so each is compiled for
// its own ISA.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/stream_prefetch.h"
#include "kernels/weight_format.h"

namespace qnext {
namespace {
namespace fp8_rows {

constexpr int64_t kMaxGroups = 512;    // rows of up to this many groups (their scales on the stack)
constexpr int64_t kStackCols = 4096;  // activations of rows up to this wide on the stack

bool fits(const Matrix& w) { return w.group == 128 && w.cols % 128 == 0 && w.cols / 128 <= kMaxGroups; }

// Row<TT>::run(w, xs, y, ldy, r, t0, s56, prefetch) writes y[t0 + j][r] for the pass's TT tokens
// (xs: their activations x 2^64 [TT, cols]; s56: row r's block of scales x 2^56 [cols / 128]).
template <template <int> class Row, RowsKernel Fallback>
void rows(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t groups = w.cols / 128, n = w.cols;
  // Whether any activation is 2^64 or more, or NaN (an OR, so the loop vectorizes; a running max would not).
  int out_of_range = 0;
  for (int64_t i = 0; i < int64_t(T) * n; ++i) out_of_range |= !(std::fabs(x[i]) < 0x1p64f);
  if (out_of_range) {
    Fallback(w, x, T, y, ldy, r0, r1);
    return;
  }
  float s56[kMaxGroups];
  // Decoding allocates nothing; longer rows use a per-thread buffer that grows once.
  float on_stack[4 * kStackCols];
  thread_local std::vector<float> on_heap;
  float* xs = on_stack;
  if (n > kStackCols) {
    if (on_heap.size() < 4 * size_t(n)) on_heap.resize(4 * size_t(n));
    xs = on_heap.data();
  }
  for (int t0 = 0; t0 < T; t0 += 4) {
    StreamPrefetch prefetch(w.row_ptr(r0), w.row_ptr(w.rows));
    const int tt = std::min(4, T - t0);
    const float* xt = x + size_t(t0) * size_t(n);
    for (int64_t i = 0; i < tt * n; ++i) xs[i] = xt[i] * 0x1p64f;
    int64_t srow = -1;
    bool in_range = true;  // row block srow's scales all below 2^64
    for (int64_t r = r0; r < r1; ++r) {
      if (r / w.group_rows != srow) {
        srow = r / w.group_rows;
        ScaleRow(w, srow).to_f32(groups, s56);
        in_range = true;
        for (int64_t g = 0; g < groups; ++g) {
          in_range = in_range && std::fabs(s56[g]) < 0x1p64f;
          s56[g] *= 0x1p56f;
        }
      }
      if (!in_range) {  // the whole row block, every token, once
        const int64_t end = std::min(r1, (srow + 1) * w.group_rows);
        if (t0 == 0) Fallback(w, x, T, y, ldy, r, end);
        r = end - 1;
        continue;
      }
      switch (tt) {
        case 1: Row<1>::run(w, xs, y, ldy, r, t0, s56, prefetch); break;
        case 2: Row<2>::run(w, xs, y, ldy, r, t0, s56, prefetch); break;
        case 3: Row<3>::run(w, xs, y, ldy, r, t0, s56, prefetch); break;
        default: Row<4>::run(w, xs, y, ldy, r, t0, s56, prefetch); break;
      }
    }
  }
}

}  // namespace fp8_rows
}  // namespace
}  // namespace qnext
