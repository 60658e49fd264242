// AVX2 kernels of llama.cpp's block formats (scalar twins in ggml_blocks.cpp): 8 weights per
// vector (ggml_blocks_simd.h), dequantized bit-exactly for the GEMM panels and fused into the FMAs
// for the row products.
#include <immintrin.h>

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
  static I subi(I a, int v) { return _mm256_sub_epi32(a, _mm256_set1_epi32(v)); }
  // Lane j: bit (start + j) of bits.
  static I lane_bits(uint32_t bits, int start) {
    const I idx = _mm256_add_epi32(_mm256_set1_epi32(start), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(bits)), idx), _mm256_set1_epi32(1));
  }
  // kIq4nlValues[q] for q in [0, 16): each half of the table by a permute, picked by bit 3.
  static V iq4nl(I q) {
    const V lo = _mm256_setr_ps(-127, -104, -83, -65, -49, -35, -22, -10), hi = _mm256_setr_ps(1, 13, 25, 38, 53, 69, 89, 113);
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, q), _mm256_permutevar8x32_ps(hi, q),
                            _mm256_castsi256_ps(_mm256_slli_epi32(q, 28)));
  }
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

#define QNEXT_GGML_AVX2(name, Block)                                                                          \
  void dequant_##name##_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {                \
    dequant_blocks<Block, dequant_block_simd<Avx2Ops, Block>>(w, r, k0, n, out);                             \
  }                                                                                                          \
  void rows_##name##_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) { \
    rows_fused<Avx2Ops, Block>(w, x, T, y, ldy, r0, r1);                                                     \
  }
QNEXT_GGML_AVX2(q4_1, BlockQ4_1)
QNEXT_GGML_AVX2(q5_0, BlockQ5_0)
QNEXT_GGML_AVX2(q5_1, BlockQ5_1)
QNEXT_GGML_AVX2(iq4_nl, BlockIq4Nl)
QNEXT_GGML_AVX2(q2_k, BlockQ2K)
QNEXT_GGML_AVX2(q3_k, BlockQ3K)
QNEXT_GGML_AVX2(q4_k, BlockQ4K)
QNEXT_GGML_AVX2(q5_k, BlockQ5K)
QNEXT_GGML_AVX2(q6_k, BlockQ6K)
QNEXT_GGML_AVX2(iq4_xs, BlockIq4Xs)
#undef QNEXT_GGML_AVX2

}  // namespace qnext
