// AVX2 + FMA variant of attention_queries (scalar twin in attention.cpp): blocks of 64 keys; the
// scores as 4-query x 2-key tiles of dot products, an online softmax per query, then the
// probabilities times the value rows as 4-query x 16-dim tiles. Needs D % 8 == 0 (the dispatcher
// checks). The cache's elements are float, f16 or q8_0 (widened 8 at a time as they load).
#include <immintrin.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/attention.h"
#include "kernels/kv_rows.h"
#include "kernels/simd_avx2.h"

namespace qnext {
namespace {

constexpr int kKeyBlock = 64;

// Elements [d, d + 8) of a cache row as floats (d a multiple of 8): F32, F16, or Q8_0 blocks (d * q,
// exact in float).
inline __m256 load8(const float* row, int d) { return _mm256_loadu_ps(row + d); }
inline __m256 load8(const uint16_t* row, int d) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + d)));
}
inline __m256 load8(const BlockQ8_0* row, int d) {
  const BlockQ8_0& b = row[unsigned(d) / kQuantBlock];
  const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.q + unsigned(d) % kQuantBlock));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_set1_ps(_cvtsh_ss(b.d)));
}
// Elements [d, d + 16) of a cache row (d a multiple of 16 for Q8_0: half a block, its scale
// converted once for both).
template <typename E>
inline void load8x2(const E* row, int d, __m256& lo, __m256& hi) {
  lo = load8(row, d), hi = load8(row, d + 8);
}
inline void load8x2(const BlockQ8_0* row, int d, __m256& lo, __m256& hi) {
  const BlockQ8_0& b = row[unsigned(d) / kQuantBlock];
  const __m256 scale = _mm256_set1_ps(_cvtsh_ss(b.d));
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q + unsigned(d) % kQuantBlock));
  lo = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), scale);
  hi = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(q, q))), scale);
}

