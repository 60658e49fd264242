#include "tokenizer/piece_cache.h"

#include <cstring>

namespace qnext {

uint64_t hash_bytes(std::string_view s) {
  const char* p = s.data();
  size_t len = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xff51afd7ed558ccdull);
  while (len >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    p += 8;
    len -= 8;
  }
  uint64_t w = 0;
  std::memcpy(&w, p, len);
  h = (h ^ w) * 0x94d049bb133111ebull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h | 1;
}

PieceCache::PieceCache() : slots_(kInitialSlots) {}

namespace {
uint32_t tag_of(uint64_t h) { return uint32_t(h >> 32) | 1; }
}  // namespace

// The slot holding piece, or nullptr with *empty = the free slot where it would go.
const PieceCache::Slot* PieceCache::find(std::string_view piece, uint64_t h, size_t* empty) const {
  const size_t mask = slots_.size() - 1;
  const uint32_t tag = tag_of(h);
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.tag == 0) {
      *empty = i;
      return nullptr;
    }
    if (s.tag == tag && s.key_length == piece.size() &&
        std::memcmp(keys_.data() + s.key_offset, piece.data(), piece.size()) == 0)
      return &s;
  }
}

bool PieceCache::lookup(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() > kMaxPiece) return false;
  size_t empty;
  const Slot* s = find(piece, hash_bytes(piece), &empty);
  if (!s) return false;
  out.insert(out.end(), ids_.begin() + s->ids_offset, ids_.begin() + s->ids_offset + s->ids_length);
  return true;
}

void PieceCache::rehash(size_t slots) {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(slots, Slot{});
  for (const Slot& s : old) {
    if (s.tag == 0) continue;
    uint64_t h = hash_bytes(std::string_view(keys_.data() + s.key_offset, s.key_length));
    size_t i = h & (slots - 1);
    while (slots_[i].tag != 0) i = (i + 1) & (slots - 1);
    slots_[i] = s;
  }
}

void PieceCache::insert(std::string_view piece, const int32_t* ids, size_t n) {
  if (piece.size() > kMaxPiece || n > UINT16_MAX) return;
  if ((entries_ + 1) * 2 > slots_.size()) {  // keep the load under 1/2
    if (slots_.size() < kMaxSlots) {
      rehash(slots_.size() * 2);
    } else {  // bound on memory: start over
      slots_.assign(kInitialSlots, Slot{});
      keys_.clear();
      ids_.clear();
      entries_ = 0;
    }
  }
  uint64_t h = hash_bytes(piece);
  size_t empty;
  if (find(piece, h, &empty)) return;
  slots_[empty] = Slot{tag_of(h), uint32_t(keys_.size()), uint32_t(ids_.size()), uint16_t(piece.size()), uint16_t(n)};
  keys_.append(piece);
  ids_.insert(ids_.end(), ids, ids + n);
  ++entries_;
}

}  // namespace qnext
