// AVX-512 VNNI products over block-quantized weights (scalar twins in quant.cpp:
// matmul_q_rows_scalar and quantize_activations). Built with -mavx512vnni; called only when the
// CPU has it (vnni_kernels).
//
// Many tokens (prefill) run on the panel GEMM (gemm_panels.h): Q8_0 rows flipped to unsigned
// bytes (w + 128), Q4_0 rows unpacked to their nibbles (0..15, offset 8), FP8 and int4 rows
// converted to int8 blocks by their format's to_int8 (weight_format.h), then flipped.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_panels.h"
#include "kernels/quant.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

// ---- Many tokens (prefill): the panel GEMM's unpacking ----------------------------------------

// Signed bytes -> the unsigned levels w + 128.
inline __m256i flip(__m256i q) { return _mm256_xor_si256(q, _mm256_set1_epi8(char(0x80))); }

// The first `bytes` of the row kQuantPrefetchRows below row r, prefetched.
inline void prefetch_row_ahead(const Matrix& w, int64_t r, size_t bytes) {
  const uint8_t* ahead = w.row_ptr(std::min(w.rows - 1, r + kQuantPrefetchRows));
  for (size_t k = 0; k < bytes; k += 64) _mm_prefetch(reinterpret_cast<const char*>(ahead + k), _MM_HINT_T0);
}

// Rows [r, r + n) of Q8_0 / Q4_0 blocks: block b's 32 levels as `levels_of` gives them, its f16
// scale as a float.
template <class Block, class LevelsOf>
void unpack_block_rows(const Matrix& w, int64_t r, int64_t n, uint8_t* levels, int64_t stride, float* scales,
                       LevelsOf levels_of) {
  const int64_t nb = w.cols / kQuantBlock;
  for (int64_t i = 0; i < n; ++i) {
    const auto* blocks = reinterpret_cast<const Block*>(w.row_ptr(r + i));
    prefetch_row_ahead(w, r + i, row_bytes(w.dtype, w.cols));
    uint8_t* li = levels + size_t(i) * size_t(stride);
    float* si = scales + size_t(i) * size_t(nb);
    for (int64_t b = 0; b < nb; ++b) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(li + 32 * b), levels_of(blocks[b]));
      si[b] = _cvtsh_ss(blocks[b].d);
    }
  }
}

void unpack_q8_0_rows(const Matrix& w, int64_t r, int64_t n, uint8_t* levels, int64_t stride, float* scales, float*) {
  unpack_block_rows<BlockQ8_0>(w, r, n, levels, stride, scales, [](const BlockQ8_0& b) {
    return flip(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q)));
  });
}

// Q4_0: k 0-15 are a block's low nibbles, k 16-31 its high ones.
void unpack_q4_0_rows(const Matrix& w, int64_t r, int64_t n, uint8_t* levels, int64_t stride, float* scales, float*) {
  unpack_block_rows<BlockQ4_0>(w, r, n, levels, stride, scales, [](const BlockQ4_0& b) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q)), mask = _mm_set1_epi8(15);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), _mm_and_si128(bytes, mask));
  });
}

// FP8, int4: their to_int8 (signed bytes and a scale per 32), flipped in place.
void unpack_converted_rows(const Matrix& w, int64_t r, int64_t n, uint8_t* levels, int64_t stride, float* scales, float*) {
  const int64_t nb = w.cols / kQuantBlock;
  const RowToInt8 to_int8 = weight_format(w.dtype).to_int8[int(Isa::Avx512)];
  for (int64_t i = 0; i < n; ++i) {
    prefetch_row_ahead(w, r + i, row_bytes(w.dtype, w.cols));
    uint8_t* li = levels + size_t(i) * size_t(stride);
    to_int8(w, r + i, reinterpret_cast<int8_t*>(li), scales + size_t(i) * size_t(nb));
    for (int64_t k = 0; k < w.cols; k += 32) {
      auto* v = reinterpret_cast<__m256i*>(li + k);
      _mm256_storeu_si256(v, flip(_mm256_loadu_si256(v)));
    }
  }
}

