// AVX512-BF16 product for several tokens, and FP8 decoding (scalar twin gemm_bf16_rows_scalar in
// gemm_bf16.cpp; what is rounded where: gemm_bf16.h).
//
// Dot-product orientation: a tile of 4 weight rows x up to 4 tokens keeps 16 accumulators, each
// a 16-lane partial sum along k; one step loads 32 bf16 weights of each row and 32 bf16
// activations of each token and issues 16 vdpbf16ps (with two activation terms: 4 rows x 2 tokens
// x 2 terms). Every lane does useful work whatever the token count, which suits an expert's share
// of a prompt (often 4 to 20 tokens) as well as a whole prompt; the 16 partial sums of each (row,
// token) are added in a transposing tree once per row. The weights are converted to bf16 a chunk
// of rows at a time (sized for L2; BF16 rows are used in place), the activations once per call;
// token blocks of 64 keep a block's activations in L2 while the chunk's rows go by. FP8 for few
// tokens (gemm_bf16.h): codes converted to bf16 by bit permutations (GFNI, Fp8Codes), the block
// scales on the activations, converted again for each 128-row block; 1-3 tokens stream the codes
// instead (fp8_stream_rows, below). Measured on the FP8 slice (Zen 5, 2 threads,
// pp512, old and new binaries alternated over three rounds): no speed change through the noise (the
// conversion waits on the codes from memory; its arithmetic was not the cost), one rounding per
// product instead of two. Smaller chunks (16-128 KiB) and prefetching the next chunk's codes into
// L2 during the tiles were slower.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/fp8_avx512.h"
#include "kernels/gemm_bf16.h"
#include "kernels/int4.h"
#include "kernels/stream_prefetch.h"
#include "kernels/weight_format.h"

namespace qnext {
namespace {

constexpr int kRowsPerTile = 4;
constexpr int kTokenBlock = 64;
constexpr size_t kChunkBytes = 256 * 1024;  // bf16 weight rows converted at once

inline int64_t padded_cols(int64_t cols) { return (cols + 31) / 32 * 32; }

inline __m512 widen_bf16x16(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }

// One float row, times mul's [n] where given (FP8's block scales), -> bf16 hi [kp] (and lo [kp]
// = bf16(x - hi) when lo is set), zero padded, rounded to nearest even.
void row_to_bf16(const float* x, int64_t n, int64_t kp, uint16_t* hi, uint16_t* lo, const float* mul = nullptr) {
  for (int64_t k = 0; k < kp; k += 32) {
    const int64_t valid = std::clamp<int64_t>(n - k, 0, 32);
    const __mmask16 m0 = valid >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1);
    const __mmask16 m1 = valid >= 32 ? __mmask16(0xFFFF) : valid <= 16 ? __mmask16(0) : __mmask16((1u << (valid - 16)) - 1);
    __m512 a = _mm512_maskz_loadu_ps(m0, x + k), b = _mm512_maskz_loadu_ps(m1, x + k + 16);
    if (mul) {
      a = _mm512_mul_ps(a, _mm512_maskz_loadu_ps(m0, mul + k));
      b = _mm512_mul_ps(b, _mm512_maskz_loadu_ps(m1, mul + k + 16));
    }
    const __m512i h = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));  // low half from a
    _mm512_storeu_si512(hi + k, h);
    if (!lo) continue;
    const __m512 r0 = _mm512_sub_ps(a, widen_bf16x16(_mm512_castsi512_si256(h)));
    const __m512 r1 = _mm512_sub_ps(b, widen_bf16x16(_mm512_extracti64x4_epi64(h, 1)));
    _mm512_storeu_si512(lo + k, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(r1, r0)));
  }
}

// kFp8LaneOrder: FP8 codes become words as vpunpck{l,h}bw pair the bytes of 64 codes, within
// 128-bit lanes, so each 64 columns are laid out as columns {0-7, 16-23, 32-39, 48-55} then
// {8-15, 24-31, 40-47, 56-63}. Both FP8 paths (the tiles' converted rows, the decoding stream) and
// their activations use it, so their per-lane sums are the same. x: [kp] bf16, kp a 64-multiple.
void to_fp8_lane_order(uint16_t* x, int64_t kp) {
  for (int64_t k = 0; k < kp; k += 64) {
    const __m512i x0 = _mm512_loadu_si512(x + k), x1 = _mm512_loadu_si512(x + k + 32);
    _mm512_storeu_si512(x + k, _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_si512(x + k + 32, _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(3, 1, 3, 1)));
  }
}

