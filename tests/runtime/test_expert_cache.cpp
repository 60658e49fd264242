// The expert cache (runtime/expert_cache.h): a model whose routed experts stream from its files
// through a cache smaller than they are gives bit-identical results to the memory-mapped model,
// in every phase (prefill, decode, batches of sequences, MTP) and every stored format, while the
// cache evicts; budgets it cannot run in, and files it cannot read, are clear errors.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/golden.h"
#include "common/run.h"
#include "common/temp_dir.h"
#include "io/direct_reader.h"
#include "model/qwen3_next.h"
#include "runtime/expert_cache.h"
#include "runtime/expert_trace.h"

namespace qnext {
namespace {

std::unique_ptr<Model> load(const std::string& path, QuantRecipe recipe = QuantRecipe::None) {
  auto r = Model::load(path, recipe);
  if (!r) throw std::runtime_error("cannot load " + path + ": " + r.error());
  return std::move(r).value();
}

// The model with a cache of one layer's experts plus `extra`: far fewer than all of them.
std::unique_ptr<Model> load_cached(const std::string& path, int extra, ExpertCache** cache) {
  auto m = load(path);
  auto plan = plan_memory(m->weights());
  if (!plan) throw std::runtime_error(plan.error());
  auto c = ExpertCache::create(m->weights(), plan->min_budget() + size_t(extra) * plan->slot_bytes);
  if (!c) throw std::runtime_error(c.error());
  *cache = c.value().get();
  m->set_expert_source(std::move(c.value()));
  return m;
}

std::vector<int32_t> random_ids(std::mt19937& rng, int n, int vocab) {
  std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = pick(rng);
  return ids;
}

// Same bits, not merely close: the forward pass runs the same code over the same bytes.
void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  ASSERT_FALSE(a.empty()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what << ": logits differ";
}

// (model, whether the next layer's experts are prefetched)
class ExpertCacheModels : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(ExpertCacheModels, BitIdenticalToTheMemoryMappedModelWhileEvicting) {
  const auto [name, prefetch] = GetParam();
  const std::string path = testing::data_dir(name);
  auto plain = load(path);
  ExpertCache* cache = nullptr;
  auto cached = load_cached(path, 3, &cache);
  cached->set_expert_prefetch(prefetch);
  cache->record_trace(!prefetch);  // a prefetch loads experts the trace does not show
  const Config& c = plain->config();
  ASSERT_LT(cache->capacity(), cache->plan().expert_count);
  std::mt19937 rng(5);

  // Prefill: every expert solo (the default for few tokens each), then with multi-token experts
  // split across threads (the path long prompts take).
  for (int solo_max : {Model::kSoloMaxTokens, 2}) {
    plain->set_solo_expert_max_tokens(solo_max);
    cached->set_solo_expert_max_tokens(solo_max);
    const auto ids = random_ids(rng, 40, c.vocab_size);
    SequenceState s1 = plain->new_state(), s2 = cached->new_state();
    ForwardOptions opt;
    opt.all_logits = true;
    std::vector<float> h1, h2, l1, l2;
    plain->forward(s1, ids, opt, &h1, &l1);
    cached->forward(s2, ids, opt, &h2, &l2);
    expect_same_bits(l1, l2, "prefill, solo max " + std::to_string(solo_max));

    // Decoding, greedy, one token at a time (the few-token grouped path).
    int32_t next = ids.back();
    for (int step = 0; step < 12; ++step) {
      plain->forward(s1, {&next, 1}, {}, nullptr, &l1);
      cached->forward(s2, {&next, 1}, {}, nullptr, &l2);
      expect_same_bits(l1, l2, "decode step " + std::to_string(step));
      next = int32_t(std::max_element(l1.begin(), l1.end()) - l1.begin());
    }

    // The MTP head (its own MoE block, cached like the layers').
    if (plain->has_mtp()) {
      std::vector<int32_t> next_ids(ids.begin() + 1, ids.end());
      next_ids.push_back(next);
      SequenceState m1 = plain->new_state(), m2 = cached->new_state();
      plain->mtp_forward(m1, next_ids, h1.data(), nullptr, &l1);
      cached->mtp_forward(m2, next_ids, h2.data(), nullptr, &l2);
      expect_same_bits(l1, l2, "MTP");
    }
  }

