// AVX2 int4 product with int8 activations, for decoding (scalar twin rows_int4_q8_scalar in
// int4.cpp): the VNNI kernel's lanes (int4_q8_avx512.cpp) on AVX2, half a run of 64 weights per
// step. Without vpdpbusd, vpmaddubsw multiplies the nibbles (unsigned, <= 15) by the activations
// (signed) into pairs of int16 (|sum| <= 2 x 15 x 127, so the low and high nibbles' pairs add
// without saturating) and vpmaddwd against ones widens them to one int32 lane per word.
#include <immintrin.h>

#include <algorithm>

#include "kernels/int4_q8_layout.h"

namespace qnext {

namespace {

// Half-run h's scales and zero points per lane (lane i: weight 64 h + 8 i), chosen at compile
// time as in the VNNI kernel: Run, a group per run (128 weights, or 128k spread to one entry per
// run by Int4RowFloats::per_run); Half, a group per half-run (64); Quarter, two (32).
enum class HalfGroups { Run, Half, Quarter };

template <HalfGroups kGroups>
inline void half_groups(const Int4RowFloats& f, int64_t h, __m256* scale, __m256* zero) {
  if constexpr (kGroups == HalfGroups::Quarter) {
    *scale = _mm256_setr_m128(_mm_set1_ps(f.scale[2 * h]), _mm_set1_ps(f.scale[2 * h + 1]));
    *zero = _mm256_setr_m128(_mm_set1_ps(f.zero[2 * h]), _mm_set1_ps(f.zero[2 * h + 1]));
  } else {
    const int64_t g = kGroups == HalfGroups::Half ? h : h / 2;
    *scale = _mm256_set1_ps(f.scale[g]);
    *zero = _mm256_set1_ps(f.zero[g]);
  }
}

// Row r for TT tokens. Even and odd half-runs add into two accumulators (two chains of FMAs, not
// one); the row's prefetches go out at its start (no cursor in the loop).
template <int TT, HalfGroups kGroups>
void row(const Matrix& w, const Int4Rows& m, const RunX4* const* xs, int64_t runs, float* y, int64_t ldy, int64_t r,
         StreamPrefetch& prefetch) {
  const uint8_t* bytes = m.row(r);  // [cols / 2]
  prefetch.advance(bytes + w.cols / 2);
  Int4RowFloats floats;
  floats.fill(m, r);
  if (w.group > 128) floats.per_run(w.group / 128, runs);
  const __m256i low4 = _mm256_set1_epi8(15);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 total[2][TT];  // [half, token]
  for (int t = 0; t < TT; ++t) total[0][t] = total[1][t] = _mm256_setzero_ps();
  for (int64_t h = 0; h < 2 * runs; ++h) {
    __m256 scale, zero;
    half_groups<kGroups>(floats, h, &scale, &zero);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes + 32 * h));
    const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    const int64_t c = h / 2, half = h % 2;
    for (int t = 0; t < TT; ++t) {
      const RunX4& x = xs[t][c];
      const __m256i e = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.even + 32 * half));
      const __m256i o = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.odd + 32 * half));
      const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, e), _mm256_maddubs_epi16(hi, o));
      const __m256i dot = _mm256_madd_epi16(pairs, ones);
      const __m256 f = _mm256_fmsub_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(x.dx + 8 * half),
                                       _mm256_mul_ps(zero, _mm256_loadu_ps(x.zc + 8 * half)));
      total[half][t] = _mm256_fmadd_ps(scale, f, total[half][t]);
    }
  }
  for (int t = 0; t < TT; ++t) {
    const __m256 sum = _mm256_add_ps(total[0][t], total[1][t]);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    y[size_t(t) * size_t(ldy) + size_t(r)] = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
  }
}

