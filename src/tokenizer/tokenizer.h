// Byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (Qwen2/Qwen3 style):
// added tokens -> NFC -> regex split -> byte-level BPE; decoding maps ids back to bytes.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/result.h"

namespace qnext {

class Tokenizer {
 public:
  // Reads model_dir/tokenizer.json and, if present, model_dir/tokenizer_config.json
  // (eos/pad/bos token names). Errors name the file and the field at fault. A .gguf file, or a
  // directory holding one and no tokenizer.json, is read with from_gguf.
  static Result<Tokenizer> load(const std::string& model_dir);
  // Same, from the file contents (config_json may be empty).
  static Result<Tokenizer> from_json(std::string_view tokenizer_json, std::string_view config_json = {});
  // From a GGUF file's metadata (GgufMetadata, io/gguf.h): its tokenizer.ggml.* keys. `name`
  // (the file) starts every error.
  static Result<Tokenizer> from_gguf(const std::map<std::string, nlohmann::json>& metadata, const std::string& name);

  // Added-token strings in text (special or not) become their single ids. Invalid
  // UTF-8 is replaced by U+FFFD first. Thread-safe.
  std::vector<int32_t> encode(std::string_view text) const;

  // Concatenated bytes of the tokens; ill-formed UTF-8 becomes U+FFFD (as HF does).
  // Out-of-range ids are ignored.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // Raw bytes of one token (may be part of a UTF-8 character); empty for unknown ids.
  std::string_view token_bytes(int32_t id) const;

  // Exact lookup of a vocab entry (in its byte-level spelling, e.g. "Ġhello") or of an
  // added token's content.
  std::optional<int32_t> token_id(std::string_view token) const;
  bool is_special(int32_t id) const;  // added tokens marked "special": true
  bool is_added(int32_t id) const;    // any added token
  size_t vocab_size() const;          // highest id + 1, added tokens included
  int32_t eos_id() const;             // tokenizer_config.json eos_token (GGUF: eos_token_id), -1 if none
  int32_t pad_id() const;             // tokenizer_config.json pad_token (GGUF: padding_token_id), -1 if none
  int32_t bos_id() const;             // tokenizer_config.json bos_token (GGUF: bos_token_id), -1 if none

 struct Impl;  // defined in tokenizer_impl.h

 private:
  Tokenizer() = default;
  std::shared_ptr<const Impl> impl_;  // immutable after load; copies share it
};

// Streams decoded text token by token without ever splitting a UTF-8 character: bytes of
// an incomplete character are held until the rest arrives. Concatenating every push()
// and the final flush() equals Tokenizer::decode of the same ids.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tok, bool skip_special = false);
  std::string push(int32_t id);
  std::string flush();  // emits whatever is held (as U+FFFD if it never completed)

 private:
  Tokenizer tok_;  // shares the loaded data, so the decoder can outlive the caller's copy
  bool skip_special_;
  std::string pending_;
};

}  // namespace qnext
