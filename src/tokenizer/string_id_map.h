// A string -> id map sized for vocabularies (150k entries and more): the strings live in one
// arena and the index is an open-addressed table of entry numbers, so adding an entry allocates
// nothing of its own. Node-based std::unordered_map<std::string, int> made loading tokenizer.json
// cost one or two allocations per token and per merge lookup: half of a second-long start-up.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/huge_page_allocator.h"

namespace qnext {

// Keys total under 4 GiB (they come from a parsed file, itself bounded by the parser).
class StringIdMap {
 public:
  // Room for n entries holding `bytes` bytes in all (a hint; the map grows as needed).
  void reserve(size_t n, size_t bytes);
  struct Emplaced {
    size_t entry;   // the key's entry (the earlier one when it was already present)
    bool inserted;  // false: key was present, and its first id stays
  };
  Emplaced emplace(std::string_view key, int32_t id);
  int32_t find(std::string_view key) const;  // -1 when absent
  std::string_view key(size_t entry) const {
    const Entry& e = entries_[entry];
    return {arena_.data() + e.offset, e.length};
  }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint32_t offset;  // into arena_
    uint32_t length;
    int32_t id;
    uint32_t hash;  // hash_of(key): compared before the bytes, and rehashing needs no key
  };
  static uint32_t hash_of(std::string_view key);
  size_t slot_of(uint32_t hash) const { return size_t((hash * 0x9E3779B97F4A7C15ull) >> shift_); }
  void rehash(int log2_slots);

  HugePageVector<char> arena_;      // every key, back to back
  HugePageVector<Entry> entries_;   // [n_entries]
  HugePageVector<uint32_t> slots_ = HugePageVector<uint32_t>(16);  // entry + 1, 0 = empty; [power of two]
  int shift_ = 64 - 4;
};

// The bytes of every token id, in one arena (a std::string per id was 32 bytes and often an
// allocation each, for 150k ids).
class TokenBytes {
 public:
  void reserve(size_t n, size_t bytes) {
    spans_.reserve(n);
    arena_.reserve(bytes);
  }
  // Sets id's bytes, growing the table to id + 1 (ids in between have none).
  void set(int32_t id, std::string_view bytes) {
    if (size_t(id) >= spans_.size()) spans_.resize(size_t(id) + 1);
    spans_[id] = Span{uint32_t(arena_.size()), uint32_t(bytes.size())};
    arena_.insert(arena_.end(), bytes.begin(), bytes.end());
  }
  std::string_view operator[](size_t id) const { return {arena_.data() + spans_[id].offset, spans_[id].length}; }
  size_t size() const { return spans_.size(); }

 private:
  struct Span {
    uint32_t offset = 0, length = 0;  // bytes total under 4 GiB, as StringIdMap's
  };
  HugePageVector<char> arena_;
  HugePageVector<Span> spans_;  // [n_ids]
};

}  // namespace qnext
