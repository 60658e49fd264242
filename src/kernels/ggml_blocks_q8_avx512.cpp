// AVX-512 VNNI int8-activation products over Q4_K, Q5_K, Q6_K (kernels/ggml_blocks_q8.h; scalar
// twins in ggml_blocks_q8.cpp): row kernels for few tokens (decoding), and for many (prefill) the
// rows unpacked for the panel GEMM (gemm_panels.h). Built with -mavx512vnni; called only where the
// CPU has it.
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

#include "kernels/gemm_panels.h"
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
  prefetch_lines(b, kStreamAhead, int((sizeof(Block) + 63) / 64));
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

// ---- Many tokens (prefill): the panel GEMM (gemm_panels.h) ------------------------------------
// The formats' unpack_rows (PanelFormat): rows [r, r + n) as levels [n, cols] (rows `stride` bytes
// apart), scales [n, cols / kGroup] (d sc), and for Q4_K / Q5_K offs [n, cols / 32] (-dmin m).
template <class F>
void unpack_rows(const Matrix& w, int64_t r, int64_t n, uint8_t* levels, int64_t stride, float* scales, float* offs) {
  const int64_t nsb = w.cols / 256, groups = w.cols / F::kGroup;
  for (int64_t i = 0; i < n; ++i) {
    const auto* blocks = reinterpret_cast<const typename F::Block*>(w.row_ptr(r + i));
    const uint8_t* ahead = w.row_ptr(std::min(w.rows - 1, r + i + kQuantPrefetchRows));
    uint8_t* li = levels + size_t(i) * size_t(stride);
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

constexpr PanelFormat kQ4KPanels{32, 0, true, unpack_rows<Q4K>};
constexpr PanelFormat kQ5KPanels{32, 0, true, unpack_rows<Q5K>};
constexpr PanelFormat kQ6KPanels{16, 32, false, unpack_rows<Q6K>};

}  // namespace

void gemm_int8_q4_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  gemm_panels_avx512(w, kQ4KPanels, xq, T, y, ldy, r0, r1);
}
void gemm_int8_q5_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  gemm_panels_avx512(w, kQ5KPanels, xq, T, y, ldy, r0, r1);
}
void gemm_int8_q6_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  gemm_panels_avx512(w, kQ6KPanels, xq, T, y, ldy, r0, r1);
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
