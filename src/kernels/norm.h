// RMS normalizations. Qwen3-Next's zero-centered RMSNorm stores w and uses (1 + w): the loader
// folds that into `scale`, so every norm here is plain y = x / rms(x) * scale.
#pragma once

namespace qnext {

// y[n] = x[n] * rsqrt(mean(x^2) + eps) * scale[n]   (y may alias x)
void rms_norm(const float* x, const float* scale, int n, float eps, float* y);

// The DeltaNet output norm, per value head: y = x * rsqrt(mean(x^2) + eps) * w * silu(z).
void rms_norm_gated(const float* x, const float* z, const float* w, int n, float eps, float* y);

// x[n] /= sqrt(sum(x^2) + eps)
void l2_normalize(float* x, int n, float eps);

}  // namespace qnext
