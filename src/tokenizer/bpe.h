// Byte-level BPE: turns one pre-token (raw bytes) into vocab ids by applying merges in
// rank order. Vocab entries are stored as raw bytes, not GPT-2's printable stand-ins.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/string_id_map.h"

namespace qnext {

class BpeModel {
 public:
  // Room for n tokens of `bytes` bytes in all (a hint).
  void reserve(size_t n, size_t bytes) { ids_.reserve(n, bytes); }
  void reserve_merges(size_t n);
  // Registers a vocab entry; bytes are the token's raw bytes.
  void add_token(std::string_view bytes, int32_t id);
  // Registers the merge (left, right) with the given rank; false if either side or the
  // merged token is not in the vocab.
  bool add_merge(int32_t left, int32_t right, int32_t rank);

  // Appends the ids for piece; every byte must have a single-byte token.
  void encode(std::string_view piece, std::vector<int32_t>& out) const;

  int32_t find(std::string_view bytes) const;  // -1 when absent
  bool has_all_bytes() const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  // Merges live in an open-addressing table (linear probing, power-of-two size): this
  // lookup is the inner loop of BPE, and node-based maps cost a cache miss per probe.
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{};
  };
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  size_t slot_of(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> shift_); }
  const Merge* lookup(int32_t a, int32_t b) const {
    uint64_t k = key(a, b);
    for (size_t i = slot_of(k);; i = (i + 1) & (table_.size() - 1)) {
      const Slot& s = table_[i];
      if (s.key == k) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }
  void rehash(int log2_slots);
  void encode_small(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_large(std::string_view piece, std::vector<int32_t>& out) const;

  StringIdMap ids_;                // raw bytes -> id
  HugePageVector<int32_t> entry_of_;  // [max id + 1]: the id's entry in ids_, -1 when unused
  std::string joined_;             // scratch of add_merge
  int32_t byte_id_[256] = {};
  bool byte_known_[256] = {};
  HugePageVector<Slot> table_ = HugePageVector<Slot>(16);
  int shift_ = 64 - 4;
  size_t merge_count_ = 0;
};

}  // namespace qnext
