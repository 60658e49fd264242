// AVX-512 argmax (kernels/argmax.h; scalar twin in argmax.cpp): the maximum over 16 lanes (max_ps
// keeps its second operand when the first is NaN, so NaNs drop out), then the first index holding
// it (== treats -0 and +0 as equal, as the twin's > does).
#include <immintrin.h>

#include <cmath>

#include "kernels/argmax.h"

namespace qnext {

int64_t argmax_avx512(const float* x, int64_t n) {
  __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
    m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
  }
  float m = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
  for (int64_t j = i; j < n; ++j)
    if (m < x[j]) m = x[j];
  if (m == -INFINITY) return 0;  // nothing above -inf (all NaN or -inf)
  const __m512 mv = _mm512_set1_ps(m);
  for (i = 0; i + 16 <= n; i += 16)
    if (const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), mv, _CMP_EQ_OQ)) return i + __builtin_ctz(hit);
  for (; i < n; ++i)
    if (x[i] == m) return i;
  return 0;  // not reached: m is one of x
}

}  // namespace qnext
