#include "kernels/moe.h"

#include <cmath>

#include "kernels/silu.h"

namespace qnext {

void route_top_k(const float* logits, int E, int k, bool normalize, int* ids, float* weights) {
  float max = logits[0];
  for (int e = 1; e < E; ++e) max = std::fmax(max, logits[e]);
  double sum = 0;
  for (int e = 0; e < E; ++e) sum += std::exp(double(logits[e]) - max);
  // Top k by logit (softmax is monotonic): one pass keeping ids[0..k) sorted by descending logit;
  // a later expert must be strictly larger to move ahead, so ties keep the lower id first.
  int filled = 0;
  for (int e = 0; e < E; ++e) {
    if (filled == k && !(logits[e] > logits[ids[k - 1]])) continue;
    int pos = filled < k ? filled++ : k - 1;
    while (pos > 0 && logits[e] > logits[ids[pos - 1]]) {
      ids[pos] = ids[pos - 1];
      --pos;
    }
    ids[pos] = e;
  }
  for (int i = 0; i < k; ++i) weights[i] = float(std::exp(double(logits[ids[i]]) - max) / sum);
  if (normalize) {
    double total = 0;
    for (int i = 0; i < k; ++i) total += weights[i];
    for (int i = 0; i < k; ++i) weights[i] = float(weights[i] / total);
  }
}

void swiglu(const float* gate, const float* up, int n, float* out) {
  silu_mul(gate, up, n, out);
}

}  // namespace qnext
