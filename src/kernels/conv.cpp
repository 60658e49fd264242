#include "kernels/conv.h"

#include <cstring>

#include "core/cpu.h"
#include "kernels/silu.h"

namespace qnext {

void conv_taps_row_scalar(const float* const* in, int K, int C, const float* w, float* o, int c0) {
  for (int c = c0; c < C; ++c) o[c] = 0;
  for (int j = 0; j < K; ++j)
    for (int c = c0; c < C; ++c) o[c] += in[j][c] * w[size_t(c) * K + j];
}

void conv_window(const float* x, const float* state, int C, int K, int t, const float** in) {
  for (int j = 0; j < K; ++j) {
    const int idx = t + j - (K - 1);  // index into x; negative means the state
    in[j] = idx >= 0 ? x + size_t(idx) * C : state + size_t(K - 1 + idx) * C;
  }
}

void conv_roll_state(const float* x, int T, int C, int K, float* state) {
  if (T >= K - 1) {
    std::memcpy(state, x + size_t(T - (K - 1)) * C, sizeof(float) * size_t(K - 1) * C);
  } else {
    std::memmove(state, state + size_t(T) * C, sizeof(float) * size_t(K - 1 - T) * C);
    std::memcpy(state + size_t(K - 1 - T) * C, x, sizeof(float) * size_t(T) * C);
  }
}

void conv1d_silu_scalar(const float* x, int T, int C, const float* w, int K, float* state, float* out) {
  const float* in[kMaxConvTaps];  // [K] the window of token t, oldest first
  for (int t = 0; t < T; ++t) {
    conv_window(x, state, C, K, t, in);
    float* o = out + size_t(t) * C;
    conv_taps_row_scalar(in, K, C, w, o, 0);
    silu_mul_scalar(o, nullptr, C, o);
  }
  conv_roll_state(x, T, C, K, state);
}

void conv1d_silu(const float* x, int T, int C, const float* w, int K, float* state, float* out) {
  if (active_isa() >= Isa::Avx2) conv1d_silu_avx2(x, T, C, w, K, state, out);
  else conv1d_silu_scalar(x, T, C, w, K, state, out);
}

}  // namespace qnext
