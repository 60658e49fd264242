// The recurrent delta rule on AVX-512, 16 value columns at a time (scalar twin:
// delta_rule_recurrent_scalar in delta_rule.cpp). Each column of the state S [Dk, Dv] evolves on its
// own (S_t[:, j] needs only k_t, q_t, v_t[j] and S_{t-1}[:, j]), so the kernel takes a slice of 16
// columns through all T tokens: the slice (Dk x 16 floats, 8 KiB at Dk = 128) stays in L1, and
// pred = S^T k and o = S^T q are sums in registers (8 chains over Dk each, for the FMA latency)
// instead of the compiled body's pred[] and o[] rows loaded and stored at every k.
//
// Per token this is 3 Dk Dv multiply-adds; the chunked form (chunks of 64) takes ~3 Dk Dv + 64 (Dk
// + Dv), about 1.3x at Dk = Dv = 128, so on AVX-512 prefill runs this kernel too
// (delta_rule_prefers_recurrent). Built with -mavx512f; called only where the CPU has it.
#include <immintrin.h>

#include <cmath>

#include "kernels/delta_rule.h"

namespace qnext {
namespace {

constexpr int kChains = 8;
constexpr int kMaxSliceRows = 256;  // Dk of the contiguous copy (Qwen3-Next: 128)
constexpr int kCopyFromTokens = 4;

inline __m512 sum_chains(const __m512* c) {
  return _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c[0], c[1]), _mm512_add_ps(c[2], c[3])),
                       _mm512_add_ps(_mm512_add_ps(c[4], c[5]), _mm512_add_ps(c[6], c[7])));
}

// Columns [c0, c0 + 16) of S through tokens 0 .. T-1; row i of the slice at Sc + i * ld.
void column_slice(const DeltaRuleHead& h, int T, int Dk, float* Sc, size_t ld, int c0) {
  for (int t = 0; t < T; ++t) {
    const float* q = h.q + t * h.qk_stride;
    const float* k = h.k + t * h.qk_stride;
    const float* v = h.v + t * h.v_stride;
    const __m512 decay = _mm512_set1_ps(std::exp(h.g[t * h.gb_stride]));
    const __m512 beta = _mm512_set1_ps(h.beta[t * h.gb_stride]);
    // pred = S^T k (before decay), u = beta (v - decay pred)
    __m512 chain[kChains];
    for (auto& c : chain) c = _mm512_setzero_ps();
    int i = 0;
    for (; i + kChains <= Dk; i += kChains)
      for (int j = 0; j < kChains; ++j)
        chain[j] = _mm512_fmadd_ps(_mm512_loadu_ps(Sc + size_t(i + j) * ld), _mm512_set1_ps(k[i + j]), chain[j]);
    for (; i < Dk; ++i) chain[0] = _mm512_fmadd_ps(_mm512_loadu_ps(Sc + size_t(i) * ld), _mm512_set1_ps(k[i]), chain[0]);
    const __m512 pred = sum_chains(chain);
    const __m512 u = _mm512_mul_ps(beta, _mm512_fnmadd_ps(decay, pred, _mm512_loadu_ps(v + c0)));
    // S = decay S + k u^T, and o = S^T q in the same pass
    for (auto& c : chain) c = _mm512_setzero_ps();
    i = 0;
    for (; i + kChains <= Dk; i += kChains)
      for (int j = 0; j < kChains; ++j) {
        float* row = Sc + size_t(i + j) * ld;
        const __m512 s = _mm512_fmadd_ps(_mm512_set1_ps(k[i + j]), u, _mm512_mul_ps(decay, _mm512_loadu_ps(row)));
        _mm512_storeu_ps(row, s);
        chain[j] = _mm512_fmadd_ps(s, _mm512_set1_ps(q[i + j]), chain[j]);
      }
    for (; i < Dk; ++i) {
      float* row = Sc + size_t(i) * ld;
      const __m512 s = _mm512_fmadd_ps(_mm512_set1_ps(k[i]), u, _mm512_mul_ps(decay, _mm512_loadu_ps(row)));
      _mm512_storeu_ps(row, s);
      chain[0] = _mm512_fmadd_ps(s, _mm512_set1_ps(q[i]), chain[0]);
    }
    _mm512_storeu_ps(h.out + t * h.out_stride + c0, sum_chains(chain));
  }
}

}  // namespace

bool delta_rule_avx512_fits(int Dv) { return Dv % 16 == 0; }

void delta_rule_recurrent_avx512(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S) {
  // In place, a slice's rows lie Dv floats apart: at Dv = 128 (512 bytes) they all fall in 8 of
  // L1's 64 sets, and the slice is evicted before the next token comes back to it. So for more
  // than a few tokens each slice goes through a contiguous copy (Dk x 16, all sets), read and
  // written back once per call.
  alignas(64) float slice[kMaxSliceRows * 16];  // [Dk, 16]
  const bool copy = T >= kCopyFromTokens && Dk <= kMaxSliceRows;
  for (int c0 = 0; c0 < Dv; c0 += 16) {
    if (!copy) {
      column_slice(h, T, Dk, S + c0, size_t(Dv), c0);
      continue;
    }
    for (int i = 0; i < Dk; ++i) _mm512_store_ps(slice + 16 * i, _mm512_loadu_ps(S + size_t(i) * Dv + c0));
    column_slice(h, T, Dk, slice, 16, c0);
    for (int i = 0; i < Dk; ++i) _mm512_storeu_ps(S + size_t(i) * Dv + c0, _mm512_load_ps(slice + 16 * i));
  }
}

}  // namespace qnext
