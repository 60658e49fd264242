#include "kernels/attention.h"

#include "core/cpu.h"
#include "kernels/attention_body.h"

namespace qnext {

void attention_head_scalar(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                           float* out) {
  attention_head_body(q, K, V, kv_stride, L, D, scale, out);
}

void attention_head(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                    float* out) {
  if (active_isa() >= Isa::Avx2) attention_head_avx2(q, K, V, kv_stride, L, D, scale, out);
  else attention_head_scalar(q, K, V, kv_stride, L, D, scale, out);
}

}  // namespace qnext
