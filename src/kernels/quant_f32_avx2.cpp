// Q8_0 / Q4_0 with float activations (exact mode, QNEXT_ACTIVATIONS=f32) for few tokens on AVX2:
// the blocks dequantized a chunk at a time and multiplied in float. Scalar twin: rows_q_f32_scalar.
#include "kernels/dequant_rows_avx2.h"
#include "kernels/quant.h"

namespace qnext {

void dequant_q_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  const size_t block_bytes = w.dtype == DType::Q8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
  dequantize_row_avx2(w.dtype, w.row_ptr(r) + size_t(k0 / kQuantBlock) * block_bytes, n, out);
}

void rows_q_f32_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  dequant_rows::rows<dequant_q_avx2>(w, x, T, y, ldy, r0, r1);
}

}  // namespace qnext
