// The serving engine and its state cache on a random-weight model with the real vocab:
// batching never changes a greedy or seeded result, a restored prefix gives the same logits as
// prefilling it, eviction keeps the budget, and cancelled or queued-out requests free their slots.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "common/golden.h"
#include "common/real_vocab.h"
#include "runtime/engine.h"
#include "runtime/generator.h"
#include "runtime/state_cache.h"

namespace qnext {
namespace {

using testing::kTokDir;
Model& model() { return testing::real_vocab_model(); }
const Tokenizer& tok() { return testing::qwen_tokenizer(); }

std::vector<int32_t> random_ids(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> pick(0, 150000);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = pick(rng);
  return ids;
}

struct Outcome {
  std::vector<int32_t> ids;
  std::string text;
  GenEvent last;
};

Outcome drain(RequestHandle& h) {
  Outcome o;
  std::vector<GenEvent> events;
  while (true) {
    events.clear();
    if (!h.wait(events, 30000)) {
      ADD_FAILURE() << "no event for 30 s";
      return o;
    }
    for (auto& e : events) {
      o.text += e.text;
      for (auto& t : e.tokens) o.ids.push_back(t.id);
      if (e.done) {
        o.last = e;
        return o;
      }
    }
  }
}

GenRequest request(std::vector<int32_t> prompt, int max_tokens, float temperature = 0, uint64_t seed = 0) {
  GenRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.sampling.top_k = 40;
  r.sampling.seed = seed;
  r.ignore_eos = true;
  return r;
}

EngineOptions options(int parallel) {
  EngineOptions o;
  o.parallel = parallel;
  o.batch_tokens = 96;  // prompts go in several chunks, mixed with other sequences' decoding
  o.cache_bytes = 256u << 20;
  return o;
}

// The same greedy and seeded requests give the same ids one at a time and eight at once.
TEST(Engine, BatchingNeverChangesResults) {
  std::vector<GenRequest> reqs;
  for (int i = 0; i < 8; ++i)
    reqs.push_back(request(random_ids(100 + i, 20 + 23 * i), 12, i % 2 ? 0.8f : 0.0f, 7 + i));
  std::vector<Outcome> alone, together;
  {
    Engine e(model(), tok(), {}, options(1));
    for (auto& r : reqs) {
      auto h = e.submit(r);
      ASSERT_TRUE(h.ok()) << h.error();
      alone.push_back(drain(*h.value()));
    }
  }
  {
    Engine e(model(), tok(), {}, options(8));
    std::vector<std::shared_ptr<RequestHandle>> hs;
    for (auto& r : reqs) hs.push_back(e.submit(r).value());
    for (auto& h : hs) together.push_back(drain(*h));
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(alone[i].ids.size(), 12u);
    EXPECT_EQ(alone[i].ids, together[i].ids) << "request " << i;
    EXPECT_EQ(alone[i].text, together[i].text);
    EXPECT_EQ(alone[i].last.finish, FinishReason::Length);
    EXPECT_EQ(alone[i].last.completion_tokens, 12);
  }
}

// Greedy ids from the engine equal the single-sequence Generator's.
TEST(Engine, GreedyMatchesGenerator) {
  auto prompt = random_ids(5, 150);
  SamplingParams greedy;
  greedy.temperature = 0;
  Generator g(model(), tok(), greedy, {});
  GenerateOptions go;
  go.max_tokens = 10;
  go.ignore_eos = true;
  auto want = g.generate(prompt, go);
  ASSERT_TRUE(want.ok());
  Engine e(model(), tok(), {}, options(2));
  auto got = drain(*e.submit(request(prompt, 10)).value());
  EXPECT_EQ(got.ids, want->ids);
  EXPECT_EQ(got.text, want->text);
}

// A second request sharing a prefix restores it from the cache and produces the same output as
// without the cache; the same prompt again restores everything, logits included.
TEST(Engine, CachedPrefixGivesTheSameResult) {
  auto shared = random_ids(9, 200);
  auto a = shared, b = shared;
  auto ta = random_ids(10, 30), tb = random_ids(11, 17);
  a.insert(a.end(), ta.begin(), ta.end());
  b.insert(b.end(), tb.begin(), tb.end());
  Outcome cold;
  {
    Engine e(model(), tok(), {}, options(2));
    cold = drain(*e.submit(request(b, 8)).value());
    EXPECT_EQ(cold.last.cached_tokens, 0);
  }
  Engine e(model(), tok(), {}, options(2));
  auto ra = request(a, 8);
  ra.snapshot_at = {200};
  drain(*e.submit(ra).value());
  EXPECT_GE(e.cache().entries(), 2u);
  auto warm = drain(*e.submit(request(b, 8)).value());
  EXPECT_EQ(warm.last.cached_tokens, 200);
  EXPECT_EQ(warm.ids, cold.ids);
  auto again = drain(*e.submit(request(b, 8)).value());
  EXPECT_EQ(again.last.cached_tokens, int(b.size()));
  EXPECT_EQ(again.ids, cold.ids);
  EXPECT_GE(e.stats().cache_hits.load(), 2u);
}

// MTP on a lone sequence gives the ids plain decoding gives, whether the drafts are the head's
// own (random weights: nearly all rejected), all true (an oracle) or only the first of each step
// true; max_tokens cuts inside a step. A follow-up restores the answer's end with the MTP head's
// rows and keeps drafting; two requests at once run batched and still agree.
TEST(Engine, MtpGivesTheSameTokens) {
  const auto prompt = random_ids(31, 90);
  constexpr int kGen = 12;  // with all 3 drafts accepted: 1 + 4 + 4 + 4, cut inside the last step
  auto follow_up = [&](const std::vector<int32_t>& answer) {
    auto next = prompt;
    next.insert(next.end(), answer.begin(), answer.end());
    next.push_back(42);
    return next;
  };
  Outcome plain, plain2, other;
  const auto other_prompt = random_ids(32, 40);
  {
    Engine e(model(), tok(), {}, options(1));
    plain = drain(*e.submit(request(prompt, kGen)).value());
    plain2 = drain(*e.submit(request(follow_up(plain.ids), 6)).value());
    other = drain(*e.submit(request(other_prompt, 9)).value());
  }
  for (int mode = 0; mode < 3; ++mode) {
    SCOPED_TRACE("mode " + std::to_string(mode));
    EngineOptions o = options(2);
    o.mtp = 3;
    if (mode > 0)
      o.mtp_draft_hook = [&, mode](std::span<const int32_t> context, std::span<int32_t> drafts) {
        const size_t generated = context.size() - prompt.size();  // `next` included
        for (size_t j = 0; j < drafts.size(); ++j) {
          const size_t i = generated + j;
          const int32_t truth = i < plain.ids.size() ? plain.ids[i] : 0;
          drafts[j] = mode == 1 || j == 0 ? truth : (truth + 1) % 150000;
        }
      };
    Engine e(model(), tok(), {}, o);
    auto got = drain(*e.submit(request(prompt, kGen)).value());
    EXPECT_EQ(got.ids, plain.ids);
    EXPECT_EQ(got.text, plain.text);
    EXPECT_EQ(got.last.finish, FinishReason::Length);
    EXPECT_GT(e.stats().mtp_steps.load(), 0u);
    if (mode > 0) {
      EXPECT_GT(e.stats().mtp_accepted.load(), 0u);
    }
    if (mode == 1) {
      EXPECT_LT(e.stats().mtp_steps.load(), uint64_t(kGen) / 2);  // several tokens per step
    }
    const uint64_t steps_before = e.stats().mtp_steps;
    auto second = drain(*e.submit(request(follow_up(got.ids), 6)).value());
    EXPECT_EQ(second.last.cached_tokens, int(prompt.size()) + kGen - 1);
    EXPECT_EQ(second.ids, plain2.ids);
    EXPECT_GT(e.stats().mtp_steps.load(), steps_before);  // drafting resumed from the snapshot
    if (mode != 0) continue;
    // Two at once: batched steps (no drafts), the same ids.
    auto h1 = e.submit(request(prompt, kGen)).value();
    auto h2 = e.submit(request(other_prompt, 9)).value();
    EXPECT_EQ(drain(*h1).ids, plain.ids);
    EXPECT_EQ(drain(*h2).ids, other.ids);
  }
}

// A follow-up turn (prompt + answer + more) restores the state at the end of the answer.
TEST(Engine, FollowUpRestoresTheConversation) {
  Engine e(model(), tok(), {}, options(1));
  auto p = random_ids(21, 64);
  auto first = drain(*e.submit(request(p, 6)).value());
  auto next = p;
  next.insert(next.end(), first.ids.begin(), first.ids.end());
  next.push_back(42);
  auto second = drain(*e.submit(request(next, 4)).value());
  EXPECT_EQ(second.last.cached_tokens, int(p.size()) + 5);  // the last answer token was never fed
}

// The CLI chat's path: a prompt that does not extend the generator's state (the template
// re-rendered earlier text differently) resumes from the cached end of the previous prompt.
TEST(StateCache, GeneratorResumesARebuiltPrompt) {
  SamplingParams greedy;
  greedy.temperature = 0;
  StateCache cache(64u << 20);
  Generator g(model(), tok(), greedy, {});
  g.set_state_cache(&cache);
  GenerateOptions go;
  go.max_tokens = 5;
  go.ignore_eos = true;
  auto p1 = random_ids(50, 80);
  ASSERT_TRUE(g.generate(p1, go).ok());
  auto p2 = p1;
  for (int32_t id : random_ids(51, 9)) p2.push_back(id);  // not p1 + the answer: a rebuild
  auto warm = g.generate(p2, go);
  ASSERT_TRUE(warm.ok());
  EXPECT_TRUE(warm->state_reset);
  EXPECT_EQ(warm->prefilled_tokens, 9);
  Generator fresh(model(), tok(), greedy, {});
  auto cold = fresh.generate(p2, go);
  EXPECT_EQ(cold->prefilled_tokens, int(p2.size()));
  EXPECT_EQ(warm->ids, cold->ids);
}

// A conversation sent back as text finds the snapshot at the end of the last answer by its text,
// even where re-tokenizing the answer gives other ids.
TEST(Engine, AnswerSnapshotIsFoundByText) {
  Engine e(model(), tok(), {}, options(1));
  auto p = random_ids(60, 40);
  auto first = drain(*e.submit(request(p, 6)).value());
  std::vector<int32_t> fed = p;
  fed.insert(fed.end(), first.ids.begin(), first.ids.end() - 1);  // the last answer id was never fed
  const std::string sent_back = tok().decode(p) + first.text + "<|im_end|>\n<|im_start|>user\nmore";
  auto prefix = e.cache().longest_text_prefix(sent_back);
  EXPECT_EQ(prefix.ids, fed);
  EXPECT_EQ(prefix.text_len, tok().decode(fed).size());
  EXPECT_EQ(e.cache().longest_text_prefix("unrelated text").ids.size(), 0u);
}

TEST(StateCache, RestoreIsExactAndEvictsLeastRecentlyUsed) {
  Model& m = model();
  auto ids = random_ids(3, 100);
  SequenceState s = m.new_state();
  std::vector<float> logits;
  m.forward(s, std::span<const int32_t>(ids).first(64), ForwardOptions{}, nullptr, nullptr);
  const size_t one = s.snapshot().bytes();
  StateCache cache(one * 2 + 4096);
  cache.put(std::span<const int32_t>(ids).first(64), s);
  EXPECT_EQ(cache.entries(), 1u);

  SequenceState r = m.new_state();
  EXPECT_EQ(cache.restore(random_ids(4, 100), r, nullptr), 0);  // no shared prefix
  EXPECT_EQ(cache.restore(ids, r, nullptr), 64);
  std::vector<float> want, got;
  m.forward(s, std::span<const int32_t>(ids).subspan(64), ForwardOptions{}, nullptr, &want);
  m.forward(r, std::span<const int32_t>(ids).subspan(64), ForwardOptions{}, nullptr, &got);
  EXPECT_EQ(want, got);

  // Two more entries of about the same size: the budget holds two, the oldest goes.
  SequenceState s2 = m.new_state(), s3 = m.new_state();
  auto other = random_ids(8, 70), third = random_ids(9, 60);
  m.forward(s2, other, ForwardOptions{}, nullptr, nullptr);
  m.forward(s3, third, ForwardOptions{}, nullptr, nullptr);
  cache.put(other, s2);
  cache.put(third, s3);
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_LE(cache.bytes(), cache.budget());
  EXPECT_EQ(cache.restore(ids, r, nullptr), 0);  // evicted
  auto longer = other;
  longer.push_back(1);
  EXPECT_EQ(cache.restore(longer, r, nullptr), 70);
  EXPECT_EQ(cache.restore(other, r, nullptr), 0);  // the whole prompt needs its logits

  StateCache tiny(one / 2);
  tiny.put(other, s2);
  EXPECT_EQ(tiny.entries(), 0u);  // larger than the whole budget
}

TEST(Engine, CancelFreesTheSlotAndQueueIsBounded) {
  EngineOptions o = options(1);
  o.queue = 1;
  Engine e(model(), tok(), {}, o);
  auto long_req = request(random_ids(1, 50), 100000 - 100);
  auto first = e.submit(long_req);
  ASSERT_TRUE(first.ok()) << first.error();
  // Wait until it runs, so the queue is empty again.
  for (int i = 0; i < 2000 && e.stats().running.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto second = e.submit(request(random_ids(2, 10), 5));
  ASSERT_TRUE(second.ok());
  auto third = e.submit(request(random_ids(3, 10), 5));
  EXPECT_FALSE(third.ok());
  EXPECT_TRUE(e.queue_full());
  first.value()->cancel();
  auto o1 = drain(*first.value());
  EXPECT_EQ(o1.last.finish, FinishReason::Cancelled);
  auto o2 = drain(*second.value());
  EXPECT_EQ(o2.last.finish, FinishReason::Length);
  for (int i = 0; i < 2000 && e.stats().running.load() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(e.stats().running.load(), 0);
  EXPECT_FALSE(e.submit(request(random_ids(4, 10), 1 << 30)).ok());  // over the context
  EXPECT_FALSE(e.submit(request({}, 5)).ok());
  EXPECT_FALSE(e.submit(request({-1}, 5)).ok());
}

TEST(Engine, StopStringsAndEos) {
  Engine plain(model(), tok(), {}, options(1));
  auto free_run = drain(*plain.submit(request(random_ids(30, 40), 16)).value());
  ASSERT_GE(free_run.text.size(), 4u);
  // A stop string taken from the middle of the free run ends the text right before it.
  const std::string stop = free_run.text.substr(free_run.text.size() / 2, 2);
  auto r = request(random_ids(30, 40), 16);
  r.stop = {stop};
  auto stopped = drain(*plain.submit(r).value());
  EXPECT_EQ(stopped.last.finish, FinishReason::Stop);
  EXPECT_EQ(stopped.text, free_run.text.substr(0, free_run.text.find(stop)));
  // The third generated id as EOS: two tokens, finish "stop".
  Engine eos(model(), tok(), {free_run.ids[2]}, options(1));
  auto r2 = request(random_ids(30, 40), 16);
  r2.ignore_eos = false;
  auto ended = drain(*eos.submit(r2).value());
  EXPECT_EQ(ended.last.finish, FinishReason::Stop);
  if (free_run.ids[0] != free_run.ids[2] && free_run.ids[1] != free_run.ids[2]) {
    EXPECT_EQ(ended.ids.size(), 2u);
    EXPECT_EQ(ended.last.completion_tokens, 3);
  }
}

TEST(Engine, Logprobs) {
  Engine e(model(), tok(), {}, options(1));
  auto r = request(random_ids(40, 20), 4);
  r.top_logprobs = 3;
  auto h = e.submit(r).value();
  std::vector<GenEvent> events;
  std::vector<TokenLogprob> toks;
  while (true) {
    events.clear();
    h->wait(events, 30000);
    bool done = false;
    for (auto& ev : events) {
      toks.insert(toks.end(), ev.tokens.begin(), ev.tokens.end());
      done = done || ev.done;
    }
    if (done) break;
  }
  ASSERT_EQ(toks.size(), 4u);
  for (auto& t : toks) {
    ASSERT_EQ(t.top.size(), 3u);
    EXPECT_LE(t.logprob, 0.0f);
    EXPECT_EQ(t.top[0].first, t.id);  // greedy: the chosen token is the most likely
    EXPECT_FLOAT_EQ(t.top[0].second, t.logprob);
    EXPECT_GE(t.top[0].second, t.top[1].second);
    EXPECT_GE(t.top[1].second, t.top[2].second);
  }
}

}  // namespace
}  // namespace qnext
