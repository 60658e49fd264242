// Sampler: determinism, greedy paths, empirical distributions against softmax, truncation,
// penalties, and generation_config.json parsing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "runtime/sampling.h"

using namespace qnext;

namespace {

// Reference distribution computed the slow, obvious way: full sort, then each filter.
std::vector<double> reference_probs(const std::vector<float>& logits, const SamplingParams& p) {
  size_t n = logits.size();
  std::vector<double> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = double(logits[i]) / p.temperature;
  double mx = *std::max_element(x.begin(), x.end());
  std::vector<double> prob(n);
  double z = 0;
  for (size_t i = 0; i < n; ++i) z += prob[i] = std::exp(x[i] - mx);
  for (double& q : prob) q /= z;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return prob[a] > prob[b]; });
  std::vector<bool> keep(n, true);
  if (p.top_k > 0)
    for (size_t r = p.top_k; r < n; ++r) keep[order[r]] = false;
  if (p.top_p < 1) {
    double mass = 0;
    for (size_t i = 0; i < n; ++i) mass += keep[i] ? prob[i] : 0;
    double cum = 0;
    bool reached = false;
    for (size_t r = 0; r < n; ++r) {
      size_t i = order[r];
      if (!keep[i]) continue;
      if (reached) keep[i] = false;
      cum += prob[i] / mass;
      if (cum >= p.top_p) reached = true;
    }
  }
  double pmax = prob[order[0]];
  for (size_t i = 0; i < n; ++i)
    if (prob[i] < p.min_p * pmax) keep[i] = false;
  double kept = 0;
  for (size_t i = 0; i < n; ++i) kept += keep[i] ? prob[i] : 0;
  for (size_t i = 0; i < n; ++i) prob[i] = keep[i] ? prob[i] / kept : 0;
  return prob;
}

// Samples N times and checks each token's count against the reference within 5 sigma;
// tokens with zero reference probability must never appear.
void check_distribution(const std::vector<float>& logits, SamplingParams p, int n = 20000) {
  auto want = reference_probs(logits, p);
  Sampler s(p);
  std::vector<int> count(logits.size());
  for (int i = 0; i < n; ++i) {
    int32_t t = s.sample(logits, {});
    ASSERT_GE(t, 0);
    ASSERT_LT(size_t(t), logits.size());
    ++count[t];
  }
  for (size_t i = 0; i < logits.size(); ++i) {
    if (want[i] == 0) {
      EXPECT_EQ(count[i], 0) << "token " << i << " should be excluded";
      continue;
    }
    double mean = n * want[i];
    double sigma = std::sqrt(n * want[i] * (1 - want[i]));
    EXPECT_NEAR(count[i], mean, 5 * sigma + 1) << "token " << i << " p=" << want[i];
  }
}

const std::vector<float> kLogits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f};

std::vector<float> random_logits(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

}  // namespace

TEST(Sampler, SameSeedSameSequence) {
  auto logits = random_logits(1000, 1);
  SamplingParams p;
  p.temperature = 1.5f;
  p.seed = 42;
  Sampler a(p), b(p);
  std::vector<int32_t> sa, sb;
  for (int i = 0; i < 300; ++i) {
    sa.push_back(a.sample(logits, sa));
    sb.push_back(b.sample(logits, sb));
  }
  EXPECT_EQ(sa, sb);
  p.seed = 43;
  Sampler c(p);
  std::vector<int32_t> sc;
  for (int i = 0; i < 300; ++i) sc.push_back(c.sample(logits, sc));
  EXPECT_NE(sa, sc);
}

TEST(Sampler, GreedyPathsEqualArgmax) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto logits = random_logits(151936, seed);
    int32_t argmax = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    SamplingParams greedy;
    greedy.temperature = 0;
    greedy.seed = seed;
    EXPECT_EQ(Sampler(greedy).sample(logits, {}), argmax);
    SamplingParams top1;
    top1.top_k = 1;
    top1.seed = seed;
    EXPECT_EQ(Sampler(top1).sample(logits, {}), argmax);
    SamplingParams tiny_p;  // top_p so small that only the best token survives
    tiny_p.top_p = 1e-9f;
    tiny_p.seed = seed;
    EXPECT_EQ(Sampler(tiny_p).sample(logits, {}), argmax);
  }
}

TEST(Sampler, MatchesSoftmax) {
  SamplingParams p;
  p.seed = 7;
  check_distribution(kLogits, p);
  p.temperature = 0.7f;
  check_distribution(kLogits, p);
  p.temperature = 2.0f;
  check_distribution(kLogits, p);
}