// p[i][j], p[i][j + 1] = scale * q_i . k0, scale * q_i . k1 for QN queries.
template <int QN, typename E>
inline void score_tile(const float* const* q, const E* k0, const E* k1, int D, float scale, float* p, int j) {
  __m256 acc[QN][2];
  for (int i = 0; i < QN; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const auto step = [&](int d, __m256 a, __m256 b) {
    for (int i = 0; i < QN; ++i) {
      __m256 qv = _mm256_loadu_ps(q[i] + d);
      keep_in_register(qv);  // used by both keys: one load, not two
      acc[i][0] = _mm256_fmadd_ps(qv, a, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(qv, b, acc[i][1]);
    }
  };
  int d = 0;
  for (; d + 16 <= D; d += 16) {  // half a Q8_0 block at a time (its scale once per key)
    __m256 a0, a1, b0, b1;
    load8x2(k0, d, a0, a1);
    load8x2(k1, d, b0, b1);
    step(d, a0, b0);
    step(d + 8, a1, b1);
  }
  if (d < D) step(d, load8(k0, d), load8(k1, d));  // F32 / F16 rows of D % 16 == 8
  for (int i = 0; i < QN; ++i) {
    p[i * kKeyBlock + j] = scale * hsum_avx2(acc[i][0]);
    p[i * kKeyBlock + j + 1] = scale * hsum_avx2(acc[i][1]);
  }
}

// out_i[d0, d0 + 8 * DV) += sum_j p[i][j] v_j[d0, ...] for QN queries over nb keys.
template <int QN, int DV, typename E>
inline void value_tile(const float* p, const E* V, size_t kv_stride, int nb, int d0, float* const* out) {
  __m256 acc[QN][DV];
  for (int i = 0; i < QN; ++i)
    for (int v = 0; v < DV; ++v) acc[i][v] = _mm256_loadu_ps(out[i] + d0 + 8 * v);
  for (int j = 0; j < nb; ++j) {
    __m256 vv[DV];
    static_assert(DV == 1 || DV == 2);
    const E* row = V + size_t(j) * kv_stride;
    if constexpr (DV == 2) load8x2(row, d0, vv[0], vv[1]);
    else vv[0] = load8(row, d0);
    for (int i = 0; i < QN; ++i) {
      const __m256 pb = _mm256_broadcast_ss(p + i * kKeyBlock + j);
      for (int v = 0; v < DV; ++v) acc[i][v] = _mm256_fmadd_ps(pb, vv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < QN; ++i)
    for (int v = 0; v < DV; ++v) _mm256_storeu_ps(out[i] + d0 + 8 * v, acc[i][v]);
}

template <typename E>
inline void prefetch_row(const E* row, int D) {
  const char* bytes = reinterpret_cast<const char*>(row);
  for (size_t at = 0; at < kv_row_bytes<E>(D); at += 64) _mm_prefetch(bytes + at, _MM_HINT_T0);
}

template <int QN, typename E>
void score_group(const float* const* q, const E* K, size_t kv_stride, int nb, int D, float scale, float* p,
                 const E* next_K, const E* next_V, int next_nb) {
  int j = 0;
  for (; j + 2 <= nb; j += 2) {
    if (next_K && j < next_nb) {
      prefetch_row(next_K + size_t(j) * kv_stride, D);
      prefetch_row(next_V + size_t(j) * kv_stride, D);
      if (j + 1 < next_nb) {
        prefetch_row(next_K + size_t(j + 1) * kv_stride, D);
        prefetch_row(next_V + size_t(j + 1) * kv_stride, D);
      }
    }
    score_tile<QN>(q, K + size_t(j) * kv_stride, K + size_t(j + 1) * kv_stride, D, scale, p, j);
  }
  if (j < nb) {  // the odd key pairs with itself; its twin lands in column j + 1, never read
    score_tile<QN>(q, K + size_t(j) * kv_stride, K + size_t(j) * kv_stride, D, scale, p, j);
  }
}

// Eight keys at a time across all of D: cache rows are a power of two apart (2 KiB in the model),
// so walking 64 of them a column strip at a time would keep evicting lines from a few L1 sets.
template <int QN, typename E>
void value_group(const float* p, const E* V, size_t kv_stride, int nb, int D, float* const* out) {
  for (int j = 0; j < nb; j += 8) {
    const int n = std::min(8, nb - j);
    const E* Vj = V + size_t(j) * kv_stride;
    int d = 0;
    for (; d + 16 <= D; d += 16) value_tile<QN, 2>(p + j, Vj, kv_stride, n, d, out);
    if (d < D) value_tile<QN, 1>(p + j, Vj, kv_stride, n, d, out);
  }
}

template <typename E>
void scores_for(int qn, const float* const* q, const E* K, size_t kv_stride, int nb, int D, float scale, float* p,
                const E* next_K, const E* next_V, int next_nb) {
  switch (qn) {
    case 4: score_group<4>(q, K, kv_stride, nb, D, scale, p, next_K, next_V, next_nb); return;
    case 3: score_group<3>(q, K, kv_stride, nb, D, scale, p, next_K, next_V, next_nb); return;
    case 2: score_group<2>(q, K, kv_stride, nb, D, scale, p, next_K, next_V, next_nb); return;
    default: score_group<1>(q, K, kv_stride, nb, D, scale, p, next_K, next_V, next_nb); return;
  }
}

template <typename E>
void values_for(int qn, const float* p, const E* V, size_t kv_stride, int nb, int D, float* const* out) {
  switch (qn) {
    case 4: value_group<4>(p, V, kv_stride, nb, D, out); return;
    case 3: value_group<3>(p, V, kv_stride, nb, D, out); return;
    case 2: value_group<2>(p, V, kv_stride, nb, D, out); return;
    default: value_group<1>(p, V, kv_stride, nb, D, out); return;
  }
}

template <typename E>
void attention_queries_of(const float* const* q, const int* n_keys, int n, const E* K, const E* V, size_t kv_stride,
                          int D, float scale, float* const* out) {
  alignas(32) float p[kMaxBlockQueries * kKeyBlock];  // [query, key in block]: scores, then weights
  float running_max[kMaxBlockQueries], denom[kMaxBlockQueries];
  const int L = start_queries(n_keys, n, D, running_max, denom, out);
  for (int b = 0; b < L; b += kKeyBlock) {
    const int nb = std::min(kKeyBlock, L - b);
    const E* Kb = K + size_t(b) * kv_stride;
    // The first query group prefetches the next block's key and value rows while it computes.
    const int next_nb = std::min(kKeyBlock, L - b - kKeyBlock);
    const E* next_K = next_nb > 0 ? Kb + size_t(kKeyBlock) * kv_stride : nullptr;
    const E* next_V = next_nb > 0 ? V + size_t(b + kKeyBlock) * kv_stride : nullptr;
    for (int i = 0; i < n; i += 4)
      scores_for(std::min(4, n - i), q + i, Kb, kv_stride, nb, D, scale, p + i * kKeyBlock, i == 0 ? next_K : nullptr,
                 next_V, next_nb);
    // Online softmax per query over the keys it may see; the rest of the block weighs zero.
    for (int i = 0; i < n; ++i) {
      float* pi = p + i * kKeyBlock;
      const int visible = std::clamp(n_keys[i] - b, 0, nb);
      float block_max = running_max[i];
      for (int j = 0; j < visible; ++j) block_max = std::max(block_max, pi[j]);
      if (block_max > running_max[i]) {
        const float r = std::exp(running_max[i] - block_max);
        denom[i] *= r;
        const __m256 rv = _mm256_set1_ps(r);
        for (int d = 0; d < D; d += 8) _mm256_storeu_ps(out[i] + d, _mm256_mul_ps(rv, _mm256_loadu_ps(out[i] + d)));
        running_max[i] = block_max;
      }
      const __m256 max_v = _mm256_set1_ps(running_max[i]);
      __m256 sum = _mm256_setzero_ps();
      int j = 0;
      for (; j + 8 <= visible; j += 8) {
        const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(pi + j), max_v));
        _mm256_storeu_ps(pi + j, e);
        sum = _mm256_add_ps(sum, e);
      }
      float tail = 0;
      for (; j < visible; ++j) tail += pi[j] = std::exp(pi[j] - running_max[i]);
      denom[i] += hsum_avx2(sum) + tail;
      for (j = visible; j < nb; ++j) pi[j] = 0.0f;
    }
    const E* Vb = V + size_t(b) * kv_stride;
    for (int i = 0; i < n; i += 4) values_for(std::min(4, n - i), p + i * kKeyBlock, Vb, kv_stride, nb, D, out + i);
  }
  for (int i = 0; i < n; ++i) {
    const __m256 inv = _mm256_set1_ps(1.0f / denom[i]);
    for (int d = 0; d < D; d += 8) _mm256_storeu_ps(out[i] + d, _mm256_mul_ps(inv, _mm256_loadu_ps(out[i] + d)));
  }
}

}  // namespace

void attention_queries_avx2(const float* const* q, const int* n_keys, int n, const KvHead& kv, int D, float scale,
                            float* const* out) {
  switch (kv.type) {
    case DType::F16:
      return attention_queries_of(q, n_keys, n, static_cast<const uint16_t*>(kv.k), static_cast<const uint16_t*>(kv.v),
                                  kv.stride, D, scale, out);
    case DType::Q8_0:
      assert(D % kQuantBlock == 0 && kv.stride % kQuantBlock == 0);
      return attention_queries_of(q, n_keys, n, static_cast<const BlockQ8_0*>(kv.k), static_cast<const BlockQ8_0*>(kv.v),
                                  kv.stride / kQuantBlock, D, scale, out);
    default:
      return attention_queries_of(q, n_keys, n, static_cast<const float*>(kv.k), static_cast<const float*>(kv.v),
                                  kv.stride, D, scale, out);
  }
}

}  // namespace qnext
