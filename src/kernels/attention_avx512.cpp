// AVX-512 variant of attention_queries (scalar twin in attention.cpp), for D % 16 == 0 and
// D <= kAvx512MaxHeadDim (the dispatcher checks). Two paths, by the number of queries in a call:
// - Many (a prefill block: 16 tokens x a key/value head's 8 query heads): each block of 64 keys is
//   first laid out for broadcast products, once for all the call's queries: the keys transposed to
//   [D, 64] (a dimension's 64 keys in four vectors), the values copied into 64-dimension strips (an
//   f16 or q8_0 cache widened once). Both products are then tiles of 6 queries x 64 lanes, 24 accumulators
//   fed by 4 vector loads and 6 broadcasts a step, with no horizontal sums: the scores as
//   q[i][d] * keys[d][0..63], the output as p[i][j] * values[j][d0..d0+63].
// - Few (a decoded token's 8 heads, up to 16): the layout would cost as much as the products, so
//   the cache rows are read as they are (below, "Few queries").
// Both run the online softmax on a query's 64 scores of a block in 4 vectors.
#include <immintrin.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/attention.h"
#include "kernels/kv_rows.h"

namespace qnext {
namespace {

constexpr int kKeyBlock = 64;        // keys per block: 4 vectors of scores per query
constexpr int kTileQueries = 6;      // queries per tile: 6 x 4 accumulators of 32 registers
constexpr int kStrip = 64;           // value dimensions per output tile: 4 vectors

// Where the copied values keep value j's dimension d: in strips of 64 dimensions, each strip's 64
// rows contiguous ([D / 64][64 keys][64 dims]), so a value tile streams 16 KiB in order.
inline size_t value_index(int j, int d) { return size_t(d / kStrip) * kStrip * kKeyBlock + size_t(j) * kStrip + d % kStrip; }

// Pins v in a register, so GCC does not fold its load into each of the 6 FMAs that use it.
inline void keep_in_register(__m512& v) { asm("" : "+v"(v)); }

// Elements [d, d + 16) of a cache row as floats (d a multiple of 16): F32, F16, or Q8_0 blocks
// (d * q: one scale for the 16, exact in float).
inline __m512 load16(const float* row, int d) { return _mm512_loadu_ps(row + d); }
inline __m512 load16(const uint16_t* row, int d) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + d)));
}
inline __m512 load16(const BlockQ8_0* row, int d) {
  const BlockQ8_0& b = row[unsigned(d) / kQuantBlock];
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q + unsigned(d) % kQuantBlock));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_set1_ps(_cvtsh_ss(b.d)));
}
// Elements [d, d + 32) of a cache row (d a multiple of 16; of 32 for Q8_0, a block: its scale
// converted once for the two halves).
template <typename E>
inline void load32(const E* row, int d, __m512& lo, __m512& hi) {
  lo = load16(row, d), hi = load16(row, d + 16);
}
inline void load32(const BlockQ8_0* row, int d, __m512& lo, __m512& hi) {
  const BlockQ8_0& b = row[unsigned(d) / kQuantBlock];
  const __m512 scale = _mm512_set1_ps(_cvtsh_ss(b.d));
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q));
  lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q))), scale);
  hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1))), scale);
}

// e^x for 16 floats, the same reduction and polynomial as exp_avx2 (simd_avx2.h): e^x = 2^n e^r
// with n = round(x / ln 2), ln 2 in two parts, e^r a degree-6 minimax polynomial; x clamped to
// [-87, 88].
inline __m512 exp_avx512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i two_n = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(two_n));
}

