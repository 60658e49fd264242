// AVX2 int8-activation row products over Q4_K, Q5_K, Q6_K (kernels/ggml_blocks_q8.h; scalar twins
// in ggml_blocks_q8.cpp), for any number of tokens, 3 per pass over the rows.
//
// Each 32-weight sub-block's levels are unsigned bytes, the u8 operand of vpmaddubsw against the
// signed activations (pair sums at most 2 x 63 x 127, so never saturating), widened by vpmaddwd;
// int32 lane L of sub-block j sums k = 32 j + 4 L .. + 3, all in one group of weights. One permute
// spreads the groups' float scales (d sc dx) to the lanes and one FMA adds them up; the offsets
// (mins, Q6_K's -32) take one FMA per super-block from the activations' group sums (KActs::gs).
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/ggml_blocks.h"
#include "kernels/ggml_blocks_q8.h"
#include "kernels/ggml_blocks_q8_simd.h"
#include "kernels/simd_avx2.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

// A super-block: 8 sub-blocks of 32 levels (unsigned bytes, k order), and per group of weights
// the scale d sc and the offset factor (Q4_K / Q5_K: -dmin m, groups 0..7 in [0]; Q6_K: -32 d sc,
// groups 0..15 in [0], [1]).
struct Unpacked {
  __m256i q[8];
  __m256 scale[2], off[2];
};

inline __m256i load256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256i shift_right16(__m256i v, int n) { return _mm256_srl_epi16(v, _mm_cvtsi32_si128(n)); }

inline void k4_scales(const uint8_t* s, float d, float dmin, Unpacked* u) {
  const __m128i bytes = k4_scale_bytes(s);
  u->scale[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), _mm256_set1_ps(d));
  u->off[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(bytes, bytes))), _mm256_set1_ps(-dmin));
  u->scale[1] = u->off[1] = _mm256_setzero_ps();
}

struct Q4K {
  using Block = BlockQ4K;
  static constexpr int kGroup = 32;
  static void pack(const BlockQ8x* xq, int64_t nsb, KActs* out) { pack_kacts(xq, nsb, kGroup, out); }
  static void unpack(const Block& b, Unpacked* u) {
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = load256(b.qs + 32 * c);
      u->q[2 * c] = _mm256_and_si256(v, m4);
      u->q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    k4_scales(b.scales, _cvtsh_ss(b.d), _cvtsh_ss(b.dmin), u);
  }
};

struct Q5K {
  using Block = BlockQ5K;
  static constexpr int kGroup = 32;
  static void pack(const BlockQ8x* xq, int64_t nsb, KActs* out) { pack_kacts(xq, nsb, kGroup, out); }
  static void unpack(const Block& b, Unpacked* u) {
    const __m256i m4 = _mm256_set1_epi8(15), bit4 = _mm256_set1_epi8(16);
    const __m256i qh = load256(b.qh);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = load256(b.qs + 32 * c);
      for (int i = 0; i < 2; ++i) {  // sub-block 2c + i: bit 2c + i of each qh byte to bit 4
        const __m256i hb = _mm256_and_si256(_mm256_slli_epi16(shift_right16(qh, 2 * c + i), 4), bit4);
        const __m256i lo = _mm256_and_si256(i ? _mm256_srli_epi16(v, 4) : v, m4);
        u->q[2 * c + i] = _mm256_or_si256(lo, hb);
      }
    }
    k4_scales(b.scales, _cvtsh_ss(b.d), _cvtsh_ss(b.dmin), u);
  }
};

// Sub-block 4 h + p (half h, plane p): low 4 bits from ql[64 h + 32 (p & 1) ..] (nibble p / 2),
// high 2 bits at bits 2p of qh[32 h ..], moved to bits 4-5.
struct Q6K {
  using Block = BlockQ6K;
  static constexpr int kGroup = 16;
  static void pack(const BlockQ8x* xq, int64_t nsb, KActs* out) { pack_kacts(xq, nsb, kGroup, out); }
  static void unpack(const Block& b, Unpacked* u) {
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      const __m256i qh = load256(b.qh + 32 * h);
      const __m256i high[4] = {_mm256_slli_epi16(qh, 4), _mm256_slli_epi16(qh, 2), qh, _mm256_srli_epi16(qh, 2)};
      for (int p = 0; p < 4; ++p) {
        const __m256i ql = load256(b.ql + 64 * h + 32 * (p & 1));
        const __m256i lo = _mm256_and_si256(p >= 2 ? _mm256_srli_epi16(ql, 4) : ql, m4);
        u->q[4 * h + p] = _mm256_or_si256(lo, _mm256_and_si256(high[p], m2));
      }
    }
    const float d = _cvtsh_ss(b.d);
    for (int i = 0; i < 2; ++i) {
      const __m256i sc = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.scales + 8 * i)));
      u->scale[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(sc), _mm256_set1_ps(d));
      u->off[i] = _mm256_mul_ps(u->scale[i], _mm256_set1_ps(-32.0f));
    }
  }
};