// Sums of the 16 lanes of each of v0..v3, in one 128-bit vector.
inline __m128 sum4(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
  // Per 128-bit lane: [v0 0+2, v1 0+2, v0 1+3, v1 1+3] and the same for v2, v3.
  const __m512 a = _mm512_add_ps(_mm512_unpacklo_ps(v0, v1), _mm512_unpackhi_ps(v0, v1));
  const __m512 b = _mm512_add_ps(_mm512_unpacklo_ps(v2, v3), _mm512_unpackhi_ps(v2, v3));
  // Per 128-bit lane: [v0, v1, v2, v3] partial sums.
  const __m512d ad = _mm512_castps_pd(a), bd = _mm512_castps_pd(b);
  const __m512 c = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(ad, bd)), _mm512_castpd_ps(_mm512_unpackhi_pd(ad, bd)));
  const __m512 d = _mm512_add_ps(c, _mm512_shuffle_f32x4(c, c, _MM_SHUFFLE(1, 0, 3, 2)));
  const __m512 e = _mm512_add_ps(d, _mm512_shuffle_f32x4(d, d, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_castps512_ps128(e);
}

// Tokens per tile: 4 with one activation term; 2 with two, whose hi and lo products go into two
// accumulators each (two dependency chains even for one row and one token: decoding).
template <bool kHiLo>
constexpr int kTokensPerTile = kHiLo ? 2 : 4;

// y[t][r] for MR rows of w (row stride ldw, kp bf16 each) and MT tokens (stride ldx). Each (row,
// token) sum takes the same steps whatever MR and MT, so a token's result never depends on the
// tokens or rows it shares a tile with (batching cannot change it).
template <int MR, int MT, bool kHiLo>
void tile(const uint16_t* w, int64_t ldw, const uint16_t* xh, const uint16_t* xl, int64_t ldx, int64_t kp, float* y,
          int64_t ldy) {
  constexpr int kLo = kHiLo ? MT : 0;
  __m512 acc[MR][4], lo[MR][kLo > 0 ? kLo : 1];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int j = 0; j < kLo; ++j) lo[i][j] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kp; k += 32) {
    __m512bh xv[MT], xlv[kLo > 0 ? kLo : 1];
    for (int j = 0; j < MT; ++j) xv[j] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(xh + size_t(j) * size_t(ldx) + size_t(k)));
    for (int j = 0; j < kLo; ++j) xlv[j] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(xl + size_t(j) * size_t(ldx) + size_t(k)));
    for (int i = 0; i < MR; ++i) {
      const __m512bh wv = reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + size_t(i) * size_t(ldw) + size_t(k)));
      for (int j = 0; j < MT; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, xv[j]);
      for (int j = 0; j < kLo; ++j) lo[i][j] = _mm512_dpbf16_ps(lo[i][j], wv, xlv[j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < kLo; ++j) acc[i][j] = _mm512_add_ps(acc[i][j], lo[i][j]);
    alignas(16) float s[4];
    _mm_store_ps(s, sum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
    for (int j = 0; j < MT; ++j) y[size_t(j) * size_t(ldy) + size_t(i)] = s[j];
  }
}

template <int MR, bool kHiLo>
void tile_tokens(int mt, const uint16_t* w, int64_t ldw, const uint16_t* xh, const uint16_t* xl, int64_t ldx, int64_t kp,
                 float* y, int64_t ldy) {
  switch (mt) {
    case 1: tile<MR, 1, kHiLo>(w, ldw, xh, xl, ldx, kp, y, ldy); return;
    case 2: tile<MR, 2, kHiLo>(w, ldw, xh, xl, ldx, kp, y, ldy); return;
    case 3:
      if constexpr (!kHiLo) tile<MR, 3, kHiLo>(w, ldw, xh, xl, ldx, kp, y, ldy);
      return;
    default:
      if constexpr (!kHiLo) tile<MR, 4, kHiLo>(w, ldw, xh, xl, ldx, kp, y, ldy);
      return;
  }
}

