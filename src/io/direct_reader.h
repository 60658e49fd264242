// Reads byte ranges of files into the caller's memory past the page cache (O_DIRECT) where the
// file system allows it, so the kernel keeps no second copy of what the caller caches itself
// (the expert cache, runtime/expert_cache.h). Where O_DIRECT is refused (tmpfs, some overlays)
// it reads through the page cache and drops those pages afterwards (POSIX_FADV_DONTNEED).
// Several reads are in flight at once: large ranges are cut into pieces that a few reader
// threads issue concurrently, which is what an NVMe disk needs to reach its rate.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/result.h"

namespace qnext {

// One read: bytes [offset, offset + bytes) of file `file` into dst. With O_DIRECT, offset, bytes
// and dst must be multiples of DirectReader::kAlign; the range may run past the end of the file,
// but its first `need` bytes must exist (a shorter file is an error that names it).
struct ReadRange {
  int file = 0;
  uint64_t offset = 0;
  size_t bytes = 0, need = 0;
  uint8_t* dst = nullptr;
};

class DirectReader {
 public:
  static constexpr size_t kAlign = 4096;

  // Opens every file (direct where possible, unless try_direct is false) and starts `threads`
  // reader threads.
  static Result<std::unique_ptr<DirectReader>> open(const std::vector<std::string>& paths, int threads = 8,
                                                    bool try_direct = true);
  ~DirectReader();
  DirectReader(const DirectReader&) = delete;
  DirectReader& operator=(const DirectReader&) = delete;

  // Reads every range and returns when all are done; the error names the file and offset.
  Status read(std::span<const ReadRange> ranges);
  // The same in two halves: start() queues the reads and returns at once (the caller computes
  // meanwhile), wait() returns when every read started so far is done.
  void start(std::span<const ReadRange> ranges);
  Status wait();
  bool direct(int file) const { return files_[size_t(file)].direct; }
  const std::string& path(int file) const { return files_[size_t(file)].path; }
  size_t file_count() const { return files_.size(); }

 private:
  struct File {
    std::string path;
    int fd = -1;
    bool direct = false;
  };
  DirectReader() = default;
  void worker();
  std::string read_piece(const ReadRange& r);  // "" or the error

  std::vector<File> files_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<ReadRange> queue_;
  size_t pending_ = 0;
  std::string error_;  // the first error of the current read()
  bool stop_ = false;
};

}  // namespace qnext
