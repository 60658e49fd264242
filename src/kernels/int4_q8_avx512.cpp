// AVX-512 VNNI int4 product with int8 activations, for decoding (scalar twin rows_int4_q8_scalar
// in int4.cpp). A run of 128 weights is 16 words = 64 bytes: the low nibbles of its bytes are the
// even weights of each word, the high nibbles the odd ones. So the activations, shared by every
// row, are laid out once per call the same way (RunX4, int4_q8_layout.h) and each row's run costs one load, two
// masks and two vpdpbusd (u8 x s8, four products per 32-bit lane: lane i = word i's dot product),
// where the float kernel (int4_avx512.cpp) widens every nibble to a float lane. Without VNNI the
// AVX2 kernel (int4_q8_avx2.cpp) runs instead.
#include <immintrin.h>

#include <algorithm>

#include "core/cpu.h"
#include "kernels/int4_q8_layout.h"

namespace qnext {

namespace {

// One run of 128 weights (64 bytes) against TT tokens' runs c: the lanes' sums into acc[t].
template <int TT>
inline void run_dot(const uint8_t* bytes, const RunX4* const* xs, int64_t c, __m512 scale, __m512 zero, __m512* acc) {
  const __m512i low4 = _mm512_set1_epi8(15);
  const __m512i v = _mm512_loadu_si512(bytes + 64 * c);
  const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
  for (int t = 0; t < TT; ++t) {
    const RunX4& x = xs[t][c];
    __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(x.even));
    dot = _mm512_dpbusd_epi32(dot, hi, _mm512_loadu_si512(x.odd));
    const __m512 f = _mm512_fmsub_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(x.dx), _mm512_mul_ps(zero, _mm512_loadu_ps(x.zc)));
    acc[t] = _mm512_fmadd_ps(scale, f, acc[t]);
  }
}

// Run c's scales and zero points per lane (lane i: weight 128 c + 8 i). One: a group per run
// (groups of 128 weights, or of 128k spread to one entry per run by Int4RowFloats::per_run); Split:
// groups of 32 / 64, four or two per run, spread over the lanes.
enum class RunGroups { One, Split };

template <RunGroups kGroups>
inline void run_groups(const Int4RowFloats& f, int64_t c, int64_t group, __m512* scale, __m512* zero) {
  if constexpr (kGroups == RunGroups::Split) {
    const __m512i lane_group = group == 32 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                                           : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const int64_t g = c * (128 / group);
    *scale = _mm512_permutexvar_ps(lane_group, _mm512_castps128_ps512(_mm_loadu_ps(f.scale + g)));
    *zero = _mm512_permutexvar_ps(lane_group, _mm512_castps128_ps512(_mm_loadu_ps(f.zero + g)));
  } else {
    *scale = _mm512_set1_ps(f.scale[c]);
    *zero = _mm512_set1_ps(f.zero[c]);
  }
}

// Row r for TT tokens. Even and odd runs add into two accumulators, so one token is not a single
// chain of dependent FMAs; the row's prefetches go out at its start (no cursor in the loop).
template <int TT, RunGroups kGroups>
void row(const Matrix& w, const Int4Rows& m, const RunX4* const* xs, int64_t runs, float* y, int64_t ldy, int64_t r,
         StreamPrefetch& prefetch) {
  const uint8_t* bytes = m.row(r);  // [cols / 2]
  prefetch.advance(bytes + w.cols / 2);
  Int4RowFloats floats;
  floats.fill(m, r);
  if (w.group > 128) floats.per_run(w.group / 128, runs);
  __m512 even[TT], odd[TT];  // runs 0, 2, 4, ... and 1, 3, 5, ...
  for (int t = 0; t < TT; ++t) even[t] = odd[t] = _mm512_setzero_ps();
  __m512 scale, zero;
  int64_t c = 0;
  for (; c + 1 < runs; c += 2) {
    run_groups<kGroups>(floats, c, w.group, &scale, &zero);
    run_dot<TT>(bytes, xs, c, scale, zero, even);
    run_groups<kGroups>(floats, c + 1, w.group, &scale, &zero);
    run_dot<TT>(bytes, xs, c + 1, scale, zero, odd);
  }
  if (c < runs) {
    run_groups<kGroups>(floats, c, w.group, &scale, &zero);
    run_dot<TT>(bytes, xs, c, scale, zero, even);
  }
  for (int t = 0; t < TT; ++t)
    y[size_t(t) * size_t(ldy) + size_t(r)] = _mm512_reduce_add_ps(_mm512_add_ps(even[t], odd[t]));
}

template <RunGroups kGroups>
void rows(const Matrix& w, const RunX4* const* xs, int tt, int64_t runs, float* y, int64_t ldy, int64_t ra, int64_t rb) {
  int4_rows_in_turn(w, tt, ra, rb, [&](auto TT, const Int4Rows& m, int64_t r, StreamPrefetch& prefetch) {
    row<decltype(TT)::value, kGroups>(w, m, xs, runs, y, ldy, r, prefetch);
  });
}

}  // namespace

void rows_int4_q8_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (!cpu_has_avx512_vnni()) {
    rows_int4_q8_avx2(w, xq, T, y, ldy, r0, r1);
    return;
  }
  const int64_t runs = w.cols / 128;
  int4_q8_passes(w, xq, T, y, ldy, r0, r1, [&](const RunX4* const* xs, int tt, float* yt, int64_t ra, int64_t rb) {
    if (w.group % 128 == 0) rows<RunGroups::One>(w, xs, tt, runs, yt, ldy, ra, rb);
    else rows<RunGroups::Split>(w, xs, tt, runs, yt, ldy, ra, rb);
  });
}

}  // namespace qnext
