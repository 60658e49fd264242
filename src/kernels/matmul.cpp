#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/quant.h"

namespace qnext {

static inline float load_weight(DType t, const uint8_t* row, int64_t k) {
  switch (t) {
    case DType::BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
    case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
    default: return reinterpret_cast<const float*>(row)[k];
  }
}

void matrix_row_to_f32(const Matrix& w, int64_t row, float* out) {
  const uint8_t* p = w.row_ptr(row);
  const int64_t n = w.cols;
  switch (w.dtype) {  // one loop per type, so each vectorizes
    case DType::BF16: {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
      for (int64_t k = 0; k < n; ++k) out[k] = bf16_to_f32(h[k]);
      return;
    }
    case DType::F16: {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
      for (int64_t k = 0; k < n; ++k) out[k] = f16_to_f32(h[k]);
      return;
    }
    case DType::Q8_0:
    case DType::Q4_0: dequantize_row(w.dtype, p, n, out); return;
    default: std::memcpy(out, p, size_t(n) * sizeof(float)); return;
  }
}

// The scalar twin: plain loops, the definition every SIMD variant is tested against.
void matmul_rows_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row_ptr(r);
    for (int t = 0; t < T; ++t) {
      const float* xt = x + size_t(t) * size_t(w.cols);
      float acc = 0;
      for (int64_t k = 0; k < w.cols; ++k) acc += load_weight(w.dtype, row, k) * xt[k];
      y[size_t(t) * size_t(ldy) + size_t(r)] = acc;
    }
  }
}

void matmul_rows(Isa isa, const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (isa != Isa::Scalar && T >= kGemmMinTokens) {
    gemm_rows_avx2(w, x, T, y, ldy, r0, r1);
    return;
  }
  switch (isa) {
    case Isa::Avx512: matmul_rows_avx512(w, x, T, y, ldy, r0, r1); return;
    case Isa::Avx2: matmul_rows_avx2(w, x, T, y, ldy, r0, r1); return;
    case Isa::Scalar: matmul_rows_scalar(w, x, T, y, ldy, r0, r1); return;
  }
}

// Quantized weights. The activations are quantized once per call (int8 blocks), then the rows
// split across threads; with many tokens and no VNNI, each weight row is dequantized instead and
// the product runs in float (int8 is no faster than FMA there).
static void matmul_quantized(const Matrix& w, const float* x, int T, float* y, Isa isa, bool parallel) {
  if (T >= kGemmMinTokens && !vnni_kernels(isa)) {
    if (!parallel) {
      matmul_dq_rows(isa, w, x, T, y, w.rows, 0, w.rows);
      return;
    }
    global_pool().parallel_for(
        size_t(w.rows), [&](size_t b, size_t e, int) { matmul_dq_rows(isa, w, x, T, y, w.rows, int64_t(b), int64_t(e)); }, 16);
    return;
  }
  thread_local std::vector<BlockQ8x> xq;  // [T, cols / 32]; grows to the largest batch, then stays
  const size_t nb = size_t(w.cols / kQuantBlock);
  if (xq.size() < size_t(T) * nb) xq.resize(size_t(T) * nb);
  BlockQ8x* q = xq.data();
  const bool big = size_t(w.rows) * size_t(w.cols) * size_t(T) >= 32 * 1024;
  if (parallel && big && T >= 64) {
    global_pool().parallel_for(size_t(T), [&](size_t b, size_t e, int) {
      quantize_activation_rows(isa, x + b * size_t(w.cols), int(e - b), w.cols, q + b * nb);
    });
  } else {
    quantize_activation_rows(isa, x, T, w.cols, q);
  }
  if (!parallel || !big) {
    matmul_q_rows(isa, w, q, T, y, w.rows, 0, w.rows);
    return;
  }
  global_pool().parallel_for(
      size_t(w.rows), [&](size_t b, size_t e, int) { matmul_q_rows(isa, w, q, T, y, w.rows, int64_t(b), int64_t(e)); }, 16);
}

void matmul(const Matrix& w, const float* x, int T, float* y) {
  const Isa isa = active_isa();
  if (is_quantized(w.dtype)) {
    matmul_quantized(w, x, T, y, isa, true);
    return;
  }
  // Tiny products are not worth waking the pool.
  if (size_t(w.rows) * size_t(w.cols) * size_t(T) < 32 * 1024) {
    matmul_rows(isa, w, x, T, y, w.rows, 0, w.rows);
    return;
  }
  global_pool().parallel_for(
      size_t(w.rows), [&](size_t b, size_t e, int) { matmul_rows(isa, w, x, T, y, w.rows, int64_t(b), int64_t(e)); }, 16);
}

void matmul_serial(const Matrix& w, const float* x, int T, float* y) {
  const Isa isa = active_isa();
  if (is_quantized(w.dtype)) matmul_quantized(w, x, T, y, isa, false);
  else matmul_rows(isa, w, x, T, y, w.rows, 0, w.rows);
}

}  // namespace qnext
