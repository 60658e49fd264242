// safetensors files: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.
// Every header entry is validated before any tensor is used; tensors point into the mapped file.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/result.h"

namespace qnext {

constexpr const char* kQuantKeyPrefix = "qnext.quant.";

// "[2048, 128]", for messages.
std::string shape_string(const std::vector<int64_t>& shape);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // outermost first
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  const std::string* file = nullptr;  // the file it lives in, for error messages
  // qnext's quantized files store Q8_0/Q4_0 matrices as U8 [rows, row bytes]; the header's
  // __metadata__ names their format under "qnext.quant.<tensor name>".
  std::optional<DType> quant;

  int64_t numel() const;
  std::string shape_str() const;  // "[2048, 128]"
};

// What a safetensors file's bytes hold, every header entry validated (offsets inside the data
// section, byte counts matching shapes, no overlaps, known quantized formats). The views point
// into `bytes`; their `file` member is left null. `name` names the input in errors.
struct SafetensorsContents {
  std::vector<TensorView> tensors;
  std::map<std::string, std::string> metadata;
};
Result<SafetensorsContents> parse_safetensors(const uint8_t* bytes, size_t size, const std::string& name);

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> open(const std::string& path);  // maps the file, then parse_safetensors

  const std::vector<TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_->path(); }
  const MappedFile& mapped() const { return *file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes a safetensors file, tensors in the given order, header padded to 8 bytes. The bytes of
// tensor i are produced by fill(i, dst) into a buffer of its size, so huge files stream through.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  size_t nbytes() const;
};
Status write_safetensors(const std::string& path, const std::vector<TensorSpec>& tensors,
                         const std::function<void(size_t, uint8_t*)>& fill,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace qnext
