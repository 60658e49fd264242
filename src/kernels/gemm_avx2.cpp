// AVX2 + FMA matrix product for many tokens (prefill): y = x W^T over output rows [r0, r1), for
// weights of any dtype (BF16, F16, F32, and the stored-block formats through kernels/weight_format.h). Scalar twins: matmul_rows_scalar and
// matmul_dq_rows_scalar.
//
// The layout follows the classic packed GEMM. The tokens are packed once per call into slabs of
// 16 ([cols, 16] each, so one k gives two vectors of 8 tokens). Weight rows are converted to float
// once, a chunk at a time, sized to stay in L2 while every slab goes by. The micro-kernel
// broadcasts 6 weights and multiplies them into 2 vectors of tokens (or 12 into 1 for a last slab
// of 8 or fewer tokens): 12 accumulators, 12 FMAs per 8 loads, so the FMA units set the pace.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/weight_format.h"

namespace qnext {
namespace {

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
    case DType::F32: std::copy_n(reinterpret_cast<const float*>(row), n, out); return;
    default: weight_format(w.dtype).dequant[int(Isa::Avx2)](w, r, 0, n, out); return;  // stored blocks
  }
}

// Slab s holds tokens [16 s, 16 s + 16), k-major; the last slab is 8 wide when 8 or fewer tokens
// are left, so a few tokens (an expert's share of a prompt) waste at most 7 lanes, not 15.
int slab_width(int T, int s) { return T - s * kNR <= 8 ? 8 : kNR; }

// x [T, cols] -> slabs [ceil(T / 16), cols, width]; the tokens past T are zeros.
void pack_tokens(const float* x, int T, int64_t cols, float* slabs) {
  const int n_slabs = (T + kNR - 1) / kNR;
  for (int s = 0; s < n_slabs; ++s) {
    float* slab = slabs + size_t(s) * size_t(cols) * kNR;
    const int width = slab_width(T, s);
    for (int j = 0; j < width; ++j) {
      const int t = s * kNR + j;
      if (t >= T) {
        for (int64_t k = 0; k < cols; ++k) slab[size_t(k) * size_t(width) + size_t(j)] = 0.0f;
        continue;
      }
      const float* xt = x + size_t(t) * size_t(cols);
      for (int64_t k = 0; k < cols; ++k) slab[size_t(k) * size_t(width) + size_t(j)] = xt[k];
    }
  }
}

// c[MR, 8 NV] (+)= rows w[MR, kc] (row stride ldw) times a slab's rows [kc, 8 NV]; c's rows are
// 16 apart. MR x NV <= 12 accumulators.
template <int MR, int NV>
inline void micro_tile(const float* w, int64_t ldw, const float* slab, int64_t kc, float* c, bool accumulate) {
  __m256 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? _mm256_loadu_ps(c + i * kNR + 8 * v) : _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m256 xv[NV];
    for (int v = 0; v < NV; ++v) xv[v] = _mm256_loadu_ps(slab + size_t(k) * 8 * NV + 8 * v);
    for (int i = 0; i < MR; ++i) {
      const __m256 wv = _mm256_broadcast_ss(w + size_t(i) * size_t(ldw) + size_t(k));
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(wv, xv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(c + i * kNR + 8 * v, acc[i][v]);
}

// Rows [0, rows) of a chunk against one slab, in tiles of 6 rows (16-wide slab) or 12 (8-wide).
template <int NV>
void slab_tiles(int64_t rows, const float* w, int64_t ldw, const float* slab, int64_t kc, float* c, bool accumulate) {
  constexpr int kRows = 12 / NV;
  int64_t i = 0;
  for (; i + kRows <= rows; i += kRows)
    micro_tile<kRows, NV>(w + size_t(i * ldw), ldw, slab, kc, c + size_t(i) * kNR, accumulate);
  for (; i < rows; ++i) micro_tile<1, NV>(w + size_t(i * ldw), ldw, slab, kc, c + size_t(i) * kNR, accumulate);
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
      std::max<int64_t>(12, int64_t(kChunkBytes / (sizeof(float) * size_t(cols))) / 12 * 12);
  if (chunk.size() < size_t(chunk_rows * cols)) chunk.resize(size_t(chunk_rows * cols));
  thread_local std::vector<float> c;  // [chunk_rows, 16]: one slab's outputs for the chunk
  if (c.size() < size_t(chunk_rows) * kNR) c.resize(size_t(chunk_rows) * kNR);
  for (int64_t rc = r0; rc < r1; rc += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, r1 - rc);
    for (int64_t i = 0; i < rows; ++i) row_to_float(w, rc + i, chunk.data() + size_t(i * cols));
    for (int s = 0; s < n_slabs; ++s) {
      const float* slab = slabs.data() + size_t(s) * size_t(cols) * kNR;
      const int width = slab_width(T, s);
      for (int64_t k0 = 0; k0 < cols; k0 += kKc) {
        const int64_t kc = std::min(kKc, cols - k0);
        const float* wk = chunk.data() + size_t(k0);
        if (width == kNR) slab_tiles<2>(rows, wk, cols, slab + size_t(k0) * kNR, kc, c.data(), k0 > 0);
        else slab_tiles<1>(rows, wk, cols, slab + size_t(k0) * 8, kc, c.data(), k0 > 0);
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
