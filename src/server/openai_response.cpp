#include "server/openai_response.h"

#include "server/random.h"

#include <span>

namespace qnext::server {

using json = nlohmann::ordered_json;

namespace {

json null_if_empty(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

std::string token_text(const Tokenizer& tok, int32_t id) { return tok.decode(std::span<const int32_t>(&id, 1)); }

// A tool call the client does not get as tool_calls goes back into the content as the model wrote it.
std::string raw_call_text(const ToolCall& c) {
  const bool unterminated = c.error.rfind("unterminated", 0) == 0;  // cut off by the end of generation
  return "<tool_call>" + c.raw + (unterminated ? "" : "</tool_call>");
}

}  // namespace

json error_json(const ApiError& e) {
  return json{{"error",
               {{"message", e.message}, {"type", e.type}, {"param", null_if_empty(e.param)},
                {"code", null_if_empty(e.code)}}}};
}

ApiError engine_error(const GenEvent& e) {
  if (e.finish == FinishReason::Cancelled)
    return ApiError{503, "the request was cancelled (the server is shutting down)", "server_error", "", "cancelled"};
  return ApiError{500, e.error.empty() ? "generation failed" : e.error, "server_error", "", ""};
}

json usage_json(const GenEvent& last) {
  return json{{"prompt_tokens", last.prompt_tokens},
              {"completion_tokens", last.completion_tokens},
              {"total_tokens", last.prompt_tokens + last.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", last.cached_tokens}}}};
}

// The last chunk of a stream with include_usage: no choices, the usage.
static json usage_chunk(const ResponseMeta& meta, const char* object, const GenEvent& last) {
  return json{{"id", meta.id},       {"object", object},          {"created", meta.created},
              {"model", meta.model}, {"choices", json::array()}, {"usage", usage_json(last)}};
}

bool ResponseEnd::record(const GenEvent& e) {
  if (!e.done) return false;
  done = true;
  last = e;
  last.tokens.clear();
  if (e.finish == FinishReason::Error || e.finish == FinishReason::Cancelled) {
    failed = true;
    error = engine_error(e);
  }
  return true;
}

json token_bytes_json(const Tokenizer& tok, int32_t id) {
  // The token's raw bytes: a token may hold part of a UTF-8 character, which its text shows as U+FFFD.
  json out = json::array();
  for (unsigned char c : tok.token_bytes(id)) out.push_back(int(c));
  return out;
}

// --- chat ---------------------------------------------------------------------------------------

ChatResponse::ChatResponse(const Tokenizer& tok, ResponseMeta meta, ChatResponseOptions opt)
    : tok_(tok), meta_(std::move(meta)), opt_(opt), parser_(opt.reasoning_open) {}

void ChatResponse::add_calls(std::vector<ToolCall>& calls, Piece& p) {
  for (auto& c : calls) {
    if (!opt_.parse_tools || !c.ok()) {
      p.content += raw_call_text(c);
      continue;
    }
    p.tool_calls.push_back(json{{"index", calls_++},
                                {"id", random_id("call_")},
                                {"type", "function"},
                                {"function", {{"name", c.name}, {"arguments", c.arguments.dump(-1, ' ', false,
                                                                   json::error_handler_t::replace)}}}});
  }
}

ChatResponse::Piece ChatResponse::process(const GenEvent& e) {
  Piece p;
  if (end_.done) return p;
  if (opt_.logprobs) {
    for (const auto& t : e.tokens) {
      json top = json::array();
      for (size_t k = 0; k < t.top.size() && int(k) < opt_.top_logprobs; ++k) {
        top.push_back(json{{"token", token_text(tok_, t.top[k].first)},
                           {"logprob", t.top[k].second},
                           {"bytes", token_bytes_json(tok_, t.top[k].first)}});
      }
      p.logprobs.push_back(json{{"token", token_text(tok_, t.id)},
                                {"logprob", t.logprob},
                                {"bytes", token_bytes_json(tok_, t.id)},
                                {"top_logprobs", std::move(top)}});
    }
  }
  auto take = [&](ChatOutputStream::Delta d) {
    p.reasoning += d.reasoning;
    p.content += d.content;
    add_calls(d.tool_calls, p);
  };
  take(parser_.feed(e.text));
  if (end_.record(e) && !end_.failed) take(parser_.finish());
  return p;
}

std::string ChatResponse::finish_reason() const {
  switch (end_.last.finish) {
    case FinishReason::Length: return "length";
    default: return calls_ > 0 ? "tool_calls" : "stop";  // a call was made and the model then stopped
  }
}

json ChatResponse::chunk(json delta, const json& logprobs, const char* finish) const {
  json c{{"id", meta_.id}, {"object", "chat.completion.chunk"}, {"created", meta_.created}, {"model", meta_.model}};
  c["choices"] = json::array({json{{"index", 0},
                                   {"delta", std::move(delta)},
                                   {"logprobs", logprobs},
                                   {"finish_reason", finish ? json(finish) : json(nullptr)}}});
  if (opt_.include_usage) c["usage"] = nullptr;  // OpenAI: usage is null on every chunk but the last
  return c;
}

std::vector<json> ChatResponse::start() {
  std::vector<json> out;
  if (started_) return out;
  started_ = true;
  out.push_back(chunk(json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr));
  return out;
}

std::vector<json> ChatResponse::stream_event(const GenEvent& e) {
  std::vector<json> out = start();
  if (end_.done) return out;
  Piece p = process(e);
  if (end_.failed) {
    out.push_back(error_json(end_.error));
    return out;
  }
  // The event's logprobs ride on its first chunk (or an empty delta when the parser held the text back).
  json lp = p.logprobs.empty() ? json(nullptr) : json{{"content", std::move(p.logprobs)}};
  auto emit = [&](json delta) {
    out.push_back(chunk(std::move(delta), lp, nullptr));
    lp = nullptr;
  };
  if (!p.reasoning.empty()) emit(json{{"reasoning_content", p.reasoning}});
  if (!p.content.empty()) emit(json{{"content", p.content}});
  if (!p.tool_calls.empty()) emit(json{{"tool_calls", p.tool_calls}});
  if (!lp.is_null()) emit(json::object());
  if (end_.done) {
    out.push_back(chunk(json::object(), nullptr, finish_reason().c_str()));
    if (opt_.include_usage) {
      out.push_back(usage_chunk(meta_, "chat.completion.chunk", end_.last));
    }
  }
  return out;
}

void ChatResponse::add(const GenEvent& e) {
  Piece p = process(e);
  reasoning_ += p.reasoning;
  content_ += p.content;
  for (auto& c : p.tool_calls) {
    c.erase("index");  // only stream deltas carry an index
    tool_calls_.push_back(std::move(c));
  }
  for (auto& l : p.logprobs) logprobs_.push_back(std::move(l));
}

json ChatResponse::body() const {
  json msg{{"role", "assistant"}};
  msg["content"] = content_.empty() && !tool_calls_.empty() ? json(nullptr) : json(content_);
  if (parser_.has_reasoning()) msg["reasoning_content"] = reasoning_;
  if (!tool_calls_.empty()) msg["tool_calls"] = tool_calls_;
  json choice{{"index", 0},
              {"message", std::move(msg)},
              {"logprobs", opt_.logprobs ? json{{"content", logprobs_}} : json(nullptr)},
              {"finish_reason", finish_reason()}};
  return json{{"id", meta_.id},
              {"object", "chat.completion"},
              {"created", meta_.created},
              {"model", meta_.model},
              {"choices", json::array({std::move(choice)})},
              {"usage", usage_json(end_.last)}};
}

// --- completions --------------------------------------------------------------------------------

CompletionResponse::CompletionResponse(const Tokenizer& tok, ResponseMeta meta, CompletionResponseOptions opt)
    : tok_(tok), meta_(std::move(meta)), opt_(std::move(opt)) {
  if (opt_.logprobs >= 0) logprobs_ = empty_logprobs();
}

json CompletionResponse::empty_logprobs() const {
  return json{{"tokens", json::array()},
              {"token_logprobs", json::array()},
              {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
}

void CompletionResponse::append_logprobs(json& lp, const std::vector<TokenLogprob>& tokens, bool with_values) {
  for (const auto& t : tokens) {
    lp["tokens"].push_back(token_text(tok_, t.id));
    lp["text_offset"].push_back(text_offset_);
    text_offset_ += tok_.token_bytes(t.id).size();  // offsets in bytes of the response text
    if (!with_values) {
      lp["token_logprobs"].push_back(nullptr);
      lp["top_logprobs"].push_back(nullptr);
      continue;
    }
    lp["token_logprobs"].push_back(t.logprob);
    json top = json::object();
    for (size_t k = 0; k < t.top.size() && int(k) < opt_.logprobs; ++k) {
      std::string s = token_text(tok_, t.top[k].first);
      if (!top.contains(s)) top[s] = t.top[k].second;  // two ids may share a text (partial UTF-8)
    }
    lp["top_logprobs"].push_back(std::move(top));
  }
}

std::string CompletionResponse::finish_reason() const {
  return end_.last.finish == FinishReason::Length ? "length" : "stop";
}

json CompletionResponse::chunk(std::string text, json logprobs, const char* finish) const {
  json c{{"id", meta_.id}, {"object", "text_completion"}, {"created", meta_.created}, {"model", meta_.model}};
  c["choices"] = json::array({json{{"index", 0},
                                   {"text", std::move(text)},
                                   {"logprobs", std::move(logprobs)},
                                   {"finish_reason", finish ? json(finish) : json(nullptr)}}});
  if (opt_.include_usage) c["usage"] = nullptr;
  return c;
}

std::vector<json> CompletionResponse::start() {
  std::vector<json> out;
  if (started_) return out;
  started_ = true;
  if (!opt_.echo) return out;
  json lp = nullptr;
  if (opt_.logprobs >= 0) {
    // The engine gives no logprobs for prompt tokens, so echoed ones are null (OpenAI nulls only
    // the first; the rest would need a scoring pass over the prompt).
    lp = empty_logprobs();
    std::vector<TokenLogprob> prompt(opt_.prompt_ids.size());
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i].id = opt_.prompt_ids[i];
    append_logprobs(lp, prompt, /*with_values=*/false);
  }
  text_offset_ = opt_.prompt_text.size();  // generated text starts after the echoed prompt
  out.push_back(chunk(opt_.prompt_text, std::move(lp), nullptr));
  return out;
}

std::vector<json> CompletionResponse::stream_event(const GenEvent& e) {
  std::vector<json> out = start();
  if (end_.done) return out;
  if (end_.record(e)) {
    if (end_.failed) {
      out.push_back(error_json(end_.error));
      return out;
    }
  }
  json lp = nullptr;
  if (opt_.logprobs >= 0 && !e.tokens.empty()) {
    lp = empty_logprobs();
    append_logprobs(lp, e.tokens, true);
  }
  if (!e.text.empty() || !lp.is_null() || end_.done)
    out.push_back(chunk(e.text, std::move(lp), end_.done ? finish_reason().c_str() : nullptr));
  if (end_.done && opt_.include_usage) {
    out.push_back(usage_chunk(meta_, "text_completion", end_.last));
  }
  return out;
}

void CompletionResponse::add(const GenEvent& e) {
  if (!started_) {
    for (auto& c : start()) {  // echo: the prompt leads the text (and the logprobs)
      auto& ch = c["choices"][0];
      text_ += ch["text"].get<std::string>();
      if (ch["logprobs"].is_object())
        for (const char* k : {"tokens", "token_logprobs", "top_logprobs", "text_offset"})
          for (auto& x : ch["logprobs"][k]) logprobs_[k].push_back(std::move(x));
    }
  }
  if (end_.done) return;
  text_ += e.text;
  if (opt_.logprobs >= 0) append_logprobs(logprobs_, e.tokens, true);
  end_.record(e);
}

json CompletionResponse::body() const {
  json choice{{"index", 0},
              {"text", text_},
              {"logprobs", opt_.logprobs >= 0 ? logprobs_ : json(nullptr)},
              {"finish_reason", finish_reason()}};
  return json{{"id", meta_.id},
              {"object", "text_completion"},
              {"created", meta_.created},
              {"model", meta_.model},
              {"choices", json::array({std::move(choice)})},
              {"usage", usage_json(end_.last)}};
}

}  // namespace qnext::server
