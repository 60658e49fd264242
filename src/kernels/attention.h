// Causal softmax attention of one query head over a key/value cache, in blocks of keys with an
// online softmax: no [T, T] score matrix ever exists.
#pragma once
#include <cstddef>

namespace qnext {

// q: [D]; K, V: position p's vector at K + p * kv_stride, for p in [0, L); out: [D].
// out = softmax(scale * q.K^T) V
void attention_head(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                    float* out);

// ISA variants, chosen by attention_head from the active ISA.
void attention_head_scalar(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                           float* out);
void attention_head_avx2(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                         float* out);

}  // namespace qnext
