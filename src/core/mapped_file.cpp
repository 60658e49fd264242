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

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return err(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return err(path + ": cannot stat: " + std::strerror(errno));
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = size_t(st.st_size);
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return err(path + ": mmap failed: " + std::strerror(errno));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
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
