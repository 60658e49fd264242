// The batched forward: several sequences in one call, each on its own state, give each the
// logits a forward of its ids alone gives; and snapshots restore states exactly.
#include <gtest/gtest.h>

#include <random>
#include <stdexcept>

#include "common/golden.h"
#include "model/qwen3_next.h"

namespace qnext {
namespace {

Model& model(const std::string& name = "tiny-b") {
  static std::unique_ptr<Model> m = [&] {
    auto r = Model::load(testing::data_dir(name));
    // Thrown, not abort(): GoogleTest fails the calling test with this text and runs the rest.
    if (!r) throw std::runtime_error("cannot load model " + name + ": " + r.error());
    return std::move(r).value();
  }();
  return *m;
}

std::vector<int32_t> random_ids(std::mt19937& rng, int n, int vocab) {
  std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = pick(rng);
  return ids;
}

// max |a - b| / max |b|
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, m = 1e-30;
  for (size_t i = 0; i < b.size(); ++i) {
    d = std::max(d, double(std::fabs(a[i] - b[i])));
    m = std::max(m, double(std::fabs(b[i])));
  }
  return d / m;
}

// Random mixes of sequences: some decoding one token, some feeding prompt chunks of any length
// (chunked delta rule), over several steps. Each step's batched logits match those of feeding
// the same ids to a lone copy of each sequence.
TEST(BatchForward, MatchesSingleSequenceOnRandomMixes) {
  Model& m = model();
  const int V = m.config().vocab_size;
  std::mt19937 rng(11);
  const int kSeqs = 6;
  std::vector<SequenceState> batched, alone;
  for (int i = 0; i < kSeqs; ++i) {
    batched.push_back(m.new_state());
    alone.push_back(m.new_state());
  }
  std::uniform_int_distribution<int> len_of(0, 9);
  double worst = 0;
  for (int step = 0; step < 8; ++step) {
    std::vector<std::vector<int32_t>> ids(kSeqs);
    std::vector<std::vector<float>> logits(kSeqs);
    std::vector<BatchEntry> batch;
    for (int i = 0; i < kSeqs; ++i) {
      const int pick = len_of(rng);  // 0: skip this step; 1-5: decode; else a prompt chunk
      const int n = pick == 0 ? 0 : pick <= 5 ? 1 : std::uniform_int_distribution<int>(2, 150)(rng);
      if (n == 0) continue;
      ids[size_t(i)] = random_ids(rng, n, V);
      batch.push_back({&batched[size_t(i)], ids[size_t(i)], &logits[size_t(i)]});
    }
    m.forward_batch(batch);
    for (int i = 0; i < kSeqs; ++i) {
      if (ids[size_t(i)].empty()) continue;
      std::vector<float> want;
      m.forward(alone[size_t(i)], ids[size_t(i)], ForwardOptions{}, nullptr, &want);
      ASSERT_EQ(batched[size_t(i)].pos, alone[size_t(i)].pos);
      ASSERT_EQ(logits[size_t(i)].size(), size_t(V));
      const double d = rel_diff(logits[size_t(i)], want);
      worst = std::max(worst, d);
      EXPECT_LT(d, 2e-5) << "step " << step << " sequence " << i << " (" << ids[size_t(i)].size() << " ids)";
    }
  }
  RecordProperty("worst_relative_difference", std::to_string(worst));
}

// A batch of one sequence is the single-sequence forward itself: bit for bit.
TEST(BatchForward, OneSequenceIsBitExact) {
  Model& m = model();
  std::mt19937 rng(3);
  auto ids = random_ids(rng, 77, m.config().vocab_size);
  SequenceState a = m.new_state(), b = m.new_state();
  std::vector<float> la, lb;
  m.forward(a, ids, ForwardOptions{}, nullptr, &la);
  BatchEntry e{&b, ids, &lb};
  m.forward_batch({&e, 1});
  EXPECT_EQ(la, lb);
  const int32_t next = 5;
  m.forward(a, {&next, 1}, ForwardOptions{}, nullptr, &la);
  e = {&b, {&next, 1}, &lb};
  m.forward_batch({&e, 1});
  EXPECT_EQ(la, lb);
}

// A snapshot restored into another state continues exactly as the original, for each KV cache type
// (the q8_0 cache's positions are blocks, not elements).
TEST(SequenceSnapshot, RestoreContinuesBitExact) {
  Model& m = model();
  for (DType kv : {DType::F32, DType::F16, DType::Q8_0}) {
    m.set_kv_type(kv);
    std::mt19937 rng(5);
    auto prefix = random_ids(rng, 90, m.config().vocab_size);
    auto rest = random_ids(rng, 20, m.config().vocab_size);
    SequenceState a = m.new_state();
    m.forward(a, prefix, ForwardOptions{}, nullptr, nullptr);
    const SequenceState snap = a.snapshot();
    EXPECT_LT(snap.bytes(), a.bytes() + 1);
    SequenceState b = m.new_state();
    m.forward(b, rest, ForwardOptions{}, nullptr, nullptr);  // dirty it first: restore must overwrite
    b.restore(snap);
    EXPECT_EQ(b.pos, 90);
    std::vector<float> la, lb;
    m.forward(a, rest, ForwardOptions{}, nullptr, &la);
    m.forward(b, rest, ForwardOptions{}, nullptr, &lb);
    EXPECT_EQ(la, lb) << dtype_name(kv);
  }
  m.set_kv_type(DType::F32);
}

}  // namespace
}  // namespace qnext
