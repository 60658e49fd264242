// AVX-512 VNNI products over Q8_0 / Q4_0 rows for 1-3 tokens (decoding Q8_0;
// 2-3 tokens: verifying speculated tokens, a batch of sequences),
// scalar twin matmul_q_rows_scalar. Like the one-token kernels, each row streams start to end
// (prefetched kStreamAhead bytes ahead, as stream_prefetch.h says), once per pass of up to 3 tokens,
// instead of 4-row tiles read side by side.
//
// Two blocks share a register, and each token's dot is one vpdpbusd (unsigned weight bytes x
// signed activations) started from the block's offset term, so the per-token work per pair of
// blocks is vpdpbusd, convert, scale, FMA:
//   Q8_0: the signed weights flipped to w + 128; the offset -128 sum(x) split over the block's 8 lanes.
//   Q4_0: the nibbles 0..15 as they are; the offset -8 sum(x), likewise split.
// The weight scales come 16 blocks at a time (group_weight_scales: word permutes of whole loads),
// and each pair's lanes of dw dx are one permute. In cache (one thread, 2048-wide rows, Zen 5) this
// reads 1.15-1.3x the bytes per second of scalar scale loads per pair; 2-3 tokens 1.2-1.3x.
// Built with -mavx512vnni; called only where the CPU has it (vnni_kernels).
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/quant.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

// One token's activations for blocks (2p, 2p + 1), in the byte order the weights of the pair are
// loaded in (int32 lane l takes block lane_block(l)):
//   Q8_0: lanes 0-7 block 2p, lanes 8-15 block 2p + 1 (each block's 32 bytes in turn);
//   Q4_0: lanes 0-3 / 4-7 / 8-11 / 12-15: k 0-15 of 2p / of 2p + 1 / k 16-31 of 2p / of 2p + 1
//         (low nibbles of both blocks, then high nibbles).
struct alignas(64) PairActs {
  int8_t q[64];
  int32_t corr[16];  // each lane's share of its block's offset (8 lanes per block)
};
// Rows of up to 16384 weights keep a pass's activations (3 tokens, 102 KiB) on the stack, so
// decoding allocates nothing; longer rows use a per-thread buffer.
constexpr int64_t kMaxPairs = 256;

template <bool kQ8>
constexpr int lane_block(int lane) { return kQ8 ? lane / 8 : (lane / 4) % 2; }

template <bool kQ8>
void pack_pairs(const BlockQ8x* xq, int64_t np, PairActs* out) {
  for (int64_t p = 0; p < np; ++p) {
    const BlockQ8x* blk[2] = {&xq[2 * p], &xq[2 * p + 1]};
    PairActs& o = out[p];
    if constexpr (kQ8) {
      std::memcpy(o.q, blk[0]->q, 32);
      std::memcpy(o.q + 32, blk[1]->q, 32);
    } else {
      for (int half = 0; half < 2; ++half)
        for (int which = 0; which < 2; ++which) std::memcpy(o.q + 32 * half + 16 * which, blk[which]->q + 16 * half, 16);
    }
    for (int lane = 0; lane < 16; ++lane) {
      const BlockQ8x& b = *blk[lane_block<kQ8>(lane)];
      o.corr[lane] = (kQ8 ? -16 : -1) * b.sum;  // x 8 lanes: -128 sum(x) / -8 sum(x)
    }
  }
}

// The 64 weight bytes of blocks (2p, 2p + 1) at b0 as vpdpbusd's unsigned operand, in PairActs' order.
template <bool kQ8>
inline __m512i pair_weights(const uint8_t* b0) {
  constexpr int64_t kBytes = kQ8 ? int64_t(sizeof(BlockQ8_0)) : int64_t(sizeof(BlockQ4_0));
  if constexpr (kQ8) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + 2));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + kBytes + 2));
    return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1), _mm512_set1_epi8(char(0x80)));
  } else {
    const __m256i both = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + 2))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + kBytes + 2)), 1);
    const __m256i nibble = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(both, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(both, 4), nibble);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  }
}

// For each lane, which block of the pair it holds (0: 2p, 1: 2p + 1): lane_block as a vector.
template <bool kQ8>
inline __m512i pair_lane_blocks() {
  return kQ8 ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
             : _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
}

