// AVX-512 VNNI int8-activation products over Q4_K, Q5_K, Q6_K (kernels/ggml_blocks_q8.h; scalar
// twins in ggml_blocks_q8.cpp): row kernels for few tokens (decoding) and a packed GEMM for many
// (prefill), the latter with the weight rows in the lanes (below). Built with -mavx512vnni; called
// only where the CPU has it.
//
// Each super-block is unpacked once into 4 vectors of 64 unsigned levels, each vector two
// sub-blocks of 32 (Q4_K / Q5_K in the order kSubBlockOrder, Q6_K in k order; the activations are
// packed in the same order), and dotted with each token's activations by vpdpbusd (u8 levels x s8
// activations): each int32 lane sums 4 levels of one group of weights, so one permute spreads the
// groups' float scales (d sc dx) to their lanes and one FMA per vector adds them up. The offsets
// (Q4_K / Q5_K mins, Q6_K's -32) take one FMA per super-block with the same factor vector and the
// activations' scaled group sums (KActs::gs as packed here). One token from cache, one thread,
// 2-core Zen 5: Q4_K 31.8 GB/s, Q6_K 39.8 (bench_ggml_blocks BM_KMatvecCached).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/ggml_blocks.h"
#include "kernels/ggml_blocks_q8.h"
#include "kernels/ggml_blocks_q8_simd.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

// A super-block as the row kernels use it: its 256 levels as unsigned bytes in 4 vectors of 64,
// each vector two sub-blocks of 32 (Q4_K / Q5_K: in the order kSubBlockOrder; Q6_K: k order),
// and the weights' factors per group, one vector. Q4_K / Q5_K: lane 2j the scale d sc_j, lane
// 2j + 1 the min's factor dmin m_j; Q6_K: lane g the scale d sc_g.
struct Unpacked {
  __m512i q[4];
  __m512 scale;
};

// The sub-blocks of Q4_K / Q5_K in the row kernels' vectors: a 64-byte load of the packed levels
// holds sub-blocks 4h, 4h + 2 in its low nibbles and 4h + 1, 4h + 3 in its high ones, so the
// levels come out of two loads with one mask and one shift each; the activations are packed in
// the same order (KActs::q), once per token.
constexpr int kSubBlockOrder[8] = {0, 2, 1, 3, 4, 6, 5, 7};

inline __m512i load256_twice(const uint8_t* p) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
// Per 16-bit word: the low 256 bits shifted by a, the high 256 bits by b.
inline __m512i halves(int a, int b) { return _mm512_inserti64x4(_mm512_set1_epi16(short(a)), _mm256_set1_epi16(short(b)), 1); }
// (a & 15) | (b & mask) per byte.
inline __m512i merge_high(__m512i low4, __m512i b, int mask) {
  return _mm512_ternarylogic_epi32(low4, b, _mm512_set1_epi8(char(mask)), 0xF8);  // a | (b & c)
}

// Q4_K / Q5_K: the 6-bit scales and mins of the 8 sub-blocks (k4_scale_min) interleaved,
// [sc 0, m 0, sc 1, m 1, ..], from the 12 scale bytes at s (16 read: the block goes on after them),
// times [d, dmin, d, dmin, ..] from the block's two f16s at its start (one 32-bit load, one
// conversion). As k4_scale_bytes (ggml_blocks_q8_simd.h) with the bytes placed for this order.
inline __m512 k4_factors(const uint8_t* s, const uint8_t* d_dmin) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
  const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, 8, 8, 9, 9, 10, 10, 11, 11));
  const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 1, 5, 2, 6, 3, 7));
  const __m128i low = _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 63, 63, 63, 63, 15, 0, 15, 0, 15, 0, 15, 0));
  const __m128i nib = _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 0, 15, 0, 15, 0, 15));
  const __m128i high = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30));
  const __m128i bytes = _mm_ternarylogic_epi32(low, nib, high, 0xFE);  // a | b | c
  int32_t dd;
  std::memcpy(&dd, d_dmin, 4);
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes)), _mm512_cvtph_ps(_mm256_set1_epi32(dd)));
}