// 32 FP8 codes (the first `valid`, the rest zero) times their block's scale, as bf16: the f16
// trick of fp8_avx512.cpp gives code / 256 exactly (subnormal codes included), times scale x 256
// in float, then rounded once more to bf16 (as the scalar twin: dequantize, then round).
inline __m512i e4m3x32_to_bf16(const uint8_t* p, int64_t valid, __m512 scale256) {
  const __mmask32 m = valid >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << valid) - 1);
  const __m512i h = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, p));
  const __m512i f16 = _mm512_and_si512(_mm512_slli_epi16(h, 7), _mm512_set1_epi16(int16_t(0xBF80)));
  const __m512 lo = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(f16)), scale256);
  const __m512 hi = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(f16, 1)), scale256);
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
}

// FP8 codes as bf16 words (GFNI), for the tiles' converted rows and decoding's stream alike. Each
// bf16 byte is a bit permutation of the code's byte plus constants, one vgf2p8affineqb each: the high byte
// takes the sign and exponent bits 3-1, the low byte exponent bit 0 and the 3 mantissa bits, and
// exponent bits 4-6 are set (112 added), so a word is e4m3 x 2^-8 and the activations carry the
// 2^8 (their scales x 256, exact). vpunpck{l,h}bw pair the bytes into words in the lane order the
// activations were put in (kFp8LaneOrder). Codes with exponent field 0 (subnormals, and zero) come
// out wrong that way: vptestnmb finds them (in real checkpoints a few in ten thousand) and a rarely
// taken branch puts in their exact values, m x 2^-17 for mantissa m (vpshufb) with the sign.
// NaN codes (0x7f, 0xff; none in real checkpoints) read as +-480 x scale here, NaN in the twin.
struct Fp8Codes {
  __m512i high_bits, low_bits;  // the two affine matrices
  __m512i exponent_field = _mm512_set1_epi8(0x78);
  __m512i sub_high, sub_low;    // bytes of bf16(m x 2^-17) at index m, each 128-bit lane
  static __m512i affine(const int (&source)[8]) {  // output bit i <- input bit source[i] (-1: 0)
    uint64_t m = 0;
    for (int i = 0; i < 8; ++i)
      if (source[i] >= 0) m |= uint64_t(1) << (8 * (7 - i) + source[i]);
    return _mm512_set1_epi64(int64_t(m));
  }
  Fp8Codes() {
    high_bits = affine({4, 5, 6, -1, -1, -1, -1, 7});  // exponent bits 1-3 (code bits 4-6), sign; | 0x38
    low_bits = affine({-1, -1, -1, -1, 0, 1, 2, 3});  // mantissa (code bits 0-2), exponent bit 0
    alignas(64) uint8_t hi[64] = {}, lo[64] = {};
    for (int lane = 0; lane < 4; ++lane)
      for (int m = 0; m < 8; ++m) {
        const uint16_t b = f32_to_bf16(float(m) * 0x1p-17f);
        hi[16 * lane + m] = uint8_t(b >> 8), lo[16 * lane + m] = uint8_t(b & 0xFF);
      }
    sub_high = _mm512_load_si512(hi), sub_low = _mm512_load_si512(lo);
  }
  // 64 codes -> words of columns {0-7, 16-23, 32-39, 48-55} (a) and {8-15, ...} (b); whether any
  // has exponent field 0.
  __attribute__((target("gfni"))) bool convert(__m512i c, __m512i& a, __m512i& b) const {
    const __m512i hi = _mm512_gf2p8affine_epi64_epi8(c, high_bits, 0x38);
    const __m512i lo = _mm512_gf2p8affine_epi64_epi8(c, low_bits, 0);
    a = _mm512_unpacklo_epi8(lo, hi), b = _mm512_unpackhi_epi8(lo, hi);
    return _mm512_testn_epi8_mask(c, exponent_field) != 0;
  }
  // The exact values of the words whose exponent field is 0 (bf16 bits 7-10 clear).
  void fix(__m512i c, __m512i& a, __m512i& b) const {
    const __m512i m = _mm512_and_si512(c, _mm512_set1_epi8(0x0F));  // the mantissa where the field is 0
    const __m512i lo = _mm512_shuffle_epi8(sub_low, m);
    const __m512i hi =
        _mm512_ternarylogic_epi32(_mm512_shuffle_epi8(sub_high, m), c, _mm512_set1_epi8(char(0x80)), 0xF8);  // a | (b & c)
    const __m512i field = _mm512_set1_epi16(0x0780);
    a = _mm512_mask_mov_epi16(a, _mm512_testn_epi16_mask(a, field), _mm512_unpacklo_epi8(lo, hi));
    b = _mm512_mask_mov_epi16(b, _mm512_testn_epi16_mask(b, field), _mm512_unpackhi_epi8(lo, hi));
  }
};