// In-register transpose of 16 rows of 16 floats: r[i][j] becomes r[j][i]. Four rounds, h = 8, 4,
// 2, 1: rows i and i + h (bit h of i clear) swap their off-diagonal h x h blocks, lane j + h of row
// i with lane j of row i + h (bit h of j clear).
struct SwapLanes {
  alignas(64) int lo[16];  // row i keeps its lanes without bit h and takes row i + h's
  alignas(64) int hi[16];  // row i + h takes row i's lanes with bit h and keeps its own
};
constexpr SwapLanes swap_lanes(int h) {
  SwapLanes s{};
  for (int j = 0; j < 16; ++j) {
    s.lo[j] = (j & h) ? 16 + j - h : j;
    s.hi[j] = (j & h) ? 16 + j : j + h;
  }
  return s;
}
constexpr SwapLanes kSwap[4] = {swap_lanes(8), swap_lanes(4), swap_lanes(2), swap_lanes(1)};

template <int kRound>
inline void swap_round(__m512 r[16]) {
  constexpr int h = 8 >> kRound;
  const __m512i lo = _mm512_load_si512(kSwap[kRound].lo), hi = _mm512_load_si512(kSwap[kRound].hi);
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    if (i & h) continue;
    const __m512 a = r[i], b = r[i + h];
    r[i] = _mm512_permutex2var_ps(a, lo, b);
    r[i + h] = _mm512_permutex2var_ps(a, hi, b);
  }
}

inline void transpose16(__m512 r[16]) {
  swap_round<0>(r);
  swap_round<1>(r);
  swap_round<2>(r);
  swap_round<3>(r);
}

// kt[d * 64 + j] = K[j][d] for the block's nb keys; zeros for j >= nb (the softmax masks their scores).
template <typename E>
void transpose_keys(const E* K, size_t kv_stride, int nb, int D, float* kt) {
  for (int j0 = 0; j0 < kKeyBlock; j0 += 16)
    for (int d0 = 0; d0 < D; d0 += 16) {
      __m512 r[16];
      for (int j = 0; j < 16; ++j)
        r[j] = j0 + j < nb ? load16(K + size_t(j0 + j) * kv_stride, d0) : _mm512_setzero_ps();
      transpose16(r);
      for (int d = 0; d < 16; ++d) _mm512_store_ps(kt + size_t(d0 + d) * kKeyBlock + j0, r[d]);
    }
}

template <typename E>
void copy_values(const E* V, size_t kv_stride, int nb, int D, float* vb) {
  for (int j = 0; j < nb; ++j)
    for (int d = 0; d < D; d += 16)
      _mm512_store_ps(vb + value_index(j, d), load16(V + size_t(j) * kv_stride, d));
}

// Asks for a later block's key and value rows while this block computes (the next block's; the
// one after it in the few-queries path), as the rows of a long context come from L3 or DRAM, a few
// lines before each tile: a block's 2048 lines (f32, D 256) asked at once would stall on the
// core's outstanding-miss slots.
struct BlockPrefetch {
  const char* k = nullptr;  // that block's first key row
  const char* v = nullptr;  // and value row
  size_t stride_bytes = 0;
  int lines_per_row = 0, lines = 0;  // lines: of keys (and as many of values); 0: nothing to ask for
  bool into_l1 = true;  // false: into L2 only (the few-queries path reads the rows once, from L2)
  int done = 0, col = 0;  // lines asked for; the next one's line within its row
  size_t row_at = 0;      // the next line's row, as a byte offset

  void issue_lines(int count) {
    for (; count > 0 && done < lines; --count, ++done) {
      const size_t at = row_at + size_t(col) * 64;
      if (into_l1) {
        _mm_prefetch(k + at, _MM_HINT_T0);
        _mm_prefetch(v + at, _MM_HINT_T0);
      } else {
        _mm_prefetch(k + at, _MM_HINT_T1);
        _mm_prefetch(v + at, _MM_HINT_T1);
      }
      if (++col == lines_per_row) {
        col = 0;
        row_at += stride_bytes;
      }
    }
  }
};

