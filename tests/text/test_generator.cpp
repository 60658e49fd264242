// The generation runtime on a random-weight model with the real vocab: stop conditions
// (max tokens, EOS, stop strings), streaming, and multi-turn state reuse, which must give the
// same tokens and logits as prefilling the whole conversation in a fresh state.
#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <sstream>

#include "common/golden.h"
#include "common/real_vocab.h"
#include "runtime/chat_session.h"
#include "runtime/generator.h"
#include "runtime/stop_strings.h"

namespace qnext {
namespace {

using testing::kTokDir;
Model& model() { return testing::real_vocab_model(); }
const Tokenizer& tok() { return testing::qwen_tokenizer(); }

ChatTemplate load_template(const std::string& file) {
  std::ifstream f(kTokDir + "/" + file, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  auto t = ChatTemplate::from_source(ss.str());
  EXPECT_TRUE(t.ok()) << t.error();
  return std::move(t).value();
}

const int32_t kImEnd = 151645;

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0;
  return p;
}

Generator make_generator() { return Generator(model(), tok(), greedy(), {kImEnd, 151643}); }

// Makes greedy sampling emit `script` one token per step (then EOS).
Generator::LogitHook force(std::vector<int32_t> script) {
  auto step = std::make_shared<size_t>(0);
  return [script = std::move(script), step](std::span<float> logits) {
    const int32_t want = *step < script.size() ? script[*step] : kImEnd;
    ++*step;
    std::fill(logits.begin(), logits.end(), -std::numeric_limits<float>::infinity());
    logits[size_t(want)] = 0;
  };
}

std::vector<int32_t> greedy_from_scratch(std::span<const int32_t> prompt, int n) {
  SequenceState st(model().config());
  std::vector<float> logits;
  ForwardOptions opt;
  model().forward(st, prompt, opt, nullptr, &logits);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const int32_t next = testing::argmax(logits.data(), logits.size());
    out.push_back(next);
    model().forward(st, std::span<const int32_t>(&next, 1), opt, nullptr, &logits);
  }
  return out;
}

TEST(StopStrings, HoldsPossibleStartsAndCutsAtTheMatch) {
  StopStringMatcher m({"STOP", "\n\n"});
  EXPECT_EQ(m.feed("Hello ST"), "Hello ");  // "ST" could begin "STOP"
  EXPECT_EQ(m.feed("AR"), "STAR");
  EXPECT_EQ(m.feed("x\n"), "x");
  EXPECT_EQ(m.feed("y"), "\ny");
  EXPECT_EQ(m.feed("ab S"), "ab ");
  EXPECT_EQ(m.feed("TOP tail"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.feed("more"), "");

  StopStringMatcher end({"END"});
  EXPECT_EQ(end.feed("the E"), "the ");
  EXPECT_EQ(end.flush(), "E");  // never completed: emitted at the end
  EXPECT_FALSE(end.stopped());

  StopStringMatcher none({});
  EXPECT_EQ(none.feed("abc"), "abc");
}

TEST(Generator, GreedyMatchesAPlainLoopAndStopsAtMaxTokens) {
  Generator g = make_generator();
  const auto prompt = tok().encode("The capital of France is");
  std::string streamed;
  GenerateOptions opt;
  opt.max_tokens = 7;
  opt.ignore_eos = true;
  auto r = g.generate(prompt, opt, [&](std::string_view s) { streamed += s; });
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->stop, StopReason::MaxTokens);
  EXPECT_EQ(r->ids, greedy_from_scratch(prompt, 7));
  EXPECT_EQ(r->prompt_tokens, int(prompt.size()));
  EXPECT_EQ(r->prefilled_tokens, int(prompt.size()));
  EXPECT_EQ(streamed, r->text);
  EXPECT_EQ(r->text, tok().decode(r->ids));
  // The state holds the prompt and every generated token but the last (never needed).
  std::vector<int32_t> expect(prompt);
  expect.insert(expect.end(), r->ids.begin(), r->ids.end() - 1);
  EXPECT_EQ(g.tokens(), expect);
}

TEST(Generator, StopsAtEosWithoutEmittingIt) {
  Generator g = make_generator();
  const auto answer = tok().encode("Paris.");
  g.set_logit_hook(force(answer));  // then <|im_end|>
  GenerateOptions opt;
  opt.max_tokens = 50;
  auto r = g.generate(tok().encode("Q: capital of France?\nA:"), opt);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->stop, StopReason::Eos);
  EXPECT_EQ(r->text, "Paris.");
  ASSERT_EQ(r->ids.size(), answer.size() + 1);
  EXPECT_EQ(r->ids.back(), kImEnd);

