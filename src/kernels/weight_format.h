// Weight formats: the one table that says, per stored format, how its rows turn into floats and
// which kernels multiply it, per ISA (like ggml's type_traits). matmul.cpp, the packed GEMM
// (gemm_avx2.cpp), embedding lookups and requantization all go through it; the row layout itself
// (row_bytes) is core/dtype.h's.
//
//   BF16, F16, F32   float rows                                     rows_f32: matmul_rows_<isa>
//   Q8_0, Q4_0       qnext blocks of 32 (kernels/quant.h)           int8 activations by default
//   F8_E4M3          e4m3 codes, f32 scale per 128 x 128 block      kernels/fp8.h
//   I4               int4 words, scale (+ zero point) per group     kernels/int4.h; int8 decoding
//   Q4_1 .. IQ4_XS   llama.cpp's GGUF blocks of 32 / 256             kernels/ggml_blocks.h
//
// Every format has float-activation kernels (rows_f32): the only path of FP8, I4, most GGUF block
// formats and the float types, and in exact mode (QNEXT_ACTIVATIONS=f32, core/cpu.h) also the path
// of Q8_0 / Q4_0 and Q4_K / Q5_K / Q6_K (kernels/ggml_blocks_q8.h), whose fast default quantizes
// the activations to int8 (rows_int8, through matmul_q_rows). I4's fast default takes int8
// activations to decode (up to kGroupMaxTokens tokens) on AVX2 / AVX-512 for the matrices its
// kernels fit, and for 4+ tokens on AVX-512 VNNI (Q8_0's GEMM over its rows unpacked to int8
// blocks: to_int8); FP8's for 4+ tokens on AVX-512 VNNI + VBMI (the same GEMM, fp8.h), decoding
// on bf16 dot products where AVX512-BF16 and GFNI are there too (gemm_bf16.h: fp8_streams), else
// on its float rows. int8_fits says which products; elsewhere FP8 and I4 prefill take the bf16
// GEMM (gemm_bf16.h) or the float GEMM.
#pragma once
#include <cstdint>

#include "kernels/matmul.h"

namespace qnext {

struct BlockQ8x;

// Output rows [r0, r1) of y = x W^T; x: [T, cols], y: [T, ldy] (see matmul_rows).
using RowsKernel = void (*)(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
// Elements [k0, k0 + n) of row r as floats: out[n]. k0 a multiple of kDequantAlign.
using DequantKernel = void (*)(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
// Output rows [r0, r1) of y = x W^T with x quantized: xq [T, cols / 32] (matmul_q_rows).
using Int8RowsKernel = void (*)(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
// Row r as int8 blocks of 32 with a float scale each: q[cols], d[cols / 32] (cols a multiple of
// 32), so that q * d is the weight (int4), or near it (FP8: fp8.h says how near).
using RowToInt8 = void (*)(const Matrix& w, int64_t r, int8_t* q, float* d);
constexpr int64_t kDequantAlign = 32;

struct WeightFormat {
  DType type;
  bool int8_activations;      // the fast default quantizes the activations to int8 (off in exact mode)
  DequantKernel dequant[3];   // [Isa]: GEMM panels, embedding rows, requantizing
  RowsKernel rows_f32[3];     // [Isa]: float-activation products for few tokens (decoding)
  // [Isa]: int8-activation products, every slot set where int8_activations (the AVX-512 slot picks
  // the VNNI kernels, their GEMM for many tokens included, where the CPU has VNNI).
  Int8RowsKernel rows_int8[3];
  // Set for a format whose int8 kernels serve only some products: whether a product of T tokens
  // over w on `isa` takes them (I4: decoding on AVX2 / AVX-512; F8_E4M3: 4+ tokens on the VNNI
  // GEMM). Asked outside exact mode only.
  bool (*int8_fits)(Isa isa, const Matrix& w, int T);
  // [Isa]: rows as int8 blocks for the VNNI GEMM (gemm_q_rows_avx512), which then multiplies them
  // as Q8_0's rows (FP8, I4: the scalar twin and the AVX-512 kernel; null elsewhere).
  RowToInt8 to_int8[3];
};
const WeightFormat& weight_format(DType t);

// Whether products over w quantize the activations to int8 now (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K
// outside exact mode).
bool int8_activations(DType t);
// Whether a product of T tokens over w on `isa` takes int8 activations (matmul_q_rows): the above,
// or a format's int8_fits (I4 decoding on a SIMD ISA, FP8 prefill on AVX-512 VNNI).
bool int8_product(Isa isa, const Matrix& w, int T);

// One row of a matrix's side scales (F8_E4M3, I4): found once, so a row kernel reading a scale per
// block or group does not divide (scale_cols) for each.
class ScaleRow {
 public:
  ScaleRow(const Matrix& w, int64_t srow)
      : ScaleRow(static_cast<const char*>(w.scales) + size_t(srow * w.scale_cols()) * dtype_size(w.scale_dtype),
                 w.scale_dtype) {}
  ScaleRow(const char* first, DType dtype) : p_(first), dtype_(dtype) {}  // the row's first scale
  const char* first() const { return p_; }
  float operator[](int64_t g) const {
    switch (dtype_) {
      case DType::BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(p_)[g]);
      case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(p_)[g]);
      default: return reinterpret_cast<const float*>(p_)[g];
    }
  }
  // Scales [0, n) as floats: out[n] (one switch for the row, not one per scale).
  void to_f32(int64_t n, float* out) const {
    switch (dtype_) {
      case DType::BF16:
        for (int64_t g = 0; g < n; ++g) out[g] = bf16_to_f32(reinterpret_cast<const uint16_t*>(p_)[g]);
        return;
      case DType::F16:
        for (int64_t g = 0; g < n; ++g) out[g] = f16_to_f32(reinterpret_cast<const uint16_t*>(p_)[g]);
        return;
      default:
        for (int64_t g = 0; g < n; ++g) out[g] = reinterpret_cast<const float*>(p_)[g];
    }
  }

 private:
  const char* p_;
  DType dtype_;
};

// The scale of weight (r, k) of a matrix with side scales (F8_E4M3, I4).
inline float scale_at(const Matrix& w, int64_t srow, int64_t g) { return ScaleRow(w, srow)[g]; }

// The scalar float-activation product over any dequantizer: each row dequantized a chunk at a time
// (on the stack), then plain float dot products. The scalar twin of every rows_f32 kernel of a
// stored-block format.
void rows_f32_dequant_scalar(DequantKernel dequant, const Matrix& w, const float* x, int T, float* y, int64_t ldy,
                             int64_t r0, int64_t r1);

}  // namespace qnext
