// Token masks: the vocabulary trie, the per-position walk and its cache, and the per-sequence
// constraint that applies a mask to logits.
#include "runtime/grammar_mask.h"

#include <algorithm>
#include <bit>
#include <limits>

#include "tokenizer/tokenizer.h"

namespace qnext::grammar {

GrammarVocab::GrammarVocab(const std::vector<std::string>& token_bytes, std::vector<int32_t> eos_ids)
    : n_tokens_(token_bytes.size()), bytes_(token_bytes), eos_(std::move(eos_ids)) {
  std::erase_if(eos_, [&](int32_t id) { return id < 0 || static_cast<size_t>(id) >= n_tokens_; });
  for (int32_t id : eos_) bytes_[id].clear();  // an EOS ends the text; it writes nothing a grammar matches
  std::vector<int32_t> order;
  for (size_t id = 0; id < n_tokens_; ++id)
    if (!bytes_[id].empty()) order.push_back(static_cast<int32_t>(id));
  // Sorted byte strings are the trie's preorder (a prefix sorts before its extensions), so the
  // trie is built in one pass, each subtree's nodes and tokens contiguous.
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return bytes_[a] < bytes_[b]; });
  nodes_.push_back({0, 0, 0, 0, 0});
  std::vector<uint32_t> path = {0};  // path[d]: the node of the previous token's first d bytes
  auto close = [&](uint32_t n) {
    nodes_[n].end = static_cast<uint32_t>(nodes_.size());
    nodes_[n].sub_end = static_cast<uint32_t>(ids_.size());
  };
  const std::string* prev = nullptr;
  for (int32_t id : order) {
    const std::string& b = bytes_[id];
    max_bytes_ = std::max(max_bytes_, b.size());
    size_t common = 0;
    if (prev) {
      size_t n = std::min(prev->size(), b.size());
      while (common < n && (*prev)[common] == b[common]) ++common;
    }
    while (path.size() - 1 > common) {
      close(path.back());
      path.pop_back();
    }
    for (size_t k = common; k < b.size(); ++k) {
      auto at = static_cast<uint32_t>(ids_.size());
      nodes_.push_back({0, at, at, at, static_cast<uint8_t>(b[k])});
      path.push_back(static_cast<uint32_t>(nodes_.size() - 1));
    }
    ids_.push_back(id);
    nodes_[path.back()].own_end = static_cast<uint32_t>(ids_.size());
    prev = &b;
  }
  while (!path.empty()) {
    close(path.back());
    path.pop_back();
  }
}

std::shared_ptr<const GrammarVocab> GrammarVocab::from_tokenizer(const Tokenizer& tok, std::span<const int32_t> eos_ids) {
  std::vector<std::string> bytes(tok.vocab_size());
  for (size_t id = 0; id < bytes.size(); ++id) {
    auto t = static_cast<int32_t>(id);
    if (!tok.is_special(t)) bytes[id] = std::string(tok.token_bytes(t));
  }
  return std::make_shared<const GrammarVocab>(bytes, std::vector<int32_t>(eos_ids.begin(), eos_ids.end()));
}

namespace {

size_t words_for(size_t bits) { return (bits + 63) / 64; }
void set_bit(std::vector<uint64_t>& bits, int32_t i) { bits[i >> 6] |= uint64_t{1} << (i & 63); }
bool get_bit(const std::vector<uint64_t>& bits, int32_t i) { return (bits[i >> 6] >> (i & 63)) & 1; }

bool has_live_stack(const StackSet& s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (!s[i].empty()) return true;
  return false;
}

}  // namespace

TokenMasker::TokenMasker(std::shared_ptr<const Grammar> g, std::shared_ptr<const GrammarVocab> vocab)
    : g_(std::move(g)), vocab_(std::move(vocab)) {
  levels_.resize(vocab_->max_token_bytes() + 2);  // never resized during a walk (it holds references)
}

void TokenMasker::walk(uint32_t node, size_t depth, bool escaped, bool local, PositionMask& out) {
  const auto& nodes = vocab_->nodes();
  const auto& ids = vocab_->ids();
  const Level& here = levels_[depth];
  Level& next = levels_[depth + 1];
  for (uint32_t c = node + 1; c < nodes[node].end; c = nodes[c].end) {
    const GrammarVocab::Node& n = nodes[c];
    next.stacks = here.stacks;
    next.partial = here.partial;
    char byte = static_cast<char>(n.byte);
    if (!consume(*g_, next.stacks, next.partial, {&byte, 1}, scratch_)) {
      // Refused inside the sequence: dependent if a path left the sequence above, else refused.
      if (escaped) out.dependent.insert(out.dependent.end(), ids.begin() + n.tok_begin, ids.begin() + n.sub_end);
      continue;
    }
    for (uint32_t k = n.tok_begin; k < n.own_end; ++k) set_bit(out.accepted, ids[k]);
    bool in_char = next.partial.left > 0;
    bool left_here = local && !in_char && next.stacks.any_empty();
    bool live = in_char || has_live_stack(next.stacks);
    if (live) {
      walk(c, depth + 1, escaped || left_here, local, out);
    } else if (escaped || left_here) {
      out.dependent.insert(out.dependent.end(), ids.begin() + n.own_end, ids.begin() + n.sub_end);
    }
  }
}

