// Mixture-of-experts pieces: the router's top-k choice and the SwiGLU activation of every expert.
#pragma once

namespace qnext {

// softmax over router logits[E], the top k experts (ids, weights), weights renormalized to sum 1
// when normalize. Ties go to the lower expert id.
void route_top_k(const float* logits, int E, int k, bool normalize, int* ids, float* weights);

// gate_up: [2n] = [gate | up]; out[n] = silu(gate) * up
void swiglu(const float* gate, const float* up, int n, float* out);

inline float sigmoid(float x) { return 1.0f / (1.0f + __builtin_expf(-x)); }

}  // namespace qnext
