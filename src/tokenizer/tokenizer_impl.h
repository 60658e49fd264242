// Internal state of a loaded Tokenizer, shared by tokenizer_load.cpp and tokenizer.cpp.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/piece_cache.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/string_id_map.h"
#include "tokenizer/tokenizer.h"

namespace qnext {

struct Tokenizer::Impl {
  BpeModel bpe;
  bool ignore_merges = false;  // HF option: a piece found whole in the vocab skips BPE
  bool nfc = false;
  std::optional<RegexSplitter> splitter;  // absent: the whole segment is one piece

  AddedTokenMatcher raw_added;         // added tokens with normalized=false
  AddedTokenMatcher normalized_added;  // added tokens with normalized=true
  std::vector<AddedToken> added;       // every added token
  std::unordered_map<std::string, int32_t> added_ids;
  StringIdMap vocab_ids;  // byte-level spelling -> id

  TokenBytes id_bytes;  // raw bytes of every id
  std::vector<uint8_t> id_flags;      // kAdded | kSpecial
  static constexpr uint8_t kAdded = 1, kSpecial = 2;

  int32_t eos = -1, pad = -1, bos = -1;

  mutable std::mutex cache_mutex;
  mutable PieceCache cache;

  void encode_segment(std::string_view text, std::vector<int32_t>& out, PieceCache* cache) const;
  void encode_normalized(std::string_view text, std::vector<int32_t>& out, PieceCache* cache) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out, PieceCache* cache) const;
};

// Shared by the loaders (tokenizer_load.cpp, tokenizer_gguf.cpp).
// Token ids index tables sized by the largest id, so they are bounded before anything is sized by
// them: the limit of config.json's vocab_size (an id of 2^31 - 1 was a 64 GB table, and id + 1
// overflowed).
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;
// The vocab's strings in all: the tables' arenas use 32-bit offsets (a tokenizer.json is bounded
// by its parser's 4 GiB, a GGUF's token list is checked against this).
constexpr size_t kMaxVocabBytes = size_t{1} << 30;
// Vocab strings are GPT-2 byte stand-ins ("Ġhello"); the raw bytes they denote (a string that is
// not such a spelling is taken literally).
std::string vocab_string_to_bytes(std::string_view s);
void vocab_string_to_bytes(std::string_view s, std::string& out);  // the same into out, reusing its room
// Tokenizer::from_gguf on a GGUF model (a file, a split's first file, or its directory).
Result<Tokenizer> load_gguf_tokenizer(const std::string& path);

}  // namespace qnext
