// Shared fixtures of the OpenAI-layer tests: the real tokenizer and template, request and event builders.
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/sse.h"

namespace qnext::server::testing {

using json = nlohmann::ordered_json;

inline const std::string kTokDir = std::string(QNEXT_TEST_DATA) + "/../../assets/tokenizer";

inline std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The real Qwen tokenizer and Instruct template; a 4096-token context; known sampling defaults.
inline const ApiContext& ctx() {
  static ApiContext c = [] {
    auto tok = Tokenizer::load(kTokDir);
    EXPECT_TRUE(tok.ok()) << tok.error();
    auto tpl = ChatTemplate::load(kTokDir);
    EXPECT_TRUE(tpl.ok()) << tpl.error();
    SamplingParams d;
    d.temperature = 0.7f;
    d.top_p = 0.8f;
    d.top_k = 20;
    ApiContext c{tok.value(), tpl.value(), "", d, 4096, 0, "test-model", {}, {}};
    c.grammars = std::make_shared<grammar::GrammarCache>(
        grammar::GrammarVocab::from_tokenizer(c.tok, std::vector<int32_t>{151645, 151643}));
    return c;
  }();
  return c;
}

inline ApiContext thinking_ctx() {
  ApiContext c = ctx();
  auto tpl = ChatTemplate::from_source(read(kTokDir + "/qwen3-next-thinking.jinja"));
  EXPECT_TRUE(tpl.ok()) << tpl.error();
  c.tpl = tpl.value();
  return c;
}

inline const json kHello = json::array({json{{"role", "user"}, {"content", "Hello"}}});

inline json chat_body(json extra = json::object()) {
  json b{{"model", "x"}, {"messages", kHello}};
  for (auto& [k, v] : extra.items()) b[k] = v;
  return b;
}

inline ApiResult<ChatRequest> chat(const json& body, const ApiContext& c = ctx()) { return parse_chat_request(body.dump(), c); }
inline ApiResult<CompletionRequest> completion(const json& body, const ApiContext& c = ctx()) {
  return parse_completion_request(body.dump(), c);
}

// Expects a 400 naming `param`.
inline void expect_bad(const ApiResult<ChatRequest>& r, const std::string& param) {
  ASSERT_FALSE(r.ok()) << "accepted; wanted an error about " << param;
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().type, "invalid_request_error");
  EXPECT_EQ(r.error().param, param) << r.error().message;
}
inline void expect_bad(const ApiResult<CompletionRequest>& r, const std::string& param) {
  ASSERT_FALSE(r.ok()) << "accepted; wanted an error about " << param;
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().param, param) << r.error().message;
}

inline json weather_tool(const std::string& name = "get_weather") {
  json params{{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}};
  json fn{{"name", name}, {"description", "Weather of a city"}, {"parameters", params}};
  return json{{"type", "function"}, {"function", fn}};
}

inline GenEvent text_event(std::string text) {
  GenEvent e;
  e.text = std::move(text);
  return e;
}

inline GenEvent last_event(std::string text, FinishReason why = FinishReason::Stop) {
  GenEvent e;
  e.text = std::move(text);
  e.done = true;
  e.finish = why;
  e.prompt_tokens = 10;
  e.completion_tokens = 5;
  e.cached_tokens = 4;
  return e;
}

inline ResponseMeta meta(const std::string& id = "chatcmpl-test") { return ResponseMeta{id, 1700000000, "test-model"}; }

// Feeds events to a fresh ChatResponse in both modes; returns {body, stream chunks}.
inline std::pair<json, std::vector<json>> run_chat(const std::vector<GenEvent>& events, ChatResponseOptions opt = {}) {
  ChatResponse whole(ctx().tok, meta(), opt), stream(ctx().tok, meta(), opt);
  std::vector<json> chunks;
  for (const auto& e : events) {
    whole.add(e);
    for (auto& c : stream.stream_event(e)) chunks.push_back(std::move(c));
  }
  EXPECT_TRUE(whole.done());
  EXPECT_TRUE(stream.done());
  return {whole.body(), chunks};
}

inline int32_t id_of(const std::string& text) {
  auto ids = ctx().tok.encode(text);
  EXPECT_EQ(ids.size(), 1u) << text;
  return ids.empty() ? 0 : ids[0];
}

}  // namespace qnext::server::testing
