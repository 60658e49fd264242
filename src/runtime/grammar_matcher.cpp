// Stepping a grammar's stacks: expansion of rule references, one code point at a time, and the
// UTF-8 decoding that lets a token end inside a character.
#include "runtime/grammar.h"

#include <algorithm>

namespace qnext::grammar {

namespace {

uint64_t hash_of(std::span<const uint32_t> stack) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the entries
  for (uint32_t x : stack) h = (h ^ x) * 0x100000001b3ull;
  return h;
}

bool same(std::span<const uint32_t> a, std::span<const uint32_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

bool StackSet::contains(std::span<const uint32_t> stack, uint64_t hash) const {
  if (size() < kIndexFrom) {
    for (size_t i = 0; i < size(); ++i)
      if (same((*this)[i], stack)) return true;
    return false;
  }
  auto [from, to] = index_.equal_range(hash);
  for (auto it = from; it != to; ++it)
    if (same((*this)[it->second], stack)) return true;
  return false;
}

void StackSet::add(std::span<const uint32_t> stack) {
  const uint64_t h = hash_of(stack);
  if (contains(stack, h)) return;
  data_.insert(data_.end(), stack.begin(), stack.end());
  starts_.push_back(static_cast<uint32_t>(data_.size()));
  // An ambiguous grammar's sets grow large: past a few stacks, an index keeps adding linear.
  if (size() == kIndexFrom)
    for (size_t i = 0; i < size(); ++i) index_.emplace(hash_of((*this)[i]), static_cast<uint32_t>(i));
  else if (size() > kIndexFrom)
    index_.emplace(h, static_cast<uint32_t>(size() - 1));
}

bool StackSet::any_empty() const {
  for (size_t i = 0; i < size(); ++i)
    if (starts_[i] == starts_[i + 1]) return true;
  return false;
}

void expand(const Grammar& g, std::vector<uint32_t>& stack, StackSet& out, size_t& steps) {
  if (out.size() >= kMaxStacks || steps == 0) return;  // an ambiguous grammar's excess paths
  --steps;
  if (stack.empty()) {
    out.add(stack);
    return;
  }
  if (stack.size() > kMaxStackDepth) return;  // too deep: this path is refused
  uint32_t pos = stack.back();
  const Element& e = g.elements[pos];
  if (e.kind == Element::Chars || e.kind == Element::CharsNot) {
    out.add(stack);
    return;
  }
  stack.pop_back();
  if (e.kind == Element::End) {
    expand(g, stack, out, steps);
  } else {
    // Return to pos + 1 after the rule, unless that ends the alternative: a finished sequence
    // leaves nothing to come back to, so right recursion (x*) keeps the stack flat.
    bool tail = g.elements[pos + 1].kind == Element::End;
    if (!tail) stack.push_back(pos + 1);
    for (uint32_t alt : g.rule_alts[e.a]) {
      stack.push_back(alt);
      expand(g, stack, out, steps);
      stack.pop_back();
    }
    if (!tail) stack.pop_back();
  }
  stack.push_back(pos);  // the caller's stack as it was
}

void advance(const Grammar& g, const StackSet& stacks, uint32_t cp, StackSet& out, std::vector<uint32_t>& scratch) {
  out.clear();
  size_t steps = kMaxExpandSteps;
  for (size_t i = 0; i < stacks.size(); ++i) {
    auto s = stacks[i];
    if (s.empty() || !g.matches(s.back(), cp)) continue;
    scratch.assign(s.begin(), s.end());
    scratch.back() += 1;
    expand(g, scratch, out, steps);
  }
}

namespace {

// Can the character in progress still become one that some stack takes?
bool partial_may_match(const Grammar& g, const StackSet& stacks, const Utf8Partial& p) {
  uint32_t lo = std::max(p.bits << (6 * p.left), p.min);
  uint32_t hi = std::min((p.bits << (6 * p.left)) | ((1u << (6 * p.left)) - 1), 0x10FFFFu);
  if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF)) return false;  // nothing valid left (surrogates)
  for (size_t i = 0; i < stacks.size(); ++i) {
    auto s = stacks[i];
    if (!s.empty() && g.may_match(s.back(), lo, hi)) return true;
  }
  return false;
}

}  // namespace

bool consume(const Grammar& g, StackSet& stacks, Utf8Partial& partial, std::string_view bytes, StepScratch& scratch) {
  for (char ch : bytes) {
    auto b = static_cast<unsigned char>(ch);
    uint32_t cp;
    if (partial.left == 0) {
      if (b < 0x80) {
        cp = b;
      } else {
        if (b >= 0xC2 && b <= 0xDF) partial = {b & 0x1Fu, 1, 0x80};
        else if (b >= 0xE0 && b <= 0xEF) partial = {b & 0x0Fu, 2, 0x800};
        else if (b >= 0xF0 && b <= 0xF4) partial = {b & 0x07u, 3, 0x10000};
        else return false;  // a continuation byte, or a byte UTF-8 never uses
        if (!partial_may_match(g, stacks, partial)) return false;
        continue;
      }
    } else {
      if ((b & 0xC0) != 0x80) return false;
      partial.bits = (partial.bits << 6) | (b & 0x3F);
      if (--partial.left > 0) {
        if (!partial_may_match(g, stacks, partial)) return false;
        continue;
      }
      cp = partial.bits;
      partial = {};
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    }
    advance(g, stacks, cp, scratch.next, scratch.stack);
    if (scratch.next.empty()) return false;
    std::swap(stacks, scratch.next);
  }
  return true;
}

Matcher::Matcher(std::shared_ptr<const Grammar> g) : g_(std::move(g)) {
  stacks_.clear();
  std::vector<uint32_t> stack;
  size_t steps = kMaxExpandSteps;
  for (uint32_t alt : g_->rule_alts[g_->root]) {
    stack.assign(1, alt);
    expand(*g_, stack, stacks_, steps);
  }
}

bool Matcher::accept_bytes(std::string_view bytes) {
  trial_ = stacks_;
  Utf8Partial p = partial_;
  if (!consume(*g_, trial_, p, bytes, scratch_)) return false;
  std::swap(stacks_, trial_);
  partial_ = p;
  return true;
}

bool accepts(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  Matcher m(g);
  return m.accept_bytes(text) && m.can_end();
}

}  // namespace qnext::grammar
