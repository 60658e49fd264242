// A read-only memory-mapped file: weights are used in place, never copied.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/result.h"

namespace qnext {

// Touches every page of [p, p + n) in parallel, so a benchmark measures steady state rather than
// first-touch page faults of a memory map.
void prefault_pages(const uint8_t* p, size_t n);

class MappedFile {
 public:
  // Pages are faulted in on first touch; Checkpoint::prefault touches them all ahead of a benchmark.
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace qnext