// Q4_K / Q5_K activations in the kernels' order: q by kSubBlockOrder; gd lane 2j dx_j; gs lane
// 2j + 1 -dx_j sum_j (the mins' term, so one FMA with the factors adds it); zeros elsewhere.
void pack_k4_acts(const BlockQ8x* xq, int64_t nsb, KActs* out) {
  for (int64_t s = 0; s < nsb; ++s) {
    KActs& o = out[s];
    for (int g = 0; g < 16; ++g) o.gd[g] = o.gs[g] = 0.0f;
    for (int i = 0; i < 8; ++i) {
      const int j = kSubBlockOrder[i];
      const BlockQ8x& x = xq[8 * s + j];
      std::memcpy(o.q + 32 * i, x.q, 32);
      o.gd[2 * j] = x.d;
      o.gs[2 * j + 1] = -x.d * float(x.sum);
    }
  }
}

struct Q4K {
  using Block = BlockQ4K;
  static constexpr int kGroup = 32;
  static void pack(const BlockQ8x* xq, int64_t nsb, KActs* out) { pack_k4_acts(xq, nsb, out); }
  // Vector v, lane L: factor lane 2 kSubBlockOrder[2v + L / 8].
  static int factor_lane(int v, int L) { return 2 * kSubBlockOrder[2 * v + L / 8]; }
  static void unpack(const Block& b, Unpacked* u) {
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int h = 0; h < 2; ++h) {
      const __m512i v = _mm512_loadu_si512(b.qs + 64 * h);
      u->q[2 * h] = _mm512_and_si512(v, m4);
      u->q[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    u->scale = k4_factors(b.scales, reinterpret_cast<const uint8_t*>(&b));  // d, dmin: bytes 0-3
  }
};

struct Q5K {
  using Block = BlockQ5K;
  static constexpr int kGroup = 32;
  static void pack(const BlockQ8x* xq, int64_t nsb, KActs* out) { pack_k4_acts(xq, nsb, out); }
  static int factor_lane(int v, int L) { return Q4K::factor_lane(v, L); }
  static void unpack(const Block& b, Unpacked* u) {
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i qh = load256_twice(b.qh);
    for (int h = 0; h < 2; ++h) {
      const __m512i v = _mm512_loadu_si512(b.qs + 64 * h);
      // Sub-block j's high bit is bit j of each qh byte: to bit 4, for the two sub-blocks of each half.
      const __m512i lo_high = _mm512_slli_epi16(_mm512_srlv_epi16(qh, halves(4 * h, 4 * h + 2)), 4);
      const __m512i hi_high = _mm512_slli_epi16(_mm512_srlv_epi16(qh, halves(4 * h + 1, 4 * h + 3)), 4);
      u->q[2 * h] = merge_high(_mm512_and_si512(v, m4), lo_high, 0x10);
      u->q[2 * h + 1] = merge_high(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), hi_high, 0x10);
    }
    u->scale = k4_factors(b.scales, reinterpret_cast<const uint8_t*>(&b));  // d, dmin: bytes 0-3
  }
};

// Half h: ql[64 h ..] low nibbles are planes 0, 1 (k 0-63), high nibbles planes 2, 3 (k 64-127);
// their 2 high bits are bits 2p of qh[32 h + l], moved to bits 4-5. The activations in k order,
// gs times -32 (Q6_K's offset: one FMA with the scales).
struct Q6K {
  using Block = BlockQ6K;
  static constexpr int kGroup = 16;
  static void pack(const BlockQ8x* xq, int64_t nsb, KActs* out) {
    pack_kacts(xq, nsb, kGroup, out);
    for (int64_t s = 0; s < nsb; ++s)
      for (float& v : out[s].gs) v *= -32.0f;
  }
  static int factor_lane(int v, int L) { return (64 * v + 4 * L) / kGroup; }
  static void unpack(const Block& b, Unpacked* u) {
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(b.ql + 64 * h);
      const __m512i qh = load256_twice(b.qh + 32 * h);
      u->q[2 * h] = merge_high(_mm512_and_si512(ql, m4), _mm512_sllv_epi16(qh, halves(4, 2)), 0x30);
      u->q[2 * h + 1] = merge_high(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_srlv_epi16(qh, halves(0, 2)), 0x30);
    }
    const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales))));
    u->scale = _mm512_mul_ps(sc, _mm512_cvtph_ps(_mm256_set1_epi16(short(b.d))));  // d in every lane, one conversion
  }
};

