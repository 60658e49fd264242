#include "kernels/int4.h"

namespace qnext {

// The scalar twin: w = (u - (z + 8)) * scale, one weight at a time.
void dequant_int4_scalar(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  const uint32_t* words = reinterpret_cast<const uint32_t*>(w.row_ptr(r));
  for (int64_t k = k0; k < k0 + n; ++k) {
    const int64_t g = k / w.group;
    const int u = int((words[k / 8] >> (4 * (k % 8))) & 15);
    out[k - k0] = float(u - int4_zero_u(w, r, g)) * scale_at(w, r, g);
  }
}

void rows_int4_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_f32_dequant_scalar(dequant_int4_scalar, w, x, T, y, ldy, r0, r1);
}

}  // namespace qnext