constexpr PanelFormat kQ8_0Panels{32, 128, false, unpack_q8_0_rows};
constexpr PanelFormat kQ4_0Panels{32, 8, false, unpack_q4_0_rows};
constexpr PanelFormat kConvertedPanels{32, 128, false, unpack_converted_rows};

}  // namespace

void gemm_q_rows_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const PanelFormat& f = w.dtype == DType::Q8_0 ? kQ8_0Panels : w.dtype == DType::Q4_0 ? kQ4_0Panels : kConvertedPanels;
  gemm_panels_avx512(w, f, xq, T, y, ldy, r0, r1);
}

// ---- Few tokens (decoding): Q4_0 matrix-vector tiles ----------------------------------------
// A Q4_0 row streams from memory at 18 bytes per block, and the AVX2 tile's ~14 instructions per
// block fall behind the memory. Here two blocks share a register (their nibbles unpacked side by
// side, dotted with vpdpbusd) and one word permute gathers the f16 scales of 8 blocks: about 7
// instructions per block.
namespace {

// One token's activations for a pair of blocks (2p, 2p + 1), laid out as the tile unpacks the
// weights: the int32 lanes 0-3 / 4-7 / 8-11 / 12-15 hold k 0-15 of block 2p / of 2p + 1 /
// k 16-31 of 2p / of 2p + 1.
struct PairX {
  int8_t q[64];
  float d[16];       // each lane's block scale
  int32_t corr[16];  // -sum(q) of each lane's block: 8 lanes take off 8 * sum for the nibble offset
};

void pack_pairs(const BlockQ8x* xq, int64_t nb, PairX* out) {
  for (int64_t p = 0; p < nb / 2; ++p) {
    const BlockQ8x* blk[2] = {&xq[2 * p], &xq[2 * p + 1]};
    PairX& o = out[p];
    for (int half = 0; half < 2; ++half)
      for (int which = 0; which < 2; ++which) std::memcpy(o.q + 32 * half + 16 * which, blk[which]->q + 16 * half, 16);
    for (int lane = 0; lane < 16; ++lane) {
      const BlockQ8x& b = *blk[(lane / 4) % 2];
      o.d[lane] = b.d;
      o.corr[lane] = -b.sum;
    }
  }
}

template <int R, int TT>
inline void q4_tile(const Matrix& w, const PairX* const* xs, float* y, int64_t ldy, int64_t r, int t) {
  const int64_t nb = w.cols / kQuantBlock;
  const BlockQ4_0* rows[R];
  const uint8_t* ahead[R];
  for (int i = 0; i < R; ++i) {
    rows[i] = reinterpret_cast<const BlockQ4_0*>(w.row_ptr(r + i));
    ahead[i] = w.row_ptr(std::min(w.rows - 1, r + i + kQuantPrefetchRows));
  }
  // Word k * 9 is the scale of block k in a run of 8 blocks (18 bytes = 9 words each).
  const __m512i scale_words = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                               63, 54, 45, 36, 27, 18, 9, 0);
  __m512i pair_lanes[4];  // scales of blocks (2p, 2p + 1) spread to their lanes
  for (int p = 0; p < 4; ++p) {
    const int a = 2 * p, b = 2 * p + 1;
    pair_lanes[p] = _mm512_set_epi32(b, b, b, b, a, a, a, a, b, b, b, b, a, a, a, a);
  }
  const __m256i nibble = _mm256_set1_epi8(15);
  __m512 acc[R][TT];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t g = 0; g < nb; g += 8) {
    for (int i = 0; i < R; ++i) {
      const uint8_t* run = reinterpret_cast<const uint8_t*>(rows[i] + g);  // 8 blocks, 144 bytes
      const uint8_t* pf = ahead[i] + g * int64_t(sizeof(BlockQ4_0));
      for (int line = 0; line < 3; ++line) _mm_prefetch(reinterpret_cast<const char*>(pf + 64 * line), _MM_HINT_T0);
      const __m512i words = _mm512_permutex2var_epi16(_mm512_loadu_si512(run), scale_words, _mm512_loadu_si512(run + 64));
      const __m512 dw8 = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm512_castsi512_si128(words)));
      for (int p = 0; p < 4; ++p) {
        const BlockQ4_0* b0 = rows[i] + g + 2 * p;
        const __m256i both = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0[0].q))),
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0[1].q)), 1);
        const __m256i lo = _mm256_and_si256(both, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(both, 4), nibble);
        const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        const __m512 dw = _mm512_permutexvar_ps(pair_lanes[p], dw8);
        for (int j = 0; j < TT; ++j) {
          const PairX& x = xs[j][g / 2 + p];
          const __m512i dot = _mm512_dpbusd_epi32(_mm512_loadu_si512(x.corr), q, _mm512_loadu_si512(x.q));
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, _mm512_loadu_ps(x.d)), acc[i][j]);
        }
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) y[size_t(t + j) * size_t(ldy) + size_t(r + i)] = _mm512_reduce_add_ps(acc[i][j]);
}