// FP8 row r's codes as bf16 e4m3 x 2^-8 [kp] (a 64-multiple) in kFp8LaneOrder, zero padded, no
// scales (those, x 256, are on the activations). The loop holds only the conversions: the row's
// prefetches are issued by the caller.
__attribute__((target("gfni"))) void fp8_codes_row_to_bf16(const Matrix& w, int64_t r, int64_t kp, uint16_t* out) {
  static const Fp8Codes cv;
  const uint8_t* codes = w.row_ptr(r);
  for (int64_t k = 0; k < kp; k += 64) {
    const int64_t valid = std::min<int64_t>(64, w.cols - k);  // >= 1: kp is cols rounded up to 64
    const __m512i c = valid == 64 ? _mm512_loadu_si512(codes + k)
                                  : _mm512_maskz_loadu_epi8((__mmask64(1) << valid) - 1, codes + k);
    __m512i lo, hi;  // words of columns {0-7, 16-23, ...} and {8-15, 24-31, ...}
    if (cv.convert(c, lo, hi)) cv.fix(c, lo, hi);
    _mm512_storeu_si512(out + k, lo);
    _mm512_storeu_si512(out + k + 32, hi);
  }
}

// 16 FP8 codes times their block's scale x 2^120, as f32: the codes as e4m3 * 2^-120
// (fp8_avx512.h), so the product is code * scale rounded once.
inline __m512 e4m3x16_scaled(const uint8_t* p, __m512 scale120) { return _mm512_mul_ps(e4m3x16_times_2m120(p), scale120); }

// Weight row r as bf16 [kp], zero padded; FP8 and int4 (groups of whole 32-weight steps) straight
// from their codes, other formats through their float dequantizer (row: [cols] scratch).
// fp8_codes: FP8 codes without their scales (these are on the activations).
void weight_row_to_bf16(const Matrix& w, int64_t r, int64_t kp, uint16_t* out, float* row, StreamPrefetch& prefetch,
                        bool fp8_codes) {
  prefetch.advance(w.row_ptr(r + 1));  // the whole row and kStreamAhead past it: no cursor in the loops
  if (fp8_codes) {
    fp8_codes_row_to_bf16(w, r, kp, out);
    return;
  }
  if (w.dtype == DType::F8_E4M3 && w.group % 32 == 0) {
    const uint8_t* codes = w.row_ptr(r);
    const int64_t srow = r / w.group_rows;
    const ScaleRow scales(w, srow);  // [scale_cols()]
    for (int64_t k0 = 0, g = 0; k0 < kp; k0 += w.group, ++g) {
      const float scale = k0 >= w.cols ? 0.0f : scales[g];
      // Whole groups of scales below 2^7 (scale x 2^120 stays finite) take the integer conversion.
      if (k0 + w.group <= w.cols && std::fabs(scale) < 128.0f) {
        const __m512 s120 = _mm512_set1_ps(scale * 0x1p120f);
        for (int64_t k = k0; k < k0 + w.group; k += 32) {
          const __m512 lo = e4m3x16_scaled(codes + k, s120), hi = e4m3x16_scaled(codes + k + 16, s120);
          _mm512_storeu_si512(out + k, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
        }
        continue;
      }
      const __m512 s = _mm512_set1_ps(scale * 256.0f);
      for (int64_t k = k0; k < std::min(kp, k0 + w.group); k += 32) {
        _mm512_storeu_si512(out + k, e4m3x32_to_bf16(codes + k, std::clamp<int64_t>(w.cols - k, 0, 32), s));
      }
    }
    return;
  }
  if (w.dtype == DType::I4 && w.group % 32 == 0 && w.cols % 32 == 0) {
    const uint8_t* bytes = w.row_ptr(r);  // 16 bytes per 32 weights: byte i holds 2i (low) and 2i + 1
    const Int4RowGroups groups(Int4Rows(w), r);  // one row per call: its conversion dwarfs the lookup
    const __m512i nibble = _mm512_set1_epi32(15);
    for (int64_t k0 = 0, g = 0; k0 < w.cols; k0 += w.group, ++g) {
      const __m512 s = _mm512_set1_ps(groups.scale(g));
      const __m512i zu = _mm512_set1_epi32(groups.zero_u(g));
      for (int64_t k = k0; k < k0 + w.group; k += 32) {
        const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + k / 2)));
        // (u - (z + 8)) * scale in float, as the scalar dequantizer, then rounded to bf16.
        const __m512 even = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(b, nibble), zu)), s);
        const __m512 odd = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(b, 4), zu)), s);
        const __m512i e16 = _mm512_cvtepu16_epi32(reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(even)));
        const __m512i o16 = _mm512_cvtepu16_epi32(reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(odd)));
        _mm512_storeu_si512(out + k, _mm512_or_si512(e16, _mm512_slli_epi32(o16, 16)));
      }
    }
    return;
  }
  weight_format(w.dtype).dequant[int(Isa::Avx2)](w, r, 0, w.cols, row);
  row_to_bf16(row, w.cols, kp, out, nullptr);
}

