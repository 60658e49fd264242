// Causal softmax attention of one query head over a key/value cache, in blocks of keys with an
// online softmax: no [T, T] score matrix ever exists.
#pragma once
#include <cstddef>

namespace qnext {

// One query: q: [D]; K, V: position p's vector at K + p * kv_stride, for p in [0, L); out: [D].
// out = softmax(scale * q.K^T) V. Plain scalar code: the definition the SIMD kernels are held to.
void attention_head(const float* q, const float* K, const float* V, size_t kv_stride, int L, int D, float scale,
                    float* out);

// What the model calls, in prefill and decode: n <= kMaxBlockQueries queries against one key/value
// head, query i seeing the keys [0, n_keys[i]) (causal limits differ per token). A block of tokens times the query heads of a
// GQA group goes in one call, so every key and value row is read once for the whole block and the
// scores and the weighted sum of values are small matrix products. q[i], out[i]: [D].
constexpr int kMaxBlockQueries = 64;
void attention_queries(const float* const* q, const int* n_keys, int n, const float* K, const float* V,
                       size_t kv_stride, int D, float scale, float* const* out);
void attention_queries_scalar(const float* const* q, const int* n_keys, int n, const float* K, const float* V,
                              size_t kv_stride, int D, float scale, float* const* out);
void attention_queries_avx2(const float* const* q, const int* n_keys, int n, const float* K, const float* V,
                            size_t kv_stride, int D, float scale, float* const* out);

}  // namespace qnext
