// Reasoning / answer / tool-call parsing of model output (see chat_output.h). The one-shot parser
// is the streaming one fed everything at once, so the two always agree.
#include "tokenizer/chat_output.h"

#include "io/json_parse.h"

namespace qnext {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kCallOpen = "<tool_call>";
constexpr std::string_view kCallClose = "</tool_call>";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Length of the longest suffix of s that is a proper prefix of tag (it may become the tag).
size_t partial_tag(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

}  // namespace

ToolCall parse_tool_call(std::string_view inner) {
  ToolCall call;
  call.raw = std::string(inner);
  auto parsed = parse_json<nlohmann::ordered_json>(trim(inner), "tool call");
  if (!parsed) {
    call.error = parsed.error();
    return call;
  }
  nlohmann::ordered_json& j = parsed.value();
  if (!j.is_object()) {
    call.error = "tool call is not a JSON object";
    return call;
  }
  if (!j.contains("name") || !j["name"].is_string()) {
    call.error = "tool call has no string \"name\"";
    return call;
  }
  call.name = j["name"].get<std::string>();
  const char* key = j.contains("arguments") ? "arguments" : j.contains("parameters") ? "parameters" : nullptr;
  call.arguments = key ? j[key] : nlohmann::ordered_json::object();
  if (call.arguments.is_string()) {  // arguments given as a JSON-encoded string: decode if it is JSON
    auto inner_args = parse_json<nlohmann::ordered_json>(call.arguments.get<std::string>(), "tool call arguments");
    if (inner_args) call.arguments = std::move(inner_args).value();
  }
  return call;
}

void ChatOutputStream::emit(Channel& ch, std::string_view text, std::string& out) {
  for (char c : text) {
    if (c == '\n') {
      if (ch.started) ch.held += c;
      continue;
    }
    out += ch.held;
    ch.held.clear();
    out += c;
    ch.started = true;
  }
}

ChatOutputStream::Delta ChatOutputStream::feed(std::string_view text) {
  Delta d;
  buf_.append(text);
  run(d, false);
  return d;
}

ChatOutputStream::Delta ChatOutputStream::finish() {
  Delta d;
  run(d, true);
  if (state_ == State::ToolCall) {  // generation stopped inside a tool call
    ToolCall call;
    call.raw = buf_;
    call.error = "unterminated tool call (no </tool_call>)";
    d.tool_calls.push_back(std::move(call));
  } else if (state_ == State::Reasoning) {
    emit(reasoning_, buf_, d.reasoning);
  } else {
    emit(content_, buf_, d.content);
  }
  buf_.clear();
  reasoning_.held.clear();  // trailing newlines of a section are dropped
  content_.held.clear();
  return d;
}

// Consumes as much of buf_ as is certain; with `final`, nothing more will come.
void ChatOutputStream::run(Delta& d, bool final) {
  while (true) {
    switch (state_) {
      case State::Start: {
        // Decide between "<think>…" and plain text; leading whitespace before <think> is dropped.
        std::string_view rest(buf_);
        size_t ws = 0;
        while (ws < rest.size() && is_space(rest[ws])) ++ws;
        rest.remove_prefix(ws);
        if (rest.substr(0, kThinkOpen.size()) == kThinkOpen) {
          buf_.erase(0, ws + kThinkOpen.size());
          state_ = State::Reasoning;
          has_reasoning_ = true;
          continue;
        }
        if (!final && kThinkOpen.substr(0, rest.size()) == rest) return;  // could still become <think>
        state_ = reasoning_open_ ? State::Reasoning : State::Content;
        has_reasoning_ = has_reasoning_ || reasoning_open_;
        continue;
      }
      case State::Reasoning: {
        size_t p = buf_.find(kThinkClose);
        if (p == std::string::npos) {
          if (final) return;
          size_t keep = partial_tag(buf_, kThinkClose);
          emit(reasoning_, std::string_view(buf_).substr(0, buf_.size() - keep), d.reasoning);
          buf_.erase(0, buf_.size() - keep);
          return;
        }
        emit(reasoning_, std::string_view(buf_).substr(0, p), d.reasoning);
        reasoning_.held.clear();
        buf_.erase(0, p + kThinkClose.size());
        state_ = State::Content;
        continue;
      }
      case State::Content: {
        size_t p = buf_.find(kCallOpen);
        if (p == std::string::npos) {
          if (final) return;
          size_t keep = partial_tag(buf_, kCallOpen);
          emit(content_, std::string_view(buf_).substr(0, buf_.size() - keep), d.content);
          buf_.erase(0, buf_.size() - keep);
          return;
        }
        emit(content_, std::string_view(buf_).substr(0, p), d.content);
        buf_.erase(0, p + kCallOpen.size());
        state_ = State::ToolCall;
        continue;
      }
      case State::ToolCall: {
        size_t p = buf_.find(kCallClose);
        if (p == std::string::npos) return;
        d.tool_calls.push_back(parse_tool_call(std::string_view(buf_).substr(0, p)));
        buf_.erase(0, p + kCallClose.size());
        state_ = State::Content;
        continue;
      }
    }
  }
}

ChatOutput parse_chat_output(std::string_view text, bool reasoning_open) {
  // With the whole text at hand, a `</think>` shows the reasoning was pre-filled.
  ChatOutputStream s(reasoning_open || text.find(kThinkClose) != std::string_view::npos);
  ChatOutputStream::Delta a = s.feed(text);
  ChatOutputStream::Delta b = s.finish();
  ChatOutput out;
  out.has_reasoning = s.has_reasoning();
  out.reasoning = a.reasoning + b.reasoning;
  out.content = a.content + b.content;
  out.tool_calls = std::move(a.tool_calls);
  for (auto& c : b.tool_calls) out.tool_calls.push_back(std::move(c));
  return out;
}

}  // namespace qnext
