// Random-weight checkpoints in the exact Hugging Face layout (config.json, sharded BF16
// safetensors + index, mtp.*), with real or small dimensions: for benchmarks and the default chat.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "model/config.h"

namespace qnext {

// "qwen3-next-80b-a3b": the real per-layer dimensions; "tiny": a small model with the real vocab.
Result<Config> preset_config(const std::string& name);

// Tensor names and shapes of a checkpoint of this config, in file order.
struct SynthTensor {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<SynthTensor> checkpoint_tensors(const Config& c, bool with_mtp);

// progress(bytes_written, bytes_total) is called as shards fill.
Status synthesize_checkpoint(const Config& c, uint64_t seed, const std::string& out_dir, bool with_mtp,
                             size_t shard_bytes, const std::function<void(size_t, size_t)>& progress);

}  // namespace qnext
