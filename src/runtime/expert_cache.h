// Models larger than the memory budget: the dense weights (embeddings, lm_head, attention and
// DeltaNet projections, routers, shared experts, norms) stay memory-mapped and resident, while the
// routed experts live in a cache of fixed size, filled from the checkpoint's files as the routers
// pick them. The unit is one whole expert (gate, up and down of one expert of one layer, with any
// side scales and zero points); the least recently used one is replaced. Reads bypass the page
// cache (io/direct_reader.h), so the kernel keeps no second copy of what the cache holds.
#pragma once
#include <cstddef>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "io/direct_reader.h"
#include "model/expert_source.h"
#include "model/qwen3_next.h"
#include "model/weights.h"

namespace qnext {

// What a model needs in memory, split the way the expert cache splits it.
struct MemoryPlan {
  size_t total_bytes = 0;   // every tensor the model uses
  size_t routed_bytes = 0;  // of those, the routed experts' (the MTP layer's included)
  size_t dense_bytes = 0;   // the rest: always resident
  size_t slot_bytes = 0;    // one expert in the cache (its parts page-aligned for direct reads)
  int layer_experts = 0;    // experts per layer: the fewest the cache may hold (one layer's call)
  int expert_count = 0;     // routed experts in all
  // The smallest budget the cache can run in: the dense weights and one layer's experts.
  size_t min_budget() const { return dense_bytes + size_t(layer_experts) * slot_bytes; }
};
// Error when a routed expert is not in a file (quantized while loading with --quantize).
Result<MemoryPlan> plan_memory(const Weights& w);

// The default budget when none is given: what the machine has available now, less a margin for
// the workspace, the KV caches and the rest of the process.
size_t default_memory_budget();

class ExpertCache;

// Gives the model an expert cache when its weights are more than budget_bytes: returns the cache
// (the model owns it), or null when the weights fit; an error when the budget is below the plan's
// min_budget() or the experts are not in files (ExpertCache::create's errors).
Result<const ExpertCache*> apply_memory_budget(Model& model, size_t budget_bytes);

class ExpertCache final : public ExpertSource {
 public:
  // A cache of budget - dense bytes (a whole number of experts); error when the budget is below
  // plan.min_budget(), naming both.
  static Result<std::unique_ptr<ExpertCache>> create(const Weights& w, size_t budget_bytes);
  ~ExpertCache() override;

  int capacity() const override { return int(slots_.size()); }
  void fetch(const MoeWeights& moe, std::span<const int> ids, std::span<const MlpWeights*> out,
             std::span<uint8_t> ready) override;
  void wait() override;
  void prefetch(const MoeWeights& moe, std::span<const int> ids) override;
  ExpertSourceStats stats() const override { return stats_; }
  const MemoryPlan& plan() const { return plan_; }
  bool direct_reads() const;  // whether every file is read past the page cache
  // The disk's read rate in bytes/s, as the cache reads: `bytes` in 4 MiB pieces at random places
  // of the files, several in flight (the roofline of decoding from the cache).
  double measure_disk_rate(size_t bytes) const;
  // Records every expert asked for (block * E + expert), in the order the cache takes them: a
  // fetch's hits, then its misses. Replaying it (runtime/expert_trace.h) with LRU gives exactly
  // the hits the cache had.
  void record_trace(bool on) { recording_ = on; }
  const std::vector<int>& trace() const { return trace_; }

 private:
  struct Slot {
    int key = -1;  // block * E + expert, -1 when empty
    MlpWeights w;  // matrices pointing into this slot's bytes
    bool touched = false;  // its memory faulted in (as huge pages) by a write
    std::list<int>::iterator lru;
  };
  struct FileSpan {
    const uint8_t* base;
    size_t size;
    int index;  // the file's number in reader_
  };
  ExpertCache() = default;
  // Puts expert e of `block` in the least recently used slot (now the most recent) and queues its
  // reads; returns its weights.
  const MlpWeights* load(const MoeWeights& moe, int block, int e);
  // The file and offset of a pointer into one of the memory-mapped files.
  bool locate(const void* p, int* file, uint64_t* offset) const;

  MemoryPlan plan_;
  std::vector<FileSpan> files_;  // by base address (locate searches them)
  std::unique_ptr<DirectReader> reader_;
  std::unordered_map<const MoeWeights*, int> block_of_;  // which MoE block a fetch is for
  int E_ = 0;
  uint8_t* memory_ = nullptr;  // [slots, slot_bytes], page-aligned
  size_t memory_bytes_ = 0;
  std::vector<Slot> slots_;
  std::vector<int> slot_of_;  // [blocks * E] a resident expert's slot, -1 when not resident
  std::list<int> lru_;        // slots, most recently used first
  std::vector<ReadRange> reads_;
  std::vector<int> misses_;
  bool reading_ = false;  // reads of the last fetch may be in flight
  bool recording_ = false;
  std::vector<int> trace_;
  int predicted_block_ = -1;    // the block of the last prefetch, until its fetch
  std::vector<int> predicted_;  // its ids, ascending
  ExpertSourceStats stats_;
};

}  // namespace qnext
