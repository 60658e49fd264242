// What a GGUF file's tokenizer.ggml.* values mean beyond themselves: llama.cpp's token types and
// the split regex its pre-tokenizer name "qwen2" stands for. Shared by the GGUF tokenizer loader
// (tokenizer_gguf.cpp) and the tokenizer.json a GGUF conversion writes (model/tokenizer_files_gguf.cpp),
// so both read the file the same way.
#pragma once
#include <cstdint>

namespace qnext::gguf_vocab {

// The Split regex of Qwen2/Qwen3's tokenizer.json (llama.cpp's pre-tokenizer "qwen2"). llama.cpp
// runs a rewrite of it for its own regex engine; this is HF's original, which the golden ids follow.
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// llama.cpp's token types (llama_token_type). HF's tokenizer.json has no such list: its vocab is
// the normal tokens and its added_tokens are llama.cpp's control and user-defined ones.
enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

}  // namespace qnext::gguf_vocab
