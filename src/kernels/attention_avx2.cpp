// Attention compiled with AVX2 + FMA (body in attention_body.h; scalar twin in attention.cpp).
#include "kernels/attention_body.h"

namespace qnext {

void attention_heads_avx2(const float* q, size_t q_stride, int G, const float* K, const float* V, size_t kv_stride,
                          int L, int D, float scale, float* out, size_t out_stride) {
  attention_heads_body(q, q_stride, G, K, V, kv_stride, L, D, scale, out, out_stride);
}

}  // namespace qnext
