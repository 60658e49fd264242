#include "io/direct_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace qnext {

// Pieces of this size go to the reader threads: big enough that each is one efficient request,
// small enough that one expert's matrices keep several threads busy.
static constexpr size_t kPiece = size_t(1) << 20;

// Whether an O_DIRECT read works on this file: some file systems accept the flag at open and
// refuse the reads (EINVAL), so try one aligned block.
static bool direct_read_works(int fd) {
  void* buf = nullptr;
  if (posix_memalign(&buf, DirectReader::kAlign, DirectReader::kAlign) != 0) return false;
  const ssize_t n = pread(fd, buf, DirectReader::kAlign, 0);
  std::free(buf);
  return n >= 0;
}

Result<std::unique_ptr<DirectReader>> DirectReader::open(const std::vector<std::string>& paths, int threads,
                                                        bool try_direct) {
  std::unique_ptr<DirectReader> r(new DirectReader());
  for (const auto& path : paths) {
    File f{path, try_direct ? ::open(path.c_str(), O_RDONLY | O_DIRECT) : -1, true};
    if (f.fd >= 0 && !direct_read_works(f.fd)) {
      ::close(f.fd);
      f.fd = -1;
    }
    if (f.fd < 0) f = File{path, ::open(path.c_str(), O_RDONLY), false};
    if (f.fd < 0) return err(path + ": cannot open for reading: " + std::strerror(errno));
    r->files_.push_back(f);
  }
  for (int i = 0; i < std::max(1, threads); ++i) r->threads_.emplace_back([p = r.get()] { p->worker(); });
  return r;
}

DirectReader::~DirectReader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
  for (auto& f : files_)
    if (f.fd >= 0) ::close(f.fd);
}

Status DirectReader::read(std::span<const ReadRange> ranges) {
  start(ranges);
  return wait();
}

void DirectReader::start(std::span<const ReadRange> ranges) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const ReadRange& r : ranges)
      for (size_t at = 0; at < r.bytes; at += kPiece) {
        ReadRange piece = r;
        piece.offset = r.offset + at;
        piece.dst = r.dst + at;
        piece.bytes = std::min(kPiece, r.bytes - at);
        piece.need = r.need > at ? std::min(piece.bytes, r.need - at) : 0;
        queue_.push_back(piece);
        ++pending_;
      }
  }
  work_cv_.notify_all();
}

Status DirectReader::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return pending_ == 0; });
  if (error_.empty()) return Ok{};
  std::string e = std::move(error_);
  error_.clear();
  return err(e);
}

void DirectReader::worker() {
  for (;;) {
    ReadRange r;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      r = queue_.front();
      queue_.pop_front();
    }
    std::string e = read_piece(r);
    std::lock_guard<std::mutex> lock(mu_);
    if (!e.empty() && error_.empty()) error_ = std::move(e);
    if (--pending_ == 0) done_cv_.notify_all();
  }
}

std::string DirectReader::read_piece(const ReadRange& r) {
  const File& f = files_[size_t(r.file)];
  size_t got = 0;
  while (got < r.bytes) {
    const ssize_t n = pread(f.fd, r.dst + got, r.bytes - got, off_t(r.offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return f.path + ": read of " + std::to_string(r.bytes - got) + " bytes at offset " +
             std::to_string(r.offset + got) + " failed: " + std::strerror(errno);
    if (n == 0) break;  // end of file
    got += size_t(n);
    if (f.direct && size_t(n) % kAlign != 0) break;  // a direct read stops short only at the end
  }
  if (got < r.need)
    return f.path + ": expected " + std::to_string(r.need) + " bytes at offset " + std::to_string(r.offset) +
           " but the file ends after " + std::to_string(got) + " (truncated or changed since it was opened?)";
  if (!f.direct) posix_fadvise(f.fd, off_t(r.offset), off_t(r.bytes), POSIX_FADV_DONTNEED);
  return "";
}

}  // namespace qnext