// One token, one row at a time, 4 blocks per register. One byte permute (VBMI) gathers the
// nibble bytes of 4 blocks from two registers of the row (bytes 0-127 of a run for blocks 0-3,
// 64-143 for blocks 4-7): low nibbles are k 0-15 and high nibbles k 16-31 of each block, so the
// activations are laid out the same way (RunX) and int32 lanes 4j..4j+3 hold block j's dot. The
// nibble offset (q - 8) comes off in float, once per block: dw * (-8 dx sum x), from 8
// precomputed terms per run of 8 blocks. Each run of 144 weight bytes is read in three loads
// (64 + 64 + 16 bytes) and prefetched kStreamAhead bytes ahead, its three lines formed as
// integer addresses (past the matrix on the last rows, where a prefetch does nothing): no cursor.
// Two rows side by side, sharing the activation loads, ran as fast from cache but from memory at
// 0.5-0.6x (one thread) and 0.6-0.8x (two) on Zen 4 (BM_Matvec Q4_0): two streams a row apart.
// Built for VBMI on its own (the rest of the file must run on VNNI CPUs without it); called only
// where the CPU has it.
__attribute__((target("avx512vbmi"))) inline float q4_stream_row(const uint8_t* row, int64_t nb, const RunX* x,
                                                                  const __m512i* nibble_windows, const __m512i& scale_words,
                                                                  const __m512i* quad_lanes) {
  const __m512i nibble = _mm512_set1_epi8(15);
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  __m256 offsets = _mm256_setzero_ps();
  for (int64_t g = 0; g < nb; g += 8) {
    const RunX& xr = x[g / 8];
    const uint8_t* run = row + g * int64_t(sizeof(BlockQ4_0));  // 8 blocks, 144 bytes
    prefetch_lines(run, kStreamAhead, 3);
    const __m512i a = _mm512_loadu_si512(run), b = _mm512_loadu_si512(run + 64);
    const __m512i c = _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(run + 128)));
    const __m256 dw8 = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(a, scale_words, b)));
    offsets = _mm256_fmadd_ps(dw8, _mm256_loadu_ps(xr.offset), offsets);
    const __m512 scale8 = _mm512_castps256_ps512(_mm256_mul_ps(dw8, _mm256_loadu_ps(xr.d)));
    // Blocks 0-3 from bytes 0-127 (a, b), blocks 4-7 from bytes 64-143 (b, c).
    const __m512i packed[2] = {_mm512_permutex2var_epi8(a, nibble_windows[0], b), _mm512_permutex2var_epi8(b, nibble_windows[1], c)};
    for (int h = 0; h < 2; ++h) {
      const __m512i lo = _mm512_and_si512(packed[h], nibble);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(packed[h], 4), nibble);
      __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(xr.lo + 64 * h));
      dot = _mm512_dpbusd_epi32(dot, hi, _mm512_loadu_si512(xr.hi + 64 * h));
      acc[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(quad_lanes[h], scale8), acc[h]);
    }
  }
  // Each block's 4 lanes summed its dot; its offset term is counted once.
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_zextps256_ps512(offsets)));
}

