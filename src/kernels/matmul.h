// Matrix products against weight matrices stored as in the checkpoint: W is [rows = out, cols = in],
// row-major, and every product is y = x W^T (x: [T, cols] float, y: [T, rows] float).
// ISA variants (matmul_avx2.cpp, matmul_avx512.cpp) sit beside the scalar twin in matmul.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/cpu.h"
#include "core/dtype.h"

namespace qnext {

struct Matrix {
  DType dtype = DType::F32;
  const void* data = nullptr;  // [rows, cols] (rows of row_bytes(dtype, cols) bytes)
  int64_t rows = 0, cols = 0;
  // Formats whose scales are stored apart from the codes (has_scales: F8_E4M3, I4). Weight (r, k)
  // has scale scales[(r / group_rows) * scale_cols() + k / group], element type scale_dtype
  // (F32, BF16 or F16): FP8 blocks are 128 x 128, int4 groups 1 x group_size.
  const void* scales = nullptr;    // [ceil(rows / group_rows), ceil(cols / group)]
  DType scale_dtype = DType::F32;
  int64_t group = 0, group_rows = 1;
  // I4 with zero points: [ceil(rows / 8), ceil(cols / group)] int32 words; nibble r % 8 of word
  // [r / 8][g] is z + 8 for weight row r, group g. Null: symmetric (z = 0).
  const int32_t* zeros = nullptr;

  int64_t scale_cols() const { return group > 0 ? (cols + group - 1) / group : 0; }
  int64_t scale_rows() const { return group > 0 ? (rows + group_rows - 1) / group_rows : 0; }
  // The matrix's byte ranges, each a part a product reads from memory: its codes, then its side
  // scales and zero points when present. f(ptr, bytes); the mutable overload lets f repoint a part
  // (the expert cache points them at its copy).
  size_t codes_bytes() const { return size_t(rows) * row_bytes(dtype, cols); }
  size_t scales_bytes() const { return scales ? size_t(scale_rows() * scale_cols()) * dtype_size(scale_dtype) : 0; }
  size_t zeros_bytes() const { return zeros ? size_t((rows + 7) / 8 * scale_cols()) * 4 : 0; }
  template <typename F>
  void for_each_part(F&& f) const {
    f(data, codes_bytes());
    if (scales) f(scales, scales_bytes());
    if (zeros) f(static_cast<const void*>(zeros), zeros_bytes());
  }
  template <typename F>
  void for_each_part_mutable(F&& f) {
    f(data, codes_bytes());
    if (scales) f(scales, scales_bytes());
    if (zeros) {
      const void* z = zeros;
      f(z, zeros_bytes());
      zeros = static_cast<const int32_t*>(z);
    }
  }
  // What a product over the matrix reads from memory: all its parts.
  size_t bytes() const { return codes_bytes() + scales_bytes() + zeros_bytes(); }
  const uint8_t* row_ptr(int64_t r) const { return static_cast<const uint8_t*>(data) + size_t(r) * row_bytes(dtype, cols); }
};

// Output rows [row_begin, row_end) of y = x W^T on the calling thread, with the given ISA,
// for float weights (BF16, F16, F32); quantized weights go through matmul_q_rows (kernels/quant.h).
// x: [T, cols] (row stride cols); y: [T, ldy] (only the columns row_begin..row_end are written).
void matmul_rows(Isa isa, const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t row_begin, int64_t row_end);

// y = x W^T over all rows, split across the global thread pool, with the active ISA.
void matmul(const Matrix& w, const float* x, int T, float* y);
// The same on the calling thread only: for callers that already run one task per thread.
void matmul_serial(const Matrix& w, const float* x, int T, float* y);

// One product of a group: y [T, w.rows] = x [T, w.cols] W^T.
struct Product {
  const Matrix* w;
  const float* x;  // [T, w.cols]
  int T;
  float* y;        // [T, w.rows]
};
// The products of a group, for few tokens (decoding): one parallel job over all their rows, cut
// into chunks of about kGroupChunkBytes of weights that the threads take as they finish, so
// small products share one hand-off and a thread slowed by a neighbour does not hold the other
// up. Each row is computed as matmul would, and the chunks do not depend on the thread count.
// matmul takes this path itself for up to kGroupMaxTokens tokens.
constexpr size_t kGroupChunkBytes = 256 * 1024;
constexpr int kGroupMaxTokens = 3;
void matmul_group(const Product* products, size_t n);

// One row of W as floats (embedding lookup): out[cols].
void matrix_row_to_f32(const Matrix& w, int64_t row, float* out);

// Many tokens (prefill) on AVX2 or better: a packed GEMM for any weight dtype, quantized included
// (gemm_avx2.cpp; same contract as matmul_rows), except where matmul.cpp finds a faster kernel
// (BF16 on AVX-512: its row kernel, and from kFloatPanelMinTokens tokens the float panels; the int8
// and bf16 kernels). Fewer tokens go through the matrix-vector tiles.
constexpr int kGemmMinTokens = 12;  // measured: below this the int8 decode tiles win (q8, 512 x 2048)
void gemm_rows_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

// BF16 weights and at least kFloatPanelMinTokens tokens on AVX-512: the float GEMM with 16 weight
// rows in a register's lanes (gemm_float_panels_avx512.cpp; same contract as matmul_rows). cols a
// multiple of 32 (gemm_float_panels_fits).
// Measured: below this the row kernel wins (BM_Bf16Terms, one Zen 5 core: the panels at 16 tokens
// 0.84-0.87x the row kernel, at 24 1.06-1.12x).
constexpr int kFloatPanelMinTokens = 20;
inline bool gemm_float_panels_fits(const Matrix& w, int T) {
  return w.dtype == DType::BF16 && T >= kFloatPanelMinTokens && w.cols % 32 == 0;
}
void gemm_float_panels_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

// ISA variants (defined in their own files; same contract as matmul_rows).
void matmul_rows_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void matmul_rows_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void matmul_rows_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

}  // namespace qnext
