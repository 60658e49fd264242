// AVX2 variant of matmul_q_rows (scalar twin in quant.cpp): int8 x int8 block dot products via
// the sign trick (|w| as unsigned bytes times sign(w)*x) and maddubs. One token streams the rows
// one after another; more tokens run 4-row x 2-token tiles that reuse every unpacked weight block.
#include <immintrin.h>

#include <algorithm>

#include "kernels/simd_avx2.h"
#include "kernels/quant.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

// Each format unpacks a block to 32 bytes in registers and dots it with 32 int8 activations,
// leaving 8 int32 partial sums.
struct Q8 {
  using Block = BlockQ8_0;
  static __m256i load(const Block& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q)); }
  static __m256i load_signed(const Block& b) { return load(b); }
  // maddubs takes unsigned x signed bytes: multiply |w| by x carrying w's sign.
  static __m256i dot(__m256i w, const BlockQ8x& x) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q));
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
  }
};
struct Q4 {
  using Block = BlockQ4_0;
  static __m256i load(const Block& b) {  // the nibbles as unsigned bytes 0..15
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q));
    const __m128i mask = _mm_set1_epi8(15);
    const __m128i lo = _mm_and_si128(bytes, mask);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
    return _mm256_set_m128i(hi, lo);
  }
  static __m256i load_signed(const Block& b) { return _mm256_sub_epi8(load(b), _mm256_set1_epi8(8)); }
  // sum (q - 8) x = sum q x - 8 sum x; the 8 lanes each take sum x off.
  static __m256i dot(__m256i q, const BlockQ8x& x) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q));
    const __m256i p32 = _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), _mm256_set1_epi16(1));
    return _mm256_sub_epi32(p32, _mm256_set1_epi32(x.sum));
  }
};

template <typename F, int R, int TT>
inline void tile(const Matrix& w, const BlockQ8x* xq, float* y, int64_t ldy, int64_t r, int t) {
  using Block = typename F::Block;
  const int64_t nb = w.cols / kQuantBlock;
  const Block* rows[R];
  const Block* ahead[R];
  for (int i = 0; i < R; ++i) {
    rows[i] = reinterpret_cast<const Block*>(w.row_ptr(r + i));
    ahead[i] = reinterpret_cast<const Block*>(w.row_ptr(std::min(w.rows - 1, r + i + kQuantPrefetchRows)));
  }
  const BlockQ8x* xs[TT];
  for (int j = 0; j < TT; ++j) xs[j] = xq + size_t(t + j) * size_t(nb);
  __m256 acc[R][TT];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    for (int i = 0; i < R; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead[i] + b), _MM_HINT_T0);
      const __m256i wq = F::load(rows[i][b]);
      const float dw = _cvtsh_ss(rows[i][b].d);  // F16C; the portable f16_to_f32 is far slower
      for (int j = 0; j < TT; ++j)
        acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(F::dot(wq, xs[j][b])), _mm256_set1_ps(dw * xs[j][b].d), acc[i][j]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) y[size_t(t + j) * size_t(ldy) + size_t(r + i)] = hsum_avx2(acc[i][j]);
}

// One token: rows one after another, four accumulators over consecutive blocks (see
// stream_prefetch.h).
template <typename F>
void run_stream(const Matrix& w, const BlockQ8x* x, float* y, int64_t r0, int64_t r1) {
  using Block = typename F::Block;
  const int64_t nb = w.cols / kQuantBlock;
  StreamPrefetch prefetch(w.row_ptr(r0), w.row_ptr(w.rows));
  for (int64_t r = r0; r < r1; ++r) {
    const Block* row = reinterpret_cast<const Block*>(w.row_ptr(r));
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
      prefetch.advance(row + b + 4);
      for (int u = 0; u < 4; ++u) {
        const Block& blk = row[b + u];
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(blk.d) * x[b + u].d);
        acc[u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(F::dot(F::load(blk), x[b + u])), d, acc[u]);
      }
    }
    for (; b < nb; ++b) {
      const __m256 d = _mm256_set1_ps(_cvtsh_ss(row[b].d) * x[b].d);
      acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(F::dot(F::load(row[b]), x[b])), d, acc[0]);
    }
    y[r] = hsum_avx2(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  }
}

template <typename F>
void run(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (T == 1) {
    run_stream<F>(w, xq, y, r0, r1);
    return;
  }
  constexpr int kTokenBlock = 16;
  for (int t0 = 0; t0 < T; t0 += kTokenBlock) {
    const int t1 = std::min(T, t0 + kTokenBlock);
    int64_t r = r0;
    auto rows = [&](auto R) {
      int t = t0;
      for (; t + 2 <= t1; t += 2) tile<F, decltype(R)::value, 2>(w, xq, y, ldy, r, t);
      if (t < t1) tile<F, decltype(R)::value, 1>(w, xq, y, ldy, r, t);
    };
    for (; r + 4 <= r1; r += 4) rows(std::integral_constant<int, 4>{});
    for (; r < r1; ++r) rows(std::integral_constant<int, 1>{});
  }
}

// One quantized row to floats, 32 at a time.
template <typename F>
inline void dequantize_row_avx2(const uint8_t* row, int64_t cols, float* out) {
  const auto* blocks = reinterpret_cast<const typename F::Block*>(row);
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(blocks[b].d));
    const __m256i q = F::load_signed(blocks[b]);  // 32 int8
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    float* o = out + b * kQuantBlock;
    _mm256_storeu_ps(o, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
    _mm256_storeu_ps(o + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
    _mm256_storeu_ps(o + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
    _mm256_storeu_ps(o + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
  }
}

}  // namespace

void dequantize_row_avx2(DType type, const uint8_t* row, int64_t cols, float* out) {
  if (type == DType::Q8_0) dequantize_row_avx2<Q8>(row, cols, out);
  else dequantize_row_avx2<Q4>(row, cols, out);
}

void matmul_q_rows_avx2(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (w.dtype == DType::Q8_0) run<Q8>(w, xq, T, y, ldy, r0, r1);
  else run<Q4>(w, xq, T, y, ldy, r0, r1);
}

}  // namespace qnext
