// Attention compiled with AVX2 + FMA (body in attention_body.h; scalar twin in attention.cpp).
#include "kernels/attention_body.h"

namespace qnext {

void attention_head_avx2(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                         float* out) {
  attention_head_body(q, K, V, kv_stride, L, D, scale, out);
}

}  // namespace qnext
