#include "tokenizer/bpe.h"

#include <queue>

namespace qnext {

void BpeModel::add_token(std::string bytes, int32_t id) {
  if (bytes.size() == 1) {
    auto b = static_cast<unsigned char>(bytes[0]);
    byte_id_[b] = id;
    byte_known_[b] = true;
  }
  if (static_cast<size_t>(id) >= bytes_of_.size()) bytes_of_.resize(id + 1);
  bytes_of_[id] = bytes;
  ids_.emplace(std::move(bytes), id);
}

bool BpeModel::add_merge(int32_t left, int32_t right, int32_t rank) {
  if (left < 0 || right < 0 || size_t(left) >= bytes_of_.size() || size_t(right) >= bytes_of_.size())
    return false;
  int32_t merged = find(bytes_of_[left] + bytes_of_[right]);
  if (merged < 0) return false;
  if ((merge_count_ + 1) * 2 > table_.size()) grow();  // keep the load under 1/2
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

void BpeModel::grow() {
  std::vector<Slot> old = std::move(table_);
  table_.assign(old.size() * 2, Slot{});
  --shift_;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    size_t i = slot_of(s.key);
    while (table_[i].key != kEmpty) i = (i + 1) & (table_.size() - 1);
    table_[i] = s;
  }
}

int32_t BpeModel::find(std::string_view bytes) const {
  auto it = ids_.find(std::string(bytes));
  return it == ids_.end() ? -1 : it->second;
}

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
