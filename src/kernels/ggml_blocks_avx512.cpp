// AVX-512 row products of llama.cpp's block formats (scalar twins in ggml_blocks.cpp): the fused
// kernels of ggml_blocks_simd.h with 16 weights per vector, about half the instructions per weight
// of the AVX2 ones. The dequantizers (GEMM panels) run the AVX2 kernels.
#include <immintrin.h>

#include "kernels/ggml_blocks.h"
#include "kernels/ggml_blocks_simd.h"

namespace qnext {

namespace {

struct Avx512Ops {
  using V = __m512;
  using I = __m512i;
  static constexpr int kWidth = 16;
  static float f16(uint16_t h) { return _cvtsh_ss(h); }
  static I load_u8(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static I and_(I a, int m) { return _mm512_and_si512(a, _mm512_set1_epi32(m)); }
  static I or_(I a, I b) { return _mm512_or_si512(a, b); }
  template <int n> static I shr(I a) { return _mm512_srli_epi32(a, n); }
  static I slli(I a, int n) { return _mm512_slli_epi32(a, unsigned(n)); }
  static I srl(I a, int n) { return _mm512_srl_epi32(a, _mm_cvtsi32_si128(n)); }
  static I subi(I a, int v) { return _mm512_sub_epi32(a, _mm512_set1_epi32(v)); }
  // Lane j: bit (start + j) of bits.
  static I lane_bits(uint32_t bits, int start) {
    const I idx = _mm512_add_epi32(_mm512_set1_epi32(start), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    return _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(int(bits)), idx), _mm512_set1_epi32(1));
  }
  // kIq4nlValues[q] for q in [0, 16): one permute of the whole table.
  static V iq4nl(I q) {
    return _mm512_permutexvar_ps(q, _mm512_setr_ps(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113));
  }
  static V cvt(I a) { return _mm512_cvtepi32_ps(a); }
  static V set1(float v) { return _mm512_set1_ps(v); }
  static V zero() { return _mm512_setzero_ps(); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V fmsub(V a, V b, V c) { return _mm512_fmsub_ps(a, b, c); }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace

#define QNEXT_GGML_AVX512(name, Block)                                                                        \
  void rows_##name##_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) { \
    rows_fused<Avx512Ops, Block>(w, x, T, y, ldy, r0, r1);                                                   \
  }
QNEXT_GGML_AVX512(q4_1, BlockQ4_1)
QNEXT_GGML_AVX512(q5_0, BlockQ5_0)
QNEXT_GGML_AVX512(q5_1, BlockQ5_1)
QNEXT_GGML_AVX512(iq4_nl, BlockIq4Nl)
QNEXT_GGML_AVX512(q2_k, BlockQ2K)
QNEXT_GGML_AVX512(q3_k, BlockQ3K)
QNEXT_GGML_AVX512(q4_k, BlockQ4K)
QNEXT_GGML_AVX512(q5_k, BlockQ5K)
QNEXT_GGML_AVX512(q6_k, BlockQ6K)
QNEXT_GGML_AVX512(iq4_xs, BlockIq4Xs)
#undef QNEXT_GGML_AVX512

}  // namespace qnext