// Prefetches the block's lines kStreamAhead bytes on (stream_prefetch.h's distance). The addresses
// are formed as integers: they may lie past the matrix, where a prefetch does nothing; per block
// this costs less than StreamPrefetch's bounds test per line.
template <class Block>
inline void prefetch_block_ahead(const Block* b) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(b) + uintptr_t(kStreamAhead);
  for (uintptr_t line = 0; line < sizeof(Block); line += 64) _mm_prefetch(reinterpret_cast<const char*>(p + line), _MM_HINT_T0);
}

// Output row r for tokens [t0, t0 + TT): the row's super-blocks unpacked once each, every token's
// dots taken from the same registers. One token keeps 4 accumulators so the FMA chains overlap.
template <class F, int TT>
inline void row_tile(const typename F::Block* blocks, int64_t nsb, const KActs* const* xs, float* y, int64_t ldy,
                     int64_t r, int t0) {
  constexpr int A = TT == 1 ? 4 : 2;
  __m512i lanes_of[4];  // lane L of vector v: the lane of its group's factor
  for (int v = 0; v < 4; ++v) {
    alignas(64) int32_t idx[16];
    for (int L = 0; L < 16; ++L) idx[L] = F::factor_lane(v, L);
    lanes_of[v] = _mm512_load_si512(idx);
  }
  __m512 acc[TT][A], offsets[TT];
  for (int j = 0; j < TT; ++j) {
    offsets[j] = _mm512_setzero_ps();
    for (int a = 0; a < A; ++a) acc[j][a] = _mm512_setzero_ps();
  }
  for (int64_t ib = 0; ib < nsb; ++ib) {
    prefetch_block_ahead(blocks + ib);
    Unpacked u;
    F::unpack(blocks[ib], &u);
    for (int j = 0; j < TT; ++j) {
      const KActs& x = xs[j][ib];
      const __m512 s = _mm512_mul_ps(u.scale, _mm512_load_ps(x.gd));
      offsets[j] = _mm512_fmadd_ps(u.scale, _mm512_load_ps(x.gs), offsets[j]);
      for (int v = 0; v < 4; ++v) {
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u.q[v], _mm512_load_si512(x.q + 64 * v));
        acc[j][v % A] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(lanes_of[v], s), acc[j][v % A]);
      }
    }
  }
  for (int j = 0; j < TT; ++j) {
    __m512 s = offsets[j];
    for (int a = 0; a < A; ++a) s = _mm512_add_ps(s, acc[j][a]);
    y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = _mm512_reduce_add_ps(s);
  }
}

// The ISA's one-row kernel, for rows_in_passes (ggml_blocks_q8_simd.h). It prefetches by itself
// (prefetch_block_ahead), not through the pass's StreamPrefetch.
template <class F, int TT>
struct RowTile {
  static void row(const typename F::Block* blocks, int64_t nsb, const KActs* const* xs, float* y, int64_t ldy, int64_t r,
                  int t0, StreamPrefetch&) {
    row_tile<F, TT>(blocks, nsb, xs, y, ldy, r, t0);
  }
};

