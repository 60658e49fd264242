#include "kernels/fp8.h"

#include <algorithm>
#include <array>

#include "core/cpu.h"
#include "kernels/quant.h"

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

int8_t fp8_code_to_int8(uint8_t code, int shift) {
  const int e = (code >> 3) & 15, mantissa = code & 7;
  const int significand = e > 0 ? 8 + mantissa : mantissa;
  // up <= 3 for every code of the segment; codes above its largest (never looked up) are capped
  // there too, so no integer passes 15 * 8 = 120.
  const int up = std::max(e, 1) - 1 - shift + 3;
  const int q = up >= 0 ? significand << std::min(up, 3) : (significand + (1 << (-up - 1))) >> -up;
  return int8_t(code & 0x80 ? -q : q);
}

namespace {
using Int8Tables = std::array<std::array<int8_t, 128>, 15>;  // [S][code & 0x7f]
Int8Tables make_int8_tables() {
  Int8Tables t{};
  for (int s = 0; s < 15; ++s)
    for (int c = 0; c < 128; ++c) t[size_t(s)][size_t(c)] = fp8_code_to_int8(uint8_t(c), s);
  return t;
}
}  // namespace

const int8_t* fp8_int8_tables() {
  alignas(64) static const Int8Tables tables = make_int8_tables();
  return tables[0].data();
}

bool fp8_int8_fits(Isa isa, const Matrix& w, int T) {
  return T >= kVnniGemmMinTokens && vnni_kernels(isa) && cpu_has_avx512_vbmi() &&
         w.group > 0 && w.cols % kQuantBlock == 0 && w.group % kQuantBlock == 0;
}

void fp8_row_to_int8_scalar(const Matrix& w, int64_t r, int8_t* q, float* d) {
  const uint8_t* row = w.row_ptr(r);
  const ScaleRow scales(w, r / w.group_rows);  // [scale_cols()]
  for (int64_t k = 0; k < w.cols;) {
    const int64_t g = k / w.group, end = std::min({w.cols, (g + 1) * w.group, k + 128});
    uint8_t largest = 0;
    for (int64_t i = k; i < end; ++i) largest = std::max<uint8_t>(largest, row[i] & 0x7f);
    const int shift = fp8_segment_shift(largest);
    for (int64_t i = k; i < end; ++i) q[i] = fp8_code_to_int8(row[i], shift);
    for (int64_t b = k / kQuantBlock; b < end / kQuantBlock; ++b) d[b] = fp8_int8_block_scale(scales[g], shift);
    k = end;
  }
}

void rows_fp8_int8_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  matmul_converted_rows_scalar(fp8_row_to_int8_scalar, w, xq, T, y, ldy, r0, r1);
}

}  // namespace qnext
