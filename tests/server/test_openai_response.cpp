// The OpenAI layer of `qnext serve` without sockets or a model: response bodies and stream chunks
// built from synthetic GenEvents, SSE framing, /metrics text.
#include <gtest/gtest.h>

#include "server/openai_fixtures.h"

using json = nlohmann::ordered_json;
using namespace qnext;
using namespace qnext::server;
using namespace qnext::server::testing;
// --- chat responses -----------------------------------------------------------------------------

TEST(ChatResponse, WholeBody) {
  auto [body, chunks] = run_chat({text_event("Hello"), text_event(","), last_event(" world")});
  EXPECT_EQ(body["id"], "chatcmpl-test");
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["created"], 1700000000);
  EXPECT_EQ(body["model"], "test-model");
  const auto& ch = body["choices"][0];
  EXPECT_EQ(ch["index"], 0);
  EXPECT_EQ(ch["message"]["role"], "assistant");
  EXPECT_EQ(ch["message"]["content"], "Hello, world");
  EXPECT_FALSE(ch["message"].contains("tool_calls"));
  EXPECT_FALSE(ch["message"].contains("reasoning_content"));
  EXPECT_TRUE(ch["logprobs"].is_null());
  EXPECT_EQ(ch["finish_reason"], "stop");
  EXPECT_EQ(body["usage"], (json{{"prompt_tokens", 10},
                                 {"completion_tokens", 5},
                                 {"total_tokens", 15},
                                 {"prompt_tokens_details", {{"cached_tokens", 4}}}}));
}

TEST(ChatResponse, LengthFinish) {
  auto [body, chunks] = run_chat({last_event("cut", FinishReason::Length)});
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "length");
}

TEST(ChatResponse, StreamChunks) {
  auto [body, chunks] = run_chat({text_event("Hel"), text_event("lo"), last_event("!")});
  ASSERT_GE(chunks.size(), 3u);
  EXPECT_EQ(chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const auto& c = chunks[i];
    EXPECT_EQ(c["id"], "chatcmpl-test");
    EXPECT_FALSE(c.contains("usage"));  // only with include_usage
    ASSERT_EQ(c["choices"].size(), 1u);
    const auto& d = c["choices"][0]["delta"];
    if (d.contains("content")) text += d["content"].get<std::string>();
    if (i + 1 < chunks.size()) {
      EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
    }
  }
  EXPECT_EQ(text, "Hello!");
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(chunks.back()["choices"][0]["delta"], json::object());
}