  // Several sequences in one call (what the server's batches do): some decode, some prefill.
  std::vector<SequenceState> a, b;
  for (int i = 0; i < 4; ++i) a.push_back(plain->new_state()), b.push_back(cached->new_state());
  for (int step = 0; step < 4; ++step) {
    std::vector<std::vector<int32_t>> ids(4);
    std::vector<std::vector<float>> la(4), lb(4);
    std::vector<BatchEntry> ba, bb;
    for (int i = 0; i < 4; ++i) {
      ids[size_t(i)] = random_ids(rng, step == 0 || i == 3 ? 7 : 1, c.vocab_size);
      ba.push_back({&a[size_t(i)], ids[size_t(i)], &la[size_t(i)]});
      bb.push_back({&b[size_t(i)], ids[size_t(i)], &lb[size_t(i)]});
    }
    plain->forward_batch(ba);
    cached->forward_batch(bb);
    for (int i = 0; i < 4; ++i)
      expect_same_bits(la[size_t(i)], lb[size_t(i)], "batch step " + std::to_string(step) + " seq " + std::to_string(i));
  }

  // The cache was under pressure: it missed more often than it has slots (so it evicted), and hit.
  const ExpertSourceStats s = cache->stats();
  EXPECT_GT(s.hits, 0u);
  EXPECT_GT(s.lookups - s.hits, uint64_t(cache->capacity()));
  EXPECT_GT(s.bytes_read, (s.lookups - s.hits) * cache->plan().slot_bytes / 2);