// ---- Many tokens (prefill): an int8 GEMM with the weight rows in the lanes -------------------
// Each chunk of rows is unpacked once per call (prepare_rows) and laid out in panels of 16 rows:
// per 4 k one 64-byte vector holds 4 levels of each of the 16 rows (a 16 x 16 dword transpose),
// per group a vector of the 16 rows' scales (d sc), and for Q4_K / Q5_K per 32 k one of their
// mins' factors (-dmin m). A token's 4 activations at that k are vpdpbusd's broadcast operand (s8),
// so one instruction dots 16 rows x 4 k for one token, and no lane idles whatever the token count.
// Per group the int32 dots turn to float and take the rows' scales times the token's dx; Q6_K's
// -32 starts each 16's dots (the token's -32 sum_16), Q4_K / Q5_K's mins take one FMA per 32.
// The GEMM this replaced had 16 tokens in the lanes and broadcast the weights: ~10 tokens (an
// expert's share of a 512-token prompt) left 6 of 16 lanes idle, and every dot took a broadcast.
constexpr size_t kChunkBytes = 192 * 1024;  // unpacked levels per pass (in L2 while the token tiles go by)
constexpr int kPanelRows = 16;              // weight rows per panel, one per int32 lane
constexpr int kTokenTile = 12;              // tokens whose dots and sums stay in registers
// The unpacked rows before their transpose sit cols + kPanelPad bytes apart: 2048 apart, the 16
// rows' loads of one step would fall in 2 of L1's 64 sets.
constexpr int64_t kPanelPad = 64;

// Q6_K's -32 terms of one token's block: -32 times the sum of each 16 of its activations.
inline void q6_corr(const int8_t* q, int32_t* corr0, int32_t* corr1) {
  int32_t sums[2] = {0, 0};
  for (int k = 0; k < 32; ++k) sums[k / 16] += q[k];
  *corr0 = -32 * sums[0];
  *corr1 = -32 * sums[1];
}

// Rows [r, r + n) unpacked: levels [n, cols] (rows level_stride bytes apart), scales
// [n, cols / kGroup] (d sc), and for Q4_K / Q5_K offsets [n, cols / 32] (-dmin m).
template <class F>
void prepare_rows(const Matrix& w, int64_t r, int64_t n, uint8_t* levels, float* scales, float* offs, int64_t level_stride) {
  const int64_t nsb = w.cols / 256, groups = w.cols / F::kGroup;
  for (int64_t i = 0; i < n; ++i) {
    const auto* blocks = reinterpret_cast<const typename F::Block*>(w.row_ptr(r + i));
    const uint8_t* ahead = w.row_ptr(std::min(w.rows - 1, r + i + kQuantPrefetchRows));
    uint8_t* li = levels + size_t(i) * size_t(level_stride);
    float* si = scales + size_t(i) * size_t(groups);
    float* oi = offs + size_t(i) * size_t(w.cols / 32);
    for (int64_t ib = 0; ib < nsb; ++ib) {
      for (size_t line = 0; line < sizeof(typename F::Block); line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(ahead + size_t(ib) * sizeof(typename F::Block) + line), _MM_HINT_T0);
      Unpacked u;
      F::unpack(blocks[ib], &u);
      uint8_t* lb = li + 256 * ib;
      if constexpr (F::kGroup == 16) {
        for (int v = 0; v < 4; ++v) _mm512_storeu_si512(lb + 64 * v, u.q[v]);
        _mm512_storeu_ps(si + 16 * ib, u.scale);
      } else {  // back to k order; the factors [sc 0, m 0, sc 1, ..] to [d sc 0..7 | dmin m 0..7]
        for (int v = 0; v < 4; ++v) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(lb + 32 * kSubBlockOrder[2 * v]), _mm512_castsi512_si256(u.q[v]));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(lb + 32 * kSubBlockOrder[2 * v + 1]), _mm512_extracti64x4_epi64(u.q[v], 1));
        }
        const __m512 split = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15), u.scale);
        _mm256_storeu_ps(si + 8 * ib, _mm512_castps512_ps256(split));
        _mm256_storeu_ps(oi + 8 * ib, _mm256_sub_ps(_mm256_setzero_ps(), _mm512_extractf32x8_ps(split, 1)));
      }
    }
  }
}

