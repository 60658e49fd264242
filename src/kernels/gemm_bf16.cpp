#include "kernels/gemm_bf16.h"

#include <algorithm>

#include "core/cpu.h"
#include "kernels/weight_format.h"

namespace qnext {

bool use_bf16_gemm(Isa isa, DType t, int T, Bf16Terms* terms) {
  // Every product asks (decoding: each chunk of rows), so the format and ISA answer first.
  if (isa != Isa::Avx512 || !cpu_has_avx512_bf16() || exact_activations()) return false;
  switch (t) {
    // BF16 only with QNEXT_ACTIVATIONS=bf16 (x rounded to bf16, as llama.cpp), from
    // kGemmMinTokens tokens (fewer: the float row kernel, as fast there: BM_Bf16Terms at 10
    // tokens, 107-112 against 102-104 GFLOP/s). Not two terms by default: their x to ~2^-16
    // keeps the golden tolerances, but a prompt fed whole and in slices then gave the test
    // models' logits 1.6e-4 to 4.3e-4 apart (the tests allow 5e-5; the float paths stay inside),
    // and a seeded sample changed when its request was batched; and decoding on them is slower
    // than on the float rows.
    case DType::BF16:
      if (!bf16_activations() || T < kGemmMinTokens) return false;
      *terms = Bf16Terms::One;
      return true;
    // FP8 from one token: decoding streams its codes (fp8_streams), as fast as the float row
    // kernel from memory and faster from cache. GFNI converts the codes.
    case DType::F8_E4M3:
      if (!cpu_has_gfni()) return false;
      *terms = Bf16Terms::One;
      return true;
    case DType::I4:
      if (T < kBf16MinTokens) return false;
      *terms = Bf16Terms::One;
      return true;
    default: return false;
  }
}

bool fp8_streams(const Matrix& w, int T) {
  return fp8_scales_activations(w, T) && T <= kFp8StreamMaxTokens && w.cols % 64 == 0 && cpu_has_gfni();
}

bool use_bf16_gemm(Isa isa, const Matrix& w, int T, Bf16Terms* terms) {
  if (!use_bf16_gemm(isa, w.dtype, T, terms)) return false;
  return w.dtype != DType::F8_E4M3 || T >= kBf16MinTokens || fp8_streams(w, T);
}

void gemm_bf16_rows_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1,
                           Bf16Terms terms) {
  constexpr int64_t kChunk = 512;
  float row[kChunk];  // [kChunk]: a piece of weight row r as bf16-rounded floats
  const DequantKernel dequant = weight_format(w.dtype).dequant[int(Isa::Scalar)];
  const bool scaled_x = fp8_scales_activations(w, T);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.row_ptr(r);  // FP8 only: [cols]
    for (int t = 0; t < T; ++t) {
      const float* xt = x + size_t(t) * size_t(w.cols);
      float acc = 0;
      for (int64_t k0 = 0; k0 < w.cols; k0 += kChunk) {
        const int64_t c = std::min(kChunk, w.cols - k0);
        if (!scaled_x) dequant(w, r, k0, c, row);
        for (int64_t k = 0; k < c; ++k) {
          float wk, xk;
          if (scaled_x) {  // the code exactly (e4m3 fits bf16), its block's scale on x
            wk = e4m3_to_f32(codes[k0 + k]);
            xk = xt[k0 + k] * scale_at(w, r / w.group_rows, (k0 + k) / w.group);
          } else {
            wk = bf16_to_f32(f32_to_bf16(row[k])), xk = xt[k0 + k];
          }
          const float hi = bf16_to_f32(f32_to_bf16(xk));
          const float lo = terms == Bf16Terms::HiLo ? bf16_to_f32(f32_to_bf16(xk - hi)) : 0.0f;
          acc += wk * hi + wk * lo;
        }
      }
      y[size_t(t) * size_t(ldy) + size_t(r)] = acc;
    }
  }
}

}  // namespace qnext
