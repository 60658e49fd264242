// Pieces shared by the AVX2 and AVX-512 int8 K-quant kernels (ggml_blocks_q8_avx2.cpp,
// ggml_blocks_q8_avx512.cpp): include only from those files (SSSE3 intrinsics; internal linkage).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace qnext {
namespace {

// Q4_K / Q5_K: the 6-bit scales and mins of the 8 sub-blocks (k4_scale_min) as 16 bytes
// [sc 0..7 | m 0..7], from the 12 scale bytes at s (16 bytes read: the block goes on after them).
// Low bits: sc 0-3 = s[0-3] & 63, sc 4-7 = s[8-11] & 15, m 0-3 = s[4-7] & 63, m 4-7 = s[8-11] >> 4;
// high 2 bits of sc 4-7 / m 4-7: bits 6-7 of s[0-3] / s[4-7].
inline __m128i k4_scale_bytes(const uint8_t* s) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
  const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
  const __m128i low = _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
  const __m128i nib = _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
  const __m128i high = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30));
  return _mm_or_si128(_mm_or_si128(low, nib), high);
}

}  // namespace
}  // namespace qnext
