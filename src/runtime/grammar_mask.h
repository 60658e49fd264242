// Which tokens a grammar allows next, for a 151,936-token vocabulary at a small cost per token.
//
// The vocabulary is a byte trie (GrammarVocab), built once per tokenizer. A parse stack's mask is
// one walk of the trie from that stack, pruned at the first byte the grammar refuses, so a walk
// costs what the allowed tokens share in prefixes (0.05 ms for a literal, ~1 ms inside a string).
// Masks are cached by the whole stack: a JSON-schema grammar reaches each state in one context,
// so a step costs a lookup and a copy of the cached bits. Stacks deeper than kMaxKeyDepth are
// keyed by their top kMaxKeyDepth entries; tokens that would leave those entries ("dependent") are
// then checked against the whole stack at each use (xgrammar's adaptive mask cache, whose
// context-dependent tokens are these).
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/grammar.h"

namespace qnext {
class Tokenizer;
}

namespace qnext::grammar {

class GrammarVocab {
 public:
  // token_bytes[id]: what the token writes; an empty string is never allowed by a grammar.
  // eos_ids: allowed exactly where the grammar may end.
  GrammarVocab(const std::vector<std::string>& token_bytes, std::vector<int32_t> eos_ids);
  // The tokenizer's tokens as their bytes; EOS ids and special (control) tokens are left out of
  // the trie, added tokens that are not special (e.g. <tool_call>) count as their text.
  static std::shared_ptr<const GrammarVocab> from_tokenizer(const Tokenizer& tok, std::span<const int32_t> eos_ids);

  struct Node {
    uint32_t end;        // one past this node's subtree (nodes are in preorder)
    uint32_t tok_begin;  // this node's own tokens: ids[tok_begin, own_end)
    uint32_t own_end;
    uint32_t sub_end;    // the whole subtree's tokens: ids[tok_begin, sub_end)
    uint8_t byte;
  };
  size_t size() const { return n_tokens_; }  // vocabulary size (mask length in bits)
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<int32_t>& ids() const { return ids_; }
  std::string_view bytes(int32_t id) const { return bytes_[id]; }
  const std::vector<int32_t>& eos_ids() const { return eos_; }
  size_t max_token_bytes() const { return max_bytes_; }

 private:
  size_t n_tokens_ = 0;
  size_t max_bytes_ = 0;
  std::vector<Node> nodes_;  // [0] is the root (no byte)
  std::vector<int32_t> ids_;
  std::vector<std::string> bytes_;
  std::vector<int32_t> eos_;
};

// Masks for one grammar over one vocabulary, with the per-position cache. Not thread-safe: the
// engine thread (or one generator) uses it; sequences with the same grammar may share it.
class TokenMasker {
 public:
  TokenMasker(std::shared_ptr<const Grammar> g, std::shared_ptr<const GrammarVocab> vocab);

  // allowed = [ceil(vocab / 64)] bits: the tokens the matcher's state takes next (EOS ids where
  // the grammar may end). Returns how many are allowed.
  size_t fill(const Matcher& m, std::vector<uint64_t>& allowed);

  const std::shared_ptr<const Grammar>& grammar() const { return g_; }
  const GrammarVocab& vocab() const { return *vocab_; }
  size_t cached_states() const { return cache_.size(); }
  size_t cached_bytes() const { return cache_bytes_; }

  // Stacks up to this deep are cached whole (exact masks); deeper ones by their top this many.
  static constexpr size_t kMaxKeyDepth = 32;
  // Past this many bytes of cached masks the cache starts over (a long recursive generation).
  static constexpr size_t kMaxCacheBytes = size_t{256} << 20;

 private:
  struct PositionMask {
    std::vector<uint64_t> accepted;  // [words] bits; empty when `ids` lists them instead
    std::vector<int32_t> ids;        // the accepted tokens, when few
    std::vector<int32_t> dependent;  // deep stacks only: checked against the whole stack at each use
  };
  struct Level {
    StackSet stacks;
    Utf8Partial partial;
  };
  const PositionMask& state_mask(std::span<const uint32_t> stack);
  // Walks the trie below `node` from levels_[depth]. local: stacks are one position's sequence,
  // and a stack that empties has left it (tokens going on from there are dependent).
  void walk(uint32_t node, size_t depth, bool escaped, bool local, PositionMask& out);

  std::shared_ptr<const Grammar> g_;
  std::shared_ptr<const GrammarVocab> vocab_;
  std::unordered_map<std::string, PositionMask> cache_;  // key: the stack's entries (or top kMaxKeyDepth) as bytes
  size_t cache_bytes_ = 0;
  std::vector<Level> levels_;  // [depth in the trie] the walk's states
  StepScratch scratch_;
  StackSet one_;
};

// The constraint of one sequence: its matcher and a shared masker.
class GrammarConstraint {
 public:
  explicit GrammarConstraint(std::shared_ptr<TokenMasker> masker);

  // Sets the logits of every token the grammar does not allow next to -inf. Returns how many
  // remain (0: nothing can follow, not even an EOS; the caller stops).
  size_t apply(std::span<float> logits);
  // Advances over a chosen token; false (state unchanged) if the grammar refuses it.
  bool accept(int32_t token);
  bool can_end() const { return matcher_.can_end(); }
  const Matcher& matcher() const { return matcher_; }
  const std::vector<uint64_t>& last_mask() const { return allowed_; }

 private:
  std::shared_ptr<TokenMasker> masker_;
  Matcher matcher_;
  std::vector<uint64_t> allowed_;
};

// Compiled grammars by their text, so a schema sent again reuses its cached masks. get() may be
// called from any thread; a masker it returns is then used by one thread at a time (the engine's).
class GrammarCache {
 public:
  explicit GrammarCache(std::shared_ptr<const GrammarVocab> vocab, size_t capacity = 32)
      : vocab_(std::move(vocab)), capacity_(capacity) {}
  // The masker of this grammar text, compiled on first use; the grammar's error otherwise.
  Result<std::shared_ptr<TokenMasker>> get(const std::string& grammar_text);
  const std::shared_ptr<const GrammarVocab>& vocab() const { return vocab_; }

 private:
  std::shared_ptr<const GrammarVocab> vocab_;
  size_t capacity_;
  std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<TokenMasker>>> lru_;  // most recent first
};

}  // namespace qnext::grammar