// FP8 decoding (1 to 3 tokens, rows of whole 64-column steps): the codes become bf16 in registers
// as they stream, so no bf16 copy of the rows is written and read back.
// y[t][r] for MR rows of codes (stride ldw) and MT tokens (xh, xl: [MT, kp] bf16 activations x
// their block scales x 256, in the lane order): the same steps per (row, token) as tile's, on the
// same products, so the sums are bit for bit those of the converted rows. The rows go side by
// side, one token needing 8 of them (8 chains: vdpbf16ps waits 6 cycles on its accumulator, and a
// (row, token) sum is one chain, as in tile); each prefetches the next tile's row one step ahead
// (a loop-free cursor: StreamPrefetch's loop, at 64 bytes a step, cost as much as the arithmetic)
// into L2: into L1 (T0), the eight streams came from memory at 10.7-12.9 GB/s a core on Zen 4, at
// 18.0-22.6 into L2 (BM_Matvec FP8, probe 22-28).
template <int MR, int MT, bool kHiLo>
__attribute__((target("gfni"))) void fp8_stream_tile(const uint8_t* codes, int64_t ldw, const uint16_t* xh,
                                                     const uint16_t* xl, int64_t ldx, int64_t kp, float* y, int64_t ldy,
                                                     const Fp8Codes& cv) {
  constexpr int kLo = kHiLo ? MT : 0;
  __m512 acc[MR][MT], lo[MR][kLo > 0 ? kLo : 1];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < MT; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int j = 0; j < kLo; ++j) lo[i][j] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kp; k += 64) {
    __m512i a[MR], b[MR];
    for (int i = 0; i < MR; ++i) {
      const uint8_t* p = codes + size_t(i) * size_t(ldw) + size_t(k);
      prefetch_lines<_MM_HINT_T1>(p, uintptr_t(MR) * uintptr_t(ldw));  // the next tile's row i
      const __m512i c = _mm512_loadu_si512(p);
      if (cv.convert(c, a[i], b[i])) [[unlikely]]
        cv.fix(c, a[i], b[i]);
    }
    for (int half = 0; half < 2; ++half) {
      const size_t kh = size_t(k + 32 * half);
      for (int j = 0; j < MT; ++j) {
        const __m512bh xv = reinterpret_cast<__m512bh>(_mm512_loadu_si512(xh + size_t(j) * size_t(ldx) + kh));
        for (int i = 0; i < MR; ++i)
          acc[i][j] = _mm512_dpbf16_ps(acc[i][j], reinterpret_cast<__m512bh>(half ? b[i] : a[i]), xv);
      }
      for (int j = 0; j < kLo; ++j) {
        const __m512bh xlv = reinterpret_cast<__m512bh>(_mm512_loadu_si512(xl + size_t(j) * size_t(ldx) + kh));
        for (int i = 0; i < MR; ++i)
          lo[i][j] = _mm512_dpbf16_ps(lo[i][j], reinterpret_cast<__m512bh>(half ? b[i] : a[i]), xlv);
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int i = 0; i < MR; ++i) {
    __m512 v[4] = {zero, zero, zero, zero};
    for (int j = 0; j < MT; ++j) v[j] = kHiLo ? _mm512_add_ps(acc[i][j], lo[i][j < kLo ? j : 0]) : acc[i][j];
    alignas(16) float s[4];
    _mm_store_ps(s, sum4(v[0], v[1], v[2], v[3]));
    for (int j = 0; j < MT; ++j) y[size_t(j) * size_t(ldy) + size_t(i)] = s[j];
  }
}

// Rows [r0, r1) of one row block for T <= kFp8StreamMaxTokens tokens (activations as above).
template <bool kHiLo>
__attribute__((target("gfni"))) void fp8_stream_rows(const Matrix& w, int T, float* y, int64_t ldy, int64_t r0,
                                                     int64_t r1, const uint16_t* xh, const uint16_t* xl, int64_t kp) {
  static const Fp8Codes cv;
  constexpr int kMT = kTokensPerTile<kHiLo>;
  for (int t = 0; t < T; t += kMT) {
    const int mt = std::min(kMT, T - t);
    const uint16_t* xt = xh + size_t(t) * size_t(kp);
    const uint16_t* xlt = kHiLo ? xl + size_t(t) * size_t(kp) : nullptr;
    // 8 rows side by side for one token, 4 for two or three: 8 to 12 chains, in registers.
    const auto rows = [&](auto MR, auto MT) {
      constexpr int R = decltype(MR)::value, N = decltype(MT)::value;
      int64_t r = r0;
      float* yt = y + size_t(t) * size_t(ldy);
      for (; r + R <= r1; r += R) fp8_stream_tile<R, N, kHiLo>(w.row_ptr(r), w.cols, xt, xlt, kp, kp, yt + r, ldy, cv);
      for (; r < r1; ++r) fp8_stream_tile<1, N, kHiLo>(w.row_ptr(r), w.cols, xt, xlt, kp, kp, yt + r, ldy, cv);
    };
    using I = std::integral_constant<int, 1>;
    using II = std::integral_constant<int, 2>;
    using III = std::integral_constant<int, 3>;
    if (mt == 1) rows(std::integral_constant<int, 8>{}, I{});
    else if (mt == 2) rows(std::integral_constant<int, 4>{}, II{});
    else if constexpr (!kHiLo) rows(std::integral_constant<int, 4>{}, III{});
  }
}

template <bool kHiLo>
void run(const Matrix& w, int T, float* y, int64_t ldy, int64_t r0, int64_t r1, const uint16_t* xh, const uint16_t* xl,
         int64_t kp, bool fp8_codes) {
  // BF16 rows whose length is already a multiple of 32 are multiplied in place.
  const bool in_place = w.dtype == DType::BF16 && w.cols == kp;
  const int64_t chunk_rows = std::max<int64_t>(kRowsPerTile, int64_t(kChunkBytes / (2 * size_t(kp))) / kRowsPerTile * kRowsPerTile);
  thread_local std::vector<uint16_t> chunk;  // [chunk_rows, kp]
  thread_local std::vector<float> row;       // [cols]
  if (!in_place) {
    if (chunk.size() < size_t(chunk_rows * kp)) chunk.resize(size_t(chunk_rows * kp));
    if (row.size() < size_t(w.cols)) row.resize(size_t(w.cols));
  }
  // The rows are read once, converted, then used from cache: their first read streams from memory.
  StreamPrefetch prefetch(w.row_ptr(r0), w.row_ptr(r1));
  for (int64_t rc = r0; rc < r1; rc += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, r1 - rc);
    const uint16_t* wc = reinterpret_cast<const uint16_t*>(w.row_ptr(rc));
    if (!in_place) {
      for (int64_t i = 0; i < rows; ++i) weight_row_to_bf16(w, rc + i, kp, chunk.data() + size_t(i * kp), row.data(), prefetch, fp8_codes);
      wc = chunk.data();
    }
    constexpr int kMT = kTokensPerTile<kHiLo>;
    if (in_place && T <= kMT) {
      // Decoding: the rows stream from memory one after another (stream_prefetch.h).
      for (int64_t i = 0; i < rows; ++i) {
        prefetch.advance(w.row_ptr(rc + i + 1));
        tile_tokens<1, kHiLo>(T, wc + size_t(i * kp), kp, xh, xl, kp, kp, y + size_t(rc + i), ldy);
      }
      continue;
    }
    for (int tb = 0; tb < T; tb += kTokenBlock) {
      const int te = std::min(T, tb + kTokenBlock);
      for (int64_t i = 0; i < rows; i += kRowsPerTile) {
        const uint16_t* wi = wc + size_t(i * kp);
        float* yi = y + size_t(rc + i);
        for (int t = tb; t < te; t += kMT) {
          const int mt = std::min(kMT, te - t);
          const uint16_t* xt = xh + size_t(t) * size_t(kp);
          const uint16_t* xlt = kHiLo ? xl + size_t(t) * size_t(kp) : nullptr;
          float* yt = yi + size_t(t) * size_t(ldy);
          if (rows - i >= kRowsPerTile) {
            tile_tokens<kRowsPerTile, kHiLo>(mt, wi, kp, xt, xlt, kp, kp, yt, ldy);
          } else {
            for (int64_t ii = i; ii < rows; ++ii)
              tile_tokens<1, kHiLo>(mt, wc + size_t(ii * kp), kp, xt, xlt, kp, kp, yt + (ii - i), ldy);
          }
        }
      }
    }
  }
}

}  // namespace

