// Memo of pre-token -> ids. Natural text repeats the same words constantly, so this skips
// most BPE work. An open-addressing table over flat arrays (one probe is usually one cache
// line); it is not thread-safe by itself: the owner guards it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qnext {

class PieceCache {
 public:
  PieceCache();
  // Appends the cached ids of piece to out; false when absent.
  bool lookup(std::string_view piece, std::vector<int32_t>& out) const;
  void insert(std::string_view piece, const int32_t* ids, size_t n);

  static constexpr size_t kMaxPiece = 1024;  // longer pieces are not cached

 private:
  // 16 bytes, so the table stays small enough for the CPU caches: a miss here costs as
  // much as BPE on a short word.
  struct Slot {
    uint32_t tag = 0;  // upper hash bits, never 0; 0 marks an empty slot
    uint32_t key_offset = 0;
    uint32_t ids_offset = 0;
    uint16_t key_length = 0;
    uint16_t ids_length = 0;
  };
  static constexpr size_t kInitialSlots = size_t(1) << 12;
  static constexpr size_t kMaxSlots = size_t(1) << 18;  // 4 MB; when full, start over

  const Slot* find(std::string_view piece, uint64_t h, size_t* empty) const;
  void rehash(size_t slots);

  std::vector<Slot> slots_;
  size_t entries_ = 0;
  std::string keys_;          // all cached pieces, back to back
  std::vector<int32_t> ids_;  // all cached id sequences, back to back
};

// Fast non-cryptographic hash of a short byte string (never 0).
uint64_t hash_bytes(std::string_view s);

}  // namespace qnext
