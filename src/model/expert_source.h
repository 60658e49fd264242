// Where the forward pass finds the routed experts' weights. By default they are the memory-mapped
// matrices of Weights. When the model does not fit the memory budget, an expert cache
// (runtime/expert_cache.h) keeps a fixed number of experts resident and reads the others from
// the file as the router asks for them; the forward pass only sees other pointers, so its results
// are bit-identical.
#pragma once
#include <cstdint>
#include <span>

#include "model/weights.h"

namespace qnext {

struct ExpertSourceStats {
  uint64_t lookups = 0, hits = 0;  // experts asked for, and found resident
  uint64_t bytes_read = 0;         // from the files
  double read_seconds = 0;         // the forward pass waited for those reads
  // Next-layer prediction (Model::set_expert_prefetch): experts predicted, how many of them the
  // layer then used, and how many the prediction read ahead (not resident before).
  uint64_t predicted = 0, predicted_used = 0, prefetched = 0;
  uint64_t lookups_predicted = 0;  // lookups of the layers that had a prediction
};

class ExpertSource {
 public:
  virtual ~ExpertSource() = default;
  // Most distinct experts one fetch may ask for (at least one layer's experts).
  virtual int capacity() const = 0;
  // Starts making experts ids[i] of `moe` resident and sets out[i] to their weights, valid until
  // the next fetch or prefetch; ready[i] = 1 where the bytes are there now, 0 where they arrive by wait().
  // ids are distinct, at most capacity() of them.
  virtual void fetch(const MoeWeights& moe, std::span<const int> ids, std::span<const MlpWeights*> out,
                     std::span<uint8_t> ready) = 0;
  // Returns once every expert of the last fetch is resident.
  virtual void wait() = 0;
  // A hint: the next fetch of `moe` will likely ask for ids; reading the missing ones may start
  // now, while the layer's token mixer computes.
  virtual void prefetch(const MoeWeights& moe, std::span<const int> ids) = 0;
  virtual ExpertSourceStats stats() const = 0;
};

}  // namespace qnext
