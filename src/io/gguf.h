// GGUF files, llama.cpp's single-file format: a header, typed metadata (architecture
// hyperparameters, the tokenizer, the chat template), a tensor table, then aligned tensor data.
// Every header field, offset, size and type is validated before anything is used; tensors point
// into the memory-mapped file. GGUF names appear only here and in the loaders (model/*_gguf.cpp,
// tokenizer/tokenizer_gguf.cpp).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/result.h"

namespace qnext {

// ggml's tensor types as numbered in GGUF files (ggml.h's enum ggml_type).
struct GgmlTypeInfo {
  const char* name;      // "Q4_K"
  int64_t block_elems;   // elements per block (1 for the float types)
  size_t block_bytes;    // bytes per block
};
// The type numbered `type`, or nullptr for a number ggml does not define.
const GgmlTypeInfo* ggml_type_info(uint32_t type);
// The DType qnext computes on for a ggml type, if it has one (F32, F16, BF16, Q8_0, Q4_0, ...).
std::optional<DType> dtype_of_ggml(uint32_t type);

struct GgufTensor {
  std::string name;
  uint32_t type = 0;            // ggml type number (see ggml_type_info)
  std::vector<int64_t> shape;   // row-major, outermost first: GGML's ne reversed ([V, H] for token_embd)
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  const std::string* file = nullptr;  // the file it lives in, for error messages (set by GgufCheckpoint)

  int64_t numel() const;
  std::string shape_str() const;  // "[4000, 256]"
  std::string type_name() const;  // "Q4_K", or "type 99"
};

// The metadata values, typed as JSON: integers (signed or unsigned as stored), floats, bools,
// strings, and arrays of them. Strings are kept as the file's bytes (not checked for UTF-8).
using GgufMetadata = std::map<std::string, nlohmann::json>;
// A metadata value for an error message: at most 60 characters, and safe for strings that are not
// UTF-8 (json::dump throws on those).
std::string gguf_shown(const nlohmann::json& value);

struct GgufContents {
  uint32_t version = 0;     // 2 or 3
  uint64_t alignment = 32;  // general.alignment
  GgufMetadata metadata;
  std::vector<GgufTensor> tensors;  // in file order; `file` left null
};
// Parses and validates a whole GGUF image. `name` names the input in errors.
Result<GgufContents> parse_gguf(const uint8_t* bytes, size_t size, const std::string& name);

// Whether `path` is a GGUF model: a .gguf file, or a directory holding .gguf files and no config.json.
bool is_gguf_path(const std::string& path);

// A GGUF model as users download it: one file, or a split set (name-00001-of-0000N.gguf, each with
// split.no / split.count), given as the file, the first split, or the directory holding it.
// Metadata is the first file's; tensors are looked up by name across all files.
class GgufCheckpoint {
 public:
  static Result<GgufCheckpoint> open(const std::string& path);
  GgufCheckpoint() = default;
  GgufCheckpoint(GgufCheckpoint&&) = default;
  GgufCheckpoint& operator=(GgufCheckpoint&&) = default;
  GgufCheckpoint(const GgufCheckpoint&) = delete;

  const std::string& path() const { return path_; }  // the first (or only) file
  const GgufMetadata& metadata() const { return metadata_; }
  const nlohmann::json* meta(const std::string& key) const;  // nullptr when absent
  const GgufTensor* find(const std::string& name) const;
  // The tensor, checked to exist with exactly this shape; the error names tensor and file.
  Result<const GgufTensor*> get(const std::string& name, const std::vector<int64_t>& shape) const;
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  size_t total_bytes() const;
  size_t file_count() const { return files_.size(); }
  const std::vector<std::shared_ptr<MappedFile>>& mapped_files() const { return files_; }

 private:
  std::string path_;
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::vector<std::string> file_names_;  // stable addresses: GgufTensor::file points here
  GgufMetadata metadata_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> by_name_;
};

}  // namespace qnext
