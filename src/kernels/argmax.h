// The index of the largest logit (greedy decoding): the first of equal maxima; a NaN never wins;
// 0 when nothing is above -inf. The SIMD variants find the maximum 16 / 8 lanes at a time, then
// its first index.
#pragma once
#include <cstdint>

namespace qnext {

// x [n], n >= 1.
int64_t argmax(const float* x, int64_t n);

// ISA variants, chosen by argmax from the active ISA (same contract).
int64_t argmax_scalar(const float* x, int64_t n);
int64_t argmax_avx2(const float* x, int64_t n);
int64_t argmax_avx512(const float* x, int64_t n);

}  // namespace qnext
