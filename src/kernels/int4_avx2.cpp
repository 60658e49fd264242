// AVX2 int4 kernels (scalar twins in int4.cpp): one int32 word is 8 weights; a broadcast and a
// variable shift put nibble j in lane j.
#include <immintrin.h>

#include <algorithm>

#include "kernels/int4.h"
#include "kernels/simd_avx2.h"
#include "kernels/stream_prefetch.h"

namespace qnext {

void dequant_int4_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  const uint32_t* words = reinterpret_cast<const uint32_t*>(w.row_ptr(r));
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i mask = _mm256_set1_epi32(15);
  const int64_t end = k0 + n;
  int64_t k = k0;
  while (k < end) {
    const int64_t g = k / w.group, gend = std::min(end, (g + 1) * w.group);
    const float s = scale_at(w, r, g);
    const int zu = int4_zero_u(w, r, g);
    const __m256 sv = _mm256_set1_ps(s), zv = _mm256_set1_ps(float(zu));
    if (k % 8 == 0)
      for (; k + 8 <= gend; k += 8) {
        const __m256i u = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(words[k / 8])), shifts), mask);
        _mm256_storeu_ps(out + (k - k0), _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(u), zv), sv));
      }
    for (; k < gend; ++k) out[k - k0] = float(int((words[k / 8] >> (4 * (k % 8))) & 15) - zu) * s;
  }
}

namespace {

// One row against TT tokens, fused: the row streams once (stream_prefetch.h), each word's 8
// nibbles become u - (z + 8) in registers and go straight into the FMAs, and each group's sum of
// (u - z - 8) x takes the group's scale once. NA accumulators per token hide the FMA latency (4
// where few tokens leave the chains short). Weights before a group's first whole word (a group
// size not a multiple of 8) and after its last one (cols % 8) go one at a time.
template <int TT>
void row_tile(const Matrix& w, const Int4Rows& m, const float* x, float* y, int64_t ldy, int64_t r, int t0,
              StreamPrefetch& prefetch) {
  constexpr int NA = TT <= 2 ? 4 : 2;
  const uint32_t* words = reinterpret_cast<const uint32_t*>(m.row(r));  // [ceil(cols / 8)]
  const int64_t n = w.cols, G = w.group;
  const Int4RowGroups groups(m, r);
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i mask = _mm256_set1_epi32(15);
  const float* xs[TT];  // token j's activations [cols]
  __m256 total[TT];
  float tail[TT];
  for (int j = 0; j < TT; ++j) xs[j] = x + size_t(t0 + j) * size_t(n), total[j] = _mm256_setzero_ps(), tail[j] = 0;
  for (int64_t k0 = 0, g = 0; k0 < n; k0 += G, ++g) {
    const int64_t end = std::min(n, k0 + G);
    const float s = groups.scale(g);
    const int zu = groups.zero_u(g);
    const __m256 zv = _mm256_set1_ps(float(zu));
    __m256 acc[TT][NA];
    float part[TT];
    for (int j = 0; j < TT; ++j) {
      part[j] = 0;
      for (int a = 0; a < NA; ++a) acc[j][a] = _mm256_setzero_ps();
    }
    auto one = [&](int64_t k) {
      const float q = float(int((words[k / 8] >> (4 * (k % 8))) & 15) - zu);
      for (int j = 0; j < TT; ++j) part[j] += q * xs[j][k];
    };
    auto word = [&](int64_t k, int a) {  // weights [k, k + 8), k % 8 == 0
      const __m256i u = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(words[k / 8])), shifts), mask);
      const __m256 q = _mm256_sub_ps(_mm256_cvtepi32_ps(u), zv);
      for (int j = 0; j < TT; ++j) acc[j][a] = _mm256_fmadd_ps(q, _mm256_loadu_ps(xs[j] + k), acc[j][a]);
    };
    int64_t k = k0;
    for (; k < end && k % 8 != 0; ++k) one(k);
    for (; k + 8 * NA <= end; k += 8 * NA) {
      prefetch.advance(words + k / 8 + NA);
      for (int a = 0; a < NA; ++a) word(k + 8 * a, a);
    }
    for (; k + 8 <= end; k += 8) word(k, 0);
    for (; k < end; ++k) one(k);
    const __m256 sv = _mm256_set1_ps(s);
    for (int j = 0; j < TT; ++j) {
      __m256 sum = acc[j][0];
      for (int a = 1; a < NA; ++a) sum = _mm256_add_ps(sum, acc[j][a]);
      total[j] = _mm256_fmadd_ps(sum, sv, total[j]);
      tail[j] += part[j] * s;
    }
  }
  for (int j = 0; j < TT; ++j) y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = hsum_avx2(total[j]) + tail[j];
}

}  // namespace

void rows_int4_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
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
