// Group-scaled int4 weights in compressed-tensors' pack-quantized layout (W4A16, the "AWQ"
// releases): each row is ceil(cols / 8) int32 words, element k at bits [4 (k % 8), 4 (k % 8) + 4)
// of word k / 8 as u = q + 8; a scale per group of `group` weights along the row (Matrix::scales,
// [rows, ceil(cols / group)]) and, when asymmetric, a zero point z per (row, group) packed along
// the rows (Matrix::zeros). w = (q - z) * scale = (u - (z + 8)) * scale. Float activations.
#pragma once
#include "kernels/quant.h"
#include "kernels/weight_format.h"

namespace qnext {

// The stored zero point of weight row r, group g, plus 8 (8 when symmetric).
inline int int4_zero_u(const Matrix& w, int64_t r, int64_t g) {
  if (!w.zeros) return 8;
  const uint32_t word = uint32_t(w.zeros[size_t((r / 8) * w.scale_cols() + g)]);
  return int((word >> (4 * (r % 8))) & 15);
}

// What the rows of an int4 matrix share, found once per call: row r's codes, scales and
// zero-point words sit at fixed strides, so a row finds them without a division (scale_cols) or a
// lookup of element sizes.
struct Int4Rows {
  const uint8_t* codes;   // [rows, cols / 2]
  size_t code_stride;     // bytes
  const char* scales;     // [rows, groups] of scale_dtype
  size_t scale_stride;    // bytes
  DType scale_dtype;
  const int32_t* zeros;   // [ceil(rows / 8), groups] or null (symmetric)
  int64_t groups;         // per row
  explicit Int4Rows(const Matrix& w)
      : codes(static_cast<const uint8_t*>(w.data)), code_stride(row_bytes(w.dtype, w.cols)),
        scales(static_cast<const char*>(w.scales)), scale_stride(size_t(w.scale_cols()) * dtype_size(w.scale_dtype)),
        scale_dtype(w.scale_dtype), zeros(w.zeros), groups(w.scale_cols()) {}
  const uint8_t* row(int64_t r) const { return codes + size_t(r) * code_stride; }
};

// Row r's group scales and zero points for the row kernels (scale_at and int4_zero_u divide by
// scale_cols() on every call, a cost next to a group of 32 weights): found through the call's
// Int4Rows, with no division per row.
struct Int4RowGroups {
  ScaleRow scales;       // row r's [groups] scales
  const int32_t* zeros;  // row r's [groups] zero-point words, or null (symmetric)
  int shift;             // row r's nibble within them

  Int4RowGroups(const Int4Rows& m, int64_t r)
      : scales(m.scales + size_t(r) * m.scale_stride, m.scale_dtype),
        zeros(m.zeros ? m.zeros + size_t(r / 8) * size_t(m.groups) : nullptr), shift(int(4 * (r % 8))) {}
  float scale(int64_t g) const { return scales[g]; }
  int zero_u(int64_t g) const { return zeros ? int((uint32_t(zeros[g]) >> shift) & 15) : 8; }
};

// Decoding on AVX2 / AVX-512 in the fast default: int8 activations (BlockQ8x, as Q4_0's), the
// nibbles taken as unsigned bytes by vpdpbusd (VNNI) or vpmaddubsw, one 32-bit lane per word of 8
// weights. Per lane i
// of a run of 128 weights (block b = i / 4 of the activations, group g of the word):
//   lane += scale_g * (dx_b * sum_j u_j q_j - zero_u_g * dx_b * sum_j q_j)
// and the row's result is the sum of the lanes. Exact mode keeps the float kernels (rows_f32).
// Takes rows of a whole number of runs, up to kInt4Int8MaxCols, groups of 32, 64 or 128k.
constexpr int64_t kInt4Int8MaxCols = 8192;
bool int4_int8_fits(const Matrix& w);
// Prefill (kVnniGemmMinTokens tokens and more) in the fast default on AVX-512 VNNI: Q8_0's int8 GEMM
// over the rows unpacked to int8 blocks of 32, q = u - (z + 8) (exact, -15..15), d = the group's
// scale; the activations int8 as for decoding. Rows and groups of whole blocks of 32.
// Whether a product of T tokens over w on `isa` takes int8 activations (weight_format.h's
// int8_fits): decoding where int4_int8_fits, prefill as just said.
bool int4_int8_when(Isa isa, const Matrix& w, int T);
// Row r: q[cols], d[cols / 32]. The scalar twin, and the AVX-512 kernel (AVX-512 BW and VL).
void int4_row_to_int8_scalar(const Matrix& w, int64_t r, int8_t* q, float* d);
void int4_row_to_int8_avx512(const Matrix& w, int64_t r, int8_t* q, float* d);
// The scalar twin (any w int4_int8_fits takes; from kVnniGemmMinTokens tokens, the GEMM's twin
// matmul_converted_rows_scalar) and the SIMD kernels (the AVX-512 one needs VNNI, else runs the
// AVX2 one; from kVnniGemmMinTokens tokens the VNNI GEMM); xq: [T, cols / 32].
void rows_int4_q8_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void rows_int4_q8_avx2(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void rows_int4_q8_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

void dequant_int4_scalar(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
void dequant_int4_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
void rows_int4_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void rows_int4_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void rows_int4_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

}  // namespace qnext
