#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu.h"
#include "kernels/dot.h"

namespace qnext {

// One query, blocks of 64 keys with an online softmax (the running maximum and denominator are
// rescaled when a block raises the maximum).
void attention_head(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                    float* out) {
  constexpr int kBlock = 64;
  float p[kBlock];
  float running_max = -std::numeric_limits<float>::infinity(), denom = 0;
  std::fill_n(out, D, 0.0f);
  for (int b = 0; b < L; b += kBlock) {
    const int n = std::min(kBlock, L - b);
    float block_max = running_max;
    for (int j = 0; j < n; ++j) {
      p[j] = dot8(q, K + size_t(b + j) * kv_stride, D) * scale;
      block_max = std::max(block_max, p[j]);
    }
    if (block_max > running_max) {
      const float r = std::exp(running_max - block_max);
      denom *= r;
      for (int d = 0; d < D; ++d) out[d] *= r;
      running_max = block_max;
    }
    for (int j = 0; j < n; ++j) {
      p[j] = std::exp(p[j] - running_max);
      denom += p[j];
      const float* v = V + size_t(b + j) * kv_stride;
      for (int d = 0; d < D; ++d) out[d] += p[j] * v[d];
    }
  }
  for (int d = 0; d < D; ++d) out[d] /= denom;
}

// The scalar twin: each query on its own.
void attention_queries_scalar(const float* const* q, const int* n_keys, int n, const float* K, const float* V,
                              size_t kv_stride, int D, float scale, float* const* out) {
  for (int i = 0; i < n; ++i) attention_head(q[i], K, V, kv_stride, n_keys[i], D, scale, out[i]);
}

void attention_queries(const float* const* q, const int* n_keys, int n, const float* K, const float* V,
                       size_t kv_stride, int D, float scale, float* const* out) {
  if (active_isa() >= Isa::Avx2 && D % 8 == 0) attention_queries_avx2(q, n_keys, n, K, V, kv_stride, D, scale, out);
  else attention_queries_scalar(q, n_keys, n, K, V, kv_stride, D, scale, out);
}

}  // namespace qnext
