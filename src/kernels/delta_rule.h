// The gated delta rule of Gated DeltaNet, for one value head:
//   S_t = exp(g_t) S_{t-1} + k_t (beta_t (v_t - exp(g_t) S_{t-1}^T k_t))^T,   o_t = S_t^T q_t
// with state S: [Dk, Dv]. Two exact forms: token by token, and chunked (chunks of kDeltaChunk);
// which one prefill takes: delta_rule_prefers_recurrent.
#pragma once
#include <cstddef>

namespace qnext {

// Strided views: token t's vector for this head starts at base + t * stride.
struct DeltaRuleHead {
  const float* q;  // [T, *] with q[t] at q + t*qk_stride, Dk values, already L2-normed and scaled
  const float* k;  // [T, *] Dk values, L2-normed
  const float* v;  // [T, *] Dv values
  const float* g;  // [T, *] log decay (<= 0)
  const float* beta;  // [T, *]
  size_t qk_stride, v_stride, gb_stride;
  float* out;  // [T, *] Dv values
  size_t out_stride;
};

void delta_rule_recurrent(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S);

// Chunk length of the chunked form; scratch must hold delta_rule_scratch_floats(Dk, Dv) floats.
constexpr int kDeltaChunk = 64;
size_t delta_rule_scratch_floats(int Dk, int Dv);
void delta_rule_chunked(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S, float* scratch);

// Whether many tokens run faster token by token than chunked with the active ISA: on AVX2 and
// AVX-512, where the recurrent form is less arithmetic per token (delta_rule_slices.h says why) and
// its kernels the faster at every T (BM_DeltaRule).
bool delta_rule_prefers_recurrent();

// ISA variants, chosen by delta_rule_recurrent and delta_rule_chunked from the active ISA (same
// contracts).
void delta_rule_recurrent_scalar(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S);
void delta_rule_chunked_scalar(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S, float* scratch);
void delta_rule_recurrent_avx2(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S);
void delta_rule_chunked_avx2(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S, float* scratch);
// T >= 4: Dk <= 256 and Dv % 16 == 0 (column slices); T < 4: Dv % 16 == 0 and Dv <= 128 (whole rows)
bool delta_rule_avx512_fits(int T, int Dk, int Dv);
void delta_rule_recurrent_avx512(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S);

}  // namespace qnext
