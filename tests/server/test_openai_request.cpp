// The OpenAI layer of `qnext serve` without sockets or a model: request parsing and validation.
#include <gtest/gtest.h>

#include "server/openai_fixtures.h"

using json = nlohmann::ordered_json;
using namespace qnext;
using namespace qnext::server;
using namespace qnext::server::testing;
// --- chat requests: parsing and validation --------------------------------------------------------

TEST(ChatRequest, RendersTemplateAndTokenizes) {
  auto r = chat(chat_body());
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto want = ctx().tpl->render(kHello, nullptr, true);
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(r->prompt_text, want.value());
  EXPECT_EQ(r->gen.prompt, ctx().tok.encode(want.value()));
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->parse_tools);
  EXPECT_FALSE(r->reasoning_open);
  EXPECT_EQ(r->gen.top_logprobs, -1);
  // Defaults: generation config's sampling, the rest of the context.
  EXPECT_FLOAT_EQ(r->gen.sampling.temperature, 0.7f);
  EXPECT_FLOAT_EQ(r->gen.sampling.top_p, 0.8f);
  EXPECT_EQ(r->gen.sampling.top_k, 20);
  EXPECT_EQ(r->gen.max_tokens, 4096 - int(r->gen.prompt.size()));
  EXPECT_TRUE(r->gen.stop.empty());
}

