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
// input rows of the window, oldest first. The scalar twin's rows; conv1d_silu_avx2 takes them for
// the channels (and the K) its lanes do not.
void conv_taps_row_scalar(const float* const* in, int K, int C, const float* w, float* o, int c0);
// in[0 .. K-1]: token t's window, oldest first (rows of the state before the first K-1 tokens).
void conv_window(const float* x, const float* state, int C, int K, int t, const float** in);
// The new state: the last K-1 inputs of [state; x].
void conv_roll_state(const float* x, int T, int C, int K, float* state);

}  // namespace qnext
