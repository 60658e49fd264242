#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/thread_pool.h"

namespace qnext {

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
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  f->mapped_ = options.padding == 0 ? f->size_ : (f->size_ + options.padding + page - 1) / page * page;
  // With padding: zero pages for the whole span first, then the file over its start, so the bytes
  // after the file's end are the rest of its last page (zeros) and the anonymous pages after it.
  void* base = nullptr;
  if (options.padding > 0) {
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
      ::close(fd);
      return err(path + ": mmap failed: " + std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
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
