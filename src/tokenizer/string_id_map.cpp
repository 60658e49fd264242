#include "tokenizer/string_id_map.h"

#include <functional>

namespace qnext {

uint32_t StringIdMap::hash_of(std::string_view key) { return uint32_t(std::hash<std::string_view>{}(key)); }

void StringIdMap::reserve(size_t n, size_t bytes) {
  arena_.reserve(bytes);
  entries_.reserve(n);
  int log2_slots = 64 - shift_;
  while ((n + 1) * 2 > (size_t(1) << log2_slots)) ++log2_slots;
  if (log2_slots != 64 - shift_) rehash(log2_slots);
}

StringIdMap::Emplaced StringIdMap::emplace(std::string_view key, int32_t id) {
  const uint32_t h = hash_of(key);
  size_t i = slot_of(h);
  for (; slots_[i]; i = (i + 1) & (slots_.size() - 1)) {
    const Entry& e = entries_[slots_[i] - 1];
    if (e.hash == h && this->key(slots_[i] - 1) == key) return {slots_[i] - 1, false};
  }
  entries_.push_back(Entry{uint32_t(arena_.size()), uint32_t(key.size()), id, h});
  arena_.insert(arena_.end(), key.begin(), key.end());
  slots_[i] = uint32_t(entries_.size());
  if (entries_.size() * 2 > slots_.size()) rehash(65 - shift_);  // keep the load under 1/2
  return {entries_.size() - 1, true};
}

int32_t StringIdMap::find(std::string_view key) const {
  const uint32_t h = hash_of(key);
  for (size_t i = slot_of(h); slots_[i]; i = (i + 1) & (slots_.size() - 1)) {
    const Entry& e = entries_[slots_[i] - 1];
    if (e.hash == h && this->key(slots_[i] - 1) == key) return e.id;
  }
  return -1;
}

void StringIdMap::rehash(int log2_slots) {
  slots_.assign(size_t(1) << log2_slots, 0);
  shift_ = 64 - log2_slots;
  for (size_t e = 0; e < entries_.size(); ++e) {
    size_t i = slot_of(entries_[e].hash);
    while (slots_[i]) i = (i + 1) & (slots_.size() - 1);
    slots_[i] = uint32_t(e + 1);
  }
}

}  // namespace qnext
