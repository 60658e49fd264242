// An allocator for large tables that are filled right after they are made (the tokenizer's
// vocabulary indexes): blocks of 1 MiB and more are 2 MiB-aligned and advised onto transparent huge
// pages, so filling one costs a page fault per 2 MiB instead of one per 4 KiB. On the VMs we run
// on a fault costs ~8 us, and they were a third of loading a 150k-token tokenizer.json.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <vector>

namespace qnext {

// The size of an x86-64 transparent huge page (also MappedFile::copy_into_memory's alignment).
inline constexpr size_t kHugePageBytes = size_t(2) << 20;

// n rounded up to a multiple of `to`.
inline constexpr size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

template <typename T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr size_t kHugePage = kHugePageBytes;
  static constexpr size_t kThreshold = size_t(1) << 20;

  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    if (n > std::numeric_limits<size_t>::max() / sizeof(T) - kHugePage) throw std::bad_array_new_length();
    const size_t bytes = n * sizeof(T);
    if (bytes < kThreshold) return std::allocator<T>{}.allocate(n);
    const size_t rounded = round_up(bytes, kHugePage);
    void* p = std::aligned_alloc(kHugePage, rounded);
    if (!p) throw std::bad_alloc();
    ::madvise(p, rounded, MADV_HUGEPAGE);  // advice only: where refused, 4 KiB pages as before
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) < kThreshold)
      std::allocator<T>{}.deallocate(p, n);
    else
      std::free(p);
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

template <typename T>
using HugePageVector = std::vector<T, HugePageAllocator<T>>;

// For buffers that grow and are copied, where HugePageAllocator's rounding up to whole huge pages
// would be memory nobody asked for (KV caches, their snapshots in the state cache): an ordinary
// allocation whose 2 MiB-aligned interior is advised onto transparent huge pages. Growing a 16K-
// position f16 cache (a fresh 64 MB, then a copy) took ~230 ms in 4 KiB page faults, ~20 ms so.
template <typename T>
struct HugeInteriorAllocator {
  using value_type = T;
  static constexpr size_t kThreshold = size_t(4) << 20;  // below, the interior is one page or none

  HugeInteriorAllocator() = default;
  template <typename U>
  HugeInteriorAllocator(const HugeInteriorAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    T* p = std::allocator<T>{}.allocate(n);
    if (const size_t bytes = n * sizeof(T); bytes >= kThreshold) {
      const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + bytes;
      const uintptr_t first = round_up(begin, kHugePageBytes);
      const uintptr_t last = end / kHugePageBytes * kHugePageBytes;
      if (first < last) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);  // advice only
    }
    return p;
  }
  void deallocate(T* p, size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
  template <typename U>
  bool operator==(const HugeInteriorAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace qnext
