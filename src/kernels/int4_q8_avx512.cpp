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
#include "kernels/stream_prefetch.h"

namespace qnext {

namespace {

// The group scales and zero points per lane (lane i: weight 128 c + 8 i) of runs c = 0, 1, ... in
// turn, from the row's floats, without a division per run: a group of 128k weights spans k runs,
// a run spans 4 groups of 32 or 2 of 64.
class RunGroups {
 public:
  RunGroups(const Int4RowFloats& f, int64_t group)
      : f_(f), runs_per_group_(group % 128 == 0 ? group / 128 : 0), groups_per_run_(group % 128 == 0 ? 1 : 128 / group) {
    lane_group_ = group == 32 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                              : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  }
  // The next run's; scale and zero keep the previous run's where its group goes on.
  void next(__m512* scale, __m512* zero) {
    if (runs_per_group_ > 0) {
      if (left_-- > 0) return;
      left_ = runs_per_group_ - 1;
      *scale = _mm512_set1_ps(f_.scale[g_]);
      *zero = _mm512_set1_ps(f_.zero[g_]);
      ++g_;
      return;
    }
    *scale = _mm512_permutexvar_ps(lane_group_, _mm512_castps128_ps512(_mm_loadu_ps(f_.scale + g_)));
    *zero = _mm512_permutexvar_ps(lane_group_, _mm512_castps128_ps512(_mm_loadu_ps(f_.zero + g_)));
    g_ += groups_per_run_;
  }

 private:
  const Int4RowFloats& f_;
  int64_t runs_per_group_, groups_per_run_;
  __m512i lane_group_;  // groups of 32 / 64: lane i -> i * 8 / group
  int64_t g_ = 0, left_ = 0;
};

template <int TT>
void row(const Matrix& w, const RunX4* const* xs, int64_t runs, float* y, int64_t ldy, int64_t r, StreamPrefetch& prefetch) {
  const uint8_t* bytes = w.row_ptr(r);  // [cols / 2]
  Int4RowFloats floats;
  floats.fill(w, r);
  RunGroups run_groups(floats, w.group);
  const __m512i low4 = _mm512_set1_epi8(15);
  __m512 total[TT];
  for (int t = 0; t < TT; ++t) total[t] = _mm512_setzero_ps();
  __m512 scale = _mm512_setzero_ps(), zero = _mm512_setzero_ps();
  for (int64_t c = 0; c < runs; ++c) {
    prefetch.advance(bytes + 64 * c);
    run_groups.next(&scale, &zero);
    const __m512i v = _mm512_loadu_si512(bytes + 64 * c);
    const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
    for (int t = 0; t < TT; ++t) {
      const RunX4& x = xs[t][c];
      __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(x.even));
      dot = _mm512_dpbusd_epi32(dot, hi, _mm512_loadu_si512(x.odd));
      const __m512 f = _mm512_fmsub_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(x.dx), _mm512_mul_ps(zero, _mm512_loadu_ps(x.zc)));
      total[t] = _mm512_fmadd_ps(scale, f, total[t]);
    }
  }
  for (int t = 0; t < TT; ++t) y[size_t(t) * size_t(ldy) + size_t(r)] = _mm512_reduce_add_ps(total[t]);
}

}  // namespace

void rows_int4_q8_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (!cpu_has_avx512_vnni()) {
    rows_int4_q8_avx2(w, xq, T, y, ldy, r0, r1);
    return;
  }
  const int64_t runs = w.cols / 128;
  int4_q8_passes(w, xq, T, y, ldy, r0, r1, [&](const RunX4* const* xs, int tt, float* yt, int64_t ra, int64_t rb) {
    StreamPrefetch prefetch(w.row_ptr(ra), w.row_ptr(w.rows));
    for (int64_t r = ra; r < rb; ++r) {
      switch (tt) {
        case 1: row<1>(w, xs, runs, yt, ldy, r, prefetch); break;
        case 2: row<2>(w, xs, runs, yt, ldy, r, prefetch); break;
        default: row<3>(w, xs, runs, yt, ldy, r, prefetch); break;
      }
    }
  });
}

}  // namespace qnext
