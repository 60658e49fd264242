// Parsing and validating OpenAI request bodies (/v1/chat/completions, /v1/completions) into an
// engine GenRequest plus what the response needs. No sockets and no engine here: every check that
// can fail before prefilling (JSON shape, ranges, tool choice, template, context length) is done
// here and answered with an ApiError.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "runtime/grammar_mask.h"
#include "runtime/sampling.h"
#include "runtime/state_cache.h"
#include "server/api_error.h"
#include "server/random.h"
#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace qnext::server {

// What the request layer knows about the served model.
struct ApiContext {
  Tokenizer tok;
  std::optional<ChatTemplate> tpl;  // none: /v1/chat/completions answers 400 with tpl_error
  std::string tpl_error;
  SamplingParams defaults;          // generation_config.json's sampling
  int ctx = 0;                      // most positions per sequence (prompt + completion)
  int vocab = 0;                    // ids must be below it; 0: the tokenizer's size
  std::string model_id;
  // The engine's cached conversation whose text is the longest prefix of a prompt's (see
  // Engine::encode_prompt); chat prompts keep its ids. Unset: prompts are tokenized afresh.
  std::function<StateCache::TextPrefix(std::string_view)> cached_prefix;
  // Compiled output grammars (response_format, forced tool calls) over this tokenizer; null:
  // such requests are answered 400.
  std::shared_ptr<grammar::GrammarCache> grammars;
};

struct ChatRequest {
  GenRequest gen;
  bool stream = false;
  bool include_usage = false;   // stream_options.include_usage
  bool logprobs = false;
  int top_logprobs = 0;         // 0..20 (with logprobs)
  bool parse_tools = false;     // tools offered and tool_choice != "none": cut tool calls out of the output
  bool reasoning_open = false;  // the prompt ends inside an unclosed <think>
  std::string prompt_text;      // the rendered template
};

struct CompletionRequest {
  GenRequest gen;
  bool stream = false;
  bool include_usage = false;
  bool echo = false;
  int logprobs = -1;         // -1: none; 0..5 alternatives per token (legacy format)
  std::string prompt_text;   // the prompt as text (decoded when given as ids)
};

ApiResult<ChatRequest> parse_chat_request(std::string_view body, const ApiContext& ctx);
ApiResult<CompletionRequest> parse_completion_request(std::string_view body, const ApiContext& ctx);

// Exposed for tests: the messages array as the chat template wants it (content parts joined,
// assistant tool_calls' string arguments parsed into objects, "developer" mapped to "system").
ApiResult<nlohmann::ordered_json> convert_messages(const nlohmann::ordered_json& messages);

// True when the rendered prompt ends inside an unclosed <think> (the Thinking template pre-fills one).
bool prompt_opens_reasoning(std::string_view prompt);

}  // namespace qnext::server
