// The recurrent delta rule in slices of the state's columns, for one SIMD width (included by
// delta_rule_avx2.cpp with 8 floats a vector and delta_rule_avx512.cpp with 16; scalar twin:
// delta_rule_recurrent_scalar in delta_rule.cpp).
//
// Each column of the state S [Dk, Dv] evolves on its own (S_t[:, j] needs only k_t, q_t, v_t[j] and
// S_{t-1}[:, j]), so the kernel takes a slice of one vector's columns through all T tokens: the
// slice (Dk x W floats, 8 KiB at Dk = 128 and W = 16) stays in L1, and pred = S^T k and o = S^T q
// are sums in registers (8 chains over Dk each, for the FMA latency) instead of the compiled
// body's pred[] and o[] rows, loaded and stored at every k.
//
// Per token this is 3 Dk Dv multiply-adds; the chunked form (chunks of 64) takes ~3 Dk Dv + 64 (Dk
// + Dv), about 1.3x at Dk = Dv = 128, so prefill runs this kernel too (delta_rule_prefers_recurrent).
#pragma once
#include <cmath>
#include <cstddef>

#include "kernels/delta_rule.h"

namespace qnext {
namespace {

constexpr int kSliceChains = 8;
constexpr int kMaxSliceRows = 256;  // Dk of the contiguous copy (Qwen3-Next: 128)
constexpr int kCopyFromTokens = 4;

// Ops: V (a vector of W floats), W, zero, set1, loadu, storeu, load, store (aligned), add, mul,
// fmadd (a b + c), fnmadd (c - a b).
template <class Ops>
inline typename Ops::V sum_chains(const typename Ops::V* c) {
  return Ops::add(Ops::add(Ops::add(c[0], c[1]), Ops::add(c[2], c[3])), Ops::add(Ops::add(c[4], c[5]), Ops::add(c[6], c[7])));
}

// Token t of the head: its q, k, v rows and its decay e^g and beta, broadcast.
template <class Ops>
struct Token {
  const float* q;  // [Dk]
  const float* k;  // [Dk]
  const float* v;  // [Dv]
  typename Ops::V decay, beta;
};
template <class Ops>
inline Token<Ops> token(const DeltaRuleHead& h, int t) {
  return {h.q + t * h.qk_stride, h.k + t * h.qk_stride, h.v + t * h.v_stride, Ops::set1(std::exp(h.g[t * h.gb_stride])),
          Ops::set1(h.beta[t * h.gb_stride])};
}

// Columns [c0, c0 + W) of S through tokens 0 .. T-1; row i of the slice at Sc + i * ld.
template <class Ops>
inline void column_slice(const DeltaRuleHead& h, int T, int Dk, float* Sc, size_t ld, int c0) {
  using V = typename Ops::V;
  for (int t = 0; t < T; ++t) {
    const Token<Ops> tok = token<Ops>(h, t);  // (a structured binding: clang 14 cannot capture it)
    // pred = S^T k (before decay), u = beta (v - decay pred)
    V chain[kSliceChains];
    for (auto& c : chain) c = Ops::zero();
    int i = 0;
    for (; i + kSliceChains <= Dk; i += kSliceChains)
      for (int j = 0; j < kSliceChains; ++j)
        chain[j] = Ops::fmadd(Ops::loadu(Sc + size_t(i + j) * ld), Ops::set1(tok.k[i + j]), chain[j]);
    for (; i < Dk; ++i) chain[0] = Ops::fmadd(Ops::loadu(Sc + size_t(i) * ld), Ops::set1(tok.k[i]), chain[0]);
    const V u = Ops::mul(tok.beta, Ops::fnmadd(tok.decay, sum_chains<Ops>(chain), Ops::loadu(tok.v + c0)));
    // S = decay S + k u^T, and o = S^T q in the same pass
    for (auto& c : chain) c = Ops::zero();
    const auto step = [&](int row_index, V& acc) {
      float* row = Sc + size_t(row_index) * ld;
      const V s = Ops::fmadd(Ops::set1(tok.k[row_index]), u, Ops::mul(tok.decay, Ops::loadu(row)));
      Ops::storeu(row, s);
      acc = Ops::fmadd(s, Ops::set1(tok.q[row_index]), acc);
    };
    i = 0;
    for (; i + kSliceChains <= Dk; i += kSliceChains)
      for (int j = 0; j < kSliceChains; ++j) step(i + j, chain[j]);
    for (; i < Dk; ++i) step(i, chain[0]);
    Ops::storeu(h.out + t * h.out_stride + c0, sum_chains<Ops>(chain));
  }
}

// One to three tokens (decoding, verifying): columns [c0, c0 + NV W) of the head's rows in place,
// NV vectors of pred, u and o in registers (NV <= 8: 24 of AVX-512's 32; AVX2 takes groups of 4,
// 12 of its 16), so the group streams through twice a token, row after row, with no copy. The sums
// over Dk run in the scalar twin's order.
template <class Ops, int NV>
void column_group(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S, int c0) {
  using V = typename Ops::V;
  constexpr int W = Ops::W;
  for (int t = 0; t < T; ++t) {
    const auto [q, k, v, decay, beta] = token<Ops>(h, t);  // (no lambda below captures these)
    V pred[NV], u[NV], o[NV];
    for (auto& p : pred) p = Ops::zero();
    for (int i = 0; i < Dk; ++i) {
      const V ki = Ops::set1(k[i]);
      const float* row = S + size_t(i) * size_t(Dv) + c0;
      for (int c = 0; c < NV; ++c) pred[c] = Ops::fmadd(Ops::loadu(row + c * W), ki, pred[c]);
    }
    for (int c = 0; c < NV; ++c) u[c] = Ops::mul(beta, Ops::fnmadd(decay, pred[c], Ops::loadu(v + c0 + c * W)));
    for (auto& a : o) a = Ops::zero();
    for (int i = 0; i < Dk; ++i) {
      const V ki = Ops::set1(k[i]), qi = Ops::set1(q[i]);
      float* row = S + size_t(i) * size_t(Dv) + c0;
      for (int c = 0; c < NV; ++c) {
        const V s = Ops::fmadd(ki, u[c], Ops::mul(decay, Ops::loadu(row + c * W)));
        Ops::storeu(row + c * W, s);
        o[c] = Ops::fmadd(s, qi, o[c]);
      }
    }
    float* out = h.out + t * h.out_stride + c0;
    for (int c = 0; c < NV; ++c) Ops::storeu(out + c * W, o[c]);
  }
}

// Whether the slices apply: Dv a whole number of vectors, Dk rows in the copy, and enough tokens
// to pay for it. In place, a slice's rows would lie Dv floats apart: at Dv = 128 (512 bytes) they
// all fall in 8 of L1's 64 sets, and the slice is evicted before the next token comes back to it.
// So each slice goes through a contiguous copy (Dk x W, all sets), read and written back once per
// call: for one token that costs more than it saves (BM_DeltaRule T:1, the compiled body 2.1 us:
// with the copy 2.3 us at 16 columns, 4.1 at 8), so fewer tokens run other kernels.
constexpr bool slices_fit(int T, int Dk, int Dv, int W) { return T >= kCopyFromTokens && Dk <= kMaxSliceRows && Dv % W == 0; }

// The whole head, where slices_fit.
template <class Ops>
void recurrent_slices(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S) {
  constexpr int W = Ops::W;
  alignas(64) float slice[kMaxSliceRows * W];  // [Dk, W]
  for (int c0 = 0; c0 < Dv; c0 += W) {
    for (int i = 0; i < Dk; ++i) Ops::store(slice + W * i, Ops::loadu(S + size_t(i) * Dv + c0));
    column_slice<Ops>(h, T, Dk, slice, W, c0);
    for (int i = 0; i < Dk; ++i) Ops::storeu(S + size_t(i) * Dv + c0, Ops::load(slice + W * i));
  }
}

}  // namespace
}  // namespace qnext
