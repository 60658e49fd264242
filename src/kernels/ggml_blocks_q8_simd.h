// Pieces of the AVX2 and AVX-512 int8 K-quant kernels (ggml_blocks_q8_avx2.cpp,
// ggml_blocks_q8_avx512.cpp): the pass driver both use, and the AVX2 kernels' scale decoding
// (the AVX-512 ones decode theirs interleaved). Include only from those files (SSSE3 intrinsics;
// internal linkage).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <vector>

#include "kernels/ggml_blocks_q8.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

// Q4_K / Q5_K: the 6-bit scales and mins of the 8 sub-blocks (k4_scale_min) as 16 bytes
// [sc 0..7 | m 0..7], from the 12 scale bytes at s (16 bytes read: the block goes on after them).
// Low bits: sc 0-3 = s[0-3] & 63, sc 4-7 = s[8-11] & 15, m 0-3 = s[4-7] & 63, m 4-7 = s[8-11] >> 4;
// high 2 bits of sc 4-7 / m 4-7: bits 6-7 of s[0-3] / s[4-7].
inline __m128i k4_scale_bytes(const uint8_t* s) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
  const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
  const __m128i low = _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
  const __m128i nib = _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
  const __m128i high = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30));
  return _mm_or_si128(_mm_or_si128(low, nib), high);
}


// Rows [r0, r1) for T tokens in passes of up to 3 tokens, as even as they go (4 tokens: 2 + 2, not
// 3 + 1), each pass streaming the rows once. F::pack(xq, nsb, out) lays out a token's activations
// as the ISA's kernel reads them; Tile<F, TT>::row(blocks, nsb, xs, y, ldy, r, t0, prefetch) is that
// kernel for one row (its nsb super-blocks) and TT tokens.
template <class F, template <class, int> class Tile>
void rows_in_passes(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nsb = w.cols / F::Block::kElems, nb = w.cols / kQuantBlock;
  KActs on_stack[3 * kMaxKActs];  // [3, nsb]: one pass's tokens
  thread_local std::vector<KActs> on_heap;  // the same for longer rows; grows once
  KActs* acts = on_stack;
  if (nsb > kMaxKActs) {
    if (on_heap.size() < 3 * size_t(nsb)) on_heap.resize(3 * size_t(nsb));
    acts = on_heap.data();
  }
  const int passes = (T + 2) / 3;
  for (int pass = 0, t0 = 0; pass < passes; ++pass) {
    const int tt = (T - t0) / (passes - pass);
    const KActs* xs[3];
    for (int j = 0; j < tt; ++j) {
      F::pack(xq + size_t(t0 + j) * size_t(nb), nsb, acts + size_t(j) * size_t(nsb));
      xs[j] = acts + size_t(j) * size_t(nsb);
    }
    StreamPrefetch prefetch(w.row_ptr(r0), w.row_ptr(r1));
    const size_t stride = row_bytes(w.dtype, w.cols);  // once: row_ptr per row cost ~1% of a decode
    for (int64_t r = r0; r < r1; ++r) {
      const auto* blocks = reinterpret_cast<const typename F::Block*>(w.row_ptr(0) + size_t(r) * stride);
      switch (tt) {
        case 1: Tile<F, 1>::row(blocks, nsb, xs, y, ldy, r, t0, prefetch); break;
        case 2: Tile<F, 2>::row(blocks, nsb, xs, y, ldy, r, t0, prefetch); break;
        default: Tile<F, 3>::row(blocks, nsb, xs, y, ldy, r, t0, prefetch); break;
      }
    }
    t0 += tt;
  }
}

}  // namespace
}  // namespace qnext