TEST(ChatRequest, SamplingOverrides) {
  auto r = chat(chat_body({{"temperature", 0},
                           {"top_p", 0.5},
                           {"top_k", -1},
                           {"min_p", 0.1},
                           {"presence_penalty", 1.5},
                           {"frequency_penalty", -0.5},
                           {"repetition_penalty", 1.1},
                           {"seed", 1234},
                           {"max_tokens", 7},
                           {"stop", "END"},
                           {"n", 1},
                           {"stream", true},
                           {"stream_options", {{"include_usage", true}}},
                           {"user", "ignored"},
                           {"some_future_field", {1, 2}}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& s = r->gen.sampling;
  EXPECT_EQ(s.temperature, 0.0f);
  EXPECT_FLOAT_EQ(s.top_p, 0.5f);
  EXPECT_EQ(s.top_k, 0);
  EXPECT_FLOAT_EQ(s.min_p, 0.1f);
  EXPECT_FLOAT_EQ(s.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(s.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.1f);
  EXPECT_EQ(s.seed, 1234u);
  EXPECT_EQ(r->gen.max_tokens, 7);
  EXPECT_EQ(r->gen.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
}

TEST(ChatRequest, RandomSeedWithoutSeed) {
  auto a = chat(chat_body()), b = chat(chat_body());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->gen.sampling.seed, b->gen.sampling.seed);
}

TEST(ChatRequest, StopArrayAndMaxCompletionTokens) {
  auto r = chat(chat_body({{"stop", {"a", "bb"}}, {"max_tokens", 3}, {"max_completion_tokens", 9}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->gen.stop, (std::vector<std::string>{"a", "bb"}));
  EXPECT_EQ(r->gen.max_tokens, 9);  // the newer name wins
  auto n = chat(chat_body({{"max_tokens", nullptr}, {"temperature", nullptr}}));  // null: not given
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_FLOAT_EQ(n->gen.sampling.temperature, 0.7f);
}

TEST(ChatRequest, MalformedJson) {
  for (const char* body : {"{", "not json", "", "[1, 2]", "\"text\"", "{\"messages\": [}"}) {
    auto r = parse_chat_request(body, ctx());
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().status, 400);
    EXPECT_EQ(r.error().type, "invalid_request_error");
  }
}

TEST(ChatRequest, BadMessages) {
  expect_bad(chat(json{{"model", "x"}}), "messages");
  expect_bad(chat(json{{"messages", json::array()}}), "messages");
  expect_bad(chat(json{{"messages", "hi"}}), "messages");
  expect_bad(chat(json{{"messages", {1}}}), "messages[0]");
  expect_bad(chat(json{{"messages", {{{"content", "hi"}}}}}), "messages[0].role");
  expect_bad(chat(json{{"messages", {{{"role", "wizard"}, {"content", "hi"}}}}}), "messages[0].role");
  expect_bad(chat(json{{"messages", {{{"role", "user"}}}}}), "messages[0].content");
  expect_bad(chat(json{{"messages", {{{"role", "user"}, {"content", 5}}}}}), "messages[0].content");
  expect_bad(chat(json{{"messages", {{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", json::array({json{{"x", 1}}})}}}}}),
             "messages[1].content[0].type");
  expect_bad(chat(json{{"messages", {{{"role", "user"}, {"content", json{{"x", 1}}}}}}}), "messages[0].content");
}

TEST(ChatRequest, ContentParts) {
  json parts = {{{"type", "text"}, {"text", "Hel"}}, {{"type", "text"}, {"text", "lo"}}};
  auto r = chat(json{{"messages", {{{"role", "user"}, {"content", parts}}}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto want = ctx().tpl->render(json::array({json{{"role", "user"}, {"content", "Hel\nlo"}}}), nullptr, true);
  EXPECT_EQ(r->prompt_text, want.value());

  json image = {{{"type", "text"}, {"text", "see"}}, {{"type", "image_url"}, {"image_url", {{"url", "http://x"}}}}};
  auto bad = chat(json{{"messages", {{{"role", "user"}, {"content", image}}}}});
  expect_bad(bad, "messages[0].content[1].type");
  EXPECT_NE(bad.error().message.find("image_url"), std::string::npos);
  expect_bad(chat(json{{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}}}}}}}}),
             "messages[0].content[0].text");
}

TEST(ChatRequest, RangeErrorsNameTheParam) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"temperature", -0.1}}, "temperature"},
      {{{"temperature", "hot"}}, "temperature"},
      {{{"top_p", 0}}, "top_p"},
      {{{"top_p", 1.5}}, "top_p"},
      {{{"top_k", -2}}, "top_k"},
      {{{"top_k", 1.5}}, "top_k"},
      {{{"min_p", 2}}, "min_p"},
      {{{"presence_penalty", 3}}, "presence_penalty"},
      {{{"frequency_penalty", -2.5}}, "frequency_penalty"},
      {{{"repetition_penalty", 0}}, "repetition_penalty"},
      {{{"seed", "x"}}, "seed"},
      {{{"n", 2}}, "n"},
      {{{"n", 0}}, "n"},
      {{{"max_tokens", 0}}, "max_tokens"},
      {{{"max_tokens", -5}}, "max_tokens"},
      {{{"max_tokens", "5"}}, "max_tokens"},
      {{{"max_completion_tokens", 0}}, "max_completion_tokens"},
      {{{"stop", 5}}, "stop"},
      {{{"stop", {"a", 1}}}, "stop"},
      {{{"stream", "yes"}}, "stream"},
      {{{"stream_options", {{"include_usage", 1}}}}, "stream_options.include_usage"},
      {{{"logprobs", 1}}, "logprobs"},
      {{{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs"},
      {{{"logprobs", true}, {"top_logprobs", -1}}, "top_logprobs"},
      {{{"top_logprobs", 3}}, "top_logprobs"},  // needs logprobs: true
      {{{"response_format", "json"}}, "response_format"},
      {{{"response_format", {{"type", "xml"}}}}, "response_format.type"},
      {{{"response_format", {{"type", "json_schema"}}}}, "response_format.json_schema"},
      {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}}}},
       "response_format.json_schema.schema"},
  };
  for (const auto& [extra, param] : cases) {
    SCOPED_TRACE(extra.dump());
    expect_bad(chat(chat_body(extra)), param);
  }
}

TEST(ChatRequest, ResponseFormatShapesAccepted) {
  for (json rf : {json{{"type", "text"}}, json{{"type", "json_object"}},
                  json{{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", {{"type", "object"}}}}}}}) {
    auto r = chat(chat_body({{"response_format", rf}}));
    ASSERT_TRUE(r.ok()) << rf.dump() << ": " << r.error().message;
    EXPECT_EQ(r->gen.grammar != nullptr, rf["type"] != "text") << rf.dump();
    EXPECT_EQ(r->gen.grammar_after, -1);
  }
}

// The grammar a request's output must follow, checked on documents.
bool output_accepts(const ChatRequest& r, const std::string& text) {
  return grammar::accepts(r.gen.grammar->grammar(), text);
}

TEST(ChatRequest, ResponseFormatJsonSchemaConstrainsTheOutput) {
  json schema = {{"type", "object"},
                 {"properties", {{"n", {{"type", "integer"}}}, {"s", {{"enum", {"a", "b"}}}}}},
                 {"required", {"n"}}};
  auto r = chat(chat_body({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", schema}}}}}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(output_accepts(*r, R"({"n": 3, "s": "b"})"));
  EXPECT_TRUE(output_accepts(*r, R"({"n": -12})"));
  EXPECT_FALSE(output_accepts(*r, R"({"s": "a"})"));
  EXPECT_FALSE(output_accepts(*r, R"(Sure! {"n": 3})"));
  // The same schema again shares the compiled grammar (and its cached masks).
  auto again = chat(chat_body({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "y"}, {"schema", schema}}}}}}));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->gen.grammar, r->gen.grammar);

  auto bad = chat(chat_body({{"response_format", {{"type", "json_schema"},
                                                  {"json_schema", {{"name", "x"}, {"schema", {{"type", "string"}, {"pattern", "a+"}}}}}}}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().status, 400);
  EXPECT_EQ(bad.error().param, "response_format.json_schema.schema");
  EXPECT_EQ(bad.error().message, "json schema: unsupported keyword 'pattern' at /");
}

TEST(ChatRequest, ForcedToolCallsConstrainTheOutput) {
  auto req = chat(chat_body({{"tools", {weather_tool(), weather_tool("get_time")}}, {"tool_choice", "required"}}));
  ASSERT_TRUE(req.ok()) << req.error().message;
  ASSERT_TRUE(req->gen.grammar);
  const std::string call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
  const std::string call2 = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  EXPECT_TRUE(output_accepts(*req, call));
  EXPECT_TRUE(output_accepts(*req, call + "\n" + call2));
  EXPECT_FALSE(output_accepts(*req, "I will call it. " + call));
  EXPECT_FALSE(output_accepts(*req, "<tool_call>\n{\"name\": \"get_news\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(output_accepts(*req, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": 3}}\n</tool_call>"));

  auto named = chat(chat_body({{"tools", {weather_tool(), weather_tool("get_time")}},
                               {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}}}));
  ASSERT_TRUE(named.ok()) << named.error().message;
  EXPECT_TRUE(output_accepts(*named, call2));
  EXPECT_FALSE(output_accepts(*named, call));
  EXPECT_FALSE(output_accepts(*named, call2 + "\n" + call2));  // exactly one call

  auto autochoice = chat(chat_body({{"tools", {weather_tool()}}}));
  ASSERT_TRUE(autochoice.ok());
  EXPECT_EQ(autochoice->gen.grammar, nullptr);  // "auto": the model may answer in text

  auto both = chat(chat_body({{"tools", {weather_tool()}}, {"tool_choice", "required"}, {"response_format", {{"type", "json_object"}}}}));
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.error().param, "response_format");
}

TEST(ChatRequest, ConstraintStartsAfterThinking) {
  ApiContext c = thinking_ctx();
  auto r = chat(chat_body({{"response_format", {{"type", "json_object"}}}}), c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(r->reasoning_open);
  EXPECT_EQ(r->gen.grammar_after, *c.tok.token_id("</think>"));
}

TEST(ChatRequest, ConstraintsNeedAGrammarCache) {
  ApiContext c = ctx();
  c.grammars = nullptr;
  auto r = chat(chat_body({{"response_format", {{"type", "json_object"}}}}), c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().param, "response_format");
}

TEST(ChatRequest, Logprobs) {
  auto a = chat(chat_body({{"logprobs", true}}));
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->logprobs);
  EXPECT_EQ(a->gen.top_logprobs, 0);
  auto b = chat(chat_body({{"logprobs", true}, {"top_logprobs", 20}}));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->gen.top_logprobs, 20);
  auto c = chat(chat_body({{"logprobs", false}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->gen.top_logprobs, -1);
}

TEST(ChatRequest, ContextLength) {
  ApiContext small = ctx();
  small.ctx = 8;  // the rendered "Hello" prompt is longer than this
  auto r = chat(chat_body(), small);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().code, "context_length_exceeded");

  auto ok = chat(chat_body());
  ASSERT_TRUE(ok.ok());
  const int prompt = int(ok->gen.prompt.size());
  ApiContext c = ctx();
  c.ctx = prompt + 10;
  auto fits = chat(chat_body({{"max_tokens", 10}}), c);
  ASSERT_TRUE(fits.ok()) << fits.error().message;
  auto over = chat(chat_body({{"max_tokens", 11}}), c);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, "context_length_exceeded");
  EXPECT_EQ(over.error().param, "max_tokens");
  auto dflt = chat(chat_body(), c);
  ASSERT_TRUE(dflt.ok());
  EXPECT_EQ(dflt->gen.max_tokens, 10);
}

