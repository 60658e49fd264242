// A read-only memory-mapped file: weights are used in place, never copied.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace qnext {

// Touches every page of [p, p + n) in parallel, so a benchmark measures steady state rather than
// first-touch page faults of a memory map.
void prefault_pages(const uint8_t* p, size_t n);

struct MapOptions {
  // At least this many readable zero bytes after the file's last byte, for parsers that read a
  // little past the end (simdjson: 64).
  size_t padding = 0;
  // Map every page now, in one call, rather than one fault per 4 KiB on first touch (a file read
  // once, whole, right away: tokenizer.json).
  bool populate = false;
};

class MappedFile {
 public:
  // Pages are faulted in on first touch unless options.populate; Weights::prefault touches them
  // all ahead of a benchmark.
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path, MapOptions options = {});
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Replaces the map with a copy of the file in anonymous memory on transparent huge pages, at the
  // same address with the same bytes (so pointers into the file stay valid), read with pread. Decoding
  // streams every weight once per token, and on the page cache's 4 KiB pages that means a TLB miss
  // per page (measured: a decoded token takes a quarter less time with the copy on a Zen 5 VM).
  // A file smaller than a huge page is left as it is. On failure the map stays
  // and nothing is lost. Not thread-safe: call before anything reads the file.
  Status copy_into_memory() const;
  bool in_memory() const { return in_memory_; }
  // Of the copy, the bytes the kernel put on huge pages, given the text of /proc/self/smaps
  // (read_smaps()); 0 when mapped.
  size_t huge_page_bytes(std::string_view smaps) const;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;    // the file's bytes
  size_t mapped_ = 0;  // bytes mapped from data_, padding included
  mutable bool in_memory_ = false;  // copy_into_memory() replaced the map (same address, same bytes)
  // The file as opened (device, inode, modification time in ns), so copy_into_memory() can tell a
  // file replaced on disk (renamed over, even at the same size) from the one mapped.
  uint64_t device_ = 0, inode_ = 0;
  int64_t mtime_ns_ = 0;
  std::string path_;
};

// This process's /proc/self/smaps (empty where unreadable), and of its text the bytes on transparent
// huge pages (AnonHugePages) of the mappings lying within [begin, end).
std::string read_smaps();
size_t anon_huge_page_bytes(std::string_view smaps, uintptr_t begin, uintptr_t end);

}  // namespace qnext
