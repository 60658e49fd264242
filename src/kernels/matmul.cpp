#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/gemm_bf16.h"
#include "kernels/quant.h"
#include "kernels/weight_format.h"

namespace qnext {

static inline float load_weight(DType t, const uint8_t* row, int64_t k) {
  switch (t) {
    case DType::BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
    case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
    default: return reinterpret_cast<const float*>(row)[k];
  }
}

void matrix_row_to_f32(const Matrix& w, int64_t row, float* out) {
  weight_format(w.dtype).dequant[int(Isa::Scalar)](w, row, 0, w.cols, out);
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

// Whether the packed float GEMM runs these tokens. Not for BF16 on AVX-512: its row kernel's
// 4-row x 24-token blocks were faster than the packed GEMM at every token count (BM_Bf16Terms,
// Zen 5, 16384 x 2048 from memory: 1 thread 110 / 115 / 119 against the GEMM's 60 / 92 / 101
// GFLOP/s at 16 / 64 / 512 tokens; 2 threads 176-182 against 106-178), and from
// kFloatPanelMinTokens tokens the float panels (rows in the lanes) beat both.
static bool float_gemm(Isa isa, DType t, int T) {
  if (isa == Isa::Scalar || T < kGemmMinTokens) return false;
  return !(isa == Isa::Avx512 && t == DType::BF16);
}

void matmul_rows(Isa isa, const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  Bf16Terms terms;
  if (use_bf16_gemm(isa, w, T, &terms)) {
    gemm_bf16_rows_avx512(w, x, T, y, ldy, r0, r1, terms);
    return;
  }
  if (isa == Isa::Avx512 && gemm_float_panels_fits(w, T)) {
    gemm_float_panels_avx512(w, x, T, y, ldy, r0, r1);
    return;
  }
  if (float_gemm(isa, w.dtype, T)) {
    gemm_rows_avx2(w, x, T, y, ldy, r0, r1);
    return;
  }
  weight_format(w.dtype).rows_f32[int(isa)](w, x, T, y, ldy, r0, r1);
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
  if (T <= kGroupMaxTokens) {
    const Product p{&w, x, T, y};
    matmul_group(&p, 1);
    return;
  }
  const Isa isa = active_isa();
  if (int8_product(isa, w, T)) {
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

void matmul_group(const Product* ps, size_t n) {
  const Isa isa = active_isa();
  struct Plan {
    size_t xq = SIZE_MAX;  // quantized input's first block in xq_blocks, SIZE_MAX for float weights
    bool quantize = false;  // the first product with this input quantizes it
  };
  struct Chunk {
    size_t product;
    int64_t r0, r1;  // its rows
  };
  thread_local std::vector<Plan> plans;          // [n]
  thread_local std::vector<Chunk> chunks;        // [chunks of all products], product by product
  thread_local std::vector<BlockQ8x> xq_blocks;  // every distinct quantized input, back to back
  plans.assign(n, Plan{});
  chunks.clear();
  // Quantized products take int8 activations: each distinct input is quantized once, up front.
  size_t blocks = 0;
  for (size_t i = 0; i < n; ++i) {
    const Product& p = ps[i];
    Plan& plan = plans[i];
    if (int8_product(isa, *p.w, p.T)) {
      for (size_t j = 0; j < i && plan.xq == SIZE_MAX; ++j)
        if (plans[j].xq != SIZE_MAX && ps[j].x == p.x && ps[j].T == p.T && ps[j].w->cols == p.w->cols) plan.xq = plans[j].xq;
      if (plan.xq == SIZE_MAX) {
        plan.xq = blocks;
        plan.quantize = true;
        blocks += size_t(p.T) * size_t(p.w->cols / kQuantBlock);
      }
    }
    // Whole 16-row groups, as matmul's split, so the tiles see the same rows together.
    const int64_t bytes_per_row = std::max<int64_t>(1, int64_t(row_bytes(p.w->dtype, p.w->cols)));
    const int64_t chunk_rows = std::max<int64_t>(16, int64_t(kGroupChunkBytes) / bytes_per_row / 16 * 16);
    for (int64_t r0 = 0; r0 < p.w->rows; r0 += chunk_rows) chunks.push_back({i, r0, std::min(p.w->rows, r0 + chunk_rows)});
  }
  if (xq_blocks.size() < blocks) xq_blocks.resize(blocks);
  for (size_t i = 0; i < n; ++i)
    if (plans[i].quantize) quantize_activation_rows(isa, ps[i].x, ps[i].T, ps[i].w->cols, xq_blocks.data() + plans[i].xq);

  // The lambda runs on other threads too: it must see this thread's buffers, not theirs.
  const Plan* plan_of = plans.data();
  const Chunk* chunk_of = chunks.data();
  const BlockQ8x* xq = xq_blocks.data();
  global_pool().parallel_tasks(chunks.size(), [&](size_t c, int) {
    const auto [i, r0, r1] = chunk_of[c];
    const Product& p = ps[i];
    if (plan_of[i].xq != SIZE_MAX) matmul_q_rows(isa, *p.w, xq + plan_of[i].xq, p.T, p.y, p.w->rows, r0, r1);
    else matmul_rows(isa, *p.w, p.x, p.T, p.y, p.w->rows, r0, r1);
  });
}

void matmul_serial(const Matrix& w, const float* x, int T, float* y) {
  const Isa isa = active_isa();
  if (int8_product(isa, w, T)) matmul_quantized(w, x, T, y, isa, false);
  else matmul_rows(isa, w, x, T, y, w.rows, 0, w.rows);
}

}  // namespace qnext