  // ignore_eos runs on to max_tokens.
  Generator g2 = make_generator();
  g2.set_logit_hook(force({}));  // EOS every step
  opt.max_tokens = 3;
  opt.ignore_eos = true;
  auto r2 = g2.generate(tok().encode("x"), opt);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->stop, StopReason::MaxTokens);
  EXPECT_EQ(r2->ids, (std::vector<int32_t>{kImEnd, kImEnd, kImEnd}));
}

TEST(Generator, StopsAtAStopStringWithoutEmittingIt) {
  Generator g = make_generator();
  g.set_logit_hook(force(tok().encode("one two\n\nthree four")));
  GenerateOptions opt;
  opt.max_tokens = 50;
  opt.stop_strings = {"\n\n", "never"};
  std::string streamed;
  auto r = g.generate(tok().encode("Count:"), opt, [&](std::string_view s) { streamed += s; });
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->stop, StopReason::StopString);
  EXPECT_EQ(r->text, "one two");
  EXPECT_EQ(streamed, "one two");
}

TEST(Generator, StreamsWholeUtf8Characters) {
  Generator g = make_generator();
  const std::string text = "日本語 🫠 ok";
  g.set_logit_hook(force(tok().encode(text)));
  GenerateOptions opt;
  opt.max_tokens = 100;
  std::vector<std::string> pieces;
  auto r = g.generate(tok().encode("x"), opt, [&](std::string_view s) { pieces.emplace_back(s); });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, text);
  for (const auto& p : pieces) {
    // No piece starts with a continuation byte or ends inside a character.
    ASSERT_FALSE(p.empty());
    EXPECT_NE(uint8_t(p[0]) & 0xC0, 0x80) << p;
  }
}

TEST(Generator, PromptThatDoesNotExtendTheStateRebuildsIt) {
  Generator g = make_generator();
  const auto a = tok().encode("alpha beta gamma");
  ASSERT_TRUE(g.set_prompt(a).ok());
  auto more = a;
  more.push_back(tok().encode(" delta")[0]);
  auto fed = g.set_prompt(more);
  ASSERT_TRUE(fed.ok());
  EXPECT_EQ(fed.value(), 1);
  EXPECT_EQ(g.resets(), 0);
  auto other = tok().encode("something else");
  fed = g.set_prompt(other);
  ASSERT_TRUE(fed.ok());
  EXPECT_EQ(fed.value(), int(other.size()));
  EXPECT_EQ(g.resets(), 1);
  EXPECT_EQ(g.tokens(), other);
  EXPECT_FALSE(g.set_prompt(std::vector<int32_t>{-1}).ok());
}

// Runs turn 2 of a conversation whose state was kept, then the same prompt in a fresh state:
// generated ids must be equal and the logits after them close (only summation order differs).
void expect_same_as_fresh(Generator& g, const GenerationResult& turn2) {
  const std::vector<int32_t> prompt(g.tokens().begin(), g.tokens().begin() + turn2.prompt_tokens);
  Generator fresh = make_generator();
  GenerateOptions opt;
  opt.max_tokens = int(turn2.ids.size());
  opt.ignore_eos = true;
  auto r = fresh.generate(prompt, opt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prefilled_tokens, turn2.prompt_tokens);
  EXPECT_EQ(r->ids, turn2.ids);
  ASSERT_EQ(fresh.tokens(), g.tokens());
  EXPECT_LT(testing::max_abs_diff(fresh.last_logits(), g.last_logits()), 2e-3f);
}

TEST(ChatSession, SecondTurnFeedsOnlyNewTokensAndMatchesAFreshPrefill) {
  Generator g = make_generator();
  ChatSession chat(g, load_template("qwen3-next-instruct.jinja"), "You are terse.");
  GenerateOptions opt;
  opt.max_tokens = 32;
  g.set_logit_hook(force(tok().encode("Hello! How can I help?")));  // then <|im_end|>
  auto t1 = chat.send("Hi", opt);
  ASSERT_TRUE(t1.ok()) << t1.error();
  EXPECT_EQ(t1->gen.stop, StopReason::Eos);
  EXPECT_EQ(t1->output.content, "Hello! How can I help?");
  EXPECT_EQ(t1->gen.prefilled_tokens, t1->gen.prompt_tokens);

  g.set_logit_hook({});
  opt.max_tokens = 6;
  auto t2 = chat.send("Tell me a joke.", opt);
  ASSERT_TRUE(t2.ok()) << t2.error();
  // The tokenized rendering of the whole conversation extends what the state holds.
  EXPECT_EQ(t2->reuse, PromptReuse::TokenPrefix);
  EXPECT_EQ(g.resets(), 0);
  const int turn1_fed = t1->gen.prompt_tokens + int(t1->gen.ids.size()) - 1;  // all but <|im_end|>
  EXPECT_EQ(t2->gen.prefilled_tokens, t2->gen.prompt_tokens - turn1_fed);
  EXPECT_LT(t2->gen.prefilled_tokens, 20);
  // And it is exactly the HF tokenization of the full rendering.
  auto rendered = load_template("qwen3-next-instruct.jinja")
                      .render(nlohmann::ordered_json::array({{{"role", "system"}, {"content", "You are terse."}},
                                                             {{"role", "user"}, {"content", "Hi"}},
                                                             {{"role", "assistant"}, {"content", "Hello! How can I help?"}},
                                                             {{"role", "user"}, {"content", "Tell me a joke."}}}),
                              nullptr, true);
  ASSERT_TRUE(rendered.ok());
  const auto full = tok().encode(rendered.value());
  ASSERT_GE(g.tokens().size(), full.size());
  EXPECT_TRUE(std::equal(full.begin(), full.end(), g.tokens().begin()));
  EXPECT_EQ(t2->gen.prompt_tokens, int(full.size()));
  expect_same_as_fresh(g, t2->gen);
}