// p[i][0..63] = scale * q_i . k_j for QN queries, from the transposed block kt: [D, 64].
template <int QN>
void score_tile(const float* const* q, const float* kt, int D, float scale, float* p) {
  __m512 acc[QN][4];
  for (int i = 0; i < QN; ++i)
    for (int c = 0; c < 4; ++c) acc[i][c] = _mm512_setzero_ps();
  for (int d = 0; d < D; ++d) {
    __m512 k[4];
    for (int c = 0; c < 4; ++c) {
      k[c] = _mm512_load_ps(kt + size_t(d) * kKeyBlock + 16 * c);
      keep_in_register(k[c]);
    }
    for (int i = 0; i < QN; ++i) {
      const __m512 qb = _mm512_set1_ps(q[i][d]);
      for (int c = 0; c < 4; ++c) acc[i][c] = _mm512_fmadd_ps(qb, k[c], acc[i][c]);
    }
  }
  const __m512 s = _mm512_set1_ps(scale);
  for (int i = 0; i < QN; ++i)
    for (int c = 0; c < 4; ++c) _mm512_store_ps(p + i * kKeyBlock + 16 * c, _mm512_mul_ps(s, acc[i][c]));
}

// out_i[d0, d0 + 16 * DV) += sum_{j < nj} p[i][j] row_j[col0, col0 + 16 * DV) for QN queries, where
// row j is at rows + j * row_stride: the copied block's strips (row_stride 64, col0 0: the strip
// holding d0) or the cache's own rows (col0 = d0).
template <int QN, int DV, typename E>
void value_tile(const float* p, const E* rows, size_t row_stride, int col0, int nj, int d0, float* const* out) {
  __m512 acc[QN][DV];
  for (int i = 0; i < QN; ++i)
    for (int v = 0; v < DV; ++v) acc[i][v] = _mm512_loadu_ps(out[i] + d0 + 16 * v);
  for (int j = 0; j < nj; ++j) {
    __m512 vv[DV];
    const E* row = rows + size_t(j) * row_stride;
    if constexpr (DV % 2 == 0) {
      for (int v = 0; v < DV; v += 2) load32(row, col0 + 16 * v, vv[v], vv[v + 1]);
    } else {
      for (int v = 0; v < DV; ++v) vv[v] = load16(row, col0 + 16 * v);
    }
    for (int v = 0; v < DV; ++v) keep_in_register(vv[v]);
    for (int i = 0; i < QN; ++i) {
      const __m512 pb = _mm512_set1_ps(p[i * kKeyBlock + j]);
      for (int v = 0; v < DV; ++v) acc[i][v] = _mm512_fmadd_ps(pb, vv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < QN; ++i)
    for (int v = 0; v < DV; ++v) _mm512_storeu_ps(out[i] + d0 + 16 * v, acc[i][v]);
}

// The strip [d0, d0 + width) of QN queries' outputs, width 64 or a multiple of 16 below it.
template <int QN>
void values_of(const float* p, const float* vb, int nb, int d0, int width, float* const* out) {
  if (width == 64) return value_tile<QN, 4>(p, vb + value_index(0, d0), kStrip, 0, nb, d0, out);
  for (int d = d0; d < d0 + width; d += 16) value_tile<QN, 1>(p, vb + value_index(0, d), kStrip, 0, nb, d, out);
}

void scores_for(int qn, const float* const* q, const float* kt, int D, float scale, float* p) {
  switch (qn) {
    case 6: score_tile<6>(q, kt, D, scale, p); return;
    case 5: score_tile<5>(q, kt, D, scale, p); return;
    case 4: score_tile<4>(q, kt, D, scale, p); return;
    case 3: score_tile<3>(q, kt, D, scale, p); return;
    case 2: score_tile<2>(q, kt, D, scale, p); return;
    default: score_tile<1>(q, kt, D, scale, p); return;
  }
}

void values_for(int qn, const float* p, const float* vb, int nb, int d0, int width, float* const* out) {
  switch (qn) {
    case 6: values_of<6>(p, vb, nb, d0, width, out); return;
    case 5: values_of<5>(p, vb, nb, d0, width, out); return;
    case 4: values_of<4>(p, vb, nb, d0, width, out); return;
    case 3: values_of<3>(p, vb, nb, d0, width, out); return;
    case 2: values_of<2>(p, vb, nb, d0, width, out); return;
    default: values_of<1>(p, vb, nb, d0, width, out); return;
  }
}

// Folds one block's scores p[0..63] (the first `visible` are keys the query may see) into the
// query's running max, denominator and output; leaves the weights e^(s - max) in p, zero past
// `visible`.
void online_softmax(float* p, int visible, int D, float& running_max, float& denom, float* out) {
  __m512 s[4];
  __mmask16 seen[4];
  __m512 block_max = _mm512_set1_ps(running_max);
  for (int c = 0; c < 4; ++c) {
    const int n = std::clamp(visible - 16 * c, 0, 16);
    seen[c] = __mmask16((1u << n) - 1);
    s[c] = _mm512_load_ps(p + 16 * c);
    block_max = _mm512_mask_max_ps(block_max, seen[c], block_max, s[c]);
  }
  const float m = _mm512_reduce_max_ps(block_max);
  if (m > running_max) {
    const float r = std::exp(running_max - m);
    denom *= r;
    const __m512 rv = _mm512_set1_ps(r);
    for (int d = 0; d < D; d += 16) _mm512_storeu_ps(out + d, _mm512_mul_ps(rv, _mm512_loadu_ps(out + d)));
    running_max = m;
  }
  const __m512 mv = _mm512_set1_ps(running_max);
  __m512 sum = _mm512_setzero_ps();
  for (int c = 0; c < 4; ++c) {
    const __m512 e = _mm512_maskz_mov_ps(seen[c], exp_avx512(_mm512_sub_ps(s[c], mv)));
    _mm512_store_ps(p + 16 * c, e);
    sum = _mm512_add_ps(sum, e);
  }
  denom += _mm512_reduce_add_ps(sum);
}

// out_i /= denom_i: the softmax's normalization, once at the end.
void finish_queries(int n, int D, const float* denom, float* const* out) {
  for (int i = 0; i < n; ++i) {
    const __m512 inv = _mm512_set1_ps(1.0f / denom[i]);
    for (int d = 0; d < D; d += 16) _mm512_storeu_ps(out[i] + d, _mm512_mul_ps(inv, _mm512_loadu_ps(out[i] + d)));
  }
}

// ---- Few queries: a decoded token's heads (8), or two tokens' when MTP verifies ----
// Laying a block out costs about what 8 queries' products cost, so few queries read the cache rows
// as they are: the scores as tiles of 8 queries x 2 keys, dimension-wise FMAs into 16 accumulators
// that fold into one vector of 16 scores; the values as 8-query x 48-dim broadcast tiles (32-dim for
// q8_0: a block each) over 16 keys at a time (few rows, so the power-of-two row spacing does not
// thrash the L1's sets).
constexpr int kFewQueries = 16;  // at most this many take the few-queries path
constexpr int kFewTile = 8;      // queries per tile
constexpr int kFewKeys = 16;     // keys per value tile

// sum16's lane l holds the sum of v[kSumOrder[l]] (and, the order being its own inverse, the sum
// of v[m] lands in lane kSumOrder[m]).
constexpr int kSumOrder[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};

// The 16 sums of 16 vectors' lanes, in one vector (lane order kSumOrder): halves, then quarters,
// then pairs of lanes are added, two vectors' parts in each add.
inline __m512 sum16(const __m512 v[16]) {
  __m512 w[8], x[4], y[2];
  for (int i = 0; i < 8; ++i)  // w[i]: v[i]'s two 256-bit halves added, then v[i + 8]'s
    w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], 0x44), _mm512_shuffle_f32x4(v[i], v[i + 8], 0xEE));
  for (int i = 0; i < 4; ++i)  // x[i]: 128-bit lanes of 4 partial sums of v[i], v[i + 8], v[i + 4], v[i + 12]
    x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[i], w[i + 4], 0x88), _mm512_shuffle_f32x4(w[i], w[i + 4], 0xDD));
  for (int i = 0; i < 2; ++i)  // y[i]: per 128-bit lane, 2 partial sums of x[i]'s vector, then x[i + 2]'s
    y[i] = _mm512_add_ps(_mm512_shuffle_ps(x[i], x[i + 2], 0x44), _mm512_shuffle_ps(x[i], x[i + 2], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xDD));
}

