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

void attention_head(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                    float* out) {
  attention_heads(q, 0, 1, K, V, kv_stride, L, D, scale, out, 0);
}

}  // namespace qnext