// Found by fuzz_openai_request: prompt + max_tokens overflowed int64 (undefined behaviour) before the check.
TEST(ChatRequest, HugeMaxTokensIsAContextErrorNotAnOverflow) {
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    auto r = chat(chat_body({{key, INT64_MAX}}));
    ASSERT_FALSE(r.ok()) << key;
    EXPECT_EQ(r.error().code, "context_length_exceeded");
    EXPECT_EQ(r.error().param, key);
    EXPECT_NE(r.error().message.find("more than 9223372036854775807"), std::string::npos) << r.error().message;
  }
  auto near = chat(chat_body({{"max_tokens", INT64_MAX - 200}}));
  ASSERT_FALSE(near.ok());
  EXPECT_EQ(near.error().code, "context_length_exceeded");
  auto c = completion(json{{"prompt", "hi"}, {"max_tokens", INT64_MAX}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, "context_length_exceeded");
}

TEST(ChatRequest, Tools) {
  auto r = chat(chat_body({{"tools", {weather_tool()}}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->parse_tools);
  EXPECT_NE(r->prompt_text.find("<tools>"), std::string::npos);
  EXPECT_NE(r->prompt_text.find("get_weather"), std::string::npos);

  auto none = chat(chat_body({{"tools", {weather_tool()}}, {"tool_choice", "none"}}));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->parse_tools);
  EXPECT_EQ(none->prompt_text.find("<tools>"), std::string::npos);

  auto req = chat(chat_body({{"tools", {weather_tool()}}, {"tool_choice", "required"}}));
  ASSERT_TRUE(req.ok());
  EXPECT_TRUE(req->parse_tools);

  // A named tool: only it is shown.
  auto named = chat(chat_body({{"tools", {weather_tool(), weather_tool("get_time")}},
                               {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}}}));
  ASSERT_TRUE(named.ok()) << named.error().message;
  EXPECT_NE(named->prompt_text.find("get_time"), std::string::npos);
  EXPECT_EQ(named->prompt_text.find("get_weather"), std::string::npos);
}

