// A checkpoint directory as Hugging Face publishes it: config.json plus either model.safetensors
// or shards listed by model.safetensors.index.json. All tensors by name, memory-mapped.
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"

namespace qnext {

// model.safetensors.index.json: its weight_map, tensor name -> shard file name. `name` names the
// file in errors.
Result<std::map<std::string, std::string>> parse_safetensors_index(std::string_view text, const std::string& name);

class Checkpoint {
 public:
  static Result<Checkpoint> open(const std::string& dir);
  Checkpoint() = default;
  Checkpoint(Checkpoint&&) = default;
  Checkpoint& operator=(Checkpoint&&) = default;
  Checkpoint(const Checkpoint&) = delete;  // by_name_ points into files_

  const std::string& dir() const { return dir_; }
  const TensorView* find(const std::string& name) const;
  // The tensor, checked to exist with exactly this shape; the error names tensor and file.
  Result<const TensorView*> get(const std::string& name, const std::vector<int64_t>& shape) const;
  bool has_prefix(const std::string& prefix) const;
  size_t total_bytes() const;
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, const TensorView*> by_name_;
};

}  // namespace qnext