void gemm_bf16_rows_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1,
                           Bf16Terms terms) {
  const bool fp8_codes = fp8_scales_activations(w, T);
  // FP8 codes go in whole 64-column steps, their words (and the activations) in kFp8LaneOrder.
  const int64_t kp = fp8_codes ? (w.cols + 63) / 64 * 64 : padded_cols(w.cols);
  const bool hilo = terms == Bf16Terms::HiLo;
  thread_local std::vector<uint16_t> xh, xl;  // [T, kp] each
  if (xh.size() < size_t(T) * size_t(kp)) xh.resize(size_t(T) * size_t(kp));
  if (hilo && xl.size() < size_t(T) * size_t(kp)) xl.resize(size_t(T) * size_t(kp));
  const auto product = [&](int64_t a, int64_t b) {
    if (hilo) run<true>(w, T, y, ldy, a, b, xh.data(), xl.data(), kp, fp8_codes);
    else run<false>(w, T, y, ldy, a, b, xh.data(), nullptr, kp, fp8_codes);
  };
  if (!fp8_codes) {
    for (int t = 0; t < T; ++t)
      row_to_bf16(x + size_t(t) * size_t(w.cols), w.cols, kp, xh.data() + size_t(t) * size_t(kp),
                  hilo ? xl.data() + size_t(t) * size_t(kp) : nullptr);
    product(r0, r1);
    return;
  }
  // FP8, few tokens: per block of rows (of those this call covers), the activations times that
  // row block's scales (in the same pass that rounds them to bf16), then the block's rows as bare
  // codes (e4m3 x 2^-8: the scales x 256). Decoding streams the codes where it can.
  const bool stream = fp8_streams(w, T);
  thread_local std::vector<float> column_scale;  // [cols]: each column's scale in this row block
  if (column_scale.size() < size_t(w.cols)) column_scale.resize(size_t(w.cols));
  for (int64_t a = r0; a < r1;) {
    const int64_t srow = a / w.group_rows, b = std::min(r1, (srow + 1) * w.group_rows);
    const ScaleRow scales(w, srow);  // [scale_cols()]
    for (int64_t k0 = 0, g = 0; k0 < w.cols; k0 += w.group, ++g)
      std::fill(column_scale.begin() + k0, column_scale.begin() + std::min(w.cols, k0 + w.group), scales[g] * 256.0f);
    for (int t = 0; t < T; ++t) {
      uint16_t* xt = xh.data() + size_t(t) * size_t(kp);
      uint16_t* xlt = hilo ? xl.data() + size_t(t) * size_t(kp) : nullptr;
      row_to_bf16(x + size_t(t) * size_t(w.cols), w.cols, kp, xt, xlt, column_scale.data());
      to_fp8_lane_order(xt, kp);
      if (xlt) to_fp8_lane_order(xlt, kp);
    }
    if (stream && hilo) fp8_stream_rows<true>(w, T, y, ldy, a, b, xh.data(), xl.data(), kp);
    else if (stream) fp8_stream_rows<false>(w, T, y, ldy, a, b, xh.data(), nullptr, kp);
    else product(a, b);
    a = b;
  }
}

}  // namespace qnext
