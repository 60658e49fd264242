#include "kernels/rope.h"

namespace qnext {

void rope_apply(float* x, int rot_dim, const float* cos_sin) {
  const int half = rot_dim / 2;
  const float* c = cos_sin;
  const float* s = cos_sin + half;
  for (int i = 0; i < half; ++i) {
    const float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * c[i] - x2 * s[i];
    x[i + half] = x2 * c[i] + x1 * s[i];
  }
}

}  // namespace qnext