// Blocks per scale group: their 16 f16 weight scales come in together (group_weight_scales), so
// each pair's scale lanes are one permute of dw * dx instead of two scalar loads, a conversion and
// a permute per pair (about 7 of the pair's 17 instructions).
constexpr int64_t kGroupBlocks = 16;

// The f16 scales of the kGroupBlocks blocks at gb, as floats. A block is a whole number of 16-bit
// words (17 / 9), so its scale is word kWords * b of the group: each 64-word window of the group
// (two loads) gives the scales inside it with one word permute, merged under a mask. Loads past the
// group's end are masked off (they do not fault).
template <bool kQ8>
inline __m512 group_weight_scales(const uint8_t* gb) {
  constexpr int kWords = kQ8 ? int(sizeof(BlockQ8_0)) / 2 : int(sizeof(BlockQ4_0)) / 2;
  constexpr int kGroupWords = int(kGroupBlocks) * kWords;
  constexpr int kWindows = (kWords * (int(kGroupBlocks) - 1)) / 64 + 1;
  const auto load_words = [&](int word) {  // 32 words from `word` on, those past the group zero
    const int left = kGroupWords - word;
    const auto* p = reinterpret_cast<const int16_t*>(gb) + word;
    if (left <= 0) return _mm512_setzero_si512();
    return left >= 32 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi16(__mmask32((1u << left) - 1), p);
  };
  __m512i h = _mm512_setzero_si512();
#pragma GCC unroll 4
  for (int w = 0; w < kWindows; ++w) {
    alignas(64) int16_t idx[32] = {};
    __mmask32 in_window = 0;
    for (int b = 0; b < int(kGroupBlocks); ++b)
      if (kWords * b >= 64 * w && kWords * b < 64 * w + 64) idx[b] = int16_t(kWords * b - 64 * w), in_window |= 1u << b;
    const __m512i scales = _mm512_permutex2var_epi16(load_words(64 * w), _mm512_load_si512(idx), load_words(64 * w + 32));
    h = _mm512_mask_mov_epi16(h, in_window, scales);
  }
  return _mm512_cvtph_ps(_mm512_castsi512_si256(h));
}

// Prefetches the line kStreamAhead bytes past p (stream_prefetch.h's distance). The address is
// formed as an integer: it may lie past the matrix, where a prefetch does nothing.
inline void prefetch_ahead(const uint8_t* p) { prefetch_lines(p, kStreamAhead); }

// Row r for tokens t0 .. t0 + TT: y[t0 + j][r] for each j. dxs[j]: token j's block scales [nb].
template <bool kQ8, int TT>
inline void row(const uint8_t* rowp, int64_t np, const PairActs* const* xs, const float* const* dxs, float* y,
                int64_t ldy, int64_t r, int t0) {
  constexpr int64_t kBytes = kQ8 ? int64_t(sizeof(BlockQ8_0)) : int64_t(sizeof(BlockQ4_0));
  const __m512i lane_block = pair_lane_blocks<kQ8>();
  // Two accumulators per token (even and odd pairs): with one, a row waits on the FMA latency.
  __m512 even[TT], odd[TT];
  for (int j = 0; j < TT; ++j) even[j] = odd[j] = _mm512_setzero_ps();
  // acc[j] += dot(pair p of token j) * s[j] (s: each lane's dw dx).
  const auto dots = [&](__m512i wq, int64_t p, const __m512* s, __m512* acc) {
    for (int j = 0; j < TT; ++j) {
      const PairActs& x = xs[j][p];
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_loadu_si512(x.corr), wq, _mm512_loadu_si512(x.q));
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s[j], acc[j]);
    }
  };
  const int64_t groups = 2 * np / kGroupBlocks;
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* gb = rowp + g * kGroupBlocks * kBytes;
    // The group's lines kStreamAhead bytes on, unconditionally (StreamPrefetch's bounds test per line
    // cost as much as the group's scales; a prefetch past the end reads a few lines more, never faults).
#pragma GCC unroll 9
    for (int64_t line = 0; line < kGroupBlocks * kBytes; line += 64) prefetch_ahead(gb + line);
    const __m512 dw = group_weight_scales<kQ8>(gb);
    __m512 dwdx[TT];  // [TT][16 blocks]
    for (int j = 0; j < TT; ++j) dwdx[j] = _mm512_mul_ps(dw, _mm512_loadu_ps(dxs[j] + g * kGroupBlocks));
