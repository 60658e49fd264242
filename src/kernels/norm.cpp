#include "kernels/norm.h"

#include <cmath>

#include "kernels/silu.h"

namespace qnext {

static float inv_rms(const float* x, int n, float eps) {
  double ss = 0;  // double: long rows of large activations lose nothing
  for (int i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  return float(1.0 / std::sqrt(ss / n + eps));
}

void rms_norm(const float* x, const float* scale, int n, float eps, float* y) {
  const float r = inv_rms(x, n, eps);
  for (int i = 0; i < n; ++i) y[i] = x[i] * r * scale[i];
}

void rms_norm_gated(const float* x, const float* z, const float* w, int n, float eps, float* y) {
  const float r = inv_rms(x, n, eps);
  for (int i = 0; i < n; ++i) y[i] = x[i] * r * w[i];
  silu_mul(z, y, n, y);  // y = (x r w) silu(z): the same float as x r w silu(z), products commute
}

void l2_normalize(float* x, int n, float eps) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float r = float(1.0 / std::sqrt(ss + eps));
  for (int i = 0; i < n; ++i) x[i] *= r;
}

}  // namespace qnext
