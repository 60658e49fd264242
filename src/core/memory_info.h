// What the machine's memory holds now, as the kernel reports it.
#pragma once
#include <cstddef>

namespace qnext {

// /proc/meminfo's MemAvailable: what new allocations can take without swapping (free memory plus
// the page cache the kernel can drop). 0 when it cannot be read.
size_t available_memory_bytes();

// This process's resident set now (/proc/self/status VmRSS); 0 when it cannot be read.
size_t resident_bytes();
// Its peak resident set (VmHWM), which writing "5" to /proc/self/clear_refs lowers again; 0 when
// it cannot be read.
size_t peak_resident_bytes();

}  // namespace qnext
