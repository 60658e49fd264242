#include "kernels/attention.h"

#include "core/cpu.h"
#include "kernels/attention_body.h"

namespace qnext {

void attention_heads_scalar(const float* q, size_t q_stride, int G, const float* K, const float* V, size_t kv_stride,
                            int L, int D, float scale, float* out, size_t out_stride) {
  attention_heads_body(q, q_stride, G, K, V, kv_stride, L, D, scale, out, out_stride);
}

void attention_heads(const float* q, size_t q_stride, int G, const float* K, const float* V, size_t kv_stride, int L,
                     int D, float scale, float* out, size_t out_stride) {
  if (active_isa() >= Isa::Avx2) attention_heads_avx2(q, q_stride, G, K, V, kv_stride, L, D, scale, out, out_stride);
  else attention_heads_scalar(q, q_stride, G, K, V, kv_stride, L, D, scale, out, out_stride);
}

// The scalar twin: each query on its own, through the one-head kernel.
void attention_queries_scalar(const float* const* q, const int* n_keys, int n, const float* K, const float* V,
                              size_t kv_stride, int D, float scale, float* const* out) {
  for (int i = 0; i < n; ++i) attention_heads_body(q[i], 0, 1, K, V, kv_stride, n_keys[i], D, scale, out[i], 0);
}

void attention_queries(const float* const* q, const int* n_keys, int n, const float* K, const float* V,
                       size_t kv_stride, int D, float scale, float* const* out) {
  if (active_isa() >= Isa::Avx2 && D % 8 == 0) attention_queries_avx2(q, n_keys, n, K, V, kv_stride, D, scale, out);
  else attention_queries_scalar(q, n_keys, n, K, V, kv_stride, D, scale, out);
}

void attention_head(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                    float* out) {
  attention_heads(q, 0, 1, K, V, kv_stride, L, D, scale, out, 0);
}

}  // namespace qnext
