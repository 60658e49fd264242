// Expert parallelism over MPI: `mpirun -np N qnext <command> ...` runs one model across N
// processes. Rank 0 runs the command (tokenizer, sampling, terminal, HTTP server), every dense
// weight and the per-sequence states; each rank r, rank 0 included, computes the routed experts
// e with e % N == r. Per MoE layer, rank 0 sends each other rank the rows of the tokens routed to
// its experts with their (expert, weight) pairs, one message; the rank returns the weighted sums
// of those rows, one message; rank 0 adds them in rank order after its own experts and the shared
// expert, so results never depend on timing. The dense weights and the states live on rank 0 only:
// the other ranks hold nothing but their experts (memory dense + E/N experts on rank 0, E/N
// experts elsewhere), and a decoded token sends one hidden row per rank and layer, not per expert.
//
// Without MPI in the build, or without mpirun, the world is one process and nothing changes.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/result.h"
#include "model/qwen3_next.h"

namespace qnext {

struct ParallelWorld {
  int rank = 0, size = 1;
  bool follower() const { return rank > 0; }
};

// Starts MPI when mpirun launched this process (its environment says so); otherwise a world of
// one. Call first in main. A follower's stdout and stderr go to /dev/null: only rank 0 prints.
ParallelWorld parallel_init(int* argc, char*** argv);
const ParallelWorld& parallel_world();
// Ends MPI (when started): rank 0 passes its exit code; a failure that the other ranks may not
// know of (they could wait in a collective forever) aborts the job instead of hanging it.
void parallel_finalize(int exit_code);

// After every rank loaded its model (model null: it failed with `error`): each learns every
// rank's outcome. Fails with the first failure, naming the rank, or when a rank loaded a model
// of another shape than rank 0's.
Status parallel_check_loads(const Model* model, const std::string& error);

// What this rank computes with: rank 0 the dense weights and experts e % N == 0, rank r > 0 only
// experts e % N == r (for Model::load).
WeightShare parallel_weight_share();

// Rank 0: the peers that run the other ranks' experts (model/expert_peers.h).
std::unique_ptr<ExpertPeers> make_mpi_expert_peers(const Model& model);

// Ranks > 0: computes rank 0's requests over this rank's experts until rank 0's model is gone.
// Fails (after telling rank 0) when a request does not fit the model.
Status serve_expert_share(Model& model);

// What the exchange cost rank 0 so far (bench): messages and bytes each way, seconds waiting.
struct ExchangeStats {
  uint64_t messages = 0, bytes_sent = 0, bytes_received = 0;
  double wait_seconds = 0;
  uint64_t moe_calls = 0;
};
ExchangeStats expert_exchange_stats(const Model& model);

// Rank 0 (bench): has every other rank page in its share of the experts, as Weights::prefault
// does for rank 0's; then each rank's resident bytes ([N], rank 0's own first).
void prefault_expert_ranks(const Model& model);
std::vector<size_t> expert_ranks_resident_bytes(const Model& model);

}  // namespace qnext
