// AVX2 kernels of llama.cpp's block formats (scalar twins in ggml_blocks.cpp): the K-quants
// Q4_K, Q5_K, Q6_K dequantize 8 weights per vector (ggml_blocks_simd.h), bit-exactly for the
// GEMM panels and fused into the FMAs for the row products; the other formats run the scalar
// dequantizer a chunk at a time into a buffer and the SIMD dot over it (dequant_rows_avx2.h).
#include <immintrin.h>

#include "kernels/dequant_rows_avx2.h"
#include "kernels/ggml_blocks.h"
#include "kernels/ggml_blocks_simd.h"
#include "kernels/simd_avx2.h"

namespace qnext {

namespace {

struct Avx2Ops {
  using V = __m256;
  using I = __m256i;
  static constexpr int kWidth = 8;
  static float f16(uint16_t h) { return _cvtsh_ss(h); }
  static I load_u8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
  static I and_(I a, int m) { return _mm256_and_si256(a, _mm256_set1_epi32(m)); }
  static I or_(I a, I b) { return _mm256_or_si256(a, b); }
  template <int n> static I shr(I a) { return _mm256_srli_epi32(a, n); }
  static I slli(I a, int n) { return _mm256_slli_epi32(a, n); }
  static I srl(I a, int n) { return _mm256_srl_epi32(a, _mm_cvtsi32_si128(n)); }
  static I sub32(I a) { return _mm256_sub_epi32(a, _mm256_set1_epi32(32)); }
  static V cvt(I a) { return _mm256_cvtepi32_ps(a); }
  static V set1(float v) { return _mm256_set1_ps(v); }
  static V zero() { return _mm256_setzero_ps(); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fmsub(V a, V b, V c) { return _mm256_fmsub_ps(a, b, c); }
  static float hsum(V v) { return hsum_avx2(v); }
};

}  // namespace

void dequant_q4_k_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  dequant_blocks<BlockQ4K, dequant_block_q4k<Avx2Ops>>(w, r, k0, n, out);
}
void dequant_q5_k_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  dequant_blocks<BlockQ5K, dequant_block_q5k<Avx2Ops>>(w, r, k0, n, out);
}
void dequant_q6_k_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  dequant_blocks<BlockQ6K, dequant_block_q6k<Avx2Ops>>(w, r, k0, n, out);
}
void rows_q4_k_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_fused<Avx2Ops, BlockQ4K>(w, x, T, y, ldy, r0, r1);
}
void rows_q5_k_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_fused<Avx2Ops, BlockQ5K>(w, x, T, y, ldy, r0, r1);
}
void rows_q6_k_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_fused<Avx2Ops, BlockQ6K>(w, x, T, y, ldy, r0, r1);
}

// The other formats: their scalar dequantizer under the SIMD dot.
#define QNEXT_GGML_GENERIC_AVX2(name)                                                                         \
  void rows_##name##_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) { \
    dequant_rows::rows<dequant_##name##_scalar>(w, x, T, y, ldy, r0, r1);                                    \
  }
QNEXT_GGML_GENERIC_AVX2(q4_1)
QNEXT_GGML_GENERIC_AVX2(q5_0)
QNEXT_GGML_GENERIC_AVX2(q5_1)
QNEXT_GGML_GENERIC_AVX2(iq4_nl)
QNEXT_GGML_GENERIC_AVX2(q2_k)
QNEXT_GGML_GENERIC_AVX2(q3_k)
QNEXT_GGML_GENERIC_AVX2(iq4_xs)
#undef QNEXT_GGML_GENERIC_AVX2

}  // namespace qnext
