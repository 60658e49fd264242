// Scalar twin of the SiLU kernels, and the choice between them.
#include "kernels/silu.h"

#include <cmath>

#include "core/cpu.h"

namespace qnext {

void silu_mul_scalar(const float* x, const float* m, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = x[i] / (1.0f + std::exp(-x[i]));
    out[i] = m ? s * m[i] : s;
  }
}

void silu_mul(const float* x, const float* m, int64_t n, float* out) {
  if (active_isa() >= Isa::Avx2) return silu_mul_avx2(x, m, n, out);
  silu_mul_scalar(x, m, n, out);
}

}  // namespace qnext