TEST(Sampler, TopK) {
  SamplingParams p;
  p.top_k = 3;
  p.temperature = 1.3f;
  p.seed = 11;
  check_distribution(kLogits, p);
}

TEST(Sampler, TopP) {
  SamplingParams p;
  p.top_p = 0.8f;  // softmax of kLogits: .52 .19 .12 .07 .03 -> keeps the first three
  p.seed = 12;
  auto ref = reference_probs(kLogits, p);
  EXPECT_GT(ref[2], 0);
  EXPECT_EQ(ref[3], 0);
  check_distribution(kLogits, p);
}

TEST(Sampler, MinP) {
  SamplingParams p;
  p.min_p = 0.2f;  // keeps tokens with p >= 0.2 * p_max: logits within log(5) of the max
  p.seed = 13;
  auto ref = reference_probs(kLogits, p);
  EXPECT_GT(ref[2], 0);
  EXPECT_EQ(ref[3], 0);
  check_distribution(kLogits, p);
}

TEST(Sampler, AllTruncationsTogether) {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 4;
  p.top_p = 0.9f;
  p.min_p = 0.05f;
  p.seed = 14;
  check_distribution(kLogits, p);
}

TEST(Sampler, LargeVocabTruncationStaysInsideTheReferenceSet) {
  // A flat-ish distribution over the full vocab makes the nucleus span thousands of
  // tokens, which exercises the growing partial sort.
  auto logits = random_logits(151936, 5);
  for (float& x : logits) x *= 0.3f;
  for (SamplingParams p : {SamplingParams{.top_p = 0.9f, .seed = 1}, SamplingParams{.top_k = 50, .seed = 2},
                           SamplingParams{.top_p = 0.5f, .min_p = 0.3f, .top_k = 2000, .seed = 3}}) {
    auto ref = reference_probs(logits, p);
    size_t allowed = std::count_if(ref.begin(), ref.end(), [](double q) { return q > 0; });
    EXPECT_GT(allowed, 1u);
    Sampler s(p);
    for (int i = 0; i < 300; ++i) {
      int32_t t = s.sample(logits, {});
      ASSERT_GT(ref[t], 0) << "token " << t << " is outside the truncated set";
    }
  }
}

TEST(Sampler, Penalties) {
  std::vector<float> l = {2.0f, -2.0f, 1.0f, 0.5f};
  std::vector<int32_t> history = {0, 1, 0, 999};  // 999: out of range, ignored
  SamplingParams rep;
  rep.repetition_penalty = 2.0f;
  auto a = l;
  Sampler::apply_penalties(a, history, rep);
  EXPECT_EQ(a, (std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f}));

  SamplingParams openai;
  openai.presence_penalty = 0.5f;
  openai.frequency_penalty = 0.25f;
  auto b = l;
  Sampler::apply_penalties(b, history, openai);
  EXPECT_EQ(b, (std::vector<float>{2.0f - 0.5f - 0.5f, -2.0f - 0.5f - 0.25f, 1.0f, 0.5f}));

  SamplingParams none;
  auto c = l;
  Sampler::apply_penalties(c, history, none);
  EXPECT_EQ(c, l);
}

TEST(Sampler, PenaltiesAffectTheChoice) {
  std::vector<float> l = {3.0f, 2.0f, 0.0f};
  SamplingParams p;
  p.temperature = 0;
  EXPECT_EQ(Sampler(p).sample(l, std::vector<int32_t>{0}), 0);
  p.repetition_penalty = 2.0f;  // 3 / 2 = 1.5 < 2
  EXPECT_EQ(Sampler(p).sample(l, std::vector<int32_t>{0}), 1);
  p.repetition_penalty = 1.0f;
  p.frequency_penalty = 0.6f;  // token 0 seen twice: 3 - 1.2 = 1.8 < 2
  EXPECT_EQ(Sampler(p).sample(l, std::vector<int32_t>{0, 0}), 1);
  EXPECT_EQ(Sampler(p).sample(l, std::vector<int32_t>{0}), 0);  // 2.4 still wins
}

