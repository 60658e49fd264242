// AVX2 FP8 kernels (scalar twins in fp8.cpp). e4m3 -> float without a table: the code's 7 low bits
// shifted left by 7 are the f16 of e4m3 / 256 (normal and subnormal alike: f16 has 8 more exponent
// bias and 7 more mantissa bits), the sign moves to bit 15, and F16C widens 8 at a time; the 256
// goes into the scale (exact: a power of two). The row product of the published layout (128 x 128
// blocks) takes the codes with integer ops instead (RowG128).
#include <immintrin.h>

#include <algorithm>

#include "kernels/dequant_rows_avx2.h"
#include "kernels/fp8.h"
#include "kernels/fp8_rows.h"
#include "kernels/simd_avx2.h"
#include "kernels/stream_prefetch.h"

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

namespace {

// 8 codes as floats e4m3 * 2^-120, exactly, with integer ops (as fp8_avx512.h's
// e4m3x16_times_2m120): sign-extended, shifted left by 20, the sign copies in bits 27-30 masked off.
inline __m256 e4m3x8_times_2m120(const uint8_t* p) {
  const __m256i d = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(d, 20), _mm256_set1_epi32(int(0x87F00000u))));
}

// Row r of the published layout (128 x 128 blocks, rows a whole number of blocks) for TT tokens:
// each 128-weight group in straight steps of 8 over kChains chains per token, then its scale.
// xs: the pass's activations x 2^64 [TT, cols]; s56: the row block's scales x 2^56.
template <int TT>
struct RowG128 {
  static void run(const Matrix& w, const float* xs, float* y, int64_t ldy, int64_t r, int t0, const float* s56,
                  StreamPrefetch& prefetch) {
    constexpr int kChains = TT <= 2 ? 4 : 2;  // 16 ymm registers: accumulators and totals must fit
    const uint8_t* row = w.row_ptr(r);
    const int64_t n = w.cols;
    __m256 total[TT];
    for (int j = 0; j < TT; ++j) total[j] = _mm256_setzero_ps();
    for (int64_t k0 = 0, g = 0; k0 < n; k0 += 128, ++g) {
      prefetch.advance(row + k0 + 128);
      __m256 acc[TT][kChains];
      for (int j = 0; j < TT; ++j)
        for (int c = 0; c < kChains; ++c) acc[j][c] = _mm256_setzero_ps();
#pragma GCC unroll 16
      for (int step = 0; step < 16; ++step) {
        const __m256 ws = e4m3x8_times_2m120(row + k0 + 8 * step);
        for (int j = 0; j < TT; ++j)
          acc[j][step % kChains] = _mm256_fmadd_ps(
              ws, _mm256_loadu_ps(xs + size_t(j) * size_t(n) + size_t(k0 + 8 * step)), acc[j][step % kChains]);
      }
      const __m256 s = _mm256_set1_ps(s56[g]);
      for (int j = 0; j < TT; ++j) {
        __m256 sum = acc[j][0];
        for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[j][c]);
        total[j] = _mm256_fmadd_ps(sum, s, total[j]);
      }
    }
    for (int j = 0; j < TT; ++j) y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = hsum_avx2(total[j]);
  }
};


}  // namespace

void rows_fp8_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (fp8_rows::fits(w)) fp8_rows::rows<RowG128, dequant_rows::rows<dequant_fp8_avx2>>(w, x, T, y, ldy, r0, r1);
  else dequant_rows::rows<dequant_fp8_avx2>(w, x, T, y, ldy, r0, r1);
}

}  // namespace qnext
