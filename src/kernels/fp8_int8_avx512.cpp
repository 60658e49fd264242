// FP8 rows into int8 blocks for the VNNI panel GEMM (prefill; scalar twin fp8_row_to_int8_scalar in
// fp8.cpp, the rule in fp8.h). Per segment of up to 128 codes: the largest magnitude by byte maxima
// (the codes' low 7 bits order as their magnitudes), its table of 128 integers in two registers, then
// one vpermt2b per 64 codes (it reads only the index's low 7 bits, so the sign bit needs no mask)
// and a masked negate where the sign bit is set: about 45 instructions per 128 weights one segment
// at a time, ~27 four at a time (their maxima reduced together); the GEMM then multiplies the
// rows as Q8_0's (flipped to w + 128: gemm_panels.h). Built with the AVX-512 flags; the functions add VBMI and run only
// where the CPU has it (fp8_int8_fits).
#include <immintrin.h>

#include <algorithm>

#include "kernels/fp8.h"
#include "kernels/quant.h"

namespace qnext {

namespace {

inline __mmask64 first_bytes(int64_t n) { return n >= 64 ? ~__mmask64(0) : n <= 0 ? 0 : (__mmask64(1) << n) - 1; }

// The largest byte of a and b.
inline int largest_byte(__m512i a, __m512i b) {
  const __m512i m512 = _mm512_max_epu8(a, b);
  const __m256i m256 = _mm256_max_epu8(_mm512_castsi512_si256(m512), _mm512_extracti64x4_epi64(m512, 1));
  __m128i m = _mm_max_epu8(_mm256_castsi256_si128(m256), _mm256_extracti128_si256(m256, 1));
  m = _mm_max_epu8(m, _mm_srli_si128(m, 8));
  m = _mm_max_epu8(m, _mm_srli_si128(m, 4));
  m = _mm_max_epu8(m, _mm_srli_si128(m, 2));
  m = _mm_max_epu8(m, _mm_srli_si128(m, 1));
  return _mm_cvtsi128_si32(m) & 0xff;
}

// A segment's 128 codes (c0, c1) as integers under its table (128 entries), stored to q's m0 / m1
// bytes.
__attribute__((target("avx512vbmi"))) inline void lookup_segment(__m512i c0, __m512i c1, const int8_t* table,
                                                                 __mmask64 m0, __mmask64 m1, int8_t* q) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i t0 = _mm512_load_si512(table), t1 = _mm512_load_si512(table + 64);
  __m512i q0 = _mm512_permutex2var_epi8(t0, c0, t1), q1 = _mm512_permutex2var_epi8(t0, c1, t1);
  q0 = _mm512_mask_sub_epi8(q0, _mm512_movepi8_mask(c0), zero, q0);
  q1 = _mm512_mask_sub_epi8(q1, _mm512_movepi8_mask(c1), zero, q1);
  _mm512_mask_storeu_epi8(q, m0, q0);
  _mm512_mask_storeu_epi8(q + 64, m1, q1);
}

// Codes [k, k + 128) under their segment's table, masked to the segment's m0 / m1 bytes.
__attribute__((target("avx512vbmi"))) inline int convert_segment(const uint8_t* codes, __mmask64 m0, __mmask64 m1,
                                                                  const int8_t* tables, int8_t* q) {
  const __m512i magnitude = _mm512_set1_epi8(0x7f);
  const __m512i c0 = _mm512_maskz_loadu_epi8(m0, codes), c1 = _mm512_maskz_loadu_epi8(m1, codes + 64);
  const int shift = fp8_segment_shift(largest_byte(_mm512_and_si512(c0, magnitude), _mm512_and_si512(c1, magnitude)));
  lookup_segment(c0, c1, tables + 128 * shift, m0, m1, q);
  return shift;
}

// Four whole segments [0, 512) of a row with F32 scales in groups of 128 (the official releases'
// blocks): the four largest magnitudes reduced together (128-bit lanes folded across the four,
// then within each lane), S and the block scales computed as vectors. About 27 instructions per
// 128 weights, against ~45 one segment at a time.
__attribute__((target("avx512vbmi"))) inline void convert_four_segments(const uint8_t* codes, const float* scales,
                                                                        const int8_t* tables, int8_t* q, float* d) {
  const __m512i magnitude = _mm512_set1_epi8(0x7f), one = _mm512_set1_epi32(1);
  __m512i c[8];  // [segment * 2 + half]: 64 codes each
  __m512i m[4];  // [segment]: byte maxima of its two halves
  for (int i = 0; i < 8; ++i) c[i] = _mm512_loadu_si512(codes + 64 * i);
  for (int s = 0; s < 4; ++s) m[s] = _mm512_max_epu8(_mm512_and_si512(c[2 * s], magnitude), _mm512_and_si512(c[2 * s + 1], magnitude));
  // 128-bit lanes: [a0 a1 a2 a3], [b0 ..] -> [a0|a2, a1|a3, b0|b2, b1|b3] -> [a, b, c, d] (| = max).
  const __m512i ab = _mm512_max_epu8(_mm512_shuffle_i64x2(m[0], m[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_i64x2(m[0], m[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512i cd = _mm512_max_epu8(_mm512_shuffle_i64x2(m[2], m[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_i64x2(m[2], m[3], _MM_SHUFFLE(3, 2, 3, 2)));
  __m512i x = _mm512_max_epu8(_mm512_shuffle_i64x2(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_i64x2(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
  x = _mm512_max_epu8(x, _mm512_bsrli_epi128(x, 8));
  x = _mm512_max_epu8(x, _mm512_bsrli_epi128(x, 4));
  x = _mm512_max_epu8(x, _mm512_bsrli_epi128(x, 2));
  x = _mm512_max_epu8(x, _mm512_bsrli_epi128(x, 1));  // byte 0 of lane s: segment s's largest
  // S = max(e, 1) - 1 from the exponent field (bits 3-6 of dword 0 of each lane; the mask drops
  // what the shift brought down from byte 1), gathered into 4 dwords.
  const __m512i e = _mm512_and_si512(_mm512_srli_epi32(x, 3), _mm512_set1_epi32(0x0f));
  const __m512i s_all = _mm512_sub_epi32(_mm512_max_epi32(e, one), one);
  const __m128i shifts = _mm512_castsi512_si128(_mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), s_all));
  // d = scale * 2^(S - 12): the power of two built as float bits (exponent S - 12 + 127), the same
  // product fp8_int8_block_scale rounds; each segment's d for its 4 blocks.
  const __m128 d4 = _mm_mul_ps(_mm_loadu_ps(scales), _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(shifts, _mm_set1_epi32(115)), 23)));
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  _mm512_storeu_ps(d, _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(d4)));
  alignas(16) int32_t shift[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(shift), shifts);
  const __mmask64 all = ~__mmask64(0);
  for (int s = 0; s < 4; ++s) lookup_segment(c[2 * s], c[2 * s + 1], tables + 128 * shift[s], all, all, q + 128 * s);
}

}  // namespace

// Walks the row four segments at a time where it can, the rest group by group (no division per
// segment: as the loop's carried value, one had kept the segments from overlapping).
__attribute__((target("avx512vbmi"))) void fp8_row_to_int8_avx512(const Matrix& w, int64_t r, int8_t* q, float* d) {
  const uint8_t* row = w.row_ptr(r);
  const ScaleRow scales(w, r / w.group_rows);  // [scale_cols()]
  const int8_t* tables = fp8_int8_tables();    // [15][128]
  int64_t k = 0;
  if (w.group == 128 && w.scale_dtype == DType::F32) {
    const float* s32 = reinterpret_cast<const float*>(scales.first());
    for (; k + 512 <= w.cols; k += 512) convert_four_segments(row + k, s32 + k / 128, tables, q + k, d + k / kQuantBlock);
  }
  const __mmask64 all = ~__mmask64(0);
  for (int64_t k0 = k, g = k / w.group; k0 < w.cols; k0 += w.group, ++g) {
    const int64_t end = std::min(w.cols, k0 + w.group);
    const float scale = scales[g];
    for (k = k0; k + 128 <= end; k += 128) {
      const int shift = convert_segment(row + k, all, all, tables, q + k);
      _mm_storeu_ps(d + k / kQuantBlock, _mm_set1_ps(fp8_int8_block_scale(scale, shift)));
    }
    if (k < end) {
      const int shift = convert_segment(row + k, first_bytes(end - k), first_bytes(end - k - 64), tables, q + k);
      for (int64_t b = k / kQuantBlock; b < end / kQuantBlock; ++b) d[b] = fp8_int8_block_scale(scale, shift);
    }
  }
}

}  // namespace qnext
