// A file mapped read-only and followed by zero bytes, for parsers that read a few bytes past the
// end (simdjson reads up to 64): the file's pages come straight from the page cache, so an 11 MB
// tokenizer.json costs neither a copy nor a page fault per 4 KiB.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "core/result.h"

namespace qnext {

class PaddedFile {
 public:
  // Maps path, then at least `padding` readable zero bytes after its last byte.
  static Result<PaddedFile> map(const std::string& path, size_t padding);

  PaddedFile() = default;
  PaddedFile(PaddedFile&& o) noexcept { *this = std::move(o); }
  PaddedFile& operator=(PaddedFile&& o) noexcept;
  PaddedFile(const PaddedFile&) = delete;
  PaddedFile& operator=(const PaddedFile&) = delete;
  ~PaddedFile();

  std::string_view text() const { return {base_, size_}; }

 private:
  char* base_ = nullptr;
  size_t size_ = 0;    // the file's bytes
  size_t mapped_ = 0;  // bytes mapped in all, padding included
};

}  // namespace qnext