// One token (decoding), as the VNNI kernel does it: R rows side by side (4; 1 for the last) share
// each half-run's activation loads, and the zero point starts each lane's integer sum (zero_u *
// -sum q). Each row's scales are still converted in Int4RowFloats' loops and its sum reduced on its
// own. One accumulator per row: the R rows are R chains. The L2 prefetch below is the AVX-512
// tiles' (stream_prefetch.h): on Zen 4 (QNEXT_ISA=avx2, two threads from memory) it read 1.05-1.25x
// the bytes per second of a burst of prefetches into L1 at each tile's start.
template <int R, HalfGroups kGroups, bool kSymmetric>
void rows_one_token(const Matrix& w, const Int4Rows& m, const RunX4* x, int64_t runs, float* y, int64_t r) {
  const uint8_t* bytes[R];  // [cols / 2] each
  Int4RowFloats floats[R];
  for (int i = 0; i < R; ++i) {
    bytes[i] = m.row(r + i);
    floats[i].fill(m, r + i);
    if (w.group > 128) floats[i].per_run(w.group / 128, runs);
  }
  // Each row prefetches the next tile's row (R rows on; past the matrix on the last tile, where a
  // prefetch does nothing) into L2, a line per run.
  const uintptr_t tile_bytes = uintptr_t(m.row(r + R) - m.row(r));
  const __m256i low4 = _mm256_set1_epi8(15);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t h = 0; h < 2 * runs; ++h) {
    const RunX4& xc = x[h / 2];
    const int64_t half = h % 2;
    const __m256i e = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc.even + 32 * half));
    const __m256i o = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc.odd + 32 * half));
    const __m256i nsum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc.nsum + 8 * half));
    const __m256 dx = _mm256_loadu_ps(xc.dx + 8 * half);
    const __m256i start8 = _mm256_slli_epi32(nsum, 3);  // symmetric: every zero point is 8
    if (half == 0)
      for (int i = 0; i < R; ++i) prefetch_lines<_MM_HINT_T1>(bytes[i] + 32 * h, tile_bytes);
    for (int i = 0; i < R; ++i) {
      __m256 scale, zero;
      half_groups<kGroups>(floats[i], h, &scale, &zero);
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes[i] + 32 * h));
      const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, e), _mm256_maddubs_epi16(hi, o));
      __m256i start = start8;
      if constexpr (!kSymmetric) start = _mm256_mullo_epi32(_mm256_cvttps_epi32(zero), nsum);
      const __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(pairs, ones), start);
      acc[i] = _mm256_fmadd_ps(scale, _mm256_mul_ps(_mm256_cvtepi32_ps(dot), dx), acc[i]);
    }
  }
  for (int i = 0; i < R; ++i) {
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc[i]), _mm256_extractf128_ps(acc[i], 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    y[r + i] = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
  }
}

template <HalfGroups kGroups, bool kSymmetric>
void rows_one_token(const Matrix& w, const RunX4* x, int64_t runs, float* y, int64_t ra, int64_t rb) {
  const Int4Rows m(w);
  int64_t r = ra;
  for (; r + 4 <= rb; r += 4) rows_one_token<4, kGroups, kSymmetric>(w, m, x, runs, y, r);
  for (; r < rb; ++r) rows_one_token<1, kGroups, kSymmetric>(w, m, x, runs, y, r);
}

template <HalfGroups kGroups>
void rows(const Matrix& w, const RunX4* const* xs, int tt, int64_t runs, float* y, int64_t ldy, int64_t ra, int64_t rb) {
  if (tt == 1) {
    if (w.zeros) rows_one_token<kGroups, false>(w, xs[0], runs, y, ra, rb);
    else rows_one_token<kGroups, true>(w, xs[0], runs, y, ra, rb);
    return;
  }
  int4_rows_in_turn(w, tt, ra, rb, [&](auto TT, const Int4Rows& m, int64_t r, StreamPrefetch& prefetch) {
    row<decltype(TT)::value, kGroups>(w, m, xs, runs, y, ldy, r, prefetch);
  });
}

}  // namespace

void rows_int4_q8_avx2(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t runs = w.cols / 128;
  int4_q8_passes(w, xq, T, y, ldy, r0, r1, [&](const RunX4* const* xs, int tt, float* yt, int64_t ra, int64_t rb) {
    if (w.group % 128 == 0) rows<HalfGroups::Run>(w, xs, tt, runs, yt, ldy, ra, rb);
    else if (w.group == 64) rows<HalfGroups::Half>(w, xs, tt, runs, yt, ldy, ra, rb);
    else rows<HalfGroups::Quarter>(w, xs, tt, runs, yt, ldy, ra, rb);
  });
}

}  // namespace qnext
