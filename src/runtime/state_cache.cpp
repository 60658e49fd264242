#include "runtime/state_cache.h"

#include <algorithm>

namespace qnext {

static constexpr uint64_t kFnvBasis = 1469598103934665603ull;

// One more token into an FNV-1a hash, byte by byte.
static uint64_t hash_step(uint64_t x, int32_t token) {
  const uint32_t id = uint32_t(token);
  for (int b = 0; b < 4; ++b) {
    x ^= (id >> (8 * b)) & 0xff;
    x *= 1099511628211ull;
  }
  return x;
}

std::vector<uint64_t> prefix_hashes(std::span<const int32_t> tokens) {
  std::vector<uint64_t> h(tokens.size() + 1);
  h[0] = kFnvBasis;
  for (size_t i = 0; i < tokens.size(); ++i) h[i + 1] = hash_step(h[i], tokens[i]);
  return h;
}


void StateCache::put(std::span<const int32_t> tokens, const SequenceState& state, std::span<const float> logits,
                     std::string text, std::span<const float> mtp_rows) {
  if (tokens.empty()) return;
  uint64_t hash = kFnvBasis;  // of the whole prefix only: no table of every shorter one
  for (int32_t t : tokens) hash = hash_step(hash, t);
  std::lock_guard lock(mu_);
  for (auto it = lru_.begin(); it != lru_.end(); ++it)
    if (it->hash == hash && std::equal(it->tokens.begin(), it->tokens.end(), tokens.begin(), tokens.end())) {
      lru_.splice(lru_.begin(), lru_, it);
      if (it->logits.empty() && !logits.empty() && bytes_ + logits.size_bytes() <= budget_) {
        it->logits.assign(logits.begin(), logits.end());
        it->bytes += logits.size_bytes();
        bytes_ += logits.size_bytes();
      }
      return;
    }
  SequenceState snap = state.snapshot();
  const size_t bytes = snap.bytes() + tokens.size_bytes() + logits.size_bytes() + text.size() + mtp_rows.size_bytes();
  if (bytes > budget_) return;
  evict_to(budget_ - bytes);
  lru_.push_front(Entry{hash, std::vector<int32_t>(tokens.begin(), tokens.end()), std::move(snap),
                        std::vector<float>(logits.begin(), logits.end()), std::move(text),
                        std::vector<float>(mtp_rows.begin(), mtp_rows.end()), bytes});
  bytes_ += bytes;
}

int StateCache::restore(std::span<const int32_t> prompt, SequenceState& state, std::vector<float>* logits,
                        std::vector<float>* mtp_rows) {
  if (prompt.empty()) return 0;
  const auto h = prefix_hashes(prompt);
  std::lock_guard lock(mu_);
  auto best = lru_.end();
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    const size_t n = it->tokens.size();
    const bool usable = n < prompt.size() || (n == prompt.size() && !it->logits.empty() && logits);
    if (!usable || h[n] != it->hash || (best != lru_.end() && n <= best->tokens.size())) continue;
    if (std::equal(it->tokens.begin(), it->tokens.end(), prompt.begin())) best = it;
  }
  if (best == lru_.end()) return 0;
  state.restore(best->state);
  if (best->tokens.size() == prompt.size()) *logits = best->logits;
  if (mtp_rows) *mtp_rows = best->mtp_rows;
  lru_.splice(lru_.begin(), lru_, best);
  return int(best->tokens.size());
}

StateCache::TextPrefix StateCache::longest_text_prefix(std::string_view text) const {
  std::lock_guard lock(mu_);
  const Entry* best = nullptr;
  for (const Entry& e : lru_)
    if (!e.text.empty() && e.text.size() < text.size() && (!best || e.text.size() > best->text.size()) &&
        text.starts_with(e.text))
      best = &e;
  if (!best) return {};
  return {best->tokens, best->text.size()};
}

void StateCache::evict_to(size_t budget) {
  while (bytes_ > budget && !lru_.empty()) {
    bytes_ -= lru_.back().bytes;
    lru_.pop_back();
    ++evictions_;
  }
}

size_t StateCache::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

size_t StateCache::entries() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

uint64_t StateCache::evictions() const {
  std::lock_guard lock(mu_);
  return evictions_;
}

}  // namespace qnext
