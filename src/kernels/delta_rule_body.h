// The bodies of the delta-rule kernels, compiled once per ISA: delta_rule.cpp includes this
// header with the baseline flags (the scalar twin), delta_rule_avx2.cpp with AVX2 + FMA, where the
// compiler vectorizes the loops over Dv. Internal linkage keeps the two copies apart.
#pragma once
#include <algorithm>
#include <cmath>

#include "kernels/delta_rule.h"
#include "kernels/dot.h"

namespace qnext {
namespace {

inline void recurrent_body(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S) {
  float pred[1024];  // Dv <= 1024 (checked by the model loader)
  for (int t = 0; t < T; ++t) {
    const float* q = h.q + t * h.qk_stride;
    const float* k = h.k + t * h.qk_stride;
    const float* v = h.v + t * h.v_stride;
    const float decay = std::exp(h.g[t * h.gb_stride]);
    const float beta = h.beta[t * h.gb_stride];
    float* o = h.out + t * h.out_stride;
    // pred = S^T k (before decay), u = beta (v - decay * pred)
    for (int j = 0; j < Dv; ++j) pred[j] = 0;
    for (int i = 0; i < Dk; ++i) {
      const float* Si = S + size_t(i) * Dv;
      for (int j = 0; j < Dv; ++j) pred[j] += Si[j] * k[i];
    }
    for (int j = 0; j < Dv; ++j) pred[j] = beta * (v[j] - decay * pred[j]);
    // S = decay S + k u^T, and o = S^T q in the same pass
    for (int j = 0; j < Dv; ++j) o[j] = 0;
    for (int i = 0; i < Dk; ++i) {
      float* Si = S + size_t(i) * Dv;
      for (int j = 0; j < Dv; ++j) {
        Si[j] = decay * Si[j] + k[i] * pred[j];
        o[j] += Si[j] * q[i];
      }
    }
  }
}

// Inside a chunk, with G_i = g_1 + ... + g_i, the state after step i is
//   S_i = e^{G_i} S_0 + sum_{j<=i} e^{G_i - G_j} k_j u_j^T,
// where the pseudo-values u solve the unit lower-triangular (UT/WY) system
//   u_i + beta_i sum_{j<i} e^{G_i - G_j} (k_i.k_j) u_j = beta_i (v_i - e^{G_i} S_0^T k_i).
inline void chunked_body(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S, float* scratch) {
  const int C = kDeltaChunk;
  float* U = scratch;                      // [C, Dv] pseudo-values u
  float* QS = U + size_t(C) * Dv;          // [C, Dv] q_i^T S_0
  float* A = QS + size_t(C) * Dv;          // [C, C] strict lower: beta_i e^{G_i-G_j} k_i.k_j
  float* B = A + size_t(C) * C;            // [C, C] lower incl.: e^{G_i-G_j} q_i.k_j
  float* G = B + size_t(C) * C;            // [C] cumulative log decay
  for (int s = 0; s < T; s += C) {
    const int n = std::min(C, T - s);
    auto q = [&](int i) { return h.q + (s + i) * h.qk_stride; };
    auto k = [&](int i) { return h.k + (s + i) * h.qk_stride; };
    float acc = 0;
    for (int i = 0; i < n; ++i) G[i] = acc += h.g[(s + i) * h.gb_stride];

    // U = k S_0 and QS = q S_0 (row i = k_i^T S_0)
    for (int i = 0; i < n; ++i) {
      float* u = U + size_t(i) * Dv;
      float* qs = QS + size_t(i) * Dv;
      for (int j = 0; j < Dv; ++j) u[j] = qs[j] = 0;
      const float* ki = k(i);
      const float* qi = q(i);
      for (int d = 0; d < Dk; ++d) {
        const float* Sd = S + size_t(d) * Dv;
        const float kd = ki[d], qd = qi[d];
        for (int j = 0; j < Dv; ++j) {
          u[j] += kd * Sd[j];
          qs[j] += qd * Sd[j];
        }
      }
    }
    // Gram matrices with decay: A (strict lower, times beta) and B (lower incl.)
    for (int i = 0; i < n; ++i) {
      const float beta = h.beta[(s + i) * h.gb_stride];
      const float* ki = k(i);
      const float* qi = q(i);
      for (int j = 0; j <= i; ++j) {
        const float* kj = k(j);
        const float kk = dot8(ki, kj, Dk), qk = dot8(qi, kj, Dk);
        const float decay = std::exp(G[i] - G[j]);
        A[size_t(i) * C + j] = beta * decay * kk;
        B[size_t(i) * C + j] = decay * qk;
      }
    }
    // rhs_i = beta_i (v_i - e^{G_i} k_i^T S_0), then forward substitution through (I + A).
    for (int i = 0; i < n; ++i) {
      const float beta = h.beta[(s + i) * h.gb_stride];
      const float eg = std::exp(G[i]);
      const float* vi = h.v + (s + i) * h.v_stride;
      float* ui = U + size_t(i) * Dv;
      for (int j = 0; j < Dv; ++j) ui[j] = beta * (vi[j] - eg * ui[j]);
      for (int j = 0; j < i; ++j) {
        const float a = A[size_t(i) * C + j];
        const float* uj = U + size_t(j) * Dv;
        for (int c = 0; c < Dv; ++c) ui[c] -= a * uj[c];
      }
    }
    // o_i = e^{G_i} q_i^T S_0 + sum_{j<=i} B_ij u_j
    for (int i = 0; i < n; ++i) {
      float* o = h.out + (s + i) * h.out_stride;
      const float eg = std::exp(G[i]);
      const float* qs = QS + size_t(i) * Dv;
      for (int c = 0; c < Dv; ++c) o[c] = eg * qs[c];
      for (int j = 0; j <= i; ++j) {
        const float b = B[size_t(i) * C + j];
        const float* uj = U + size_t(j) * Dv;
        for (int c = 0; c < Dv; ++c) o[c] += b * uj[c];
      }
    }
    // S = e^{G_n} S_0 + sum_j e^{G_n - G_j} k_j u_j^T
    const float total = std::exp(G[n - 1]);
    for (int d = 0; d < Dk * Dv; ++d) S[d] *= total;
    for (int j = 0; j < n; ++j) {
      const float tail = std::exp(G[n - 1] - G[j]);
      const float* kj = k(j);
      const float* uj = U + size_t(j) * Dv;
      for (int d = 0; d < Dk; ++d) {
        const float kd = tail * kj[d];
        float* Sd = S + size_t(d) * Dv;
        for (int c = 0; c < Dv; ++c) Sd[c] += kd * uj[c];
      }
    }
  }
}

}  // namespace
}  // namespace qnext
