// Scalar twin of the argmax kernels, and the choice between them.
#include "kernels/argmax.h"

#include <cmath>

#include "core/cpu.h"

namespace qnext {

int64_t argmax_scalar(const float* x, int64_t n) {
  int64_t best = 0;
  float best_x = -INFINITY;
  for (int64_t i = 0; i < n; ++i)
    if (x[i] > best_x) best_x = x[i], best = i;
  return best;
}

int64_t argmax(const float* x, int64_t n) {
  if (active_isa() >= Isa::Avx2) return argmax_avx2(x, n);
  return argmax_scalar(x, n);
}

}  // namespace qnext
