// AVX2 argmax (kernels/argmax.h; scalar twin in argmax.cpp): the maximum over 8 lanes (max_ps
// keeps its second operand when the first is NaN, so NaNs drop out), then the first index holding
// it (== treats -0 and +0 as equal, as the twin's > does).
#include <immintrin.h>

#include <cmath>

#include "kernels/argmax.h"

namespace qnext {

int64_t argmax_avx2(const float* x, int64_t n) {
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(m0, m1));
  float m = lanes[0];
  for (float v : lanes)
    if (m < v) m = v;
  for (int64_t j = i; j < n; ++j)
    if (m < x[j]) m = x[j];
  if (m == -INFINITY) return 0;  // nothing above -inf (all NaN or -inf)
  const __m256 mv = _mm256_set1_ps(m);
  for (i = 0; i + 8 <= n; i += 8)
    if (const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), mv, _CMP_EQ_OQ))) return i + __builtin_ctz(unsigned(hit));
  for (; i < n; ++i)
    if (x[i] == m) return i;
  return 0;  // not reached: m is one of x
}

}  // namespace qnext
