#include "kernels/delta_rule.h"

#include "core/cpu.h"
#include "kernels/delta_rule_body.h"

namespace qnext {

size_t delta_rule_scratch_floats(int Dk, int Dv) {
  const size_t C = kDeltaChunk;
  return 2 * C * size_t(Dv) + 2 * C * C + C;
}

void delta_rule_recurrent_scalar(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S) {
  recurrent_body(h, T, Dk, Dv, S);
}

void delta_rule_chunked_scalar(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S, float* scratch) {
  chunked_body(h, T, Dk, Dv, S, scratch);
}

bool delta_rule_prefers_recurrent() { return active_isa() >= Isa::Avx2; }

void delta_rule_recurrent(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S) {
  if (active_isa() >= Isa::Avx512 && delta_rule_avx512_fits(T, Dk, Dv)) delta_rule_recurrent_avx512(h, T, Dk, Dv, S);
  else if (active_isa() >= Isa::Avx2) delta_rule_recurrent_avx2(h, T, Dk, Dv, S);
  else delta_rule_recurrent_scalar(h, T, Dk, Dv, S);
}

void delta_rule_chunked(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S, float* scratch) {
  if (active_isa() >= Isa::Avx2) delta_rule_chunked_avx2(h, T, Dk, Dv, S, scratch);
  else delta_rule_chunked_scalar(h, T, Dk, Dv, S, scratch);
}

}  // namespace qnext
