// Output parsing: reasoning split, tool-call extraction, and the streaming parser's agreement
// with the one-shot parser however the text is chunked.
#include <gtest/gtest.h>

#include "tokenizer/chat_output.h"

using nlohmann::ordered_json;
using qnext::ChatOutputStream;
using qnext::parse_chat_output;

TEST(ChatOutput, PlainAnswer) {
  auto o = parse_chat_output("Hello there.\n");
  EXPECT_FALSE(o.has_reasoning);
  EXPECT_EQ(o.reasoning, "");
  EXPECT_EQ(o.content, "Hello there.");
  EXPECT_TRUE(o.tool_calls.empty());
}

TEST(ChatOutput, ReasoningWithAndWithoutOpeningTag) {
  auto a = parse_chat_output("<think>\nLet me think.\n</think>\n\nThe answer is 4.");
  EXPECT_TRUE(a.has_reasoning);
  EXPECT_EQ(a.reasoning, "Let me think.");
  EXPECT_EQ(a.content, "The answer is 4.");
  // The Thinking template pre-fills "<think>\n": the generation starts inside the reasoning.
  auto b = parse_chat_output("Let me think.\nStep 2.\n</think>\n\nThe answer is 4.");
  EXPECT_TRUE(b.has_reasoning);
  EXPECT_EQ(b.reasoning, "Let me think.\nStep 2.");
  EXPECT_EQ(b.content, "The answer is 4.");
  // Empty reasoning (hybrid template with enable_thinking=false).
  auto c = parse_chat_output("<think>\n\n</think>\n\nHi");
  EXPECT_TRUE(c.has_reasoning);
  EXPECT_EQ(c.reasoning, "");
  EXPECT_EQ(c.content, "Hi");
  // Cut off mid-reasoning: only the caller knows the prompt opened <think>.
  auto d = parse_chat_output("still thinking", /*reasoning_open=*/true);
  EXPECT_EQ(d.reasoning, "still thinking");
  EXPECT_EQ(d.content, "");
  auto e = parse_chat_output("<think>\nunfinished");
  EXPECT_TRUE(e.has_reasoning);
  EXPECT_EQ(e.reasoning, "unfinished");
}

TEST(ChatOutput, ToolCalls) {
  std::string text =
      "<think>\nNeed weather.\n</think>\n\nLet me check.\n<tool_call>\n"
      R"({"name": "get_weather", "arguments": {"city": "北京", "unit": "celsius"}})"
      "\n</tool_call>\n<tool_call>\n"
      R"({"name": "get_time", "arguments": "{\"tz\": \"UTC\"}"})"
      "\n</tool_call>";
  auto o = parse_chat_output(text);
  EXPECT_EQ(o.reasoning, "Need weather.");
  EXPECT_EQ(o.content, "Let me check.");
  ASSERT_EQ(o.tool_calls.size(), 2u);
  EXPECT_TRUE(o.tool_calls[0].ok());
  EXPECT_EQ(o.tool_calls[0].name, "get_weather");
  EXPECT_EQ(o.tool_calls[0].arguments.dump(), R"({"city":"北京","unit":"celsius"})");  // key order kept
  EXPECT_EQ(o.tool_calls[1].name, "get_time");
  EXPECT_EQ(o.tool_calls[1].arguments, ordered_json({{"tz", "UTC"}}));  // string arguments decoded
}

TEST(ChatOutput, MalformedToolCallsAreErrorEntries) {
  auto o = parse_chat_output("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>"
                             "<tool_call>[1]</tool_call><tool_call>{\"arguments\": {}}</tool_call>"
                             "<tool_call>{\"name\": \"g\"}</tool_call>after<tool_call>{\"name\"");
  ASSERT_EQ(o.tool_calls.size(), 5u);
  EXPECT_FALSE(o.tool_calls[0].ok());
  EXPECT_NE(o.tool_calls[0].error.find("tool call: malformed JSON"), std::string::npos);
  EXPECT_NE(o.tool_calls[0].raw.find("\"f\""), std::string::npos);
  EXPECT_FALSE(o.tool_calls[1].ok());
  EXPECT_FALSE(o.tool_calls[2].ok());
  EXPECT_TRUE(o.tool_calls[3].ok());
  EXPECT_EQ(o.tool_calls[3].arguments, ordered_json::object());
  EXPECT_FALSE(o.tool_calls[4].ok());
  EXPECT_NE(o.tool_calls[4].error.find("unterminated"), std::string::npos);
  EXPECT_EQ(o.content, "after");
}