__attribute__((target("avx512vbmi"))) void q4_stream(const Matrix& w, const RunX* x, float* y, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQuantBlock;
  // A run of 8 blocks is 144 bytes. Blocks 0-3 sit in bytes 0-71 (window at 0: block j's nibbles
  // are 16 bytes from 2 + 18 j), blocks 4-7 in bytes 72-143 (window at 64: from 10 + 18 j).
  alignas(64) uint8_t first[64], second[64];
  for (int j = 0; j < 4; ++j)
    for (int m = 0; m < 16; ++m) {
      first[16 * j + m] = uint8_t(2 + 18 * j + m);
      second[16 * j + m] = uint8_t(72 - 64 + 2 + 18 * j + m);
    }
  const __m512i nibble_windows[2] = {_mm512_load_si512(first), _mm512_load_si512(second)};
  // Word k * 9 is the scale of block k in the run (18 bytes = 9 words each).
  const __m512i scale_words = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                               63, 54, 45, 36, 27, 18, 9, 0);
  const __m512i quad_lanes[2] = {_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                                 _mm512_set_epi32(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4)};
  for (int64_t r = r0; r < r1; ++r) y[r] = q4_stream_row(w.row_ptr(r), nb, x, nibble_windows, scale_words, quad_lanes);
}

}  // namespace

bool matvec_q4_avx512_fits(const Matrix& w, int T) {
  return w.dtype == DType::Q4_0 && T < kVnniGemmMinTokens && (w.cols / kQuantBlock) % 8 == 0;
}

void matvec_q4_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQuantBlock;
  if (T == 1 && cpu_has_avx512_vbmi() && nb / 8 <= kMaxRuns) {
    RunX runs[kMaxRuns];  // [nb / 8]
    pack_runs(xq, nb, runs);
    q4_stream(w, runs, y, r0, r1);
    return;
  }
  thread_local std::vector<PairX> pairs;  // [T, nb / 2]
  if (pairs.size() < size_t(T) * size_t(nb / 2)) pairs.resize(size_t(T) * size_t(nb / 2));
  const PairX* xs[kVnniGemmMinTokens];
  for (int t = 0; t < T; ++t) {
    PairX* px = pairs.data() + size_t(t) * size_t(nb / 2);
    pack_pairs(xq + size_t(t) * size_t(nb), nb, px);
    xs[t] = px;
  }
  auto rows = [&](int64_t r, auto R) {
    int t = 0;
    for (; t + 2 <= T; t += 2) q4_tile<decltype(R)::value, 2>(w, xs + t, y, ldy, r, t);
    if (t < T) q4_tile<decltype(R)::value, 1>(w, xs + t, y, ldy, r, t);
  };
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) rows(r, std::integral_constant<int, 4>{});
  for (; r < r1; ++r) rows(r, std::integral_constant<int, 1>{});
}

// Bit-identical to quantize_activations: the same amax, scale, reciprocal, products and
// round-to-nearest-even.
void quantize_activations_avx512(const float* x, int64_t n, BlockQ8x* out) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b, x += kQuantBlock) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.0f;
    const float inv = d > 0 ? 1.0f / d : 0.0f;
    const __m512 iv = _mm512_set1_ps(inv);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, iv)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, iv));
    out[b].d = d;
    out[b].sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].q), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].q + 16), _mm512_cvtsepi32_epi8(q1));
  }
}

}  // namespace qnext
