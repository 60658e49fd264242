// AVX-512 int4 product for few tokens (decoding; scalar twin rows_int4_scalar in int4.cpp). The
// AVX2 kernel's structure (int4_avx2.cpp) with 16 lanes: two words per step, a vpermd spreading
// word 0 over lanes 0-7 and word 1 over lanes 8-15, a variable shift putting nibble j % 8 in lane
// j, and one vpternlogd masking it into the mantissa of 2^23 (2^23 + u exactly), so one float
// subtraction of 2^23 + z + 8 leaves u - z - 8 without an int-to-float conversion.
#include <immintrin.h>

#include <algorithm>

#include "kernels/int4.h"
#include "kernels/stream_prefetch.h"

namespace qnext {

namespace {

// One row against TT tokens: each group's sum of (u - z - 8) x in NA accumulators per token,
// scaled once per group. Tails after a group's last whole pair of words (cols % 16, groups not a
// multiple of 16) take masked loads; weights before a group's first whole word (a group size not
// a multiple of 8) go one at a time.
template <int TT>
void row_tile(const Matrix& w, const Int4Rows& m, const float* x, float* y, int64_t ldy, int64_t r, int t0,
              StreamPrefetch& prefetch) {
  constexpr int NA = TT <= 2 ? 4 : 2;
  const uint32_t* words = reinterpret_cast<const uint32_t*>(m.row(r));  // [ceil(cols / 8)]
  const int64_t n = w.cols, G = w.group;
  const Int4RowGroups groups(m, r);
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i shifts = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  const __m512i low4 = _mm512_set1_epi32(15), two23 = _mm512_set1_epi32(0x4B000000);
  const float* xs[TT];  // token j's activations [cols]
  __m512 total[TT];
  float tail[TT];
  for (int j = 0; j < TT; ++j) xs[j] = x + size_t(t0 + j) * size_t(n), total[j] = _mm512_setzero_ps(), tail[j] = 0;
  for (int64_t k0 = 0, g = 0; k0 < n; k0 += G, ++g) {
    const int64_t end = std::min(n, k0 + G);
    const float s = groups.scale(g);
    const int zu = groups.zero_u(g);
    const __m512 zv = _mm512_set1_ps(8388608.0f + float(zu));
    __m512 acc[TT][NA];
    float part[TT];
    for (int j = 0; j < TT; ++j) {
      part[j] = 0;
      for (int a = 0; a < NA; ++a) acc[j][a] = _mm512_setzero_ps();
    }
    // u - z - 8 of the 16 weights of words p[0], p[1] (the second may be absent: ww = word 0 only).
    auto codes = [&](__m128i ww) {
      const __m512i u = _mm512_srlv_epi32(_mm512_permutexvar_epi32(spread, _mm512_castsi128_si512(ww)), shifts);
      return _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(u, low4, two23, 0xEA)), zv);  // (u & 15) | 2^23
    };
    auto pair = [&](int64_t k, int a) {  // weights [k, k + 16), k % 8 == 0
      const __m512 q = codes(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(words + k / 8)));
      for (int j = 0; j < TT; ++j) acc[j][a] = _mm512_fmadd_ps(q, _mm512_loadu_ps(xs[j] + k), acc[j][a]);
    };
    int64_t k = k0;
    for (; k < end && k % 8 != 0; ++k) {
      const float q = float(int((words[k / 8] >> (4 * (k % 8))) & 15) - zu);
      for (int j = 0; j < TT; ++j) part[j] += q * xs[j][k];
    }
    for (; k + 16 * NA <= end; k += 16 * NA) {
      prefetch.advance(words + k / 8 + 2 * NA);
      for (int a = 0; a < NA; ++a) pair(k + 16 * a, a);
    }
    if constexpr (NA > 2)  // groups of 32: two chains still
      for (; k + 32 <= end; k += 32) pair(k, 0), pair(k + 16, 1);
    for (; k + 16 <= end; k += 16) pair(k, 0);
    if (k < end) {  // 1-15 weights in 1 or 2 words; the lanes past `end` are zeroed, not read
      const __mmask16 m = __mmask16((1u << (end - k)) - 1);
      const __m128i ww = end - k > 8 ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(words + k / 8))
                                     : _mm_cvtsi32_si128(int(words[k / 8]));
      const __m512 q = _mm512_maskz_mov_ps(m, codes(ww));
      for (int j = 0; j < TT; ++j) acc[j][0] = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(m, xs[j] + k), acc[j][0]);
    }
    const __m512 sv = _mm512_set1_ps(s);
    for (int j = 0; j < TT; ++j) {
      __m512 sum = acc[j][0];
      for (int a = 1; a < NA; ++a) sum = _mm512_add_ps(sum, acc[j][a]);
      total[j] = _mm512_fmadd_ps(sum, sv, total[j]);
      tail[j] += part[j] * s;
    }
  }
  for (int j = 0; j < TT; ++j) y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = _mm512_reduce_add_ps(total[j]) + tail[j];
}

}  // namespace

void rows_int4_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const Int4Rows m(w);
  for (int t0 = 0; t0 < T; t0 += 4) {
    StreamPrefetch prefetch(m.row(r0), m.row(w.rows));
    const int tt = std::min(4, T - t0);
    for (int64_t r = r0; r < r1; ++r) {
      switch (tt) {
        case 1: row_tile<1>(w, m, x, y, ldy, r, t0, prefetch); break;
        case 2: row_tile<2>(w, m, x, y, ldy, r, t0, prefetch); break;
        case 3: row_tile<3>(w, m, x, y, ldy, r, t0, prefetch); break;
        default: row_tile<4>(w, m, x, y, ldy, r, t0, prefetch); break;
      }
    }
  }
}

}  // namespace qnext
