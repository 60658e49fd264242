// Causal softmax attention of query heads over a key/value cache, in blocks of keys with an
// online softmax: no [T, T] score matrix ever exists.
#pragma once
#include <cstddef>

#include "core/dtype.h"

namespace qnext {

// One key/value head of a cache: position p's key at k + p * stride elements, its value at
// v + p * stride. Elements are F32, F16 (IEEE half: the `--kv-type f16` cache, half the bytes), or
// Q8_0 (`--kv-type q8_0`, as llama.cpp's: blocks of 32 elements, an f16 scale and 32 int8, 34 bytes;
// stride, D and the heads' offsets multiples of 32 elements).
struct KvHead {
  const void* k = nullptr;
  const void* v = nullptr;
  size_t stride = 0;
  DType type = DType::F32;
};

// One query: q: [D]; attends to positions [0, L); out: [D].
// out = softmax(scale * q.K^T) V. Plain scalar code: the definition the SIMD kernels are held to.
void attention_head(const float* q, const KvHead& kv, int L, int D, float scale, float* out);

// What the model calls, in prefill and decode: n <= kMaxBlockQueries queries against one key/value
// head, query i seeing the keys [0, n_keys[i]) (causal limits differ per token). A block of tokens times the query heads of a
// GQA group goes in one call, so every key and value row is read once for the whole block and the
// scores and the weighted sum of values are small matrix products. q[i], out[i]: [D]. 128: 16
// prefill tokens x the model's 8 query heads per key/value head, enough to spread laying out each
// block of keys (AVX-512) over many queries; a decoded token's 8 take AVX-512's few-query path.
constexpr int kMaxBlockQueries = 128;
void attention_queries(const float* const* q, const int* n_keys, int n, const KvHead& kv, int D, float scale,
                       float* const* out);
void attention_queries_scalar(const float* const* q, const int* n_keys, int n, const KvHead& kv, int D, float scale,
                              float* const* out);
void attention_queries_avx2(const float* const* q, const int* n_keys, int n, const KvHead& kv, int D, float scale,
                            float* const* out);
// For the SIMD variants: every query starts having seen no key (running max -inf, denominator 0,
// output 0); returns the most keys any query sees.
int start_queries(const int* n_keys, int n, int D, float* running_max, float* denom, float* const* out);

// Needs D % 16 == 0 and D <= kAvx512MaxHeadDim (its per-block scratch lives on the stack).
constexpr int kAvx512MaxHeadDim = 256;
void attention_queries_avx512(const float* const* q, const int* n_keys, int n, const KvHead& kv, int D, float scale,
                              float* const* out);

}  // namespace qnext
