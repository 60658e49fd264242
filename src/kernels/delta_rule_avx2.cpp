// The delta rule compiled with AVX2 + FMA (bodies in delta_rule_body.h; scalar twin in delta_rule.cpp).
#include "kernels/delta_rule_body.h"

namespace qnext {

void delta_rule_recurrent_avx2(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S) {
  recurrent_body(h, T, Dk, Dv, S);
}

void delta_rule_chunked_avx2(const DeltaRuleHead& h, int T, int Dk, int Dv, float* S, float* scratch) {
  chunked_body(h, T, Dk, Dv, S, scratch);
}

}  // namespace qnext