TEST(ChatRequest, ToolChoiceValidation) {
  expect_bad(chat(chat_body({{"tool_choice", "required"}})), "tool_choice");
  expect_bad(chat(chat_body({{"tools", json::array()}, {"tool_choice", "required"}})), "tool_choice");
  expect_bad(chat(chat_body({{"tools", {weather_tool()}}, {"tool_choice", "sometimes"}})), "tool_choice");
  expect_bad(chat(chat_body({{"tools", {weather_tool()}},
                             {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}})),
             "tool_choice");
  expect_bad(chat(chat_body({{"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}})),
             "tool_choice");
  expect_bad(chat(chat_body({{"tools", {weather_tool()}}, {"tool_choice", {{"type", "function"}}}})), "tool_choice");
  expect_bad(chat(chat_body({{"tools", {weather_tool()}}, {"tool_choice", 3}})), "tool_choice");
  expect_bad(chat(chat_body({{"tools", "x"}})), "tools");
  expect_bad(chat(chat_body({{"tools", {{{"type", "code"}}}}})), "tools[0].type");
  expect_bad(chat(chat_body({{"tools", {{{"type", "function"}}}}})), "tools[0].function");
  expect_bad(chat(chat_body({{"tools", {{{"type", "function"}, {"function", {{"name", ""}}}}}}})),
             "tools[0].function.name");
  expect_bad(chat(chat_body({{"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", 1}}}}}}})),
             "tools[0].function.parameters");
  // "none" without tools is fine.
  EXPECT_TRUE(chat(chat_body({{"tool_choice", "none"}})).ok());
  EXPECT_TRUE(chat(chat_body({{"tool_choice", "auto"}})).ok());
}