// Output row r for tokens [t0, t0 + TT), as the AVX-512 kernel (ggml_blocks_q8_avx512.cpp).
template <class F, int TT>
inline void row_tile(const typename F::Block* blocks, int64_t nsb, const KActs* const* xs, float* y, int64_t ldy,
                     int64_t r, int t0, StreamPrefetch& prefetch) {
  constexpr int A = TT == 1 ? 4 : 2;
  constexpr bool kQ6 = F::kGroup == 16;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[TT][A], offsets[TT];
  for (int j = 0; j < TT; ++j) {
    offsets[j] = _mm256_setzero_ps();
    for (int a = 0; a < A; ++a) acc[j][a] = _mm256_setzero_ps();
  }
  for (int64_t ib = 0; ib < nsb; ++ib) {
    prefetch.advance(blocks + ib + 1);
    Unpacked u;
    F::unpack(blocks[ib], &u);
    for (int j = 0; j < TT; ++j) {
      const KActs& x = xs[j][ib];
      __m256 s[2];
      s[0] = _mm256_mul_ps(u.scale[0], _mm256_load_ps(x.gd));
      offsets[j] = _mm256_fmadd_ps(u.off[0], _mm256_load_ps(x.gs + (kQ6 ? 0 : 8)), offsets[j]);  // KActs
      if constexpr (kQ6) {
        s[1] = _mm256_mul_ps(u.scale[1], _mm256_load_ps(x.gd + 8));
        offsets[j] = _mm256_fmadd_ps(u.off[1], _mm256_load_ps(x.gs + 8), offsets[j]);
      }
      for (int sb = 0; sb < 8; ++sb) {
        const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q + 32 * sb));
        const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(u.q[sb], xv), ones);
        // Lane L's group: sub-block sb (Q4_K / Q5_K), group 2 sb + L / 4 (Q6_K).
        const __m256 scale = kQ6 ? _mm256_permutevar8x32_ps(s[sb / 4], _mm256_setr_epi32(2 * (sb % 4), 2 * (sb % 4), 2 * (sb % 4), 2 * (sb % 4),
                                                                                      2 * (sb % 4) + 1, 2 * (sb % 4) + 1, 2 * (sb % 4) + 1, 2 * (sb % 4) + 1))
                                 : _mm256_permutevar8x32_ps(s[0], _mm256_set1_epi32(sb));
        acc[j][sb % A] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[j][sb % A]);
      }
    }
  }
  for (int j = 0; j < TT; ++j) {
    __m256 s = offsets[j];
    for (int a = 0; a < A; ++a) s = _mm256_add_ps(s, acc[j][a]);
    y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = hsum_avx2(s);
  }
}

// The ISA's one-row kernel, for rows_in_passes (ggml_blocks_q8_simd.h).
template <class F, int TT>
struct RowTile {
  static void row(const typename F::Block* blocks, int64_t nsb, const KActs* const* xs, float* y, int64_t ldy, int64_t r,
                  int t0, StreamPrefetch& prefetch) {
    row_tile<F, TT>(blocks, nsb, xs, y, ldy, r, t0, prefetch);
  }
};

}  // namespace

void rows_int8_q4_k_avx2(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_in_passes<Q4K, RowTile>(w, xq, T, y, ldy, r0, r1);
}
void rows_int8_q5_k_avx2(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_in_passes<Q5K, RowTile>(w, xq, T, y, ldy, r0, r1);
}
void rows_int8_q6_k_avx2(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_in_passes<Q6K, RowTile>(w, xq, T, y, ldy, r0, r1);
}

}  // namespace qnext
