// MTP speculative decoding: greedy output identical to plain greedy on every golden model (with
// the MTP head's own drafts, with every draft forced wrong, with an oracle's drafts all right),
// exact rollback (states after a rejection equal a clean run's), and sampling with MTP drawing
// from the same distribution as sampling without it (two-sample chi-square).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>

#include "common/golden.h"
#include "common/real_vocab.h"
#include "core/thread_pool.h"
#include "runtime/generator.h"
#include "runtime/speculative.h"

namespace qnext {
namespace {

using testing::data_dir;

const char* const kModels[] = {"tiny-b", "tiny-b-sharded", "tiny-b-yarn", "tiny-real-vocab"};

Model& load(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Model>> models;
  auto& m = models[name];
  if (!m) {
    auto r = Model::load(data_dir(name));
    if (!r) throw std::runtime_error(r.error());
    m = std::move(r).value();
  }
  return *m;
}

// A prompt from the model's reference data (tiny-b-sharded shares tiny-b's).
std::vector<int32_t> prompt_of(const std::string& name, size_t n) {
  const std::string ref = name == "tiny-b-sharded" ? "tiny-b" : name;
  auto ids = testing::Reference(ref).ids("prompt_ids");
  ids.resize(std::min(ids.size(), n));
  return ids;
}

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0;
  return p;
}

std::vector<int32_t> generate(Model& m, std::span<const int32_t> prompt, int n, int mtp_k, bool adaptive = false,
                              SpeculativeDecoder::DraftHook hook = {}, SpecStats* stats = nullptr,
                              SamplingParams sp = greedy()) {
  Generator g(m, testing::qwen_tokenizer(), sp, {});
  if (mtp_k > 0 || adaptive) {
    SpecOptions o;
    o.k = adaptive ? 0 : mtp_k;
    o.max_k = adaptive ? std::max(mtp_k, 1) : 3;
    EXPECT_TRUE(g.enable_mtp(o).ok());
    if (hook) g.speculative()->set_draft_hook(hook);
  }
  GenerateOptions opt;
  opt.max_tokens = n;
  opt.ignore_eos = true;
  auto r = g.generate(prompt, opt);
  EXPECT_TRUE(r.ok()) << r.error();
  if (stats && g.speculative()) *stats = g.speculative()->stats();
  return r->ids;
}

// Drafts from the known greedy continuation `truth` of `prompt`: right ones, or wrong ones.
SpeculativeDecoder::DraftHook oracle(std::vector<int32_t> truth, size_t prompt_len, int vocab, bool right) {
  return [truth = std::move(truth), prompt_len, vocab, right](std::span<const int32_t> ctx, std::span<int32_t> d) {
    const size_t at = ctx.size() - prompt_len;  // index in truth of the first draft
    for (size_t j = 0; j < d.size(); ++j) {
      const int32_t t = at + j < truth.size() ? truth[at + j] : 0;
      d[j] = right ? t : (t + 1) % vocab;
    }
  };
}

TEST(Speculative, GreedyMatchesPlainOnEveryGoldenModel) {
  set_num_threads(1);  // many tiny forwards: see SamplingMatchesPlainSamplingChiSquare
  for (const char* name : kModels) {
    Model& m = load(name);
    ASSERT_TRUE(m.has_mtp()) << name;
    const auto prompt = prompt_of(name, 40);
    const int n = 40;
    const auto plain = generate(m, prompt, n, 0);
    ASSERT_EQ(plain.size(), size_t(n));
    for (int k = 1; k <= kMaxDrafts; ++k) {
      SpecStats st;
      EXPECT_EQ(generate(m, prompt, n, k, false, {}, &st), plain) << name << " --mtp " << k;
      EXPECT_GT(st.verify_steps, 0) << name;
      EXPECT_EQ(st.proposed, st.verify_steps * k) << name;
    }
    EXPECT_EQ(generate(m, prompt, n, 3, /*adaptive=*/true), plain) << name << " adaptive";
  }
}

TEST(Speculative, GreedyMatchesPlainWithEveryDraftRejectedOrAccepted) {
  set_num_threads(1);  // many tiny forwards: see SamplingMatchesPlainSamplingChiSquare
  for (const char* name : kModels) {
    Model& m = load(name);
    const int V = m.config().vocab_size;
    const auto prompt = prompt_of(name, 30);
    const int n = 33;
    const auto truth = generate(m, prompt, n + kMaxDrafts + 1, 0);
    const std::vector<int32_t> plain(truth.begin(), truth.begin() + n);
    for (int k = 1; k <= kMaxDrafts; ++k) {
      SpecStats rej, acc;
      EXPECT_EQ(generate(m, prompt, n, k, false, oracle(truth, prompt.size(), V, false), &rej), plain)
          << name << " rejected, K=" << k;
      EXPECT_GT(rej.proposed, 0);
      EXPECT_EQ(rej.accepted, 0) << name;
      EXPECT_EQ(rej.tokens, rej.steps()) << name;  // one token per step
      EXPECT_EQ(generate(m, prompt, n, k, false, oracle(truth, prompt.size(), V, true), &acc), plain)
          << name << " accepted, K=" << k;
      EXPECT_EQ(acc.accepted, acc.proposed) << name;
      EXPECT_EQ(acc.tokens, acc.verify_steps * (k + 1)) << name;  // K + 1 tokens per step
    }
  }
}

// After a verify step that keeps `keep` of its K + 1 tokens, the state equals a clean run's that
// fed only those: same DeltaNet states and positions, and the same logits now and one step on.
void expect_state_like_clean_run(const char* name, int K, int accept) {
  Model& m = load(name);
  const int V = m.config().vocab_size;
  const auto prompt = prompt_of(name, 20);
  SequenceState st = m.new_state();
  std::vector<float> hidden, logits;
  ForwardOptions fo;
  m.forward(st, prompt, fo, &hidden, &logits);
  SpeculativeDecoder dec(m, SpecOptions{K, K});
  dec.fed(hidden);
  Sampler sampler(greedy());
  const int32_t next = int32_t(testing::argmax(logits.data(), size_t(V)));
  // The true continuation, then drafts: the first `accept` right, the rest wrong.
  std::vector<int32_t> truth;
  {
    SequenceState c = m.new_state();
    std::vector<float> l;
    m.forward(c, prompt, fo, nullptr, &l);
    int32_t t = next;
    for (int i = 0; i < K + 1; ++i) {
      m.forward(c, std::span<const int32_t>(&t, 1), fo, nullptr, &l);
      t = int32_t(testing::argmax(l.data(), size_t(V)));
      truth.push_back(t);
    }
  }
  dec.set_draft_hook([&](std::span<const int32_t>, std::span<int32_t> d) {
    for (size_t j = 0; j < d.size(); ++j) d[j] = int(j) < accept ? truth[j] : (truth[j] + 1) % V;
  });
  std::vector<int32_t> fed(prompt), history(prompt), out;
  history.push_back(next);
  dec.step(st, fed, next, sampler, history, out);
  ASSERT_EQ(out.size(), size_t(accept + 1)) << name;
  EXPECT_EQ(out, std::vector<int32_t>(truth.begin(), truth.begin() + accept + 1)) << name;

  // The clean run: prompt, then next and the accepted drafts one at a time.
  SequenceState clean = m.new_state();
  std::vector<float> clean_logits;
  m.forward(clean, prompt, fo, nullptr, &clean_logits);
  std::vector<int32_t> kept{next};
  kept.insert(kept.end(), out.begin(), out.end() - 1);
  for (int32_t t : kept) m.forward(clean, std::span<const int32_t>(&t, 1), fo, nullptr, &clean_logits);

  EXPECT_EQ(st.pos, clean.pos) << name;
  EXPECT_EQ(st.mtp_pos + int(kept.size()), st.pos) << name;  // the kept tokens' hidden rows wait for the MTP head
  for (size_t l = 0; l < st.gdn.size(); ++l) {
    // Equal up to float rounding: the verify forward's products run over K + 1 rows at once.
    EXPECT_LE(testing::max_abs_diff(st.gdn[l].conv, clean.gdn[l].conv), 1e-5f) << name << " layer " << l;
    EXPECT_LE(testing::max_abs_diff(st.gdn[l].recurrent, clean.gdn[l].recurrent), 1e-5f) << name << " layer " << l;
    EXPECT_EQ(st.kv[l].len, clean.kv[l].len) << name;
  }
  // Float rounding only: the verify's products run over K + 1 rows, and its experts over the
  // tokens routed to each (measured up to 1.0e-4 on logits of magnitude ~30, tiny-real-vocab with
  // K = 4 all accepted; 9e-5 when those experts ran one thread each). A wrong DeltaNet state or KV
  // length moves logits by ~0.1 and more.
  constexpr float kLogitTol = 3e-4f;
  EXPECT_LE(testing::max_abs_diff(dec.logits(), clean_logits), kLogitTol) << name;
  // One more step on both: the next logits agree too.
  const int32_t t = out.back();
  std::vector<float> a, b;
  m.forward(st, std::span<const int32_t>(&t, 1), fo, nullptr, &a);
  m.forward(clean, std::span<const int32_t>(&t, 1), fo, nullptr, &b);
  EXPECT_LE(testing::max_abs_diff(a, b), kLogitTol) << name;
  EXPECT_EQ(testing::argmax(a.data(), a.size()), testing::argmax(b.data(), b.size())) << name;
}

TEST(Speculative, StateAfterRejectionEqualsACleanRun) {
  set_num_threads(1);  // many tiny forwards: see SamplingMatchesPlainSamplingChiSquare
  for (const char* name : kModels) {
    for (int K = 1; K <= kMaxDrafts; ++K)
      for (int accept = 0; accept <= K; ++accept) {
        SCOPED_TRACE(std::string(name) + " K=" + std::to_string(K) + " accepted=" + std::to_string(accept));
        expect_state_like_clean_run(name, K, accept);
      }
  }
}

// --- sampling: the distribution of the first tokens with MTP equals the one without -----------

using Counts = std::map<std::vector<int32_t>, int>;

Counts sample_runs(Model& m, std::span<const int32_t> prompt, SamplingParams sp, int mtp_k, int runs, int n,
                   SpeculativeDecoder::DraftHook hook = {}, SpecStats* total = nullptr) {
  Counts counts;
  Generator g(m, testing::qwen_tokenizer(), sp, {});
  if (mtp_k > 0) {
    EXPECT_TRUE(g.enable_mtp(SpecOptions{mtp_k, mtp_k}).ok());
    if (hook) g.speculative()->set_draft_hook(hook);
  }
  GenerateOptions opt;
  opt.max_tokens = n;
  opt.ignore_eos = true;
  for (int i = 0; i < runs; ++i) {
    // The seed set: with base 0 the plain sample came out unusual (forced-draft ratio 1.018, p ~ 0.0008,
    // own-draft ratio 0.32); six other bases gave 0.08-0.36 and 0.06-0.24, as chance predicts.
    sp.seed = 1000003ull * uint64_t(i + 1) + (mtp_k > 0 ? 7 : 0) + 99991ull;
    g.set_sampling(sp);
    auto r = g.generate(prompt, opt);
    EXPECT_TRUE(r.ok());
    ++counts[r->ids];
  }
  if (total && g.speculative()) *total = g.speculative()->stats();
  return counts;
}

// Two-sample chi-square over the outcomes (equal sample sizes); outcomes rarer than 10 in both
// samples together are pooled. Returns statistic / critical value at p = 0.001 (Wilson-Hilferty).
double chi_square_ratio(const Counts& a, const Counts& b) {
  std::map<std::vector<int32_t>, std::pair<int, int>> joint;
  for (const auto& [k, v] : a) joint[k].first = v;
  for (const auto& [k, v] : b) joint[k].second = v;
  double stat = 0;
  int cells = 0, pool_a = 0, pool_b = 0;
  for (const auto& [k, ab] : joint) {
    if (ab.first + ab.second < 10) {
      pool_a += ab.first, pool_b += ab.second;
      continue;
    }
    const double d = ab.first - ab.second;
    stat += d * d / (ab.first + ab.second);
    ++cells;
  }
  if (pool_a + pool_b > 0) {
    const double d = pool_a - pool_b;
    stat += d * d / (pool_a + pool_b);
    ++cells;
  }
  const double df = std::max(1, cells - 1), z = 3.09;
  const double crit = df * std::pow(1 - 2 / (9 * df) + z * std::sqrt(2 / (9 * df)), 3);
  return stat / crit;
}

TEST(Speculative, SamplingMatchesPlainSamplingChiSquare) {
  // 6,000 short generations of a tiny model: thread hand-offs would dominate, and under a parallel
  // ctest two spinning pools on two cores slowed it from 16 s to minutes. One thread is steady.
  set_num_threads(1);
  Model& m = load("tiny-b");
  const auto prompt = prompt_of("tiny-b", 12);
  SamplingParams sp;
  sp.temperature = 0.7f;
  sp.top_k = 12;
  sp.top_p = 0.9f;
  sp.min_p = 0.02f;
  sp.repetition_penalty = 1.3f;
  sp.presence_penalty = 0.2f;
  const int runs = 2000, n = 3;  // the first token is drawn as always; tokens 2 and 3 through MTP steps
  const Counts plain = sample_runs(m, prompt, sp, 0, runs, n);

  // The MTP head's own drafts (random weights: mostly rejected).
  SpecStats own;
  const Counts mtp = sample_runs(m, prompt, sp, 2, runs, n, {}, &own);
  EXPECT_LT(chi_square_ratio(plain, mtp), 1.0);
  EXPECT_GT(own.proposed, 0);

  // Drafts rewritten to the greedy continuation: often accepted, so both branches of the rule
  // (accept, resample from the residual) are exercised. (Not the most frequent outcome of
  // `plain`: picked from the sample it is compared with, its count there is biased upward.)
  SamplingParams greedy_sp = sp;
  greedy_sp.temperature = 0;
  const std::vector<int32_t> likely = sample_runs(m, prompt, greedy_sp, 0, 1, n).begin()->first;
  SpecStats forced;
  const Counts mtp2 = sample_runs(m, prompt, sp, 2, runs, n,
                                  [&](std::span<const int32_t> ctx, std::span<int32_t> d) {
                                    const size_t at = ctx.size() - prompt.size();
                                    for (size_t j = 0; j < d.size(); ++j) d[j] = likely[std::min(at + j, likely.size() - 1)];
                                  },
                                  &forced);
  EXPECT_LT(chi_square_ratio(plain, mtp2), 1.0);
  EXPECT_GT(forced.accepted, forced.proposed / 10) << "the test should see accepted drafts";
  EXPECT_LT(forced.accepted, forced.proposed * 9 / 10) << "the test should see rejected drafts";

  // The test can tell distributions apart: a slightly different temperature fails it.
  SamplingParams hotter = sp;
  hotter.temperature = 0.85f;
  EXPECT_GT(chi_square_ratio(plain, sample_runs(m, prompt, hotter, 2, runs, n)), 1.0);
}

TEST(Speculative, AdaptiveKPicksTheFastestK) {
  // Costs in units of one plain decode step; verify[T] for T tokens verified.
  const double cheap[kMaxDrafts + 2] = {0, 1.0, 1.2, 1.35, 1.5, 1.65};
  EXPECT_EQ(SpeculativeDecoder::best_k(0.1, 1.0, cheap, 0.05, 3), 0);  // drafts rarely right: do not draft
  EXPECT_EQ(SpeculativeDecoder::best_k(0.6, 1.0, cheap, 0.05, 3), 2);  // 1.96 / 1.45 beats 1.6 / 1.25, 2.18 / 1.65
  EXPECT_EQ(SpeculativeDecoder::best_k(0.9, 1.0, cheap, 0.05, 3), 3);
  EXPECT_EQ(SpeculativeDecoder::best_k(0.9, 1.0, cheap, 0.05, 2), 2);  // the ceiling holds
  const double dear[kMaxDrafts + 2] = {0, 1.0, 2.7, 3.5, 4.2, 5.0};  // a tiny model on a busy machine
  EXPECT_EQ(SpeculativeDecoder::best_k(1.0, 1.0, dear, 0.7, 4), 0);
  const double unmeasured[kMaxDrafts + 2] = {};
  EXPECT_GE(SpeculativeDecoder::best_k(0.8, 1.0, unmeasured, 0, 3), 1);  // the guess lets drafting start
}

TEST(Speculative, AdaptiveKKeepsTheOutput) {
  Model& m = load("tiny-b");
  const int V = m.config().vocab_size;
  const auto prompt = prompt_of("tiny-b", 30);
  const int n = 60;
  const auto truth = generate(m, prompt, n + kMaxDrafts + 1, 0);
  const std::vector<int32_t> plain(truth.begin(), truth.begin() + n);
  for (bool right : {true, false}) {
    SpecStats st;
    EXPECT_EQ(generate(m, prompt, n, 3, true, oracle(truth, prompt.size(), V, right), &st), plain);
    int64_t by_k = 0;
    for (int64_t c : st.k_hist) by_k += c;
    EXPECT_EQ(by_k, st.steps());
    EXPECT_GT(st.plain_steps, 0);  // the first step measures a plain decode
    if (right) EXPECT_EQ(st.accepted, st.proposed);
    else EXPECT_EQ(st.accepted, 0);
  }
}

TEST(Speculative, StopsInsideAStepLeaveTheStateAtTheStop) {
  // max_tokens cutting a step short: the state holds prompt + output minus its last token, and
  // the logits after it are a clean run's.
  Model& m = load("tiny-b");
  const int V = m.config().vocab_size;
  const auto prompt = prompt_of("tiny-b", 16);
  const auto truth = generate(m, prompt, 20, 0);
  for (int n = 2; n <= 7; ++n) {
    Generator g(m, testing::qwen_tokenizer(), greedy(), {});
    ASSERT_TRUE(g.enable_mtp(SpecOptions{4, 4}).ok());
    g.speculative()->set_draft_hook(oracle(truth, prompt.size(), V, true));
    GenerateOptions opt;
    opt.max_tokens = n;
    opt.ignore_eos = true;
    auto r = g.generate(prompt, opt);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->ids, std::vector<int32_t>(truth.begin(), truth.begin() + n));
    std::vector<int32_t> expect(prompt);
    expect.insert(expect.end(), r->ids.begin(), r->ids.end() - 1);
    EXPECT_EQ(g.tokens(), expect);
    SequenceState clean = m.new_state();
    std::vector<float> l;
    ForwardOptions fo;
    m.forward(clean, expect, fo, nullptr, &l);
    EXPECT_EQ(testing::argmax(g.last_logits().data(), size_t(V)), testing::argmax(l.data(), size_t(V)));
    EXPECT_LE(testing::max_abs_diff(g.last_logits(), l), 1e-4f);
    // A further turn continues from there exactly.
    std::vector<int32_t> p2(expect);
    p2.push_back(r->ids.back());
    opt.max_tokens = 20 - n;
    auto r2 = g.generate(p2, opt);
    ASSERT_TRUE(r2.ok());
    EXPECT_EQ(r2->ids, std::vector<int32_t>(truth.begin() + n, truth.end())) << n;
  }
}

}  // namespace
}  // namespace qnext
