#include "kernels/weight_format.h"

#include <algorithm>
#include <cstring>

#include "kernels/fp8.h"
#include "kernels/ggml_blocks.h"
#include "kernels/ggml_blocks_q8.h"
#include "kernels/int4.h"
#include "kernels/quant.h"

namespace qnext {

void rows_f32_dequant_scalar(DequantKernel dequant, const Matrix& w, const float* x, int T, float* y, int64_t ldy,
                             int64_t r0, int64_t r1) {
  constexpr int64_t kChunk = 512;
  float buf[kChunk];
  for (int64_t r = r0; r < r1; ++r)
    for (int t = 0; t < T; ++t) {
      const float* xt = x + size_t(t) * size_t(w.cols);
      float acc = 0;
      for (int64_t k0 = 0; k0 < w.cols; k0 += kChunk) {
        const int64_t c = std::min(kChunk, w.cols - k0);
        dequant(w, r, k0, c, buf);
        for (int64_t k = 0; k < c; ++k) acc += buf[k] * xt[k0 + k];
      }
      y[size_t(t) * size_t(ldy) + size_t(r)] = acc;
    }
}

void dequant_q_scalar(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  const size_t block_bytes = w.dtype == DType::Q8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
  dequantize_row(w.dtype, w.row_ptr(r) + size_t(k0 / kQuantBlock) * block_bytes, n, out);
}

void rows_q_f32_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_f32_dequant_scalar(dequant_q_scalar, w, x, T, y, ldy, r0, r1);
}

namespace {

void dequant_float(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  const uint8_t* p = w.row_ptr(r);
  switch (w.dtype) {  // one loop per type, so each vectorizes
    case DType::BF16: {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(p) + k0;
      for (int64_t k = 0; k < n; ++k) out[k] = bf16_to_f32(h[k]);
      return;
    }
    case DType::F16: {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(p) + k0;
      for (int64_t k = 0; k < n; ++k) out[k] = f16_to_f32(h[k]);
      return;
    }
    default: std::memcpy(out, reinterpret_cast<const float*>(p) + k0, size_t(n) * sizeof(float)); return;
  }
}

constexpr WeightFormat kFloat(DType t) {
  return {t, false, {dequant_float, dequant_float, dequant_float}, {matmul_rows_scalar, matmul_rows_avx2, matmul_rows_avx512}, {}, nullptr, {}};
}
constexpr WeightFormat kQuant(DType t) {
  return {t, true, {dequant_q_scalar, dequant_q_avx2, dequant_q_avx2}, {rows_q_f32_scalar, rows_q_f32_avx2, rows_q_f32_avx2},
          {matmul_q_rows_scalar, matmul_q_rows_avx2, matmul_q_rows_avx512}, nullptr, {}};
}

// A GGUF block format with ggml_blocks.h's kernels for `name`; _INT8 adds ggml_blocks_q8.h's.
#define QNEXT_GGML_FORMAT(type, name)                                                             \
  {DType::type, false, {dequant_##name##_scalar, dequant_##name##_avx2, dequant_##name##_avx2},    \
   {rows_##name##_scalar, rows_##name##_avx2, rows_##name##_avx512}, {}, nullptr, {}}
#define QNEXT_GGML_FORMAT_INT8(type, name)                                                        \
  {DType::type, true, {dequant_##name##_scalar, dequant_##name##_avx2, dequant_##name##_avx2},     \
   {rows_##name##_scalar, rows_##name##_avx2, rows_##name##_avx512},                               \
   {rows_int8_##name##_scalar, rows_int8_##name##_avx2, rows_int8_##name##_avx512}, nullptr, {}}

// Indexed by DType. The AVX-512 entries of the stored-block formats run the AVX2 kernels, but for
// the row products of FP8 and the GGUF block formats.
constexpr WeightFormat kFormats[] = {
    kFloat(DType::F32),
    kFloat(DType::BF16),
    kFloat(DType::F16),
    {DType::I64, false, {}, {}, {}, nullptr, {}},
    {DType::I32, false, {}, {}, {}, nullptr, {}},
    {DType::U8, false, {}, {}, {}, nullptr, {}},
    kQuant(DType::Q8_0),
    kQuant(DType::Q4_0),
    // int8 only for 4+ tokens on AVX-512 VNNI + VBMI (fp8_int8_fits): no AVX2 slot.
    {DType::F8_E4M3, false, {dequant_fp8_scalar, dequant_fp8_avx2, dequant_fp8_avx2},
     {rows_fp8_scalar, rows_fp8_avx2, rows_fp8_avx512}, {rows_fp8_int8_scalar, nullptr, gemm_q_rows_avx512},
     fp8_int8_fits, {fp8_row_to_int8_scalar, nullptr, fp8_row_to_int8_avx512}},
    // int8 to decode on AVX2 / AVX-512, and for 4+ tokens on AVX-512 VNNI (int4_int8_when).
    {DType::I4, false, {dequant_int4_scalar, dequant_int4_avx2, dequant_int4_avx2},
     {rows_int4_scalar, rows_int4_avx2, rows_int4_avx512},
     {rows_int4_q8_scalar, rows_int4_q8_avx2, rows_int4_q8_avx512}, int4_int8_when,
     {int4_row_to_int8_scalar, nullptr, int4_row_to_int8_avx512}},
    // llama.cpp's GGUF block formats (kernels/ggml_blocks.h); the K-quants also int8 activations.
    QNEXT_GGML_FORMAT(Q4_1, q4_1),
    QNEXT_GGML_FORMAT(Q5_0, q5_0),
    QNEXT_GGML_FORMAT(Q5_1, q5_1),
    QNEXT_GGML_FORMAT(Q2_K, q2_k),
    QNEXT_GGML_FORMAT(Q3_K, q3_k),
    QNEXT_GGML_FORMAT_INT8(Q4_K, q4_k),
    QNEXT_GGML_FORMAT_INT8(Q5_K, q5_k),
    QNEXT_GGML_FORMAT_INT8(Q6_K, q6_k),
    QNEXT_GGML_FORMAT(IQ4_NL, iq4_nl),
    QNEXT_GGML_FORMAT(IQ4_XS, iq4_xs),
};
constexpr bool in_dtype_order() {
  for (size_t i = 0; i < sizeof(kFormats) / sizeof(kFormats[0]); ++i)
    if (kFormats[i].type != DType(i)) return false;
  return sizeof(kFormats) / sizeof(kFormats[0]) == size_t(DType::IQ4_XS) + 1;
}
static_assert(in_dtype_order(), "one entry per DType, in the enum's order");
#undef QNEXT_GGML_FORMAT
#undef QNEXT_GGML_FORMAT_INT8

}  // namespace

const WeightFormat& weight_format(DType t) { return kFormats[size_t(t)]; }

bool int8_activations(DType t) { return weight_format(t).int8_activations && !exact_activations(); }

bool int8_product(Isa isa, const Matrix& w, int T) {
  if (int8_activations(w.dtype)) return true;
  const auto fits = weight_format(w.dtype).int8_fits;
  return fits && !exact_activations() && fits(isa, w, T);
}

}  // namespace qnext