TEST(Sampler, MaskedLogitsAreNeverDrawn) {
  float inf = std::numeric_limits<float>::infinity();
  std::vector<float> l = {-inf, 0.0f, -inf, 0.0f, std::nanf("")};
  SamplingParams p;
  p.seed = 3;
  Sampler s(p);
  for (int i = 0; i < 1000; ++i) {
    int32_t t = s.sample(l, {});
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

// --- generation_config.json ---------------------------------------------------------------

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           (std::string("qnext_gen_test_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string& text) const { std::ofstream(path / "generation_config.json") << text; }
};

}  // namespace

TEST(GenerationConfig, MissingFileGivesDefaults) {
  TempDir d;
  auto c = load_generation_config(d.path.string());
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->sampling.temperature, 1.0f);
  EXPECT_EQ(c->sampling.top_k, 0);
  EXPECT_TRUE(c->eos_token_ids.empty());
}

TEST(GenerationConfig, ReadsQwenStyleFile) {
  TempDir d;
  d.write(R"({"bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643],
             "pad_token_id": 151643, "temperature": 0.7, "top_k": 20, "top_p": 0.8,
             "min_p": 0.0, "repetition_penalty": 1.05, "transformers_version": "4.57.0"})");
  auto c = load_generation_config(d.path.string());
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_FLOAT_EQ(c->sampling.temperature, 0.7f);
  EXPECT_FLOAT_EQ(c->sampling.top_p, 0.8f);
  EXPECT_EQ(c->sampling.top_k, 20);
  EXPECT_FLOAT_EQ(c->sampling.repetition_penalty, 1.05f);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{151645, 151643}));
}

TEST(GenerationConfig, SingleEosAndGreedy) {
  TempDir d;
  d.write(R"({"eos_token_id": 151645, "do_sample": false, "temperature": 0.6})");
  auto c = load_generation_config(d.path.string());
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->eos_token_ids, std::vector<int32_t>{151645});
  EXPECT_EQ(c->sampling.temperature, 0.0f);
}

TEST(GenerationConfig, MalformedNamesTheFile) {
  TempDir d;
  d.write("{\"temperature\": ");
  auto c = load_generation_config(d.path.string());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().find("generation_config.json"), std::string::npos) << c.error();
}

TEST(GenerationConfig, WrongTypeIsAnError) {
  auto c = parse_generation_config(R"({"top_k": "many"})", "generation_config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().find("top_k"), std::string::npos) << c.error();
  auto e = parse_generation_config(R"({"eos_token_id": "x"})", "generation_config.json");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().find("eos_token_id"), std::string::npos) << e.error();
}

// Found by fuzz/fuzz_generation_config (input kept in fuzz/corpus/generation_config): integers were
// narrowed into other values (top_k 202147483648 became 318198656) and 1e300 became an infinite
// temperature; now both are errors naming the field.
TEST(GenerationConfig, TopK202147483648) {
  for (const char* text : {R"({"top_k": 202147483648})", R"({"max_new_tokens": 4294967296})",
                           R"({"eos_token_id": 4294967296})", R"({"eos_token_id": [151645, -2147483649]})"}) {
    auto c = parse_generation_config(text, "generation_config.json");
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_NE(c.error().find("not a 32-bit integer"), std::string::npos) << c.error();
  }
  auto t = parse_generation_config(R"({"temperature": 1e300})", "generation_config.json");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("'temperature' is 1e+300"), std::string::npos) << t.error();
  auto ok = parse_generation_config(R"({"top_k": -1, "temperature": 1e6, "eos_token_id": [2147483647]})", "generation_config.json");
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->sampling.top_k, -1);
}

namespace qnext {
// The server's semantics: presence and frequency penalties count only the generated tokens
// (history from penalty_counts_from), the repetition penalty the whole history.
TEST(Sampling, OpenAiPenaltiesCountOnlyGeneratedTokens) {
  SamplingParams p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  p.repetition_penalty = 2.0f;
  p.penalty_counts_from = 3;  // ids 0..2 are the prompt
  const std::vector<int32_t> history = {1, 2, 2, 2, 3, 3};
  std::vector<float> logits = {1, 1, 1, 1, 1};
  Sampler::apply_penalties(logits, history, p);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);                       // never seen
  EXPECT_FLOAT_EQ(logits[1], 0.5f);                       // prompt only: repetition
  EXPECT_FLOAT_EQ(logits[2], 0.5f - 0.5f - 0.25f * 1);   // once in the output
  EXPECT_FLOAT_EQ(logits[3], 0.5f - 0.5f - 0.25f * 2);   // twice in the output
  p.penalty_counts_from = 0;  // the CLI: the whole history
  logits = {1, 1, 1, 1, 1};
  Sampler::apply_penalties(logits, history, p);
  EXPECT_FLOAT_EQ(logits[1], 0.5f - 0.5f - 0.25f * 1);
  EXPECT_FLOAT_EQ(logits[2], 0.5f - 0.5f - 0.25f * 3);
}
}  // namespace qnext