TEST(ChatRequest, ToolConversation) {
  json messages = {
      {{"role", "system"}, {"content", "Be brief."}},
      {{"role", "user"}, {"content", "Weather in Paris?"}},
      {{"role", "assistant"},
       {"content", nullptr},
       {"tool_calls",
        {{{"id", "call_1"},
          {"type", "function"},
          {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}}}}}}},
      {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "18C, sunny"}},
  };
  auto r = chat(json{{"messages", messages}, {"tools", {weather_tool()}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  // The arguments string became an object, which the template dumps as JSON.
  EXPECT_NE(r->prompt_text.find("{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"), std::string::npos)
      << r->prompt_text;
  EXPECT_NE(r->prompt_text.find("<tool_response>\n18C, sunny\n</tool_response>"), std::string::npos);

  auto conv = convert_messages(messages);
  ASSERT_TRUE(conv.ok());
  EXPECT_TRUE(conv.value()[2]["tool_calls"][0]["function"]["arguments"].is_object());
  EXPECT_EQ(conv.value()[2]["content"], "");

  json bad = messages;
  bad[2]["tool_calls"][0]["function"]["arguments"] = "{not json";
  expect_bad(chat(json{{"messages", bad}}), "messages[2].tool_calls[0].function.arguments");
  bad[2]["tool_calls"][0]["function"] = json{{"arguments", "{}"}};
  expect_bad(chat(json{{"messages", bad}}), "messages[2].tool_calls[0].function.name");
}

TEST(ChatRequest, DeveloperRoleIsSystem) {
  auto a = chat(json{{"messages", {{{"role", "developer"}, {"content", "S"}}, {{"role", "user"}, {"content", "U"}}}}});
  auto b = chat(json{{"messages", {{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "U"}}}}});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->prompt_text, b->prompt_text);
}

TEST(ChatRequest, TemplateErrorIs400) {
  ApiContext c = ctx();
  auto tpl = ChatTemplate::from_source("{{ raise_exception('only user messages') }}");
  ASSERT_TRUE(tpl.ok());
  c.tpl = tpl.value();
  auto r = chat(chat_body(), c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 400);
  EXPECT_NE(r.error().message.find("only user messages"), std::string::npos) << r.error().message;

  ApiContext none = ctx();
  none.tpl.reset();
  none.tpl_error = "no template";
  auto n = chat(chat_body(), none);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().status, 400);
}

TEST(ChatRequest, ReasoningOpen) {
  ApiContext c = thinking_ctx();
  auto r = chat(chat_body(), c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->reasoning_open) << r->prompt_text;
  EXPECT_TRUE(prompt_opens_reasoning("<|im_start|>assistant\n<think>\n"));
  EXPECT_FALSE(prompt_opens_reasoning("<think>\n\n</think>\n\n"));
  EXPECT_FALSE(prompt_opens_reasoning("no tags"));
}

