// Causal depthwise 1-D convolution + SiLU with a rolling state (the DeltaNet short convolution).
#pragma once

namespace qnext {

// x: [T, C] new inputs; w: [C, K] taps (tap K-1 multiplies the newest input);
// state: [K-1, C] the previous K-1 inputs, oldest first, updated in place; out: [T, C].
// K <= kMaxConvTaps (the config's limit).
constexpr int kMaxConvTaps = 64;
void conv1d_silu(const float* x, int T, int C, const float* w, int K, float* state, float* out);

// ISA variants, chosen by conv1d_silu from the active ISA (same contract). The scalar twin is the
// definition: taps summed in order j = 0 .. K-1, then silu_mul_scalar.
void conv1d_silu_scalar(const float* x, int T, int C, const float* w, int K, float* state, float* out);
void conv1d_silu_avx2(const float* x, int T, int C, const float* w, int K, float* state, float* out);

// One output row before the SiLU: o[c] = sum_j in[j][c] w[c K + j] for c in [c0, C), in: the K
// input rows of the window, oldest first. The variants above differ only here (and in their SiLU).
// The AVX2 row takes 4 taps in lanes, the rest (other K, the channel tail) on the scalar row.
void conv_taps_row_scalar(const float* const* in, int K, int C, const float* w, float* o, int c0);
void conv_taps_row_avx2(const float* const* in, int K, int C, const float* w, float* o);

}  // namespace qnext