  if (prefetch) {  // decoding predicted and read ahead
    EXPECT_GT(s.predicted, 0u);
    EXPECT_GT(s.prefetched, 0u);
    return;
  }
  // Its trace replayed with LRU has exactly its hits; no policy beats the optimum.
  ASSERT_EQ(cache->trace().size(), s.lookups);
  const double lru = replay_hit_rate(cache->trace(), cache->capacity(), ReplacementPolicy::Lru);
  EXPECT_DOUBLE_EQ(lru, double(s.hits) / double(s.lookups));
  const double best = replay_hit_rate(cache->trace(), cache->capacity(), ReplacementPolicy::Optimal);
  EXPECT_GE(best, lru);
  EXPECT_GE(best, replay_hit_rate(cache->trace(), cache->capacity(), ReplacementPolicy::Lfu));
}

// Hand-worked traces, capacity 2.
TEST(ExpertTrace, ReplayedPoliciesHitAsWorkedOutByHand) {
  // a b a c b: LRU evicts b for c (a used later), then misses b: hits a -> 1 of 5.
  // LFU: a has 2 uses, b 1: c evicts b, b evicts c: 1 of 5. Optimal: c evicts a (never used
  // again), b hits: 2 of 5.
  const std::vector<int> t = {0, 1, 0, 2, 1};
  EXPECT_DOUBLE_EQ(replay_hit_rate(t, 2, ReplacementPolicy::Lru), 1.0 / 5);
  EXPECT_DOUBLE_EQ(replay_hit_rate(t, 2, ReplacementPolicy::Lfu), 1.0 / 5);
  EXPECT_DOUBLE_EQ(replay_hit_rate(t, 2, ReplacementPolicy::Optimal), 2.0 / 5);
  // a a a b c a: LRU evicts a for c (b more recent) -> hits 2 of 6; LFU keeps a (3 uses) -> 3 of 6.
  const std::vector<int> u = {0, 0, 0, 1, 2, 0};
  EXPECT_DOUBLE_EQ(replay_hit_rate(u, 2, ReplacementPolicy::Lru), 2.0 / 6);
  EXPECT_DOUBLE_EQ(replay_hit_rate(u, 2, ReplacementPolicy::Lfu), 3.0 / 6);
  EXPECT_DOUBLE_EQ(replay_hit_rate(u, 2, ReplacementPolicy::Optimal), 3.0 / 6);
  EXPECT_DOUBLE_EQ(replay_hit_rate({}, 2, ReplacementPolicy::Lru), 0.0);
}

// BF16 safetensors, block-FP8 (side scales), AWQ int4 (scales and zero points, two shards), and
// llama.cpp K-quants (experts stacked in one tensor per layer).
INSTANTIATE_TEST_SUITE_P(Formats, ExpertCacheModels,
                         ::testing::Combine(::testing::Values("tiny-b", "tiny-b-fp8", "tiny-b-awq",
                                                              "gguf/tiny-k-q4_k_m/tiny-k-q4_k_m.gguf"),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           const std::string& path = std::get<0>(info.param);
                           std::string n = path.substr(path.rfind('/') + 1);
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n + (std::get<1>(info.param) ? "_prefetch" : "");
                         });

// How well the next layer's router applied to the residual stream before its token mixer predicts
// the experts it then picks, decoding each golden model (random weights). Printed for the record;
// the bound held is only that it beats choosing k of E at random.
TEST(ExpertPrefetch, PredictionOnTheGoldenModelsBeatsChance) {
  for (std::string name : {"tiny-b", "tiny-real-vocab", "gguf/tiny-k-q4_k_m/tiny-k-q4_k_m.gguf"}) {
    ExpertCache* cache = nullptr;
    auto m = load_cached(testing::data_dir(name), 3, &cache);
    m->set_expert_prefetch(true);
    const Config& c = m->config();
    std::mt19937 rng(9);
    SequenceState st = m->new_state();
    std::vector<float> logits;
    for (int32_t id : random_ids(rng, 48, c.vocab_size)) m->forward(st, {&id, 1}, {}, nullptr, &logits);
    const ExpertSourceStats s = cache->stats();
    ASSERT_GT(s.lookups_predicted, 0u) << name;
    const double recall = double(s.predicted_used) / double(s.lookups_predicted);
    const double chance = double(c.num_experts_per_tok) / double(c.num_experts);
    std::printf("%s: %.1f%% of the experts used were predicted (chance %.1f%%)\n", name.c_str(), 100 * recall, 100 * chance);
    EXPECT_GT(recall, chance) << name;
  }
}

TEST(ExpertCache, BudgetBelowOneLayerOfExpertsIsAClearError) {
  auto m = load(testing::data_dir("tiny-b"));
  auto plan = plan_memory(m->weights());
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_EQ(plan->layer_experts, m->config().num_experts);
  EXPECT_EQ(plan->dense_bytes + plan->routed_bytes, plan->total_bytes);
  auto c = ExpertCache::create(m->weights(), plan->min_budget() - 1);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("too small"), std::string::npos) << c.error();
  EXPECT_NE(c.error().find("smallest budget"), std::string::npos) << c.error();
  EXPECT_TRUE(ExpertCache::create(m->weights(), plan->min_budget()));
}

// apply_memory_budget (what --mem-budget calls): nothing when the weights fit, the cache when they
// do not, the error when even one layer's experts do not fit; the model is unchanged then.
TEST(ExpertCache, ApplyMemoryBudget) {
  auto m = load(testing::data_dir("tiny-b"));
  auto plan = plan_memory(m->weights());
  ASSERT_TRUE(plan) << plan.error();
  auto fits = apply_memory_budget(*m, m->weight_bytes());
  ASSERT_TRUE(fits) << fits.error();
  EXPECT_EQ(fits.value(), nullptr);
  EXPECT_EQ(m->expert_source(), nullptr);

  auto too_small = apply_memory_budget(*m, plan->min_budget() - 1);
  ASSERT_FALSE(too_small);
  EXPECT_NE(too_small.error().find("too small"), std::string::npos) << too_small.error();
  EXPECT_EQ(m->expert_source(), nullptr);

  auto cached = apply_memory_budget(*m, plan->min_budget());
  ASSERT_TRUE(cached) << cached.error();
  ASSERT_NE(cached.value(), nullptr);
  EXPECT_EQ(static_cast<const ExpertSource*>(cached.value()), m->expert_source());
  EXPECT_EQ(cached.value()->capacity(), plan->layer_experts);
}

TEST(ExpertCache, ExpertsQuantizedWhileLoadingCannotBeCached) {
  auto m = load(testing::data_dir("tiny-b"), QuantRecipe::Q8);
  auto plan = plan_memory(m->weights());
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().find("--quantize"), std::string::npos) << plan.error();
}

// A page-aligned buffer for direct reads, freed however the test ends.
std::unique_ptr<uint8_t, decltype(&std::free)> aligned_buffer(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, DirectReader::kAlign, bytes) != 0) p = nullptr;
  return {static_cast<uint8_t*>(p), &std::free};
}

std::string write_random_file(const std::string& path, size_t n) {
  std::string bytes(n, '\0');
  std::mt19937 rng(3);
  for (char& ch : bytes) ch = char(rng());
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(n));
  return bytes;
}

// Direct where the file system allows it, and through the page cache (the fallback where it does not).
class DirectReaderModes : public ::testing::TestWithParam<bool> {};

