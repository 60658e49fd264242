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

namespace {

using TapsRow = void (*)(const float* const* in, int K, int C, const float* w, float* o);
using Silu = void (*)(const float* x, const float* m, int64_t n, float* out);

void taps_row_scalar(const float* const* in, int K, int C, const float* w, float* o) {
  conv_taps_row_scalar(in, K, C, w, o, 0);
}

// The conv over T tokens with one variant's rows and SiLU, then the state rolled on.
void conv1d_silu_with(TapsRow row, Silu silu, const float* x, int T, int C, const float* w, int K, float* state, float* out) {
  const float* in[kMaxConvTaps];  // [K] the window of token t, oldest first
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < K; ++j) {
      const int idx = t + j - (K - 1);  // index into x; negative means the state
      in[j] = idx >= 0 ? x + size_t(idx) * C : state + size_t(K - 1 + idx) * C;
    }
    float* o = out + size_t(t) * C;
    row(in, K, C, w, o);
    silu(o, nullptr, C, o);
  }
  // The new state: the last K-1 inputs of [state; x].
  if (T >= K - 1) {
    std::memcpy(state, x + size_t(T - (K - 1)) * C, sizeof(float) * size_t(K - 1) * C);
  } else {
    std::memmove(state, state + size_t(T) * C, sizeof(float) * size_t(K - 1 - T) * C);
    std::memcpy(state + size_t(K - 1 - T) * C, x, sizeof(float) * size_t(T) * C);
  }
}

}  // namespace

void conv1d_silu_scalar(const float* x, int T, int C, const float* w, int K, float* state, float* out) {
  conv1d_silu_with(taps_row_scalar, silu_mul_scalar, x, T, C, w, K, state, out);
}

void conv1d_silu_avx2(const float* x, int T, int C, const float* w, int K, float* state, float* out) {
  conv1d_silu_with(conv_taps_row_avx2, silu_mul_avx2, x, T, C, w, K, state, out);
}

void conv1d_silu(const float* x, int T, int C, const float* w, int K, float* state, float* out) {
  if (active_isa() >= Isa::Avx2) conv1d_silu_avx2(x, T, C, w, K, state, out);
  else conv1d_silu_scalar(x, T, C, w, K, state, out);
}

}  // namespace qnext