// --- completions requests ---------------------------------------------------------------------

TEST(CompletionRequest, PromptForms) {
  const auto ids = ctx().tok.encode("Once upon a time");
  auto s = completion(json{{"prompt", "Once upon a time"}, {"max_tokens", 4}});
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->gen.prompt, ids);
  EXPECT_EQ(s->prompt_text, "Once upon a time");
  EXPECT_EQ(s->gen.max_tokens, 4);
  EXPECT_EQ(s->gen.top_logprobs, -1);

  for (json p : {json(ids), json::array({"Once upon a time"}), json::array({json(ids)})}) {
    auto r = completion(json{{"prompt", p}});
    ASSERT_TRUE(r.ok()) << p.dump() << ": " << r.error().message;
    EXPECT_EQ(r->gen.prompt, ids);
    EXPECT_EQ(r->prompt_text, "Once upon a time");
    EXPECT_EQ(r->gen.max_tokens, 4096 - int(ids.size()));
  }
}

TEST(CompletionRequest, Errors) {
  expect_bad(completion(json{{"max_tokens", 3}}), "prompt");
  expect_bad(completion(json{{"prompt", ""}}), "prompt");
  expect_bad(completion(json{{"prompt", json::array()}}), "prompt");
  expect_bad(completion(json{{"prompt", {"a", "b"}}}), "prompt");
  expect_bad(completion(json{{"prompt", {{1, 2}, {3}}}}), "prompt");
  expect_bad(completion(json{{"prompt", {1, -1}}}), "prompt");
  expect_bad(completion(json{{"prompt", {1, 999999999}}}), "prompt");
  expect_bad(completion(json{{"prompt", {1, 2.5}}}), "prompt");
  expect_bad(completion(json{{"prompt", 5}}), "prompt");
  expect_bad(completion(json{{"prompt", "hi"}, {"logprobs", 6}}), "logprobs");
  expect_bad(completion(json{{"prompt", "hi"}, {"logprobs", true}}), "logprobs");
  expect_bad(completion(json{{"prompt", "hi"}, {"echo", "yes"}}), "echo");
  expect_bad(completion(json{{"prompt", "hi"}, {"n", 3}}), "n");
  expect_bad(completion(json{{"prompt", "hi"}, {"max_tokens", 0}}), "max_tokens");
  expect_bad(completion(json{{"prompt", "hi"}, {"temperature", -1}}), "temperature");
  auto m = parse_completion_request("{\"prompt\": ", ctx());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().status, 400);

  ApiContext c = ctx();
  c.ctx = 3;
  auto over = completion(json{{"prompt", {1, 2, 3}}}, c);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, "context_length_exceeded");
  EXPECT_EQ(over.error().param, "prompt");
}