TEST_P(DirectReaderModes, ReadsTheFileBytesIncludingPastTheEnd) {
  testing::TempDir dir;
  const std::string path = dir.path + "/f.bin";
  const std::string bytes = write_random_file(path, 5 * 4096 + 1000);
  auto r = DirectReader::open({path}, 3, GetParam());
  ASSERT_TRUE(r) << r.error();
  if (!GetParam()) {
    EXPECT_FALSE(r.value()->direct(0));
  }
  constexpr size_t A = DirectReader::kAlign;
  auto mem = aligned_buffer(8 * A);
  ASSERT_TRUE(mem);
  uint8_t* buf = mem.get();
  // Two ranges at once; the second runs past the end of the file, its needed bytes do not.
  std::vector<ReadRange> ranges = {{0, A, 2 * A, 2 * A, buf}, {0, 4 * A, 2 * A, A + 1000, buf + 2 * A}};
  Status st = r.value()->read(ranges);
  ASSERT_TRUE(st) << st.error();
  EXPECT_EQ(std::memcmp(buf, bytes.data() + A, 2 * A), 0);
  EXPECT_EQ(std::memcmp(buf + 2 * A, bytes.data() + 4 * A, A + 1000), 0);
}

TEST_P(DirectReaderModes, AFileShorterThanNeededIsAnErrorNamingIt) {
  testing::TempDir dir;
  const std::string path = dir.path + "/short.bin";
  write_random_file(path, 3 * 4096);
  auto r = DirectReader::open({path}, 2, GetParam());
  ASSERT_TRUE(r) << r.error();
  auto mem = aligned_buffer(4 * DirectReader::kAlign);
  ASSERT_TRUE(mem);
  std::vector<ReadRange> ranges = {{0, 2 * 4096, 2 * 4096, 2 * 4096, mem.get()}};
  Status st = r.value()->read(ranges);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().find(path), std::string::npos) << st.error();
  EXPECT_NE(st.error().find("truncated"), std::string::npos) << st.error();
  EXPECT_FALSE(DirectReader::open({dir.path + "/missing.bin"}));
}

INSTANTIATE_TEST_SUITE_P(Modes, DirectReaderModes, ::testing::Values(true, false),
                         [](const auto& info) { return std::string(info.param ? "Direct" : "PageCache"); });

// End to end through the command line: --mem-budget below the model's size gives the same ids as
// no budget (with and without MTP) and says it runs from the cache; an impossible budget or a
// truncated file is an error.
TEST(ExpertCacheCli, SmallBudgetGivesTheSameTokens) {
  const std::string model = testing::data_dir("tiny-b");
  auto generate = [&](const std::string& flags) {  // the ids alone (stdout), or everything with "+"
    const std::string cmd = testing::qnext_bin() + " generate --model " + model + " --ids 1,2,3,4,5 -n 24 " + flags;
    return flags.starts_with("+") ? testing::run(cmd.substr(0, cmd.size() - flags.size()) + flags.substr(1))
                                  : testing::run("(" + cmd + " 2>/dev/null)");
  };
  auto plain = generate("--mem-budget off");
  auto cached = generate("--mem-budget 0.005");
  auto cached_mtp = generate("--mem-budget 0.005 --mtp 2");
  auto said = generate("+--mem-budget 0.005");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_GT(plain.output.size(), 24u) << plain.output;
  EXPECT_EQ(cached.output, plain.output);
  EXPECT_EQ(cached_mtp.output, plain.output);
  EXPECT_EQ(said.exit_code, 0) << said.output;
  EXPECT_NE(said.output.find("routed experts in a cache of"), std::string::npos) << said.output;

  auto tiny = testing::run(testing::qnext_bin() + " generate --model " + model + " --ids 1,2 --mem-budget 0.0001");
  EXPECT_EQ(tiny.exit_code, 1) << tiny.output;
  EXPECT_NE(tiny.output.find("smallest budget"), std::string::npos) << tiny.output;
  auto bad = testing::run(testing::qnext_bin() + " generate --model " + model + " --ids 1,2 --mem-budget lots");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("--mem-budget"), std::string::npos) << bad.output;

  testing::TempDir dir;
  for (const auto& f : std::filesystem::directory_iterator(model)) std::filesystem::copy(f.path(), dir.path);
  std::filesystem::resize_file(dir.path + "/model.safetensors", std::filesystem::file_size(dir.path + "/model.safetensors") - 4096);
  auto cut = testing::run(testing::qnext_bin() + " generate --model " + dir.path + " --ids 1,2 --mem-budget 0.005");
  EXPECT_EQ(cut.exit_code, 1) << cut.output;
  EXPECT_NE(cut.output.find("model.safetensors"), std::string::npos) << cut.output;
}

}  // namespace
}  // namespace qnext