const TokenMasker::PositionMask& TokenMasker::state_mask(std::span<const uint32_t> stack) {
  const bool whole = stack.size() <= kMaxKeyDepth;
  const auto top = whole ? stack : stack.last(kMaxKeyDepth);
  std::string key(reinterpret_cast<const char*>(top.data()), top.size_bytes());
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  if (cache_bytes_ > kMaxCacheBytes) {
    cache_.clear();
    cache_bytes_ = 0;
  }
  PositionMask pm;
  pm.accepted.assign(words_for(vocab_->size()), 0);
  levels_[0].stacks.clear();
  levels_[0].stacks.add(top);
  levels_[0].partial = {};
  walk(0, 0, false, /*local=*/!whole, pm);
  // A token both accepted on one path and dependent on another is accepted.
  std::erase_if(pm.dependent, [&](int32_t t) { return get_bit(pm.accepted, t); });
  pm.dependent.shrink_to_fit();
  size_t n = 0;
  for (uint64_t w : pm.accepted) n += std::popcount(w);
  if (n * 32 < vocab_->size()) {  // few: a list costs less than the bits, to keep and to apply
    for (size_t w = 0; w < pm.accepted.size(); ++w)
      for (uint64_t b = pm.accepted[w]; b; b &= b - 1) pm.ids.push_back(int32_t(w * 64 + std::countr_zero(b)));
    std::vector<uint64_t>().swap(pm.accepted);
  }
  cache_bytes_ += key.size() + pm.accepted.size() * 8 + (pm.ids.size() + pm.dependent.size()) * 4 + 64;
  return cache_.emplace(std::move(key), std::move(pm)).first->second;
}

size_t TokenMasker::fill(const Matcher& m, std::vector<uint64_t>& allowed) {
  allowed.assign(words_for(vocab_->size()), 0);
  if (m.partial().left > 0) {
    // Inside a character (rare): walk the whole state, uncached.
    PositionMask pm;
    pm.accepted.assign(allowed.size(), 0);
    levels_[0].stacks = m.stacks();
    levels_[0].partial = m.partial();
    walk(0, 0, false, false, pm);
    allowed = std::move(pm.accepted);
  } else {
    const StackSet& stacks = m.stacks();
    for (size_t i = 0; i < stacks.size(); ++i) {
      auto s = stacks[i];
      if (s.empty()) continue;
      const PositionMask& pm = state_mask(s);
      if (pm.accepted.empty()) {
        for (int32_t t : pm.ids) set_bit(allowed, t);
      } else {
        for (size_t w = 0; w < allowed.size(); ++w) allowed[w] |= pm.accepted[w];
      }
      for (int32_t t : pm.dependent) {
        if (get_bit(allowed, t)) continue;
        one_.clear();
        one_.add(s);
        Utf8Partial p;
        if (consume(*g_, one_, p, vocab_->bytes(t), scratch_)) set_bit(allowed, t);
      }
    }
  }
  if (m.can_end())
    for (int32_t id : vocab_->eos_ids()) set_bit(allowed, id);
  size_t n = 0;
  for (uint64_t w : allowed) n += std::popcount(w);
  return n;
}

GrammarConstraint::GrammarConstraint(std::shared_ptr<TokenMasker> masker)
    : masker_(std::move(masker)), matcher_(masker_->grammar()) {}

size_t GrammarConstraint::apply(std::span<float> logits) {
  size_t n = masker_->fill(matcher_, allowed_);
  const size_t vocab = masker_->vocab().size();
  constexpr float kOff = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i)
    if (i >= vocab || !get_bit(allowed_, static_cast<int32_t>(i))) logits[i] = kOff;
  return n;
}

bool GrammarConstraint::accept(int32_t token) {
  const GrammarVocab& v = masker_->vocab();
  if (token < 0 || static_cast<size_t>(token) >= v.size()) return false;
  const auto& eos = v.eos_ids();
  if (std::find(eos.begin(), eos.end(), token) != eos.end()) return matcher_.can_end();
  std::string_view bytes = v.bytes(token);
  return !bytes.empty() && matcher_.accept_bytes(bytes);
}

Result<std::shared_ptr<TokenMasker>> GrammarCache::get(const std::string& grammar_text) {
  {
    std::lock_guard lock(mu_);
    for (auto it = lru_.begin(); it != lru_.end(); ++it)
      if (it->first == grammar_text) {
        lru_.splice(lru_.begin(), lru_, it);
        return lru_.front().second;
      }
  }
  auto g = Grammar::parse(grammar_text);  // outside the lock: a large grammar takes a while
  if (!g) return err(g.error());
  auto masker = std::make_shared<TokenMasker>(g.value(), vocab_);
  std::lock_guard lock(mu_);
  lru_.emplace_front(grammar_text, masker);
  if (lru_.size() > capacity_) lru_.pop_back();
  return masker;
}

}  // namespace qnext::grammar
