// AVX2 int4 kernels (scalar twins in int4.cpp): one int32 word is 8 weights; a broadcast and a
// variable shift put nibble j in lane j.
#include <immintrin.h>

#include <algorithm>

#include "kernels/dequant_rows_avx2.h"
#include "kernels/int4.h"

namespace qnext {

void dequant_int4_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  const uint32_t* words = reinterpret_cast<const uint32_t*>(w.row_ptr(r));
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i mask = _mm256_set1_epi32(15);
  const int64_t end = k0 + n;
  int64_t k = k0;
  while (k < end) {
    const int64_t g = k / w.group, gend = std::min(end, (g + 1) * w.group);
    const float s = scale_at(w, r, g);
    const int zu = int4_zero_u(w, r, g);
    const __m256 sv = _mm256_set1_ps(s), zv = _mm256_set1_ps(float(zu));
    if (k % 8 == 0)
      for (; k + 8 <= gend; k += 8) {
        const __m256i u = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(words[k / 8])), shifts), mask);
        _mm256_storeu_ps(out + (k - k0), _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(u), zv), sv));
      }
    for (; k < gend; ++k) out[k - k0] = float(int((words[k / 8] >> (4 * (k % 8))) & 15) - zu) * s;
  }
}

void rows_int4_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  dequant_rows::rows<dequant_int4_avx2>(w, x, T, y, ldy, r0, r1);
}

}  // namespace qnext
