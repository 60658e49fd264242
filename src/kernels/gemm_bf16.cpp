#include "kernels/gemm_bf16.h"

#include <algorithm>

#include "kernels/weight_format.h"

namespace qnext {

bool use_bf16_gemm(Isa isa, DType t, int T, Bf16Terms* terms) {
  if (isa != Isa::Avx512 || !cpu_has_avx512_bf16() || exact_activations()) return false;
  switch (t) {
    // Not BF16 (yet): two terms would keep the golden tolerances, but below kGemmMinTokens BF16 runs
    // the float tiles, so a token's logits would move (~1e-4) with the batch it shares, and BF16
    // is promised to equal exact mode (serving's batching tests). Issue 15 decides with measurements.
    case DType::F8_E4M3:
    case DType::I4:
      *terms = Bf16Terms::One;
      return T >= kBf16MinTokens;
    default: return false;
  }
}

void gemm_bf16_rows_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1,
                           Bf16Terms terms) {
  constexpr int64_t kChunk = 512;
  float row[kChunk];  // [kChunk]: a piece of weight row r as bf16-rounded floats
  const DequantKernel dequant = weight_format(w.dtype).dequant[int(Isa::Scalar)];
  for (int64_t r = r0; r < r1; ++r)
    for (int t = 0; t < T; ++t) {
      const float* xt = x + size_t(t) * size_t(w.cols);
      float acc = 0;
      for (int64_t k0 = 0; k0 < w.cols; k0 += kChunk) {
        const int64_t c = std::min(kChunk, w.cols - k0);
        dequant(w, r, k0, c, row);
        for (int64_t k = 0; k < c; ++k) {
          const float wk = bf16_to_f32(f32_to_bf16(row[k])), xk = xt[k0 + k];
          const float hi = bf16_to_f32(f32_to_bf16(xk));
          const float lo = terms == Bf16Terms::HiLo ? bf16_to_f32(f32_to_bf16(xk - hi)) : 0.0f;
          acc += wk * hi + wk * lo;
        }
      }
      y[size_t(t) * size_t(ldy) + size_t(r)] = acc;
    }
}

}  // namespace qnext
