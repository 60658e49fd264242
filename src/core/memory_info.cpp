#include "core/memory_info.h"

#include <cstdio>
#include <cstring>

namespace qnext {

// The "<key>: N kB" line of a /proc file, in bytes; 0 when it cannot be read.
static size_t proc_kib_field(const char* path, const char* key) {
  std::FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char line[256];
  const size_t key_len = std::strlen(key);
  size_t kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, key_len) == 0 && line[key_len] == ':' && std::sscanf(line + key_len + 1, " %zu kB", &kib) == 1)
      break;
  std::fclose(f);
  return kib * 1024;
}

size_t available_memory_bytes() { return proc_kib_field("/proc/meminfo", "MemAvailable"); }
size_t resident_bytes() { return proc_kib_field("/proc/self/status", "VmRSS"); }
size_t peak_resident_bytes() { return proc_kib_field("/proc/self/status", "VmHWM"); }

}  // namespace qnext