// p[i][j], p[i][j + 1] = scale * q_i . k0, scale * q_i . k1 for QN <= 8 queries.
template <int QN, typename E>
void few_score_tile(const float* const* q, const E* k0, const E* k1, int D, float scale, float* p, int j) {
  __m512 acc[2][kFewTile];  // [key][query]: output lane 8 * key + query
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < kFewTile; ++i) acc[k][i] = _mm512_setzero_ps();
  const auto step = [&](int d, __m512 a, __m512 b) {
    keep_in_register(a);
    keep_in_register(b);
    for (int i = 0; i < QN; ++i) {
      __m512 qv = _mm512_loadu_ps(q[i] + d);
      keep_in_register(qv);  // used by both keys: one load, not two
      acc[0][i] = _mm512_fmadd_ps(qv, a, acc[0][i]);
      acc[1][i] = _mm512_fmadd_ps(qv, b, acc[1][i]);
    }
  };
  int d = 0;
  for (; d + 32 <= D; d += 32) {  // a Q8_0 block at a time (its scale once per key)
    __m512 a0, a1, b0, b1;
    load32(k0, d, a0, a1);
    load32(k1, d, b0, b1);
    step(d, a0, b0);
    step(d + 16, a1, b1);
  }
  if (d < D) step(d, load16(k0, d), load16(k1, d));  // F32 / F16 rows of D % 32 == 16
  __m512 v[16];
  for (int m = 0; m < 16; ++m) v[m] = acc[kSumOrder[m] / kFewTile][kSumOrder[m] % kFewTile];
  alignas(64) float s[16];
  _mm512_store_ps(s, _mm512_mul_ps(_mm512_set1_ps(scale), sum16(v)));
  for (int i = 0; i < QN; ++i) {
    p[i * kKeyBlock + j] = s[i];
    p[i * kKeyBlock + j + 1] = s[kFewTile + i];
  }
}

