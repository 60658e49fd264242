#include "kernels/conv.h"

#include <cstring>

#include "kernels/silu.h"

namespace qnext {

void conv1d_silu(const float* x, int T, int C, const float* w, int K, float* state, float* out) {
  // Input at window slot j for token t: slots 0..K-2 come from state (for early t), the rest from x.
  auto input = [&](int t, int j) -> const float* {
    const int idx = t + j - (K - 1);  // index into x; negative means the state
    return idx >= 0 ? x + size_t(idx) * C : state + size_t(K - 1 + idx) * C;
  };
  for (int t = 0; t < T; ++t) {
    float* o = out + size_t(t) * C;
    for (int c = 0; c < C; ++c) o[c] = 0;
    for (int j = 0; j < K; ++j) {
      const float* in = input(t, j);
      for (int c = 0; c < C; ++c) o[c] += in[c] * w[size_t(c) * K + j];
    }
    silu_mul(o, nullptr, C, o);
  }
  // The new state is the last K-1 inputs of the combined sequence [state; x].
  if (T >= K - 1) {
    std::memcpy(state, x + size_t(T - (K - 1)) * C, sizeof(float) * size_t(K - 1) * C);
  } else {
    std::memmove(state, state + size_t(T) * C, sizeof(float) * size_t(K - 1 - T) * C);
    std::memcpy(state + size_t(K - 1 - T) * C, x, sizeof(float) * size_t(T) * C);
  }
}

}  // namespace qnext
