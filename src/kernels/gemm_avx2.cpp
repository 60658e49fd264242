// AVX2 + FMA matrix product for many tokens (prefill): y = x W^T over output rows [r0, r1), for
// weights of any dtype (BF16, F16, F32, Q8_0, Q4_0). Scalar twins: matmul_rows_scalar and
// matmul_dq_rows_scalar.
//
// The layout follows the classic packed GEMM. The tokens are packed once per call into slabs of
// 16 ([cols, 16] each, so one k gives two vectors of 8 tokens). Weight rows are converted to float
// once, a chunk at a time, sized to stay in L2 while every slab goes by. The micro-kernel
// broadcasts 6 weights and multiplies them into 2 vectors of tokens: 12 accumulators, 12 FMAs per
// 8 loads, so the FMA units set the pace rather than the loads.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/quant.h"

namespace qnext {
namespace {

constexpr int kMR = 6;              // weight rows per micro-tile
constexpr int kNR = 16;             // tokens per slab and micro-tile
constexpr int64_t kKc = 256;        // k per pass: a slab's [256, 16] block (16 KiB) stays in L1
constexpr size_t kChunkBytes = 256 * 1024;  // float weight rows converted at once (half of L2)

// One weight row as floats.
void row_to_float(const Matrix& w, int64_t r, float* out) {
  const uint8_t* row = w.row_ptr(r);
  const int64_t n = w.cols;
  switch (w.dtype) {
    case DType::BF16: {
      int64_t k = 0;
      for (; k + 8 <= n; k += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k));
        _mm256_storeu_ps(out + k, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
      }
      for (; k < n; ++k) out[k] = bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
      return;
    }
    case DType::F16: {
      int64_t k = 0;
      for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(out + k, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k))));
      for (; k < n; ++k) out[k] = f16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
      return;
    }
    case DType::Q8_0:
    case DType::Q4_0: dequantize_row_avx2(w.dtype, row, n, out); return;
    default: std::copy_n(reinterpret_cast<const float*>(row), n, out); return;
  }
}

// x [T, cols] -> slabs [ceil(T / 16), cols, 16]; the tokens past T are zeros.
void pack_tokens(const float* x, int T, int64_t cols, float* slabs) {
  const int n_slabs = (T + kNR - 1) / kNR;
  for (int s = 0; s < n_slabs; ++s) {
    float* slab = slabs + size_t(s) * size_t(cols) * kNR;
    for (int j = 0; j < kNR; ++j) {
      const int t = s * kNR + j;
      if (t >= T) {
        for (int64_t k = 0; k < cols; ++k) slab[size_t(k) * kNR + size_t(j)] = 0.0f;
        continue;
      }
      const float* xt = x + size_t(t) * size_t(cols);
      for (int64_t k = 0; k < cols; ++k) slab[size_t(k) * kNR + size_t(j)] = xt[k];
    }
  }
}

// c[MR, 16] (+)= rows w[MR, kc] (row stride ldw) times a slab's rows [kc, 16].
template <int MR>
inline void micro_tile(const float* w, int64_t ldw, const float* slab, int64_t kc, float* c, bool accumulate) {
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = accumulate ? _mm256_loadu_ps(c + i * kNR) : _mm256_setzero_ps();
    acc[i][1] = accumulate ? _mm256_loadu_ps(c + i * kNR + 8) : _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 x0 = _mm256_loadu_ps(slab + size_t(k) * kNR);
    const __m256 x1 = _mm256_loadu_ps(slab + size_t(k) * kNR + 8);
    for (int i = 0; i < MR; ++i) {
      const __m256 wv = _mm256_broadcast_ss(w + size_t(i) * size_t(ldw) + size_t(k));
      acc[i][0] = _mm256_fmadd_ps(wv, x0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(wv, x1, acc[i][1]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(c + i * kNR, acc[i][0]);
    _mm256_storeu_ps(c + i * kNR + 8, acc[i][1]);
  }
}

void tile(int rows, const float* w, int64_t ldw, const float* slab, int64_t kc, float* c, bool accumulate) {
  switch (rows) {
    case 6: micro_tile<6>(w, ldw, slab, kc, c, accumulate); return;
    case 5: micro_tile<5>(w, ldw, slab, kc, c, accumulate); return;
    case 4: micro_tile<4>(w, ldw, slab, kc, c, accumulate); return;
    case 3: micro_tile<3>(w, ldw, slab, kc, c, accumulate); return;
    case 2: micro_tile<2>(w, ldw, slab, kc, c, accumulate); return;
    default: micro_tile<1>(w, ldw, slab, kc, c, accumulate); return;
  }
}

}  // namespace

void gemm_rows_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t cols = w.cols;
  const int n_slabs = (T + kNR - 1) / kNR;
  thread_local std::vector<float> slabs;  // [n_slabs, cols, 16]
  thread_local std::vector<float> chunk;  // [chunk_rows, cols]
  const size_t slab_floats = size_t(n_slabs) * size_t(cols) * kNR;
  if (slabs.size() < slab_floats) slabs.resize(slab_floats);
  pack_tokens(x, T, cols, slabs.data());

  const int64_t chunk_rows =
      std::max<int64_t>(kMR, int64_t(kChunkBytes / (sizeof(float) * size_t(cols))) / kMR * kMR);
  if (chunk.size() < size_t(chunk_rows * cols)) chunk.resize(size_t(chunk_rows * cols));
  thread_local std::vector<float> c;  // [chunk_rows, 16]: one slab's outputs for the chunk
  if (c.size() < size_t(chunk_rows) * kNR) c.resize(size_t(chunk_rows) * kNR);
  for (int64_t rc = r0; rc < r1; rc += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, r1 - rc);
    for (int64_t i = 0; i < rows; ++i) row_to_float(w, rc + i, chunk.data() + size_t(i * cols));
    for (int s = 0; s < n_slabs; ++s) {
      const float* slab = slabs.data() + size_t(s) * size_t(cols) * kNR;
      for (int64_t k0 = 0; k0 < cols; k0 += kKc) {
        const int64_t kc = std::min(kKc, cols - k0);
        for (int64_t i = 0; i < rows; i += kMR)
          tile(int(std::min<int64_t>(kMR, rows - i)), chunk.data() + size_t(i * cols + k0), cols,
               slab + size_t(k0) * kNR, kc, c.data() + size_t(i) * kNR, k0 > 0);
      }
      const int tokens = std::min(kNR, T - s * kNR);
      for (int j = 0; j < tokens; ++j) {
        float* yt = y + size_t(s * kNR + j) * size_t(ldy) + size_t(rc);
        for (int64_t m = 0; m < rows; ++m) yt[m] = c[size_t(m) * kNR + size_t(j)];
      }
    }
  }
}

}  // namespace qnext
