// The delta rule on AVX2 + FMA (scalar twins in delta_rule.cpp). The recurrent form in slices of 8
// state columns (delta_rule_slices.h) where they fit (slices_fit: Dv % 8 == 0, Dk <= 256, 4 tokens
// or more); where they do not (decoding, or Dk > 256) but Dv % 8 == 0, in column groups of 32 and
// 8 in place; else the body of delta_rule_body.h, as the chunked form, compiled here with the loops
// over Dv vectorized by the compiler (its pred and o rows loaded and stored at every k: BM_DeltaRule
// T:1 ran it at about two thirds of the column groups' rate).
#include <immintrin.h>

#include "kernels/delta_rule_body.h"
#include "kernels/delta_rule_slices.h"

namespace qnext {
namespace {

struct Avx2Ops {
  using V = __m256;
  static constexpr int W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static void store(float* p, V v) { _mm256_store_ps(p, v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
};

}  // namespace

void delta_rule_recurrent_avx2(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S) {
  constexpr int W = Avx2Ops::W;
  if (slices_fit(T, Dk, Dv, W)) {
    recurrent_slices<Avx2Ops>(h, T, Dk, Dv, S);
  } else if (Dv % W == 0) {
    int c0 = 0;
    for (; c0 + 4 * W <= Dv; c0 += 4 * W) column_group<Avx2Ops, 4>(h, T, Dk, Dv, S, c0);
    for (; c0 < Dv; c0 += W) column_group<Avx2Ops, 1>(h, T, Dk, Dv, S, c0);
  } else {
    recurrent_body(h, T, Dk, Dv, S);
  }
}

void delta_rule_chunked_avx2(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S, float* scratch) {
  chunked_body(h, T, Dk, Dv, S, scratch);
}

}  // namespace qnext
