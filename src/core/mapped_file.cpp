#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/huge_page_allocator.h"
#include "core/thread_pool.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1; older kernels refuse it (EINVAL), which is harmless here
#endif

namespace qnext {

namespace {

// An inaccessible reservation of `bytes` (rounded to pages) at a 2 MiB-aligned address; null on failure.
void* aligned_reservation(size_t bytes) {
  const size_t length = round_up(bytes, size_t(sysconf(_SC_PAGESIZE)));
  void* p = mmap(nullptr, length + kHugePageBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  auto* start = static_cast<uint8_t*>(p);
  auto* aligned = reinterpret_cast<uint8_t*>(round_up(reinterpret_cast<uintptr_t>(start), kHugePageBytes));
  if (aligned > start) munmap(start, size_t(aligned - start));
  if (uint8_t* end = start + length + kHugePageBytes; aligned + length < end) munmap(aligned + length, size_t(end - (aligned + length)));
  return aligned;
}

}  // namespace

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path, MapOptions options) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return err(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return err(path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return err(path + ": not a regular file");
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = size_t(st.st_size);
  f->device_ = uint64_t(st.st_dev), f->inode_ = uint64_t(st.st_ino);
  f->mtime_ns_ = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  f->mapped_ = options.padding == 0 ? f->size_ : (f->size_ + options.padding + page - 1) / page * page;
  // With padding: zero pages for the whole span first, then the file over its start, so the bytes
  // after the file's end are the rest of its last page (zeros) and the anonymous pages after it.
  void* base = nullptr;
  if (options.padding == 0 && f->size_ >= kHugePageBytes) {
    // 2 MiB-aligned, so copy_into_memory() can put huge pages at the same address.
    base = aligned_reservation(f->mapped_);
    if (!base) {
      const int e = errno;
      ::close(fd);
      return err(path + ": mmap failed: " + std::strerror(e));
    }
  } else if (options.padding > 0) {
    base = mmap(nullptr, f->mapped_, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      return err(path + ": mmap failed: " + std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(base);  // unmapped by the destructor from here on
  }
  if (f->size_ > 0) {
    const int flags = MAP_SHARED | (base ? MAP_FIXED : 0) | (options.populate ? MAP_POPULATE : 0);
    void* p = mmap(base, f->size_, PROT_READ, flags, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      if (base && !f->data_) munmap(base, f->mapped_);
      ::close(fd);
      return err(path + ": mmap failed: " + std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

Status MappedFile::copy_into_memory() const {
  if (in_memory_ || size_ < kHugePageBytes || reinterpret_cast<uintptr_t>(data_) % kHugePageBytes != 0) return Ok{};
  const size_t length = round_up(mapped_, size_t(sysconf(_SC_PAGESIZE)));
  void* staging = aligned_reservation(length);
  if (!staging) return err(path_ + ": cannot reserve " + std::to_string(length) + " bytes: " + std::strerror(errno));
  auto* copy = static_cast<uint8_t*>(staging);
  if (mprotect(copy, length, PROT_READ | PROT_WRITE) != 0) {
    const int e = errno;
    munmap(copy, length);
    return err(path_ + ": cannot make " + std::to_string(length) + " bytes of memory: " + std::strerror(e));
  }
  madvise(copy, length, MADV_HUGEPAGE);  // advice: where refused, 4 KiB pages (still read in place)
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  std::string failure;
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) failure = std::string("cannot open: ") + std::strerror(errno);
  else if (size_t(st.st_size) != size_ || uint64_t(st.st_dev) != device_ || uint64_t(st.st_ino) != inode_ ||
           int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec != mtime_ns_)
    failure = "changed on disk since it was opened";
  // Each thread reads its own 64 MiB pieces (the page faults of the copy are spread too).
  constexpr size_t kPiece = size_t(64) << 20;
  const size_t pieces = (size_ + kPiece - 1) / kPiece;
  std::atomic<bool> failed{false};
  std::atomic<int> read_errno{0};
  if (failure.empty())
    global_pool().parallel_for(pieces, [&](size_t b, size_t e, int) {
      for (size_t piece = b; piece < e && !failed; ++piece) {
        for (size_t at = piece * kPiece, end = std::min(size_, at + kPiece); at < end;) {
          const ssize_t got = pread(fd, copy + at, end - at, off_t(at));
          if (got <= 0) {
            read_errno = got < 0 ? errno : 0;
            failed = true;
            break;
          }
          at += size_t(got);
        }
        // The faults above take a 4 KiB page wherever no free 2 MiB one was at hand (memory
        // fragmented by the page cache, say, or THP off); the collapse compacts and replaces them,
        // synchronously, each thread its own pieces (one pass over the whole copy after the reads
        // took 5 s of an 11 s load with THP off). Advice only. Every piece starts 2 MiB-aligned;
        // the last runs to the end of the 4 KiB-rounded length, whose partial 2 MiB stays as it is.
        const size_t from = piece * kPiece, to = piece + 1 == pieces ? length : from + kPiece;
        if (!failed) madvise(copy + from, to - from, MADV_COLLAPSE);
      }
    }, 1);
  if (fd >= 0) ::close(fd);
  if (failure.empty() && failed)
    failure = read_errno ? std::string("read failed: ") + std::strerror(read_errno) : "file shorter than when it was opened";
  if (failure.empty() && mprotect(copy, length, PROT_READ) != 0) failure = std::string("mprotect: ") + std::strerror(errno);
  // Moves the copy's page tables over the map: the same address now reads the copy.
  if (failure.empty() &&
      mremap(copy, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, const_cast<uint8_t*>(data_)) == MAP_FAILED)
    failure = std::string("mremap: ") + std::strerror(errno);
  if (!failure.empty()) {
    munmap(copy, length);
    return err(path_ + ": cannot copy into memory (" + failure + "); still read through the memory map");
  }
  in_memory_ = true;
  return Ok{};
}

size_t MappedFile::huge_page_bytes(std::string_view smaps) const {
  if (!in_memory_) return 0;
  const auto begin = reinterpret_cast<uintptr_t>(data_);
  return anon_huge_page_bytes(smaps, begin, begin + round_up(mapped_, size_t(sysconf(_SC_PAGESIZE))));
}

std::string read_smaps() {
  std::ifstream in("/proc/self/smaps");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {

// A hex number at the start of s, moved past; false if there is none.
bool take_hex(std::string_view& s, uintptr_t* out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 16);
  if (ec != std::errc() || end == s.data()) return false;
  s.remove_prefix(size_t(end - s.data()));
  return true;
}

}  // namespace

size_t anon_huge_page_bytes(std::string_view smaps, uintptr_t begin, uintptr_t end) {
  constexpr std::string_view kField = "AnonHugePages:";
  size_t total = 0;
  bool inside = false;
  while (!smaps.empty()) {
    const size_t eol = smaps.find('\n');
    std::string_view line = smaps.substr(0, eol);
    smaps.remove_prefix(eol == std::string_view::npos ? smaps.size() : eol + 1);
    // A mapping's header is "lo-hi perms offset dev inode [path]"; its fields are "Name: value kB".
    uintptr_t lo = 0, hi = 0;
    std::string_view rest = line;
    if (take_hex(rest, &lo) && rest.starts_with('-') && (rest.remove_prefix(1), take_hex(rest, &hi)) &&
        rest.starts_with(' ')) {
      inside = lo >= begin && hi <= end;
    } else if (inside && line.starts_with(kField)) {
      line.remove_prefix(kField.size());
      while (line.starts_with(' ')) line.remove_prefix(1);
      size_t kb = 0;
      if (std::from_chars(line.data(), line.data() + line.size(), kb).ec == std::errc()) total += kb << 10;
    }
  }
  return total;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), mapped_);
}

void prefault_pages(const uint8_t* p, size_t n) {
  if (n == 0) return;
  volatile uint8_t sink = 0;
  global_pool().parallel_for((n + 4095) / 4096, [&](size_t b, size_t e, int) {
    uint8_t acc = 0;
    for (size_t page = b; page < e; ++page) acc ^= p[std::min(page * 4096, n - 1)];
    sink = sink ^ acc;
  }, 64);
}

}  // namespace qnext
