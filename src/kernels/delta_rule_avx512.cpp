// The recurrent delta rule on AVX-512 (delta_rule_slices.h; scalar twin
// delta_rule_recurrent_scalar in delta_rule.cpp): slices of 16 state columns for 4 tokens and more,
// whole rows (one column group) in registers for fewer (Dv <= 128), where delta_rule_avx512_fits.
// Built with -mavx512f; called only where the CPU has it.
#include <immintrin.h>

#include "kernels/delta_rule_slices.h"

namespace qnext {
namespace {

struct Avx512Ops {
  using V = __m512;
  static constexpr int W = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static void store(float* p, V v) { _mm512_store_ps(p, v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
};

}  // namespace

bool delta_rule_avx512_fits(int T, int Dk, int Dv) {
  return slices_fit(T, Dk, Dv, Avx512Ops::W) ||
         (T < kCopyFromTokens && Dv > 0 && Dv % Avx512Ops::W == 0 && Dv <= 8 * Avx512Ops::W);
}

void delta_rule_recurrent_avx512(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S) {
  if (slices_fit(T, Dk, Dv, Avx512Ops::W)) {
    recurrent_slices<Avx512Ops>(h, T, Dk, Dv, S);
    return;
  }
  switch (Dv / Avx512Ops::W) {
    case 1: column_group<Avx512Ops, 1>(h, T, Dk, Dv, S, 0); break;
    case 2: column_group<Avx512Ops, 2>(h, T, Dk, Dv, S, 0); break;
    case 3: column_group<Avx512Ops, 3>(h, T, Dk, Dv, S, 0); break;
    case 4: column_group<Avx512Ops, 4>(h, T, Dk, Dv, S, 0); break;
    case 5: column_group<Avx512Ops, 5>(h, T, Dk, Dv, S, 0); break;
    case 6: column_group<Avx512Ops, 6>(h, T, Dk, Dv, S, 0); break;
    case 7: column_group<Avx512Ops, 7>(h, T, Dk, Dv, S, 0); break;
    case 8: column_group<Avx512Ops, 8>(h, T, Dk, Dv, S, 0); break;
    default: break;  // not reached where delta_rule_avx512_fits
  }
}

}  // namespace qnext
