// The body of the attention kernel, compiled once per ISA (see delta_rule_body.h for the scheme).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/attention.h"
#include "kernels/dot.h"

namespace qnext {
namespace {

// G query heads that share one key/value head (GQA): every key and value row is loaded once for
// all G heads, in blocks of 64 keys with an online softmax per head.
inline void attention_heads_body(const float* q, size_t q_stride, int G, const float* K, const float* V,
                                 size_t kv_stride, int L, int D, float scale, float* out, size_t out_stride) {
  constexpr int kBlock = 64;
  float scores[kMaxGroupHeads][kBlock];
  float running_max[kMaxGroupHeads], denom[kMaxGroupHeads];
  for (int h = 0; h < G; ++h) {
    running_max[h] = -std::numeric_limits<float>::infinity();
    denom[h] = 0;
    for (int d = 0; d < D; ++d) out[h * out_stride + d] = 0;
  }
  for (int b = 0; b < L; b += kBlock) {
    const int n = std::min(kBlock, L - b);
    for (int j = 0; j < n; ++j) {
      const float* k = K + size_t(b + j) * kv_stride;
      for (int h = 0; h < G; ++h) {
        const float* qh = q + h * q_stride;
        scores[h][j] = dot8(qh, k, D) * scale;
      }
    }
    for (int h = 0; h < G; ++h) {
      float block_max = running_max[h];
      for (int j = 0; j < n; ++j) block_max = std::max(block_max, scores[h][j]);
      // Rescale what was accumulated under the old maximum.
      if (block_max > running_max[h]) {
        const float r = std::exp(running_max[h] - block_max);
        denom[h] *= r;
        for (int d = 0; d < D; ++d) out[h * out_stride + d] *= r;
        running_max[h] = block_max;
      }
      for (int j = 0; j < n; ++j) {
        scores[h][j] = std::exp(scores[h][j] - running_max[h]);
        denom[h] += scores[h][j];
      }
    }
    for (int j = 0; j < n; ++j) {
      const float* v = V + size_t(b + j) * kv_stride;
      for (int h = 0; h < G; ++h) {
        const float p = scores[h][j];
        float* o = out + h * out_stride;
        for (int d = 0; d < D; ++d) o[d] += p * v[d];
      }
    }
  }
  for (int h = 0; h < G; ++h) {
    const float inv = 1.0f / denom[h];
    for (int d = 0; d < D; ++d) out[h * out_stride + d] *= inv;
  }
}

}  // namespace
}  // namespace qnext
