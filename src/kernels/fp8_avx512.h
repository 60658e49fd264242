// The AVX-512 FP8 code conversion shared by the row kernel (fp8_avx512.cpp) and the bf16 GEMM's
// panels (gemm_bf16_avx512.cpp). Include only from files built for AVX-512 (internal linkage).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace qnext {

// 16 codes as floats e4m3 * 2^-120, exactly: sign-extended to 32 bits and shifted left by 20, a
// code's 4 exponent and 3 mantissa bits land where an f32's low exponent and high mantissa bits
// are (the sign copies in bits 27-30 masked off), so the f32 exponent is the e4m3 one minus 120
// and subnormal codes become f32 subnormals of the same digits. Integer ops only: no f16 conversion.
static inline __m512 e4m3x16_times_2m120(const uint8_t* p) {
  const __m512i d = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(d, 20), _mm512_set1_epi32(int(0x87F00000u))));
}

}  // namespace qnext
