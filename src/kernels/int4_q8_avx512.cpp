// AVX-512 VNNI int4 product with int8 activations, for decoding (scalar twin rows_int4_q8_scalar
// in int4.cpp). A run of 128 weights is 16 words = 64 bytes: the low nibbles of its bytes are the
// even weights of each word, the high nibbles the odd ones. So the activations, shared by every
// row, are laid out once per call the same way (RunX4, int4_q8_layout.h) and each row's run costs one load, two
// masks and two vpdpbusd (u8 x s8, four products per 32-bit lane: lane i = word i's dot product),
// where the float kernel (int4_avx512.cpp) widens every nibble to a float lane. One token
// (decoding) runs 8 rows side by side (rows_one_token); 2-3 tokens a row at a time. Without VNNI
// the AVX2 kernel (int4_q8_avx2.cpp) runs instead.
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

// Split: lane i's group within its run (lane i holds weights 8i..8i+7 of the run's 128).
inline __m512i split_lane_groups(int64_t group) {
  return group == 32 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                     : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
}

template <RunGroups kGroups>
inline void run_groups(const Int4RowFloats& f, int64_t c, int64_t group, __m512* scale, __m512* zero) {
  if constexpr (kGroups == RunGroups::Split) {
    const __m512i lane_group = split_lane_groups(group);
    const int64_t g = c * (128 / group);
    *scale = _mm512_permutexvar_ps(lane_group, _mm512_castps128_ps512(_mm_loadu_ps(f.scale + g)));
    *zero = _mm512_permutexvar_ps(lane_group, _mm512_castps128_ps512(_mm_loadu_ps(f.zero + g)));
  } else {
    *scale = _mm512_set1_ps(f.scale[c]);
    *zero = _mm512_set1_ps(f.zero[c]);
  }
}

// Row r for TT (2-3) tokens. Even and odd runs add into two accumulators (two chains of dependent
// FMAs per token); the row's prefetches go out at its start (no cursor in the loop).
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

// ---------------------------------------------------------------------------------------------
// One token (decoding): R rows side by side (8; 4 and 1 for the last) share each run's activation
// loads, the zero point enters each lane's integer sum as its start (zero_u * -sum q), and the R
// rows' sums are reduced together. Per row and run of 128 weights this leaves one load, two masks,
// two vpdpbusd, a conversion, a multiply and an FMA (asymmetric weights, AWQ's: also the zero
// point's broadcast and a vpmulld). The row-at-a-time kernel above (2-3 tokens) also loads the
// activations per row, converts scales in scalar loops and reduces each row alone: for one token
// that took about half its time on rows of 512 weights (an expert's down projection).
// Measured on Zen 5 (BM_MatvecCached, one core): 1 row 34-36 us, 2 rows 30, 4 rows 25-27, 8 rows
// 23-25; 8 rows also streamed from memory fastest (2 threads, ~10-25% over 1 row; 4 rows level).
// Eight streams need their prefetches in L2 (_MM_HINT_T1): on Zen 4, prefetched into L1 (T0) at the
// tile's start, they streamed from memory at 5.5-12.4 GB/s a core (BM_Matvec int4), at 17.9-21.7
// now, where one row at a time reached 18.2-18.7 (and 1.25x slower from cache); the probe 22-28.

// Row r's scales (one per run for groups of 128k weights, else one per group) and zero points
// (z + 8) as int32, converted 16 groups at a time.
struct RowScales {
  alignas(64) float scale[kInt4Int8MaxCols / 32 + 16];
  alignas(64) int32_t zero[kInt4Int8MaxCols / 32 + 16];

