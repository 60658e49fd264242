#include "io/padded_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace qnext {

Result<PaddedFile> PaddedFile::map(const std::string& path, size_t padding) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return err(path + ": cannot open file (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return err(path + ": not a regular file");
  }
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  const size_t size = size_t(st.st_size);
  const size_t mapped = (size + padding + page - 1) / page * page;
  // Zero pages for the whole span first, then the file over its start: the bytes after the file's
  // end are the rest of its last page (zeros) and the anonymous pages after it.
  void* base = ::mmap(nullptr, mapped, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    ::close(fd);
    return err(path + ": cannot map " + std::to_string(mapped) + " bytes (" + std::strerror(errno) + ")");
  }
  if (size > 0 &&
      ::mmap(base, size, PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_POPULATE, fd, 0) == MAP_FAILED) {
    const int e = errno;
    ::munmap(base, mapped);
    ::close(fd);
    return err(path + ": cannot map the file (" + std::strerror(e) + ")");
  }
  ::close(fd);
  PaddedFile f;
  f.base_ = static_cast<char*>(base);
  f.size_ = size;
  f.mapped_ = mapped;
  return f;
}

PaddedFile& PaddedFile::operator=(PaddedFile&& o) noexcept {
  if (this != &o) {
    if (base_) ::munmap(base_, mapped_);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, 0);
  }
  return *this;
}

PaddedFile::~PaddedFile() {
  if (base_) ::munmap(base_, mapped_);
}

}  // namespace qnext
