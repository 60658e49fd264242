#include "kernels/fp8.h"

namespace qnext {

// The scalar twin: w = e4m3(code) * scale, one weight at a time.
void dequant_fp8_scalar(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  const uint8_t* row = w.row_ptr(r);
  const int64_t srow = r / w.group_rows;
  for (int64_t k = k0; k < k0 + n; ++k) out[k - k0] = e4m3_to_f32(row[k]) * scale_at(w, srow, k / w.group);
}

void rows_fp8_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_f32_dequant_scalar(dequant_fp8_scalar, w, x, T, y, ldy, r0, r1);
}

}  // namespace qnext