  template <bool kSymmetric>
  void fill(const Int4Rows& m, int64_t r, int64_t runs_per_group, int64_t runs) {
    const Int4RowGroups row(m, r);
    const char* p = row.scales.first();
    for (int64_t g = 0; g < m.groups; g += 16) {
      const __mmask16 k = m.groups - g >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (m.groups - g)) - 1);
      __m512 f;
      if (m.scale_dtype == DType::BF16) {
        const __m256i h = _mm256_maskz_loadu_epi16(k, reinterpret_cast<const uint16_t*>(p) + g);
        f = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      } else if (m.scale_dtype == DType::F16) {
        f = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, reinterpret_cast<const uint16_t*>(p) + g));
      } else {
        f = _mm512_maskz_loadu_ps(k, reinterpret_cast<const float*>(p) + g);
      }
      _mm512_store_ps(scale + g, f);
      if constexpr (!kSymmetric) {
        const __m512i words = _mm512_maskz_loadu_epi32(k, row.zeros + g);
        _mm512_store_si512(zero + g, _mm512_and_si512(_mm512_srli_epi32(words, unsigned(row.shift)), _mm512_set1_epi32(15)));
      }
    }
    if (runs_per_group > 1) {  // groups of 128k weights: one entry per run, in place from the back
      for (int64_t c = runs - 1; c >= 0; --c) {
        scale[c] = scale[c / runs_per_group];
        if constexpr (!kSymmetric) zero[c] = zero[c / runs_per_group];
      }
    }
  }
};

// Run c's scales per lane, and its zero points (z + 8) per lane as int32 (lane i: weight 128 c + 8 i).
template <RunGroups kGroups>
inline __m512 lane_scales(const RowScales& s, int64_t c, int64_t group) {
  if constexpr (kGroups == RunGroups::Split) {
    const __m512i lane_group = split_lane_groups(group);
    return _mm512_permutexvar_ps(lane_group, _mm512_castps128_ps512(_mm_loadu_ps(s.scale + c * (128 / group))));
  } else {
    return _mm512_set1_ps(s.scale[c]);
  }
}
template <RunGroups kGroups>
inline __m512i lane_zeros(const RowScales& s, int64_t c, int64_t group) {
  if constexpr (kGroups == RunGroups::Split) {
    const __m512i lane_group = split_lane_groups(group);
    return _mm512_permutexvar_epi32(lane_group, _mm512_castsi128_si512(_mm_loadu_si128(
                                                    reinterpret_cast<const __m128i*>(s.zero + c * (128 / group)))));
  } else {
    return _mm512_set1_epi32(s.zero[c]);
  }
}

// The sums of R accumulators' lanes, into y[0..R).
template <int R>
inline void store_sums(const __m512* acc, float* y) {
  if constexpr (R > 4 && R % 4 == 0) {
    for (int i = 0; i < R; i += 4) store_sums<4>(acc + i, y + i);
  } else if constexpr (R == 4) {
    // Pairs, then quads, within each 128-bit quarter: [a b c d] sums of the quarter, then the quarters.
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(acc[0], acc[1]), _mm512_unpackhi_ps(acc[0], acc[1]));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(acc[2], acc[3]), _mm512_unpackhi_ps(acc[2], acc[3]));
    const __m512d abd = _mm512_castps_pd(ab), cdd = _mm512_castps_pd(cd);
    const __m512 abcd = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(abd, cdd)), _mm512_castpd_ps(_mm512_unpackhi_pd(abd, cdd)));
    const __m256 half = _mm256_add_ps(_mm512_castps512_ps256(abcd), _mm512_extractf32x8_ps(abcd, 1));
    _mm_storeu_ps(y, _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1)));
  } else {
    for (int i = 0; i < R; ++i) y[i] = _mm512_reduce_add_ps(acc[i]);
  }
}

