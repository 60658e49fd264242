// AVX2 FP8 kernels (scalar twins in fp8.cpp). e4m3 -> float without a table: the code's 7 low bits
// shifted left by 7 are the f16 of e4m3 / 256 (normal and subnormal alike: f16 has 8 more exponent
// bias and 7 more mantissa bits), the sign moves to bit 15, and F16C widens 8 at a time; the 256
// goes into the scale (exact: a power of two).
#include <immintrin.h>

#include <algorithm>

#include "kernels/dequant_rows_avx2.h"
#include "kernels/fp8.h"

namespace qnext {

static inline __m256 e4m3x8_div256(const uint8_t* p) {
  const __m128i h = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m128i mag = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7f)), 7);
  const __m128i sign = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi16(0x80)), 8);
  return _mm256_cvtph_ps(_mm_or_si128(mag, sign));
}

void dequant_fp8_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  const uint8_t* row = w.row_ptr(r);
  const int64_t srow = r / w.group_rows, end = k0 + n;
  int64_t k = k0;
  while (k < end) {
    const int64_t g = k / w.group, gend = std::min(end, (g + 1) * w.group);
    const float s = scale_at(w, srow, g);
    const __m256 s256 = _mm256_set1_ps(s * 256.0f);
    for (; k + 8 <= gend; k += 8) _mm256_storeu_ps(out + (k - k0), _mm256_mul_ps(e4m3x8_div256(row + k), s256));
    for (; k < gend; ++k) out[k - k0] = e4m3_to_f32(row[k]) * s;
  }
}

void rows_fp8_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  dequant_rows::rows<dequant_fp8_avx2>(w, x, T, y, ldy, r0, r1);
}

}  // namespace qnext
