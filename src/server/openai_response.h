// Building OpenAI response bodies from the engine's GenEvents: whole responses (chat.completion,
// text_completion) and stream chunks (chat.completion.chunk, text_completion), with tool calls,
// reasoning, logprobs and usage. No sockets: the HTTP layer feeds events and writes the bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "server/api_error.h"
#include "tokenizer/chat_output.h"
#include "tokenizer/tokenizer.h"

namespace qnext::server {

// {"error": {"message", "type", "param", "code"}}
nlohmann::ordered_json error_json(const ApiError& e);

// The error to answer with when the engine ended a request with Error or Cancelled.
ApiError engine_error(const GenEvent& e);

// Identity of one response: "chatcmpl-…" / "cmpl-…", Unix seconds, the served model's name.
struct ResponseMeta {
  std::string id;
  int64_t created = 0;
  std::string model;
};

// {prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details: {cached_tokens}} from the last event.
nlohmann::ordered_json usage_json(const GenEvent& last);

// What the bytes of an event's tokens are; token text = Tokenizer::decode({id}).
nlohmann::ordered_json token_bytes_json(const Tokenizer& tok, int32_t id);

struct ChatResponseOptions {
  bool include_usage = false;  // streaming: a last chunk with usage and no choices
  bool logprobs = false;
  int top_logprobs = 0;
  bool parse_tools = false;     // cut <tool_call> blocks into tool_calls (else they stay in content)
  bool reasoning_open = false;  // the prompt opened <think>
};

// How a response ended: the final event (usage, timings; its tokens dropped) and, when the engine
// failed or cancelled the request, the error to report.
struct ResponseEnd {
  bool done = false, failed = false;
  ApiError error;
  GenEvent last;
  bool record(const GenEvent& e);  // true when e is the final event
};

// One chat completion. Feed every event in order to either stream_event (streaming: returns the
// chunks to send) or add (whole response: call body() once done() is true).
class ChatResponse {
 public:
  ChatResponse(const Tokenizer& tok, ResponseMeta meta, ChatResponseOptions opt);

  // Streaming. The first call also returns the opening chunk (delta.role = "assistant"); the
  // last event adds the finish chunk and, with include_usage, the usage chunk (choices: []).
  // An engine error becomes a chunk {"error": {...}}. The caller sends [DONE] after done().
  std::vector<nlohmann::ordered_json> stream_event(const GenEvent& e);
  std::vector<nlohmann::ordered_json> start();  // the opening chunk, if not sent yet

  // Whole response.
  void add(const GenEvent& e);
  bool done() const { return end_.done; }
  bool failed() const { return end_.failed; }
  const ApiError& error() const { return end_.error; }  // when failed()
  nlohmann::ordered_json body() const;                // chat.completion

  const GenEvent& last() const { return end_.last; }  // the final event (usage, timings)

 private:
  struct Piece {  // what one event adds
    std::string reasoning, content;
    nlohmann::ordered_json tool_calls = nlohmann::ordered_json::array();  // [{index, id, type, function}]
    nlohmann::ordered_json logprobs = nlohmann::ordered_json::array();    // [{token, logprob, bytes, top_logprobs}]
  };
  Piece process(const GenEvent& e);
  void add_calls(std::vector<ToolCall>& calls, Piece& p);
  std::string finish_reason() const;
  nlohmann::ordered_json chunk(nlohmann::ordered_json delta, const nlohmann::ordered_json& logprobs,
                               const char* finish) const;

  Tokenizer tok_;
  ResponseMeta meta_;
  ChatResponseOptions opt_;
  ChatOutputStream parser_;
  bool started_ = false;
  ResponseEnd end_;
  int calls_ = 0;  // tool calls made so far (the next one's index)
  // Whole-response accumulation.
  std::string reasoning_, content_;
  nlohmann::ordered_json tool_calls_ = nlohmann::ordered_json::array();
  nlohmann::ordered_json logprobs_ = nlohmann::ordered_json::array();
};

struct CompletionResponseOptions {
  bool include_usage = false;
  bool echo = false;
  int logprobs = -1;                 // -1: none; else alternatives per token (legacy format)
  std::vector<int32_t> prompt_ids;   // for echo with logprobs
  std::string prompt_text;           // for echo
};

// One legacy text completion; same protocol as ChatResponse.
class CompletionResponse {
 public:
  CompletionResponse(const Tokenizer& tok, ResponseMeta meta, CompletionResponseOptions opt);

  std::vector<nlohmann::ordered_json> stream_event(const GenEvent& e);
  std::vector<nlohmann::ordered_json> start();  // with echo: the prompt as the first chunk

  void add(const GenEvent& e);
  bool done() const { return end_.done; }
  bool failed() const { return end_.failed; }
  const ApiError& error() const { return end_.error; }
  nlohmann::ordered_json body() const;  // text_completion

  const GenEvent& last() const { return end_.last; }

 private:
  // Legacy logprobs {tokens, token_logprobs, top_logprobs, text_offset} of these tokens; offsets
  // continue from text_offset_ (bytes of the response text so far).
  void append_logprobs(nlohmann::ordered_json& lp, const std::vector<TokenLogprob>& tokens, bool with_values);
  nlohmann::ordered_json empty_logprobs() const;
  nlohmann::ordered_json chunk(std::string text, nlohmann::ordered_json logprobs, const char* finish) const;
  std::string finish_reason() const;

  Tokenizer tok_;
  ResponseMeta meta_;
  CompletionResponseOptions opt_;
  bool started_ = false;
  ResponseEnd end_;
  size_t text_offset_ = 0;
  std::string text_;
  nlohmann::ordered_json logprobs_;
};

}  // namespace qnext::server
