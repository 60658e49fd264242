#include "tokenizer/bpe.h"

#include <queue>

namespace qnext {

void BpeModel::add_token(std::string_view bytes, int32_t id) {
  if (bytes.size() == 1) {
    auto b = static_cast<unsigned char>(bytes[0]);
    byte_id_[b] = id;
    byte_known_[b] = true;
  }
  if (static_cast<size_t>(id) >= entry_of_.size()) entry_of_.resize(size_t(id) + 1, -1);
  // Two ids with the same bytes share the entry; a lookup by bytes finds the first id.
  entry_of_[id] = int32_t(ids_.emplace(bytes, id).entry);
}

bool BpeModel::add_merge(int32_t left, int32_t right, int32_t rank) {
  if (left < 0 || right < 0 || size_t(left) >= entry_of_.size() || size_t(right) >= entry_of_.size() ||
      entry_of_[left] < 0 || entry_of_[right] < 0)
    return false;
  joined_.assign(ids_.key(entry_of_[left]));
  joined_.append(ids_.key(entry_of_[right]));
  int32_t merged = find(joined_);
  if (merged < 0) return false;
  if ((merge_count_ + 1) * 4 > table_.size() * 3) rehash(65 - shift_);  // keep the load under 3/4
  uint64_t k = key(left, right);
  size_t i = slot_of(k);
  while (table_[i].key != kEmpty) {
    if (table_[i].key == k) return true;  // listed twice: the first (better) rank stays
    i = (i + 1) & (table_.size() - 1);
  }
  table_[i] = Slot{k, Merge{rank, merged}};
  ++merge_count_;
  return true;
}

void BpeModel::reserve_merges(size_t n) {
  int log2_slots = 64 - shift_;
  while ((n + 1) * 4 > (size_t(1) << log2_slots) * 3) ++log2_slots;
  if (log2_slots != 64 - shift_) rehash(log2_slots);
}

void BpeModel::rehash(int log2_slots) {
  HugePageVector<Slot> old = std::move(table_);
  table_.assign(size_t(1) << log2_slots, Slot{});
  shift_ = 64 - log2_slots;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    size_t i = slot_of(s.key);
    while (table_[i].key != kEmpty) i = (i + 1) & (table_.size() - 1);
    table_[i] = s;
  }
}

int32_t BpeModel::find(std::string_view bytes) const { return ids_.find(bytes); }

bool BpeModel::has_all_bytes() const {
  for (bool k : byte_known_)
    if (!k) return false;
  return true;
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() <= 48)
    encode_small(piece, out);
  else
    encode_large(piece, out);
}

// Short pieces: repeatedly merge the best-ranked adjacent pair (leftmost on ties).
// Quadratic, but with tiny n this beats any bookkeeping.
void BpeModel::encode_small(std::string_view piece, std::vector<int32_t>& out) const {
  int32_t sym[48];
  int32_t rank[48];  // rank of the pair (sym[i], sym[i+1]); INT32_MAX when not mergeable
  int32_t res[48];
  int n = static_cast<int>(piece.size());
  for (int i = 0; i < n; ++i) sym[i] = byte_id_[static_cast<unsigned char>(piece[i])];
  auto rate = [&](int i) {
    const Merge* m = lookup(sym[i], sym[i + 1]);
    rank[i] = m ? m->rank : INT32_MAX;
    res[i] = m ? m->result : -1;
  };
  for (int i = 0; i + 1 < n; ++i) rate(i);
  while (n > 1) {
    int best = -1;
    int32_t best_rank = INT32_MAX;
    for (int i = 0; i + 1 < n; ++i) {
      if (rank[i] < best_rank) {
        best_rank = rank[i];
        best = i;
      }
    }
    if (best < 0) break;
    sym[best] = res[best];
    for (int i = best + 1; i + 1 < n; ++i) {
      sym[i] = sym[i + 1];
      rank[i] = rank[i + 1];
      res[i] = res[i + 1];
    }
    --n;
    if (best > 0) rate(best - 1);
    if (best + 1 < n) rate(best);
  }
  out.insert(out.end(), sym, sym + n);
}

// Long pieces (e.g. a run of CJK letters or spaces): a doubly linked list of symbols and
// a min-heap of candidate merges keyed by (rank, position); stale entries are skipped.
void BpeModel::encode_large(std::string_view piece, std::vector<int32_t>& out) const {
  int n = static_cast<int>(piece.size());
  std::vector<int32_t> sym(n), prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    sym[i] = byte_id_[static_cast<unsigned char>(piece[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int32_t rank, pos, left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int i) {  // i is -1 after a merge at the first symbol (prev[0])
    if (i < 0) return;
    int j = next[i];
    if (j < 0) return;
    if (const Merge* m = lookup(sym[i], sym[j])) heap.push({m->rank, i, sym[i], sym[j]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int i = c.pos;
    int j = next[i];
    // Skip if either symbol changed since this candidate was queued (or i was absorbed).
    if (sym[i] != c.left || j < 0 || sym[j] != c.right) continue;
    sym[i] = lookup(c.left, c.right)->result;
    sym[j] = -1;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    push(prev[i]);
    push(i);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(sym[i]);
}

}  // namespace qnext