TEST(ChatOutput, StreamingMatchesOneShotForAnyChunking) {
  const std::vector<std::pair<std::string, bool>> texts = {
      {"Let me think.\n\n</think>\n\nAnswer\n\nmore\n", true},
      {"<think>\nabc\n</think>\n\nx\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>\ny", false},
      {"plain <thin text <tool_ ok\n", false},
      {"\n\n<think>\n\n</think>\n\n<tool_call>{\"name\": \"a\"}</tool_call>\n<tool_call>{bad}</tool_call>", false},
      {"<thi", false},
      {"thinking <tool_call> is not parsed here </think>ok", true},
  };
  for (const auto& [text, open] : texts) {
    auto whole = parse_chat_output(text, open);
    for (size_t step : {size_t{1}, size_t{2}, size_t{3}, size_t{7}}) {
      ChatOutputStream s(open);
      std::string reasoning, content;
      std::vector<qnext::ToolCall> calls;
      auto take = [&](ChatOutputStream::Delta d) {
        reasoning += d.reasoning;
        content += d.content;
        for (auto& c : d.tool_calls) calls.push_back(c);
      };
      for (size_t i = 0; i < text.size(); i += step) take(s.feed(std::string_view(text).substr(i, step)));
      take(s.finish());
      EXPECT_EQ(reasoning, whole.reasoning) << text << " step " << step;
      EXPECT_EQ(content, whole.content) << text << " step " << step;
      EXPECT_EQ(s.has_reasoning(), whole.has_reasoning) << text;
      ASSERT_EQ(calls.size(), whole.tool_calls.size()) << text;
      for (size_t i = 0; i < calls.size(); ++i) {
        EXPECT_EQ(calls[i].name, whole.tool_calls[i].name);
        EXPECT_EQ(calls[i].arguments, whole.tool_calls[i].arguments);
        EXPECT_EQ(calls[i].ok(), whole.tool_calls[i].ok());
      }
    }
  }
}

TEST(ChatOutput, StreamHoldsBackPartialTags) {
  ChatOutputStream s(true);
  auto d1 = s.feed("abc</thi");
  EXPECT_EQ(d1.reasoning, "abc");
  auto d2 = s.feed("nk>\n\nHel");
  EXPECT_EQ(d2.reasoning, "");
  EXPECT_EQ(d2.content, "Hel");
  auto d3 = s.feed("lo\n");
  EXPECT_EQ(d3.content, "lo");  // trailing newline held until more text arrives
  auto d4 = s.feed("<tool");
  EXPECT_TRUE(d4.empty());
  auto d5 = s.feed("_call>{\"name\": \"f\", \"arguments\": {\"x\": 1}}</tool_call>");
  ASSERT_EQ(d5.tool_calls.size(), 1u);
  EXPECT_EQ(d5.tool_calls[0].arguments["x"], 1);
  EXPECT_TRUE(s.finish().empty());
}

namespace qnext {
// A model may write arbitrarily deep JSON in a tool call: it becomes an error entry, never a
// stack overflow when the arguments are later copied or dumped.
TEST(ToolCallParse, DeepArgumentsAreAnError) {
  const std::string deep = std::string(500000, '[') + std::string(500000, ']');
  ToolCall c = parse_tool_call(R"({"name": "f", "arguments": )" + deep + "}");
  EXPECT_FALSE(c.ok());
  EXPECT_NE(c.error.find("nested deeper than"), std::string::npos) << c.error;
  ToolCall s = parse_tool_call(R"({"name": "f", "arguments": ")" + deep + "\"}");
  EXPECT_TRUE(s.ok());  // a string that is too deep to decode stays a string
  EXPECT_TRUE(s.arguments.is_string());
}
}  // namespace qnext
