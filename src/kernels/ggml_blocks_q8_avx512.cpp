// AVX-512 VNNI int8-activation row products over Q4_K, Q5_K, Q6_K (kernels/ggml_blocks_q8.h; scalar
// twins in ggml_blocks_q8.cpp), for few tokens (decoding). Built with -mavx512vnni; called only
// where the CPU has it.
//
// Each super-block is unpacked once into 4 vectors of 64 unsigned levels in k order and dotted
// with each token's activations by vpdpbusd (u8 levels x s8 activations): int32 lane L of vector v
// sums k = 64 v + 4 L .. + 3, all in one group of weights, so one permute spreads the groups'
// float scales (d sc dx) to their lanes and one FMA per vector adds them up. The offsets (Q4_K /
// Q5_K mins, Q6_K's -32) take one FMA per super-block: the groups' offset factors times the
// activations' scaled group sums (KActs::gs). About 40 instructions per 256 weights for one token,
// where the float kernel (ggml_blocks_simd.h) needs about 100.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/ggml_blocks.h"
#include "kernels/ggml_blocks_q8.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

// A super-block as the kernel uses it: its 256 levels as unsigned bytes in k order, and per group
// of weights (lanes past the groups zero) the scale d sc and the offset factor (Q4_K / Q5_K:
// -dmin m; Q6_K: -32 d sc).
struct Unpacked {
  __m512i q[4];
  __m512 scale, off;
};

inline __m512i load256_twice(const uint8_t* p) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
// Per 16-bit word: the low 256 bits shifted by a, the high 256 bits by b.
inline __m512i halves(int a, int b) { return _mm512_inserti64x4(_mm512_set1_epi16(short(a)), _mm256_set1_epi16(short(b)), 1); }
// (a & 15) | (b & mask) per byte.
inline __m512i merge_high(__m512i low4, __m512i b, int mask) {
  return _mm512_ternarylogic_epi32(low4, b, _mm512_set1_epi8(char(mask)), 0xF8);  // a | (b & c)
}
// 32 bytes of nibbles -> [low nibbles | high nibbles] (Q4_K / Q5_K sub-blocks 2c, 2c + 1).
inline __m512i nibble_halves(const uint8_t* p) {
  return _mm512_and_si512(_mm512_srlv_epi16(load256_twice(p), halves(0, 4)), _mm512_set1_epi8(15));
}

inline void k4_scales(const uint8_t* s, float d, float dmin, Unpacked* u) {
  uint64_t sc, m;
  k4_scales_mins(s, &sc, &m);
  const __m512 scf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(sc))));
  const __m512 mf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(m))));
  u->scale = _mm512_mul_ps(scf, _mm512_set1_ps(d));
  u->off = _mm512_mul_ps(mf, _mm512_set1_ps(-dmin));
}

struct Q4K {
  using Block = BlockQ4K;
  static constexpr int kGroup = 32;
  static void unpack(const Block& b, Unpacked* u) {
    for (int c = 0; c < 4; ++c) u->q[c] = nibble_halves(b.qs + 32 * c);
    k4_scales(b.scales, _cvtsh_ss(b.d), _cvtsh_ss(b.dmin), u);
  }
};

struct Q5K {
  using Block = BlockQ5K;
  static constexpr int kGroup = 32;
  static void unpack(const Block& b, Unpacked* u) {
    const __m512i qh = load256_twice(b.qh);
    for (int c = 0; c < 4; ++c) {
      // Bits 2c (sub-block 2c, low half) and 2c + 1 (high half) of each qh byte to bit 4.
      const __m512i hb = _mm512_slli_epi16(_mm512_srlv_epi16(qh, halves(2 * c, 2 * c + 1)), 4);
      u->q[c] = merge_high(nibble_halves(b.qs + 32 * c), hb, 0x10);
    }
    k4_scales(b.scales, _cvtsh_ss(b.d), _cvtsh_ss(b.dmin), u);
  }
};

// Half h: ql[64 h ..] low nibbles are planes 0, 1 (k 0-63), high nibbles planes 2, 3 (k 64-127);
// their 2 high bits are bits 2p of qh[32 h + l], moved to bits 4-5.
struct Q6K {
  using Block = BlockQ6K;
  static constexpr int kGroup = 16;
  static void unpack(const Block& b, Unpacked* u) {
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(b.ql + 64 * h);
      const __m512i qh = load256_twice(b.qh + 32 * h);
      u->q[2 * h] = merge_high(_mm512_and_si512(ql, m4), _mm512_sllv_epi16(qh, halves(4, 2)), 0x30);
      u->q[2 * h + 1] = merge_high(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_srlv_epi16(qh, halves(0, 2)), 0x30);
    }
    const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales))));
    u->scale = _mm512_mul_ps(sc, _mm512_set1_ps(_cvtsh_ss(b.d)));
    u->off = _mm512_mul_ps(u->scale, _mm512_set1_ps(-32.0f));
  }
};

