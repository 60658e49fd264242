#include "kernels/attention.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/cpu.h"
#include "kernels/kv_rows.h"

namespace qnext {
namespace {

// One query, blocks of 64 keys with an online softmax (the running maximum and denominator are
// rescaled when a block raises the maximum). stride: rows apart, in E (a Q8_0 row: D / 32 blocks).
template <typename E>
void attention_head_of(const float* q, const E* K, const E* V, size_t stride, int L, int D, float scale,
                       float* out) {
  constexpr int kBlock = 64;
  float p[kBlock];
  float running_max = -std::numeric_limits<float>::infinity(), denom = 0;
  std::fill_n(out, D, 0.0f);
  for (int b = 0; b < L; b += kBlock) {
    const int n = std::min(kBlock, L - b);
    float block_max = running_max;
    for (int j = 0; j < n; ++j) {
      const E* k = K + size_t(b + j) * stride;
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // eight partial sums, as the SIMD kernels keep
      for (int d = 0; d < D; ++d) part[d % 8] += q[d] * kv_element(k, d);
      p[j] = (((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]))) * scale;
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
      const E* v = V + size_t(b + j) * stride;
      for (int d = 0; d < D; ++d) out[d] += p[j] * kv_element(v, d);
    }
  }
  for (int d = 0; d < D; ++d) out[d] /= denom;
}

}  // namespace

void attention_head(const float* q, const KvHead& kv, int L, int D, float scale, float* out) {
  switch (kv.type) {
    case DType::F16:
      return attention_head_of(q, static_cast<const uint16_t*>(kv.k), static_cast<const uint16_t*>(kv.v), kv.stride, L,
                               D, scale, out);
    case DType::Q8_0:
      assert(D % kQuantBlock == 0 && kv.stride % kQuantBlock == 0);
      return attention_head_of(q, static_cast<const BlockQ8_0*>(kv.k), static_cast<const BlockQ8_0*>(kv.v),
                               kv.stride / kQuantBlock, L, D, scale, out);
    default:
      return attention_head_of(q, static_cast<const float*>(kv.k), static_cast<const float*>(kv.v), kv.stride, L, D,
                               scale, out);
  }
}

// The scalar twin: each query on its own.
void attention_queries_scalar(const float* const* q, const int* n_keys, int n, const KvHead& kv, int D, float scale,
                              float* const* out) {
  for (int i = 0; i < n; ++i) attention_head(q[i], kv, n_keys[i], D, scale, out[i]);
}

int start_queries(const int* n_keys, int n, int D, float* running_max, float* denom, float* const* out) {
  int L = 0;
  for (int i = 0; i < n; ++i) {
    L = std::max(L, n_keys[i]);
    running_max[i] = -std::numeric_limits<float>::infinity();
    denom[i] = 0;
    std::fill_n(out[i], D, 0.0f);
  }
  return L;
}

void attention_queries(const float* const* q, const int* n_keys, int n, const KvHead& kv, int D, float scale,
                       float* const* out) {
  if (active_isa() >= Isa::Avx512 && D % 16 == 0 && D <= kAvx512MaxHeadDim)
    attention_queries_avx512(q, n_keys, n, kv, D, scale, out);
  else if (active_isa() >= Isa::Avx2 && D % 8 == 0) attention_queries_avx2(q, n_keys, n, kv, D, scale, out);
  else attention_queries_scalar(q, n_keys, n, kv, D, scale, out);
}

}  // namespace qnext