// One tile's scores over a block (with a share of a later block's prefetch before each key
// pair), and its weighted values.
template <int QN, typename E>
void few_scores(const float* const* q, const E* K, size_t kv_stride, int nb, int D, float scale, float* p,
                BlockPrefetch& next, int per_pair) {
  for (int j = 0; j < nb; j += 2) {
    next.issue_lines(per_pair);
    const E* k0 = K + size_t(j) * kv_stride;
    few_score_tile<QN>(q, k0, j + 1 < nb ? k0 + kv_stride : k0, D, scale, p, j);  // an odd last key pairs with itself
  }
}

template <int QN, typename E>
void few_values(const float* p, const E* V, size_t kv_stride, int nb, int D, float* const* out) {
  for (int j = 0; j < nb; j += kFewKeys) {
    const int nj = std::min(kFewKeys, nb - j);
    const E* Vj = V + size_t(j) * kv_stride;
    int d = 0;
    if constexpr (std::is_same_v<E, BlockQ8_0>) {  // whole blocks: each scale converted once per tile row
      for (; d < D; d += 32) value_tile<QN, 2>(p + j, Vj, kv_stride, d, nj, d, out);
    } else {
      for (; d + 48 <= D; d += 48) value_tile<QN, 3>(p + j, Vj, kv_stride, d, nj, d, out);
      for (; d < D; d += 16) value_tile<QN, 1>(p + j, Vj, kv_stride, d, nj, d, out);
    }
  }
}

