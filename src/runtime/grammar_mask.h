// Which tokens a grammar allows next, for a 151,936-token vocabulary at a small cost per token.
//
// The vocabulary is a byte trie (GrammarVocab), built once per tokenizer. For a stack whose next
// element is at position p, most tokens are decided by p alone: walking the trie from p with only
// p's own sequence, a token either stays inside it (allowed whatever lies below p on the stack),
// or fails inside it (refused), or finishes the sequence with bytes left over; only those last
// ("dependent") tokens are checked against the whole stack. The walk's result is cached per
// position (TokenMasker), so each position is walked once per grammar, and a step costs a union of
// cached sets plus the dependent checks (as xgrammar's adaptive token mask cache does).
#pragma once
#include <cstdint>
#include <memory>
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
  size_t cached_positions() const { return cache_.size(); }

 private:
  struct PositionMask {
    std::vector<uint64_t> accepted;  // [words] bits
    std::vector<int32_t> dependent;  // checked against the whole stack at each use
  };
  struct Level {
    StackSet stacks;
    Utf8Partial partial;
  };
  const PositionMask& position_mask(uint32_t pos);
  // Walks the trie below `node` from levels_[depth]. local: stacks are one position's sequence,
  // and a stack that empties has left it (tokens going on from there are dependent).
  void walk(uint32_t node, size_t depth, bool escaped, bool local, PositionMask& out);

  std::shared_ptr<const Grammar> g_;
  std::shared_ptr<const GrammarVocab> vocab_;
  std::unordered_map<uint32_t, PositionMask> cache_;
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

}  // namespace qnext::grammar
