// The index of the largest logit (greedy decoding): the first of equal maxima; a NaN never wins;
// 0 when nothing is above -inf. The AVX2 variant finds the maximum 8 lanes at a time, then its
// first index; AVX-512 machines run it too (one pass over ~600 KB of logits a token: a 16-lane
// copy of the same loop was not worth keeping).
#pragma once
#include <cstdint>

namespace qnext {

// x [n], n >= 1.
int64_t argmax(const float* x, int64_t n);

// ISA variants, chosen by argmax from the active ISA (same contract).
int64_t argmax_scalar(const float* x, int64_t n);
int64_t argmax_avx2(const float* x, int64_t n);

}  // namespace qnext
