// The body of the attention kernel, compiled once per ISA (see delta_rule_body.h for the scheme).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/attention.h"

namespace qnext {
namespace {

inline void attention_head_body(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                    float* out) {
  constexpr int kBlock = 64;
  float scores[kBlock];
  float running_max = -std::numeric_limits<float>::infinity();
  float denom = 0;
  for (int d = 0; d < D; ++d) out[d] = 0;
  for (int b = 0; b < L; b += kBlock) {
    const int n = std::min(kBlock, L - b);
    float block_max = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < n; ++j) {
      const float* k = K + size_t(b + j) * kv_stride;
      float s = 0;
      for (int d = 0; d < D; ++d) s += q[d] * k[d];
      scores[j] = s * scale;
      block_max = std::max(block_max, scores[j]);
    }
    // Rescale what was accumulated under the old maximum.
    if (block_max > running_max) {
      const float r = std::exp(running_max - block_max);
      denom *= r;
      for (int d = 0; d < D; ++d) out[d] *= r;
      running_max = block_max;
    }
    for (int j = 0; j < n; ++j) {
      const float p = std::exp(scores[j] - running_max);
      denom += p;
      const float* v = V + size_t(b + j) * kv_stride;
      for (int d = 0; d < D; ++d) out[d] += p * v[d];
    }
  }
  const float inv = 1.0f / denom;
  for (int d = 0; d < D; ++d) out[d] *= inv;
}

}  // namespace
}  // namespace qnext