template <typename E>
void few_scores_for(int qn, const float* const* q, const E* K, size_t kv_stride, int nb, int D, float scale, float* p,
                    BlockPrefetch& next, int per_pair) {
  switch (qn) {
    case 8: return few_scores<8>(q, K, kv_stride, nb, D, scale, p, next, per_pair);
    case 7: return few_scores<7>(q, K, kv_stride, nb, D, scale, p, next, per_pair);
    case 6: return few_scores<6>(q, K, kv_stride, nb, D, scale, p, next, per_pair);
    case 5: return few_scores<5>(q, K, kv_stride, nb, D, scale, p, next, per_pair);
    case 4: return few_scores<4>(q, K, kv_stride, nb, D, scale, p, next, per_pair);
    case 3: return few_scores<3>(q, K, kv_stride, nb, D, scale, p, next, per_pair);
    case 2: return few_scores<2>(q, K, kv_stride, nb, D, scale, p, next, per_pair);
    default: return few_scores<1>(q, K, kv_stride, nb, D, scale, p, next, per_pair);
  }
}

template <typename E>
void few_values_for(int qn, const float* p, const E* V, size_t kv_stride, int nb, int D, float* const* out) {
  switch (qn) {
    case 8: return few_values<8>(p, V, kv_stride, nb, D, out);
    case 7: return few_values<7>(p, V, kv_stride, nb, D, out);
    case 6: return few_values<6>(p, V, kv_stride, nb, D, out);
    case 5: return few_values<5>(p, V, kv_stride, nb, D, out);
    case 4: return few_values<4>(p, V, kv_stride, nb, D, out);
    case 3: return few_values<3>(p, V, kv_stride, nb, D, out);
    case 2: return few_values<2>(p, V, kv_stride, nb, D, out);
    default: return few_values<1>(p, V, kv_stride, nb, D, out);
  }
}

// The rows of the block after the one at key b, to prefetch (nothing when b's block is the last).
template <typename E>
BlockPrefetch next_block(const E* K, const E* V, size_t kv_stride, int b, int L, int D) {
  BlockPrefetch next;
  if (const int next_nb = std::min(kKeyBlock, L - b - kKeyBlock); next_nb > 0) {
    next.k = reinterpret_cast<const char*>(K + size_t(b + kKeyBlock) * kv_stride);
    next.v = reinterpret_cast<const char*>(V + size_t(b + kKeyBlock) * kv_stride);
    next.stride_bytes = kv_stride * sizeof(E);
    next.lines_per_row = int(kv_row_bytes<E>(D) + 63) / 64;
    next.lines = next_nb * next.lines_per_row;
  }
  return next;
}

template <typename E>
void few_queries_of(const float* const* q, const int* n_keys, int n, const E* K, const E* V, size_t kv_stride, int D,
                    float scale, float* const* out) {
  // [query, key in block]: scores, then weights. Zeroed once: a block fills columns [0, nb + 1) and
  // the softmax reads all 64 (masking those past the block's keys).
  alignas(64) float p[kFewQueries * kKeyBlock] = {};
  float running_max[kFewQueries], denom[kFewQueries];
  const int L = start_queries(n_keys, n, D, running_max, denom, out);
  const int tiles = (n + kFewTile - 1) / kFewTile;
  for (int b = 0; b < L; b += kKeyBlock) {
    const int nb = std::min(kKeyBlock, L - b);
    const E* Kb = K + size_t(b) * kv_stride;
    const E* Vb = V + size_t(b) * kv_stride;
    // The block after next: one block ahead, a decode at depth read its cache from DRAM at 13.6 GB/s
    // on one Zen 5 core, two ahead at 13.9-14.9 (BM_AttentionQueries L 65536, f16, alternated).
    BlockPrefetch next = next_block(K, V, kv_stride, b + kKeyBlock, L, D);
    next.into_l1 = false;
    const int pairs = tiles * ((nb + 1) / 2), per_pair = (next.lines + pairs - 1) / pairs;
    for (int i = 0; i < n; i += kFewTile)
      few_scores_for(std::min(kFewTile, n - i), q + i, Kb, kv_stride, nb, D, scale, p + i * kKeyBlock, next, per_pair);
    for (int i = 0; i < n; ++i)
      online_softmax(p + i * kKeyBlock, std::clamp(n_keys[i] - b, 0, nb), D, running_max[i], denom[i], out[i]);
    for (int i = 0; i < n; i += kFewTile)
      few_values_for(std::min(kFewTile, n - i), p + i * kKeyBlock, Vb, kv_stride, nb, D, out + i);
  }
  finish_queries(n, D, denom, out);
}

