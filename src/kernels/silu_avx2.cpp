// SiLU 8 lanes at a time, as the scalar twin computes it: x / (1 + e), e = exp(-x) rounded to float.
// The exp runs in double, 4 lanes per half: e^v = 2^k e^r with k = round(v / ln 2), |r| <= ln2 / 2,
// e^r by its Taylor series to r^11 (relative error ~1e-14), then one rounding to float: the float
// nearest e^v, which is std::exp's but where the libm's expf rounds the other way (a few inputs in
// 10^5), so the model's activations are those of the scalar path, not a few ulp off.
#include <immintrin.h>

#include "kernels/silu.h"

namespace qnext {

namespace {

// e^v for 4 floats, in double; v below -110 as -110 (the float result 0), above 100 as 100 (inf).
inline __m128 exp4(__m128 vf) {
  // max / min return their second operand when one is NaN: the clamp keeps a NaN as it is.
  __m256d v = _mm256_cvtps_pd(vf);
  v = _mm256_min_pd(_mm256_set1_pd(100.0), _mm256_max_pd(_mm256_set1_pd(-110.0), v));
  const __m256d k = _mm256_round_pd(_mm256_mul_pd(v, _mm256_set1_pd(1.4426950408889634)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(0.6931471805599453), v);
  __m256d p = _mm256_set1_pd(1.0 / 39916800.0);  // 1 / 11!
  const double inv_fact[11] = {1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
                               1.0 / 24.0,      1.0 / 6.0,      0.5,            1.0,          1.0};
  for (double c : inv_fact) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(c));
  // 2^k from its exponent bits (k in [-159, 144]: a normal double).
  const __m256i k64 = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k));
  const __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(k64, _mm256_set1_epi64x(1023)), 52);
  return _mm256_cvtpd_ps(_mm256_mul_pd(p, _mm256_castsi256_pd(bits)));
}

inline __m256 silu8(__m256 x) {
  const __m256 v = _mm256_sub_ps(_mm256_setzero_ps(), x);
  const __m256 e = _mm256_set_m128(exp4(_mm256_extractf128_ps(v, 1)), exp4(_mm256_castps256_ps128(v)));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

}  // namespace

void silu_mul_avx2(const float* x, const float* m, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 s = silu8(_mm256_loadu_ps(x + i));
    if (m) s = _mm256_mul_ps(s, _mm256_loadu_ps(m + i));
    _mm256_storeu_ps(out + i, s);
  }
  if (i == n) return;
  // The tail through the same lanes, so a value's result does not depend on where it sits.
  alignas(32) float xs[8] = {}, ms[8] = {};
  for (int64_t j = i; j < n; ++j) xs[j - i] = x[j], ms[j - i] = m ? m[j] : 1.0f;
  __m256 s = silu8(_mm256_load_ps(xs));
  if (m) s = _mm256_mul_ps(s, _mm256_load_ps(ms));
  _mm256_store_ps(xs, s);
  for (int64_t j = i; j < n; ++j) out[j] = xs[j - i];
}

}  // namespace qnext
