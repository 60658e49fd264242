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

bool int4_int8_fits(const Matrix& w) {
  const int64_t G = w.group;
  return w.cols % 128 == 0 && w.cols <= kInt4Int8MaxCols && G > 0 && (G % 128 == 0 || G == 32 || G == 64);
}

bool int4_int8_when(Isa isa, const Matrix& w, int T) {
  if (T >= kVnniGemmMinTokens)
    return vnni_kernels(isa) && w.group > 0 && w.cols % kQuantBlock == 0 && w.group % kQuantBlock == 0;
  return T <= kGroupMaxTokens && isa != Isa::Scalar && int4_int8_fits(w);
}

void int4_row_to_int8_scalar(const Matrix& w, int64_t r, int8_t* q, float* d) {
  const uint32_t* words = reinterpret_cast<const uint32_t*>(w.row_ptr(r));
  const Int4Rows m(w);
  const Int4RowGroups groups(m, r);
  for (int64_t k = 0; k < w.cols; ++k)
    q[k] = int8_t(int((words[k / 8] >> (4 * (k % 8))) & 15) - groups.zero_u(k / w.group));
  for (int64_t b = 0; b < w.cols / kQuantBlock; ++b) d[b] = groups.scale(b * kQuantBlock / w.group);
}

// The scalar twin of the VNNI and AVX2 kernels: the same lanes, in plain loops. The kernels add
// each lane's even and odd runs in two sums, and for one token take the zero point off in integers
// (exact) rather than in floats, so the order and rounding of the additions differ. From
// kVnniGemmMinTokens tokens it is the VNNI GEMM's twin (the same sums per block of 32, ordered
// otherwise than the AVX2 kernel's lanes, which it matches within float rounding).
void rows_int4_q8_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (T >= kVnniGemmMinTokens) {
    matmul_converted_rows_scalar(int4_row_to_int8_scalar, w, xq, T, y, ldy, r0, r1);
    return;
  }
  const int64_t nb = w.cols / 32;
  const Int4Rows m(w);
  for (int64_t r = r0; r < r1; ++r) {
    const uint32_t* words = reinterpret_cast<const uint32_t*>(m.row(r));  // [cols / 8]
    const Int4RowGroups groups(m, r);
    for (int t = 0; t < T; ++t) {
      const BlockQ8x* xb = xq + size_t(t) * size_t(nb);
      float lanes[16] = {};
      for (int64_t word = 0; word < w.cols / 8; ++word) {
        const BlockQ8x& b = xb[word / 4];
        const int8_t* q = b.q + 8 * (word % 4);
        int32_t dot = 0, sum = 0;
        for (int j = 0; j < 8; ++j) {
          dot += int32_t((words[word] >> (4 * j)) & 15) * q[j];
          sum += q[j];
        }
        const int64_t g = 8 * word / w.group;
        const float zc = b.d * float(sum);
        lanes[word % 16] += groups.scale(g) * (float(dot) * b.d - float(groups.zero_u(g)) * zc);
      }
      float s = 0;
      for (float v : lanes) s += v;
      y[size_t(t) * size_t(ldy) + size_t(r)] = s;
    }
  }
}

}  // namespace qnext
