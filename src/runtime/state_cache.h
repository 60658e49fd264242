// Exact prefix reuse for a hybrid model. A transformer shares KV pages between prompts with a
// common prefix; Qwen3-Next's DeltaNet layers fold the whole prefix into a recurrent state that
// cannot be rewound, so the cache keeps snapshots: the full SequenceState (DeltaNet conv and
// recurrent states, the KV caches up to the prefix) at chosen positions, keyed by the token
// prefix. Restoring one and feeding the rest gives exactly the state of feeding everything.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/state.h"

namespace qnext {

class StateCache {
 public:
  explicit StateCache(size_t budget_bytes) : budget_(budget_bytes) {}

  // Stores a snapshot of `state`, which holds exactly `tokens` (state.pos == tokens.size()), and
  // optionally the logits after its last token [V]. An equal prefix already cached is only marked
  // recently used (and gains the logits if it had none). Evicts least recently used entries until
  // the total fits the budget; a snapshot larger than the whole budget is not kept.
  // text: what the tokens decode to, for longest_text_prefix (empty: not matched by text).
  // mtp_rows: [P, H] the main model's hidden rows the MTP head has not consumed yet (positions
  // state.mtp_pos..), so speculative decoding can go on from the snapshot (empty: none kept).
  void put(std::span<const int32_t> tokens, const SequenceState& state, std::span<const float> logits = {},
           std::string text = {}, std::span<const float> mtp_rows = {});

  // Restores into `state` (same config and KV type) the longest cached prefix of `prompt` that
  // leaves something to compute: a strict prefix, or the whole prompt if its logits were kept
  // (then copied into *logits). Returns the prefix length, 0 if none (state untouched).
  // mtp_rows (may be null) gets the entry's MTP rows, empty when it has none.
  int restore(std::span<const int32_t> prompt, SequenceState& state, std::vector<float>* logits,
              std::vector<float>* mtp_rows = nullptr);

  // The ids of the cached entry whose text is the longest proper prefix of `text`, and that
  // text's length. A client sends back a conversation as text; re-tokenizing the model's own
  // answer may give other ids than it generated, which would miss the snapshot at its end.
  struct TextPrefix {
    std::vector<int32_t> ids;
    size_t text_len = 0;
  };
  TextPrefix longest_text_prefix(std::string_view text) const;

  size_t bytes() const;
  size_t entries() const;
  uint64_t evictions() const;
  size_t budget() const { return budget_; }

 private:
  struct Entry {
    uint64_t hash;
    std::vector<int32_t> tokens;
    SequenceState state;  // KV caches trimmed to the prefix
    std::vector<float> logits;  // [V] after the last token, or empty
    std::string text;           // the tokens decoded, or empty
    std::vector<float> mtp_rows;  // [P, H] main hidden rows the MTP head has yet to consume, or empty
    size_t bytes;
  };
  void evict_to(size_t budget);  // mu_ held

  size_t budget_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  size_t bytes_ = 0;
  uint64_t evictions_ = 0;
};

// FNV-1a over token ids: hash of each prefix, so h[n] is the hash of tokens[0, n).
std::vector<uint64_t> prefix_hashes(std::span<const int32_t> tokens);

}  // namespace qnext