// A tile's activations per 32 k, its tokens side by side, so every operand of the tile's loop is
// one pointer plus a constant.
struct alignas(64) TileBlock {
  int8_t q[kTokenTile][32];          // each token's 32 activations
  float dx[kTokenTile];              // their scale
  float dx_sum[kTokenTile];          // Q4_K / Q5_K: dx * sum (the mins' term)
  int32_t corr[2][kTokenTile];       // Q6_K: -32 * the sum of each 16
};

// The tile of tokens [t0, t0 + tt) of xq [T, nb] -> tile [nb].
template <bool kHalfSums>
void pack_tile(const BlockQ8x* xq, int64_t nb, int t0, int tt, TileBlock* tile) {
  for (int64_t b = 0; b < nb; ++b) {
    TileBlock& o = tile[b];
    for (int t = 0; t < tt; ++t) {
      const BlockQ8x& x = xq[size_t(t0 + t) * size_t(nb) + size_t(b)];
      std::memcpy(o.q[t], x.q, 32);
      o.dx[t] = x.d;
      o.dx_sum[t] = x.d * float(x.sum);
      if constexpr (kHalfSums) q6_corr(x.q, &o.corr[0][t], &o.corr[1][t]);
    }
  }
}

// r[i] (16 dwords each) -> out[j]: dword j of every r[i], r[i]'s in lane i.
inline void transpose16(const __m512i* r, __m512i* out) {
  __m512i t[16], u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {  // u[4 i + c], 128-bit lane L: dword 4 L + c of rows 4 i .. 4 i + 3
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {  // a 4 x 4 transpose of 128-bit lanes
    const __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
    out[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    out[4 + c] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    out[8 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    out[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

// src [16][n] 32-bit elements (row stride `stride` elements) -> dst [n][16].
inline void to_lanes(const void* src, int64_t stride, int64_t n, void* dst) {
  const auto* s = static_cast<const int32_t*>(src);
  auto* d = static_cast<__m512i*>(dst);
  for (int64_t c = 0; c < n; c += 16) {
    const int m = int(std::min<int64_t>(16, n - c));
    const __mmask16 valid = __mmask16((1u << m) - 1);
    __m512i r[16], out[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = _mm512_maskz_loadu_epi32(valid, s + i * stride + c);
    transpose16(r, out);
    if (m == 16) {
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) _mm512_storeu_si512(d + c + j, out[j]);
    } else {
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j)
        if (j < m) _mm512_storeu_si512(d + c + j, out[j]);
    }
  }
}

// Rows [r, r + n), n <= 16, as a panel: levels [cols / 4][16][4], scales [groups][16],
// offs [cols / 32][16]; rows past n zero. tmp_*: prepare_rows' row-major buffers for 16 rows.
template <class F>
void prepare_panel(const Matrix& w, int64_t r, int64_t n, uint8_t* tmp_levels, float* tmp_scales, float* tmp_offs,
                   uint8_t* levels, float* scales, float* offs) {
  const int64_t cols = w.cols, groups = cols / F::kGroup, nb = cols / 32;
  prepare_rows<F>(w, r, n, tmp_levels, tmp_scales, tmp_offs, cols + kPanelPad);
  if (n < kPanelRows) {
    std::memset(tmp_levels + size_t(n) * size_t(cols + kPanelPad), 0, size_t(kPanelRows - n) * size_t(cols + kPanelPad));
    std::memset(tmp_scales + size_t(n) * size_t(groups), 0, size_t(kPanelRows - n) * size_t(groups) * sizeof(float));
    std::memset(tmp_offs + size_t(n) * size_t(nb), 0, size_t(kPanelRows - n) * size_t(nb) * sizeof(float));
  }
  to_lanes(tmp_levels, (cols + kPanelPad) / 4, cols / 4, levels);
  to_lanes(tmp_scales, groups, groups, scales);
  if constexpr (F::kGroup == 32) to_lanes(tmp_offs, nb, nb, offs);
}

// y[t0 + t][r .. r + rows) for the tile's TT tokens, from one panel.
template <class F, int TT>
inline void panel_tile(const uint8_t* levels, const float* scales, const float* offs, int64_t cols, const TileBlock* tile,
                       float* y, int64_t ldy, int64_t r, int t0, int rows) {
  const int64_t nb = cols / 32;
  constexpr int kHalves = F::kGroup == 16 ? 2 : 1, kSteps = 8 / kHalves;
  __m512 acc[TT];
#pragma GCC unroll 12
  for (int t = 0; t < TT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const TileBlock& x = tile[b];
    const uint8_t* lb = levels + size_t(b) * 8 * 64;
#pragma GCC unroll 2
    for (int h = 0; h < kHalves; ++h) {
      __m512i dot[TT];
#pragma GCC unroll 12
      for (int t = 0; t < TT; ++t) dot[t] = kHalves == 2 ? _mm512_set1_epi32(x.corr[h][t]) : _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int s = 0; s < kSteps; ++s) {
        const __m512i wv = _mm512_loadu_si512(lb + 64 * (kSteps * h + s));
#pragma GCC unroll 12
        for (int t = 0; t < TT; ++t) {
          int32_t a;
          std::memcpy(&a, x.q[t] + 4 * (kSteps * h + s), 4);
          dot[t] = _mm512_dpbusd_epi32(dot[t], wv, _mm512_set1_epi32(a));
        }
      }
      const __m512 sc = _mm512_loadu_ps(scales + size_t(kHalves * b + h) * 16);
#pragma GCC unroll 12
      for (int t = 0; t < TT; ++t)
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[t]), _mm512_mul_ps(sc, _mm512_set1_ps(x.dx[t])), acc[t]);
    }
    if constexpr (F::kGroup == 32) {
      const __m512 off = _mm512_loadu_ps(offs + size_t(b) * 16);
#pragma GCC unroll 12
      for (int t = 0; t < TT; ++t) acc[t] = _mm512_fmadd_ps(off, _mm512_set1_ps(x.dx_sum[t]), acc[t]);
    }
  }
  const __mmask16 valid = __mmask16((1u << rows) - 1);
#pragma GCC unroll 12
  for (int t = 0; t < TT; ++t) _mm512_mask_storeu_ps(y + size_t(t0 + t) * size_t(ldy) + size_t(r), valid, acc[t]);
}

template <class F, int TT>
void tile_over_panels(const uint8_t* levels, const float* scales, const float* offs, int64_t cols, int64_t panels,
                      const TileBlock* tile, float* y, int64_t ldy, int64_t r, int64_t n, int t0) {
  const int64_t groups = cols / F::kGroup, nb = cols / 32;
  for (int64_t p = 0; p < panels; ++p)
    panel_tile<F, TT>(levels + size_t(p) * kPanelRows * size_t(cols), scales + size_t(p) * kPanelRows * size_t(groups),
                      offs + size_t(p) * kPanelRows * size_t(nb), cols, tile, y, ldy, r + kPanelRows * p, t0,
                      int(std::min<int64_t>(kPanelRows, n - kPanelRows * p)));
}

template <class F>
void gemm_panels(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t cols = w.cols, nb = cols / kQuantBlock, groups = cols / F::kGroup;
  const int tiles = (T + kTokenTile - 1) / kTokenTile;
  const int64_t chunk_panels = std::max<int64_t>(1, int64_t(kChunkBytes / size_t(cols)) / kPanelRows);
  const size_t cp = size_t(chunk_panels) * kPanelRows;
  thread_local std::vector<TileBlock> acts;  // [tiles][nb]
  thread_local std::vector<uint8_t> levels;  // [chunk panels][cols / 4][16][4]
  thread_local std::vector<float> scales, offs;  // [chunk panels][groups or nb][16]
  thread_local std::vector<uint8_t> tmp_levels;  // [16][cols + kPanelPad]
  thread_local std::vector<float> tmp_scales, tmp_offs;  // [16][groups], [16][nb] (+ a vector's store)
  if (acts.size() < size_t(tiles) * size_t(nb)) acts.resize(size_t(tiles) * size_t(nb));
  if (levels.size() < cp * size_t(cols)) levels.resize(cp * size_t(cols));
  if (scales.size() < cp * size_t(groups)) scales.resize(cp * size_t(groups));
  if (offs.size() < cp * size_t(nb)) offs.resize(cp * size_t(nb));
  if (tmp_levels.size() < 16 * size_t(cols + kPanelPad)) tmp_levels.resize(16 * size_t(cols + kPanelPad));
  if (tmp_scales.size() < 16 * size_t(groups) + 16) tmp_scales.resize(16 * size_t(groups) + 16);
  if (tmp_offs.size() < 16 * size_t(nb) + 16) tmp_offs.resize(16 * size_t(nb) + 16);
  // Token tiles as even as they go (13 tokens: 7 + 6).
  const auto tile_size = [&](int i, int t0) { return (T - t0) / (tiles - i); };
  for (int i = 0, t0 = 0; i < tiles; t0 += tile_size(i, t0), ++i)
    pack_tile<F::kGroup == 16>(xq, nb, t0, tile_size(i, t0), acts.data() + size_t(i) * size_t(nb));
  for (int64_t rc = r0; rc < r1; rc += int64_t(cp)) {
    const int64_t n = std::min(int64_t(cp), r1 - rc), panels = (n + kPanelRows - 1) / kPanelRows;
    for (int64_t p = 0; p < panels; ++p)
      prepare_panel<F>(w, rc + kPanelRows * p, std::min<int64_t>(kPanelRows, n - kPanelRows * p), tmp_levels.data(),
                       tmp_scales.data(), tmp_offs.data(), levels.data() + size_t(p) * kPanelRows * size_t(cols),
                       scales.data() + size_t(p) * kPanelRows * size_t(groups), offs.data() + size_t(p) * kPanelRows * size_t(nb));
    for (int i = 0, t0 = 0; i < tiles; t0 += tile_size(i, t0), ++i) {
      const TileBlock* tile = acts.data() + size_t(i) * size_t(nb);
      const auto run = [&](auto TT) {
        tile_over_panels<F, decltype(TT)::value>(levels.data(), scales.data(), offs.data(), cols, panels, tile, y, ldy, rc, n, t0);
      };
      switch (tile_size(i, t0)) {
        case 1: run(std::integral_constant<int, 1>{}); break;
        case 2: run(std::integral_constant<int, 2>{}); break;
        case 3: run(std::integral_constant<int, 3>{}); break;
        case 4: run(std::integral_constant<int, 4>{}); break;
        case 5: run(std::integral_constant<int, 5>{}); break;
        case 6: run(std::integral_constant<int, 6>{}); break;
        case 7: run(std::integral_constant<int, 7>{}); break;
        case 8: run(std::integral_constant<int, 8>{}); break;
        case 9: run(std::integral_constant<int, 9>{}); break;
        case 10: run(std::integral_constant<int, 10>{}); break;
        case 11: run(std::integral_constant<int, 11>{}); break;
        default: run(std::integral_constant<int, kTokenTile>{}); break;
      }
    }
  }
}

}  // namespace

void gemm_int8_q4_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  gemm_panels<Q4K>(w, xq, T, y, ldy, r0, r1);
}
void gemm_int8_q5_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  gemm_panels<Q5K>(w, xq, T, y, ldy, r0, r1);
}
void gemm_int8_q6_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  gemm_panels<Q6K>(w, xq, T, y, ldy, r0, r1);
}

void rows_int8_q4_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_in_passes<Q4K, RowTile>(w, xq, T, y, ldy, r0, r1);
}
void rows_int8_q5_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_in_passes<Q5K, RowTile>(w, xq, T, y, ldy, r0, r1);
}
void rows_int8_q6_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_in_passes<Q6K, RowTile>(w, xq, T, y, ldy, r0, r1);
}

}  // namespace qnext
