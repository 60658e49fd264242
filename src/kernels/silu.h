// SiLU (x * sigmoid(x)) over whole rows: the DeltaNet's conv output, its gated norm's z, and the
// SwiGLU of every expert. Decoding runs ~18K of them per DeltaNet layer on one thread while the
// other waits (with std::exp one value at a time, the steps that take them were ~1.7% of a decoded
// token's samples: perf, a 16-layer q4 slice); the AVX2 variant, 8 lanes at a time, takes half
// the time (BM_Silu, one Zen 5 core: 40 -> 20 us for a layer's worth). AVX-512 machines run it too.
#pragma once
#include <cstdint>

namespace qnext {

// out[i] = silu(x[i]) * (m ? m[i] : 1), n >= 0; out may alias x or m.
void silu_mul(const float* x, const float* m, int64_t n, float* out);

// ISA variants, chosen by silu_mul from the active ISA (same contract). The scalar twin is the
// definition (std::exp); the AVX2 one computes exp in double and rounds it once, so its e matches
// std::exp's but where the libm's expf (within ~0.5 ulp, not always correctly rounded) rounds the
// other way: a few inputs in 10^5, whose SiLU then differs by 1-2 ulp (3 with the multiplier).
void silu_mul_scalar(const float* x, const float* m, int64_t n, float* out);
void silu_mul_avx2(const float* x, const float* m, int64_t n, float* out);

}  // namespace qnext