template <typename E>
void attention_queries_of(const float* const* q, const int* n_keys, int n, const E* K, const E* V, size_t kv_stride,
                          int D, float scale, float* const* out) {
  alignas(64) float kt[kAvx512MaxHeadDim * kKeyBlock];   // [D, 64]: the block's keys, transposed
  alignas(64) float vb[kAvx512MaxHeadDim * kKeyBlock];   // its values, in strips (value_index)
  alignas(64) float p[kMaxBlockQueries * kKeyBlock];     // [query, key in block]: scores, then weights
  float running_max[kMaxBlockQueries], denom[kMaxBlockQueries];
  const int L = start_queries(n_keys, n, D, running_max, denom, out);
  for (int b = 0; b < L; b += kKeyBlock) {
    const int nb = std::min(kKeyBlock, L - b);
    transpose_keys(K + size_t(b) * kv_stride, kv_stride, nb, D, kt);
    copy_values(V + size_t(b) * kv_stride, kv_stride, nb, D, vb);
    BlockPrefetch next = next_block(K, V, kv_stride, b, L, D);
    // A share of the prefetch before each tile call: score tiles, then value tiles per strip.
    const int tile_calls = (n + kTileQueries - 1) / kTileQueries * (1 + (D + kStrip - 1) / kStrip);
    const int per_tile = (next.lines + tile_calls - 1) / tile_calls;
    for (int i = 0; i < n; i += kTileQueries) {
      next.issue_lines(per_tile);
      scores_for(std::min(kTileQueries, n - i), q + i, kt, D, scale, p + i * kKeyBlock);
    }
    for (int i = 0; i < n; ++i)
      online_softmax(p + i * kKeyBlock, std::clamp(n_keys[i] - b, 0, nb), D, running_max[i], denom[i], out[i]);
    // A 64-dim strip of the values (16 KiB) serves every query before the next strip is read.
    for (int d = 0; d < D; d += kStrip)
      for (int i = 0; i < n; i += kTileQueries) {
        next.issue_lines(per_tile);
        values_for(std::min(kTileQueries, n - i), p + i * kKeyBlock, vb, nb, d, std::min(kStrip, D - d), out + i);
      }
  }
  finish_queries(n, D, denom, out);
}

template <typename E>
void queries_of(const float* const* q, const int* n_keys, int n, const E* K, const E* V, size_t kv_stride, int D,
                float scale, float* const* out) {
  assert(n <= kMaxBlockQueries && D % 16 == 0 && D <= kAvx512MaxHeadDim);
  // Separate functions: a decode call does not reserve the block layout's 160 KiB of stack.
  if (n <= kFewQueries) few_queries_of(q, n_keys, n, K, V, kv_stride, D, scale, out);
  else attention_queries_of(q, n_keys, n, K, V, kv_stride, D, scale, out);
}

}  // namespace

void attention_queries_avx512(const float* const* q, const int* n_keys, int n, const KvHead& kv, int D, float scale,
                              float* const* out) {
  switch (kv.type) {
    case DType::F16:
      return queries_of(q, n_keys, n, static_cast<const uint16_t*>(kv.k), static_cast<const uint16_t*>(kv.v), kv.stride,
                        D, scale, out);
    case DType::Q8_0:
      assert(D % kQuantBlock == 0 && kv.stride % kQuantBlock == 0);
      return queries_of(q, n_keys, n, static_cast<const BlockQ8_0*>(kv.k), static_cast<const BlockQ8_0*>(kv.v),
                        kv.stride / kQuantBlock, D, scale, out);
    default:
      return queries_of(q, n_keys, n, static_cast<const float*>(kv.k), static_cast<const float*>(kv.v), kv.stride, D,
                        scale, out);
  }
}

}  // namespace qnext