#pragma GCC unroll 8
    for (int q = 0; q < int(kGroupBlocks / 2); ++q) {
      const uint8_t* b0 = gb + 2 * q * kBytes;
      const __m512i lanes = _mm512_add_epi32(lane_block, _mm512_set1_epi32(2 * q));
      __m512 s[TT];
      for (int j = 0; j < TT; ++j) s[j] = _mm512_permutexvar_ps(lanes, dwdx[j]);
      dots(pair_weights<kQ8>(b0), g * kGroupBlocks / 2 + q, s, q % 2 ? odd : even);
    }
  }
  // The pairs after the last whole group: scales one pair at a time.
  for (int64_t p = groups * kGroupBlocks / 2; p < np; ++p) {
    const uint8_t* b0 = rowp + 2 * p * kBytes;
    prefetch_ahead(b0);
    prefetch_ahead(b0 + 64);
    uint16_t h0, h1;
    std::memcpy(&h0, b0, 2);
    std::memcpy(&h1, b0 + kBytes, 2);
    const __m128 dw2 = _mm_cvtph_ps(_mm_cvtsi32_si128(int(uint32_t(h0) | uint32_t(h1) << 16)));
    __m512 s[TT];
    for (int j = 0; j < TT; ++j) {  // the pair's two dw dx, spread to their lanes
      const __m128 dx2 = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(dxs[j] + 2 * p)));
      s[j] = _mm512_permutexvar_ps(lane_block, _mm512_castps128_ps512(_mm_mul_ps(dw2, dx2)));
    }
    dots(pair_weights<kQ8>(b0), p, s, even);
  }
  for (int j = 0; j < TT; ++j)
    y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = _mm512_reduce_add_ps(_mm512_add_ps(even[j], odd[j]));
}

// Rows [r0, r1) in passes of up to 3 tokens, as even as they go (4: 2 + 2, 5: 3 + 2).
template <bool kQ8>
void rows_in_passes(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQuantBlock, np = nb / 2;
  PairActs on_stack[3 * kMaxPairs];          // [3, np]: one pass's tokens
  float dx_on_stack[3 * 2 * kMaxPairs];      // [3, nb]: their block scales
  thread_local std::vector<PairActs> on_heap;  // the same for longer rows; grow once
  thread_local std::vector<float> dx_on_heap;
  PairActs* acts = on_stack;
  float* dx = dx_on_stack;
  if (np > kMaxPairs) {
    if (on_heap.size() < 3 * size_t(np)) {
      on_heap.resize(3 * size_t(np));
      dx_on_heap.resize(3 * size_t(nb));
    }
    acts = on_heap.data();
    dx = dx_on_heap.data();
  }
  const int passes = (T + 2) / 3;
  for (int pass = 0, t0 = 0; pass < passes; ++pass) {
    const int tt = (T - t0) / (passes - pass);
    const PairActs* xs[3];
    const float* dxs[3];
    for (int j = 0; j < tt; ++j) {
      const BlockQ8x* xt = xq + size_t(t0 + j) * size_t(nb);
      pack_pairs<kQ8>(xt, np, acts + size_t(j) * size_t(np));
      xs[j] = acts + size_t(j) * size_t(np);
      float* dxj = dx + size_t(j) * size_t(nb);
      for (int64_t b = 0; b < nb; ++b) dxj[b] = xt[b].d;
      dxs[j] = dxj;
    }
    const size_t stride = row_bytes(w.dtype, w.cols);  // once: row_ptr per row costs a call and a switch
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* rowp = w.row_ptr(0) + size_t(r) * stride;
      switch (tt) {
        case 1: row<kQ8, 1>(rowp, np, xs, dxs, y, ldy, r, t0); break;
        case 2: row<kQ8, 2>(rowp, np, xs, dxs, y, ldy, r, t0); break;
        default: row<kQ8, 3>(rowp, np, xs, dxs, y, ldy, r, t0); break;
      }
    }
    t0 += tt;
  }
}

}  // namespace

bool rows_q_vnni_fits(const Matrix& w) {
  return (w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0) && (w.cols / kQuantBlock) % 2 == 0;
}

void rows_q_vnni_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (w.dtype == DType::Q8_0) rows_in_passes<true>(w, xq, T, y, ldy, r0, r1);
  else rows_in_passes<false>(w, xq, T, y, ldy, r0, r1);
}

}  // namespace qnext