// Output row r for tokens [t0, t0 + TT): the row's super-blocks unpacked once each, every token's
// dots taken from the same registers. One token keeps 4 accumulators so the FMA chains overlap.
template <class F, int TT>
inline void row_tile(const Matrix& w, const KActs* const* xs, float* y, int64_t ldy, int64_t r, int t0,
                     StreamPrefetch& prefetch) {
  constexpr int A = TT == 1 ? 4 : 2;
  __m512i group_of[4];  // lane L of vector v: group (64 v + 4 L) / kGroup
  for (int v = 0; v < 4; ++v) {
    alignas(64) int32_t idx[16];
    for (int L = 0; L < 16; ++L) idx[L] = (64 * v + 4 * L) / F::kGroup;
    group_of[v] = _mm512_load_si512(idx);
  }
  __m512 acc[TT][A], offsets[TT];
  for (int j = 0; j < TT; ++j) {
    offsets[j] = _mm512_setzero_ps();
    for (int a = 0; a < A; ++a) acc[j][a] = _mm512_setzero_ps();
  }
  const auto* blocks = reinterpret_cast<const typename F::Block*>(w.row_ptr(r));
  const int64_t nsb = w.cols / F::Block::kElems;
  for (int64_t ib = 0; ib < nsb; ++ib) {
    prefetch.advance(blocks + ib + 1);
    Unpacked u;
    F::unpack(blocks[ib], &u);
    for (int j = 0; j < TT; ++j) {
      const KActs& x = xs[j][ib];
      const __m512 s = _mm512_mul_ps(u.scale, _mm512_load_ps(x.gd));
      offsets[j] = _mm512_fmadd_ps(u.off, _mm512_load_ps(x.gs), offsets[j]);
      for (int v = 0; v < 4; ++v) {
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u.q[v], _mm512_load_si512(x.q + 64 * v));
        acc[j][v % A] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(group_of[v], s), acc[j][v % A]);
      }
    }
  }
  for (int j = 0; j < TT; ++j) {
    __m512 s = offsets[j];
    for (int a = 0; a < A; ++a) s = _mm512_add_ps(s, acc[j][a]);
    y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = _mm512_reduce_add_ps(s);
  }
}

// Rows [r0, r1) for T tokens, 3 tokens per pass over the rows.
template <class F>
void rows_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nsb = w.cols / F::Block::kElems, nb = w.cols / kQuantBlock;
  thread_local std::vector<KActs> acts;  // [T, nsb]; grows to the largest call, then stays
  if (acts.size() < size_t(T) * size_t(nsb)) acts.resize(size_t(T) * size_t(nsb));
  for (int t = 0; t < T; ++t) pack_kacts(xq + size_t(t) * size_t(nb), nsb, F::kGroup, acts.data() + size_t(t) * size_t(nsb));
  for (int t0 = 0; t0 < T; t0 += 3) {
    const int tt = std::min(3, T - t0);
    const KActs* xs[3];
    for (int j = 0; j < tt; ++j) xs[j] = acts.data() + size_t(t0 + j) * size_t(nsb);
    StreamPrefetch prefetch(w.row_ptr(r0), w.row_ptr(r1));
    for (int64_t r = r0; r < r1; ++r) {
      switch (tt) {
        case 1: row_tile<F, 1>(w, xs, y, ldy, r, t0, prefetch); break;
        case 2: row_tile<F, 2>(w, xs, y, ldy, r, t0, prefetch); break;
        default: row_tile<F, 3>(w, xs, y, ldy, r, t0, prefetch); break;
      }
    }
  }
}

}  // namespace

void rows_int8_q4_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_vnni<Q4K>(w, xq, T, y, ldy, r0, r1);
}
void rows_int8_q5_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_vnni<Q5K>(w, xq, T, y, ldy, r0, r1);
}
void rows_int8_q6_k_vnni(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_vnni<Q6K>(w, xq, T, y, ldy, r0, r1);
}

}  // namespace qnext