TEST(ChatSession, ModelOwnTokensAreKeptWhenTheyRetokenizeDifferently) {
  Generator g = make_generator();
  ChatSession chat(g, load_template("qwen3-next-instruct.jinja"), "");
  // "Hel" + "lo" is not how "Hello" tokenizes, yet it is what the model produced and saw.
  std::vector<int32_t> odd = tok().encode("Hel");
  for (int32_t id : tok().encode("lo world")) odd.push_back(id);
  ASSERT_NE(odd, tok().encode("Hello world"));
  g.set_logit_hook(force(odd));
  GenerateOptions opt;
  opt.max_tokens = 32;
  auto t1 = chat.send("Say hello", opt);
  ASSERT_TRUE(t1.ok()) << t1.error();
  EXPECT_EQ(t1->output.content, "Hello world");
  g.set_logit_hook({});
  opt.max_tokens = 5;
  auto t2 = chat.send("Again", opt);
  ASSERT_TRUE(t2.ok()) << t2.error();
  EXPECT_EQ(t2->reuse, PromptReuse::TextPrefix);
  EXPECT_EQ(g.resets(), 0);
  EXPECT_LT(t2->gen.prefilled_tokens, t2->gen.prompt_tokens);
  expect_same_as_fresh(g, t2->gen);
}

TEST(ChatSession, TemplateThatRewritesHistoryFallsBackToAFullPrefill) {
  Generator g = make_generator();
  // The Thinking template drops the <think> block of earlier answers.
  ChatSession chat(g, load_template("qwen3-next-thinking.jinja"), "");
  g.set_logit_hook(force(tok().encode("Let me think.\n</think>\n\nFour.")));
  GenerateOptions opt;
  opt.max_tokens = 32;
  auto t1 = chat.send("2+2?", opt);
  ASSERT_TRUE(t1.ok()) << t1.error();
  EXPECT_TRUE(t1->output.has_reasoning);
  EXPECT_EQ(t1->output.reasoning, "Let me think.");
  EXPECT_EQ(t1->output.content, "Four.");
  g.set_logit_hook({});
  opt.max_tokens = 4;
  auto t2 = chat.send("3+3?", opt);
  ASSERT_TRUE(t2.ok()) << t2.error();
  EXPECT_EQ(t2->reuse, PromptReuse::Rebuilt);
  EXPECT_TRUE(t2->gen.state_reset);
  EXPECT_EQ(g.resets(), 1);
  EXPECT_EQ(t2->gen.prefilled_tokens, t2->gen.prompt_tokens);
  expect_same_as_fresh(g, t2->gen);
}

TEST(ChatSession, GreedyConversationReusesStateAndResetForgets) {
  Generator g = make_generator();
  ChatSession chat(g, load_template("qwen3-next-instruct.jinja"), "");
  GenerateOptions opt;
  opt.max_tokens = 6;
  auto t1 = chat.send("Hello there", opt);
  ASSERT_TRUE(t1.ok()) << t1.error();
  auto t2 = chat.send("And then?", opt);
  ASSERT_TRUE(t2.ok()) << t2.error();
  EXPECT_NE(t2->reuse, PromptReuse::Rebuilt) << t1->gen.text;
  EXPECT_LT(t2->gen.prefilled_tokens, t2->gen.prompt_tokens);
  expect_same_as_fresh(g, t2->gen);

  chat.reset();
  EXPECT_TRUE(g.tokens().empty());
  auto again = chat.send("Hello there", opt);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->gen.prefilled_tokens, t1->gen.prompt_tokens);
  EXPECT_EQ(again->gen.ids, t1->gen.ids);
}

}  // namespace
}  // namespace qnext
