// Expert parallelism: several processes share one model, each holding a share of every layer's
// routed experts (runtime/expert_parallel.h runs them over MPI). The process that runs the
// forward pass (rank 0) hands each (token, expert) pair whose expert another process holds to
// that process, computes its own pairs and the shared expert meanwhile, then adds what the others
// return in rank order, so results never depend on timing.
#pragma once
#include <span>

#include "model/weights.h"

namespace qnext {

class ExpertPeers {
 public:
  virtual ~ExpertPeers() = default;
  // Sends the pairs of other processes' experts, with their tokens' rows of x [T, H], to their
  // owners, and marks them -1 in ids [T, k], leaving this process's own. weights: [T, k].
  virtual void send(const MoeWeights& moe, const float* x, int T, std::span<int> ids, std::span<const float> weights) = 0;
  // Waits for the sums of the last send's pairs and adds them to out [T, H], in rank order.
  virtual void add_replies(float* out) = 0;
};

}  // namespace qnext
