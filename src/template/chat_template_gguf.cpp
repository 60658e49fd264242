// ChatTemplate::from_gguf (see chat_template.h): the chat template a GGUF file carries, and the
// special-token variables transformers would pass, taken from the token ids its metadata names.
#include "template/chat_template.h"

#include "io/gguf.h"

namespace qnext {

using nlohmann::json;

Result<ChatTemplate> ChatTemplate::from_gguf(const std::map<std::string, nlohmann::json>& metadata,
                                             const std::string& name) {
  const auto find = [&](const std::string& key) -> const json* {
    auto it = metadata.find(key);
    return it == metadata.end() ? nullptr : &it->second;
  };
  // Only the default template: named variants (tokenizer.chat_template.<name>) are not chosen here,
  // as tokenizer_config.json's list is read for "default" only.
  const json* source = find("tokenizer.chat_template");
  if (!source) return err("no chat template in " + name + " (no tokenizer.chat_template in its metadata)");
  if (!source->is_string()) return err(name + ": tokenizer.chat_template is " + gguf_shown(*source) + ", not a string");
  auto t = from_source(source->get<std::string>());
  if (!t.ok()) return err(name + " tokenizer.chat_template: " + t.error());

  // Ids become their token text, as tokenizer_config.json names them (llama.cpp's key spellings,
  // "seperator" included). An id the tokens do not have is an error, as in the tokenizer loader.
  const json* tokens = find("tokenizer.ggml.tokens");
  for (auto [key, var] : {std::pair{"tokenizer.ggml.bos_token_id", "bos_token"},
                          std::pair{"tokenizer.ggml.eos_token_id", "eos_token"},
                          std::pair{"tokenizer.ggml.unknown_token_id", "unk_token"},
                          std::pair{"tokenizer.ggml.padding_token_id", "pad_token"},
                          std::pair{"tokenizer.ggml.seperator_token_id", "sep_token"},
                          std::pair{"tokenizer.ggml.cls_token_id", "cls_token"},
                          std::pair{"tokenizer.ggml.mask_token_id", "mask_token"}}) {
    const json* id = find(key);
    if (!id) continue;
    const size_t n = tokens && tokens->is_array() ? tokens->size() : 0;
    const bool in_range = id->is_number_unsigned() ? id->get<uint64_t>() < n
                          : id->is_number_integer() && id->get<int64_t>() >= 0 && uint64_t(id->get<int64_t>()) < n;
    if (!in_range)
      return err(name + ": " + key + " = " + gguf_shown(*id) + " is not an id of tokenizer.ggml.tokens (" +
                 std::to_string(n) + " entries)");
    const json& text = (*tokens)[id->get<size_t>()];
    if (!text.is_string()) return err(name + ": tokenizer.ggml.tokens[" + gguf_shown(*id) + "] is not a string");
    t.value().special_tokens_[var] = text.get<std::string>();
  }
  return t;
}

}  // namespace qnext