// Rows [r, r + R) for one token (x: its runs).
template <int R, RunGroups kGroups, bool kSymmetric>
void rows_one_token(const Int4Rows& m, int64_t group, const RunX4* x, int64_t runs, float* y, int64_t r) {
  const __m512i low4 = _mm512_set1_epi8(15);
  const int64_t runs_per_group = kGroups == RunGroups::One ? group / 128 : 1;
  const uint8_t* bytes[R];  // [cols / 2] each
  RowScales s[R];
  for (int i = 0; i < R; ++i) {
    bytes[i] = m.row(r + i);
    s[i].template fill<kSymmetric>(m, r + i, runs_per_group, runs);
  }
  // Each row prefetches the next tile's row (R rows on; past the matrix on the last tile, where a
  // prefetch does nothing) into L2, a line per run.
  const uintptr_t tile_bytes = uintptr_t(m.row(r + R) - m.row(r));
  // Runs 0, 2, 4, ... into even, 1, 3, 5, ... into odd: two runs of each row per step (measured
  // on Zen 5, 2 threads from memory: ~10% faster than one accumulator per row and a run per step).
  __m512 even[R], odd[R];
  for (int i = 0; i < R; ++i) even[i] = odd[i] = _mm512_setzero_ps();
  auto run = [&](int64_t c, __m512* acc) {
    const __m512i xe = _mm512_loadu_si512(x[c].even), xo = _mm512_loadu_si512(x[c].odd);
    const __m512i nsum = _mm512_loadu_si512(x[c].nsum);
    const __m512 dx = _mm512_loadu_ps(x[c].dx);
    const __m512i start8 = _mm512_slli_epi32(nsum, 3);  // symmetric: every zero point is 8
    for (int i = 0; i < R; ++i) {
      prefetch_lines<_MM_HINT_T1>(bytes[i] + 64 * c, tile_bytes);
      const __m512i v = _mm512_loadu_si512(bytes[i] + 64 * c);
      const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      __m512i start = start8;
      if constexpr (!kSymmetric) start = _mm512_mullo_epi32(lane_zeros<kGroups>(s[i], c, group), nsum);
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, lo, xe), hi, xo);
      acc[i] = _mm512_fmadd_ps(lane_scales<kGroups>(s[i], c, group), _mm512_mul_ps(_mm512_cvtepi32_ps(dot), dx), acc[i]);
    }
  };
  int64_t c = 0;
  for (; c + 1 < runs; c += 2) {
    run(c, even);
    run(c + 1, odd);
  }
  if (c < runs) run(c, even);
  for (int i = 0; i < R; ++i) even[i] = _mm512_add_ps(even[i], odd[i]);
  store_sums<R>(even, y + r);
}

template <RunGroups kGroups, bool kSymmetric>
void rows_one_token(const Matrix& w, const RunX4* x, int64_t runs, float* y, int64_t ra, int64_t rb) {
  const Int4Rows m(w);
  int64_t r = ra;
  for (; r + 8 <= rb; r += 8) rows_one_token<8, kGroups, kSymmetric>(m, w.group, x, runs, y, r);
  for (; r + 4 <= rb; r += 4) rows_one_token<4, kGroups, kSymmetric>(m, w.group, x, runs, y, r);
  for (; r < rb; ++r) rows_one_token<1, kGroups, kSymmetric>(m, w.group, x, runs, y, r);
}

template <RunGroups kGroups>
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

void rows_int4_q8_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (!cpu_has_avx512_vnni()) {
    rows_int4_q8_avx2(w, xq, T, y, ldy, r0, r1);
    return;
  }
  if (T >= kVnniGemmMinTokens) {  // prefill: the rows unpacked to int8 blocks, Q8_0's GEMM
    gemm_q_rows_avx512(w, xq, T, y, ldy, r0, r1);
    return;
  }
  const int64_t runs = w.cols / 128;
  int4_q8_passes(w, xq, T, y, ldy, r0, r1, [&](const RunX4* const* xs, int tt, float* yt, int64_t ra, int64_t rb) {
    if (w.group % 128 == 0) rows<RunGroups::One>(w, xs, tt, runs, yt, ldy, ra, rb);
    else rows<RunGroups::Split>(w, xs, tt, runs, yt, ldy, ra, rb);
  });
}

}  // namespace qnext
