// Causal depthwise 1-D convolution + SiLU with a rolling state (the DeltaNet short convolution).
#pragma once

namespace qnext {

// x: [T, C] new inputs; w: [C, K] taps (tap K-1 multiplies the newest input);
// state: [K-1, C] the previous K-1 inputs, oldest first, updated in place; out: [T, C].
void conv1d_silu(const float* x, int T, int C, const float* w, int K, float* state, float* out);

}  // namespace qnext