TEST(ChatResponse, StreamIncludeUsage) {
  ChatResponseOptions o;
  o.include_usage = true;
  auto [body, chunks] = run_chat({text_event("a"), last_event("b")}, o);
  const auto& u = chunks.back();
  EXPECT_EQ(u["choices"], json::array());
  EXPECT_EQ(u["usage"]["total_tokens"], 15);
  EXPECT_EQ(u["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
  for (size_t i = 0; i + 1 < chunks.size(); ++i) EXPECT_TRUE(chunks[i]["usage"].is_null()) << i;
  EXPECT_EQ(chunks[chunks.size() - 2]["choices"][0]["finish_reason"], "stop");
}

TEST(ChatResponse, ToolCalls) {
  ChatResponseOptions o;
  o.parse_tools = true;
  const std::vector<GenEvent> events = {
      text_event("Let me check.\n<tool_"),
      text_event("call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"),
      text_event("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"),
      last_event(""),
  };
  auto [body, chunks] = run_chat(events, o);
  const auto& msg = body["choices"][0]["message"];
  EXPECT_EQ(msg["content"], "Let me check.");
  ASSERT_EQ(msg["tool_calls"].size(), 2u);
  const auto& c0 = msg["tool_calls"][0];
  EXPECT_EQ(c0["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(c0["type"], "function");
  EXPECT_EQ(c0["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(c0["function"]["arguments"].get<std::string>()), (json{{"city", "Paris"}}));
  EXPECT_FALSE(c0.contains("index"));
  EXPECT_EQ(msg["tool_calls"][1]["function"]["arguments"], "{}");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "tool_calls");

  // Stream: each call is one delta with its index, id, type, name and full arguments.
  std::vector<json> calls;
  std::string content;
  for (const auto& c : chunks) {
    const auto& d = c["choices"][0]["delta"];
    if (d.contains("tool_calls"))
      for (const auto& t : d["tool_calls"]) calls.push_back(t);
    if (d.contains("content")) content += d["content"].get<std::string>();
  }
  ASSERT_EQ(calls.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(calls[i]["index"], i);
    EXPECT_EQ(calls[i]["type"], "function");
    EXPECT_EQ(calls[i]["id"].get<std::string>().rfind("call_", 0), 0u);
  }
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(calls[0]["function"]["arguments"].get<std::string>()), (json{{"city", "Paris"}}));
  EXPECT_EQ(content, "Let me check.");
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "tool_calls");
}

TEST(ChatResponse, ToolCallOnlyHasNullContent) {
  ChatResponseOptions o;
  o.parse_tools = true;
  auto [body, chunks] = run_chat({last_event("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>")}, o);
  EXPECT_TRUE(body["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(body["choices"][0]["finish_reason"], "tool_calls");
  // Cut by the length limit: "length" wins.
  auto [b2, c2] = run_chat(
      {last_event("<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>", FinishReason::Length)}, o);
  EXPECT_EQ(b2["choices"][0]["finish_reason"], "length");
}

TEST(ChatResponse, InvalidToolCallStaysInContent) {
  ChatResponseOptions o;
  o.parse_tools = true;
  auto [body, chunks] = run_chat({text_event("A <tool_call>{oops}</tool_call>"), last_event("")}, o);
  const auto& msg = body["choices"][0]["message"];
  EXPECT_EQ(msg["content"], "A <tool_call>{oops}</tool_call>");
  EXPECT_FALSE(msg.contains("tool_calls"));
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");

  // Unterminated at the end of generation.
  auto [b2, c2] = run_chat({last_event("<tool_call>\n{\"name\": \"f\"", FinishReason::Length)}, o);
  EXPECT_EQ(b2["choices"][0]["message"]["content"], "<tool_call>\n{\"name\": \"f\"");
}

TEST(ChatResponse, ToolsNotParsedWithChoiceNone) {
  const std::string call = "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>";
  auto [body, chunks] = run_chat({last_event(call)}, ChatResponseOptions{});  // parse_tools = false
  EXPECT_EQ(body["choices"][0]["message"]["content"], call);
  EXPECT_FALSE(body["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
}

TEST(ChatResponse, ReasoningSplit) {
  ChatResponseOptions o;
  o.reasoning_open = true;  // the Thinking template pre-filled <think>
  auto [body, chunks] = run_chat({text_event("Let me think"), text_event(".\n</thi"), last_event("nk>\n\nParis.")}, o);
  const auto& msg = body["choices"][0]["message"];
  EXPECT_EQ(msg["reasoning_content"], "Let me think.");
  EXPECT_EQ(msg["content"], "Paris.");
  std::string reasoning, content;
  for (const auto& c : chunks) {
    const auto& d = c["choices"][0]["delta"];
    if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("content")) content += d["content"].get<std::string>();
  }
  EXPECT_EQ(reasoning, "Let me think.");
  EXPECT_EQ(content, "Paris.");

  // A <think> block the model opened itself.
  auto [b2, c2] = run_chat({last_event("<think>\nhmm\n</think>\n\nYes.")});
  EXPECT_EQ(b2["choices"][0]["message"]["reasoning_content"], "hmm");
  EXPECT_EQ(b2["choices"][0]["message"]["content"], "Yes.");
}

TEST(ChatResponse, Logprobs) {
  const int32_t hello = id_of("Hello"), hi = id_of("Hi");
  GenEvent e1 = text_event("Hello");
  e1.tokens.push_back(TokenLogprob{hello, -0.25f, {{hello, -0.25f}, {hi, -1.5f}, {id_of("Hey"), -3.0f}}});
  GenEvent e2 = last_event("!");
  e2.tokens.push_back(TokenLogprob{id_of("!"), -0.5f, {{id_of("!"), -0.5f}, {id_of("."), -1.0f}, {id_of("?"), -2.f}}});
  ChatResponseOptions o;
  o.logprobs = true;
  o.top_logprobs = 2;
  auto [body, chunks] = run_chat({e1, e2}, o);
  const auto& lp = body["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(lp.size(), 2u);
  EXPECT_EQ(lp[0]["token"], "Hello");
  EXPECT_FLOAT_EQ(lp[0]["logprob"].get<float>(), -0.25f);
  EXPECT_EQ(lp[0]["bytes"], (json{72, 101, 108, 108, 111}));
  ASSERT_EQ(lp[0]["top_logprobs"].size(), 2u);  // top_logprobs = 2 of the 3 given
  EXPECT_EQ(lp[0]["top_logprobs"][1]["token"], "Hi");
  EXPECT_FLOAT_EQ(lp[0]["top_logprobs"][1]["logprob"].get<float>(), -1.5f);
  EXPECT_EQ(lp[0]["top_logprobs"][1]["bytes"], (json{72, 105}));
  EXPECT_EQ(lp[1]["token"], "!");

  // Stream: each token's entry rides on a chunk.
  int n = 0;
  for (const auto& c : chunks) {
    const auto& l = c["choices"][0]["logprobs"];
    if (l.is_null()) continue;
    for (const auto& x : l["content"]) {
      EXPECT_TRUE(x.contains("token") && x.contains("logprob") && x.contains("bytes") && x.contains("top_logprobs"));
      ++n;
    }
  }
  EXPECT_EQ(n, 2);
}

TEST(ChatResponse, EngineErrorInStream) {
  GenEvent e = last_event("", FinishReason::Error);
  e.error = "out of memory";
  ChatResponse s(ctx().tok, meta(), {});
  auto chunks = s.stream_event(e);
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks.back()["error"]["message"], "out of memory");
  EXPECT_TRUE(s.done());
  EXPECT_TRUE(s.failed());
  ChatResponse w(ctx().tok, meta(), {});
  w.add(e);
  EXPECT_TRUE(w.failed());
  EXPECT_EQ(w.error().status, 500);
  GenEvent c = last_event("", FinishReason::Cancelled);
  ChatResponse wc(ctx().tok, meta(), {});
  wc.add(c);
  EXPECT_EQ(wc.error().status, 503);
}

TEST(ChatResponse, EventsAfterDoneIgnored) {
  ChatResponse s(ctx().tok, meta(), {});
  EXPECT_EQ(s.start().size(), 1u);
  EXPECT_TRUE(s.start().empty());  // the opening chunk goes once
  auto a = s.stream_event(last_event("x"));
  EXPECT_TRUE(s.stream_event(text_event("late")).empty());
}

// --- completion responses -------------------------------------------------------------------------

TEST(CompletionResponse, WholeAndStream) {
  CompletionResponseOptions o;
  o.include_usage = true;
  CompletionResponse w(ctx().tok, meta("cmpl-x"), o), s(ctx().tok, meta("cmpl-x"), o);
  std::vector<json> chunks = s.start();
  EXPECT_TRUE(chunks.empty());  // no echo: nothing before the first event
  for (const auto& e : {text_event(" upon"), last_event(" a time", FinishReason::Length)}) {
    w.add(e);
    for (auto& c : s.stream_event(e)) chunks.push_back(std::move(c));
  }
  json body = w.body();
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["id"], "cmpl-x");
  EXPECT_EQ(body["choices"][0]["text"], " upon a time");
  EXPECT_TRUE(body["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["completion_tokens"], 5);

  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0]["object"], "text_completion");
  EXPECT_EQ(chunks[0]["choices"][0]["text"], " upon");
  EXPECT_TRUE(chunks[0]["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(chunks[0]["usage"].is_null());
  EXPECT_EQ(chunks[1]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(chunks[2]["choices"], json::array());
  EXPECT_EQ(chunks[2]["usage"]["total_tokens"], 15);
}

TEST(CompletionResponse, EchoWithLogprobs) {
  const auto prompt = ctx().tok.encode("Once upon");
  CompletionResponseOptions o;
  o.echo = true;
  o.logprobs = 1;
  o.prompt_ids = prompt;
  o.prompt_text = "Once upon";
  const int32_t a = id_of(" a"), the = id_of(" the");
  GenEvent e = last_event(" a");
  e.tokens.push_back(TokenLogprob{a, -0.1f, {{a, -0.1f}, {the, -2.0f}}});

  CompletionResponse w(ctx().tok, meta("cmpl-x"), o);
  w.add(e);
  json body = w.body();
  EXPECT_EQ(body["choices"][0]["text"], "Once upon a");
  const auto& lp = body["choices"][0]["logprobs"];
  const size_t n = prompt.size() + 1;
  ASSERT_EQ(lp["tokens"].size(), n);
  ASSERT_EQ(lp["token_logprobs"].size(), n);
  ASSERT_EQ(lp["top_logprobs"].size(), n);
  ASSERT_EQ(lp["text_offset"].size(), n);
  for (size_t i = 0; i < prompt.size(); ++i) {  // prompt tokens: no logprobs from the engine
    EXPECT_TRUE(lp["token_logprobs"][i].is_null());
    EXPECT_TRUE(lp["top_logprobs"][i].is_null());
  }
  EXPECT_EQ(lp["text_offset"][0], 0);
  EXPECT_EQ(lp["tokens"][n - 1], " a");
  EXPECT_EQ(lp["text_offset"][n - 1], 9);  // after "Once upon"
  EXPECT_FLOAT_EQ(lp["token_logprobs"][n - 1].get<float>(), -0.1f);
  EXPECT_EQ(lp["top_logprobs"][n - 1], (json{{" a", -0.1f}}));  // logprobs = 1 alternative

  // Stream: the echoed prompt is the first chunk.
  CompletionResponse s(ctx().tok, meta("cmpl-x"), o);
  auto first = s.start();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0]["choices"][0]["text"], "Once upon");
  EXPECT_EQ(first[0]["choices"][0]["logprobs"]["tokens"].size(), prompt.size());
  auto rest = s.stream_event(e);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0]["choices"][0]["text"], " a");
  EXPECT_EQ(rest[0]["choices"][0]["logprobs"]["text_offset"], json::array({9}));
  EXPECT_EQ(rest[0]["choices"][0]["finish_reason"], "stop");
}

// --- errors, SSE, metrics -----------------------------------------------------------------------

TEST(ApiErrorJson, Shape) {
  json j = error_json(bad_param("top_p", "bad"));
  EXPECT_EQ(j, (json{{"error", {{"message", "bad"}, {"type", "invalid_request_error"}, {"param", "top_p"},
                                {"code", nullptr}}}}));
  ApiError e{400, "too long", "invalid_request_error", "", "context_length_exceeded"};
  EXPECT_TRUE(error_json(e)["error"]["param"].is_null());
  EXPECT_EQ(error_json(e)["error"]["code"], "context_length_exceeded");
}

TEST(Sse, Framing) {
  EXPECT_EQ(sse_json(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  EXPECT_EQ(sse_event("x\ny"), "data: x\ndata: y\n\n");
  // JSON strings with newlines stay on one line (escaped).
  EXPECT_EQ(sse_json(json{{"t", "a\nb"}}), "data: {\"t\":\"a\\nb\"}\n\n");
  // Invalid UTF-8 never throws.
  EXPECT_EQ(dump_json(json{{"t", std::string("\xff")}}), "{\"t\":\"\xEF\xBF\xBD\"}");
}

TEST(Ids, RandomAndPrefixed) {
  std::string a = random_id("chatcmpl-"), b = random_id("chatcmpl-");
  EXPECT_EQ(a.rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(a.size(), 9u + 24u);
  EXPECT_NE(a, b);
}

TEST(Metrics, Text) {
  ServerMetrics m;
  m.count_request(200);
  m.count_request(200);
  m.count_request(400);
  EngineSnapshot e;
  e.prompt_tokens = 123;
  e.completion_tokens = 45;
  e.queued = 2;
  e.running = 3;
  e.cache_hits = 7;
  e.cache_misses = 1;
  e.cache_bytes = 1 << 20;
  e.cache_entries = 4;
  e.decode_tok_s = 12.5;
  e.mtp_proposed = 9;
  e.mtp_accepted = 5;
  std::string t = render_metrics(m.requests_by_status(), e);
  for (const char* line : {"qnext_requests_total{code=\"200\"} 2\n", "qnext_requests_total{code=\"400\"} 1\n",
                           "qnext_prompt_tokens_total 123\n", "qnext_completion_tokens_total 45\n",
                           "qnext_queue_depth 2\n", "qnext_running_sequences 3\n", "qnext_cache_hits_total 7\n",
                           "qnext_cache_misses_total 1\n", "qnext_cache_bytes 1048576\n", "qnext_cache_entries 4\n",
                           "qnext_decode_tokens_per_second 12.5\n", "qnext_mtp_drafts_total 9\n",
                           "qnext_mtp_accepted_total 5\n", "# TYPE qnext_requests_total counter\n",
                           "# TYPE qnext_queue_depth gauge\n"}) {
    EXPECT_NE(t.find(line), std::string::npos) << line << "\nin:\n" << t;
  }
}