TEST(CompletionRequest, EchoLogprobs) {
  auto r = completion(json{{"prompt", "hi"}, {"echo", true}, {"logprobs", 3}, {"stop", {"\n"}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->echo);
  EXPECT_EQ(r->logprobs, 3);
  EXPECT_EQ(r->gen.top_logprobs, 3);
  EXPECT_EQ(r->gen.stop, std::vector<std::string>{"\n"});
}

// The engine is asked to snapshot where the newest message starts, so a request that shares the
// conversation up to there (same system prompt, another question) restores it.
TEST(ChatRequest, SnapshotAtNewestMessage) {
  json messages = json::array({json{{"role", "system"}, {"content", "You answer in French."}},
                               json{{"role", "user"}, {"content", "Hello"}}});
  auto r = chat(chat_body({{"messages", messages}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto sys = ctx().tpl->render(json::array({messages[0]}), nullptr, false);
  ASSERT_TRUE(sys.ok());
  const auto sys_ids = ctx().tok.encode(sys.value());
  ASSERT_EQ(r->gen.snapshot_at.size(), 1u);
  EXPECT_EQ(r->gen.snapshot_at[0], int(sys_ids.size()));
  EXPECT_TRUE(std::equal(sys_ids.begin(), sys_ids.end(), r->gen.prompt.begin()));
  auto one = chat(chat_body());  // a single message: nothing before it to keep
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(one->gen.snapshot_at.empty());
}

// With the engine's cache offering a text prefix, the prompt keeps those ids and tokenizes the rest.
TEST(ChatRequest, KeepsIdsOfACachedTextPrefix) {
  ApiContext c = ctx();
  auto plain = chat(chat_body());
  ASSERT_TRUE(plain.ok());
  const std::string text = plain->prompt_text;
  const size_t cut = text.find("Hello");
  ASSERT_NE(cut, std::string::npos);
  const std::vector<int32_t> odd_ids = {9707, 11};  // any ids: the cache says they spell text[0, cut)
  c.cached_prefix = [&](std::string_view t) {
    EXPECT_EQ(t, text);
    return StateCache::TextPrefix{odd_ids, cut};
  };
  auto r = chat(chat_body(), c);
  ASSERT_TRUE(r.ok());
  std::vector<int32_t> want = odd_ids;
  for (int32_t id : ctx().tok.encode(text.substr(cut))) want.push_back(id);
  EXPECT_EQ(r->gen.prompt, want);
}

// A body nested a million levels deep (here inside a tool's parameters, which the template
// dumps recursively) is refused while parsing: it used to overflow the stack and kill the server.
TEST(ChatRequest, DeeplyNestedJsonIsRefused) {
  const int depth = 1000000;
  std::string body = R"({"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"x":)";
  body += std::string(depth, '[') + std::string(depth, ']') + "}}}]}";
  auto r = parse_chat_request(body, ctx());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 400);
  EXPECT_NE(r.error().message.find("nested deeper than"), std::string::npos) << r.error().message;
  // Within the limit, nesting is fine.
  std::string ok = R"({"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"x":)";
  ok += std::string(100, '[') + std::string(100, ']') + "}}}]}";
  EXPECT_TRUE(parse_chat_request(ok, ctx()).ok());
}

// Tool-call arguments sent as JSON text were parsed without the body's nesting limit, so a client
// could hand the template (and every copy of the conversation) a million levels. (Found in review
// while writing fuzz/fuzz_openai_request; the template's own value-depth limit now stops it too.)
TEST(ChatRequest, DeeplyNestedToolCallArgumentsString) {
  auto with_args = [](const std::string& args) {
    json call{{"id", "c1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", args}}}};
    json msgs = json::array({json{{"role", "user"}, {"content", "hi"}},
                             json{{"role", "assistant"}, {"content", ""}, {"tool_calls", json::array({call})}},
                             json{{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "ok"}}});
    return chat(chat_body({{"messages", msgs}, {"tools", json::array({weather_tool("f")})}}));
  };
  const int depth = 1000000;
  auto r = with_args(std::string(depth, '[') + std::string(depth, ']'));
  expect_bad(r, "messages[1].tool_calls[0].function.arguments");
  EXPECT_NE(r.error().message.find("nested deeper than 256"), std::string::npos) << r.error().message;
  expect_bad(with_args("{\"city\": "), "messages[1].tool_calls[0].function.arguments");
  EXPECT_TRUE(with_args(R"({"city": [[["Paris"]]]})").ok());
}

TEST(ChatRequest, StopStringsAreBounded) {
  expect_bad(chat(chat_body({{"stop", json::array({std::string(5000, 'x')})}})), "stop");
  json many = json::array();
  for (int i = 0; i < 17; ++i) many.push_back("s" + std::to_string(i));
  expect_bad(chat(chat_body({{"stop", many}})), "stop");
  many.erase(many.end() - 1);
  EXPECT_TRUE(chat(chat_body({{"stop", many}})).ok());
}
