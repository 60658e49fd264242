#include "cli/bench_batch.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "kernels/argmax.h"

namespace qnext::cli {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

int32_t argmax(const std::vector<float>& v) { return int32_t(qnext::argmax(v.data(), int64_t(v.size()))); }

}  // namespace

nlohmann::json bench_batch(Model& model, int n, int pairs, int steps_per_block, bool quiet) {
  const Config& c = model.config();
  std::mt19937 rng(7);
  auto random_id = [&] { return int32_t(rng() % uint32_t(std::min(c.vocab_size, 151643))); };
  constexpr int kPrompt = 16;
  ForwardOptions opt;

  std::vector<SequenceState> states;  // [n]; states[0] also runs alone
  std::vector<std::vector<float>> logits(static_cast<size_t>(n));
  std::vector<int32_t> next(static_cast<size_t>(n));
  states.reserve(size_t(n));
  for (int s = 0; s < n; ++s) {
    states.push_back(model.new_state());
    std::vector<int32_t> prompt(kPrompt);
    for (auto& id : prompt) id = random_id();
    model.forward(states.back(), prompt, opt, nullptr, &logits[size_t(s)]);
    next[size_t(s)] = argmax(logits[size_t(s)]);
  }
  SequenceState single = model.new_state();
  std::vector<float> single_logits;
  int32_t single_next = random_id();

  std::vector<BatchEntry> batch(static_cast<size_t>(n));
  auto batch_step = [&] {
    for (int s = 0; s < n; ++s) batch[size_t(s)] = {&states[size_t(s)], std::span<const int32_t>(&next[size_t(s)], 1), &logits[size_t(s)]};
    model.forward_batch(batch);
    for (int s = 0; s < n; ++s) next[size_t(s)] = argmax(logits[size_t(s)]);
  };
  auto single_step = [&] {
    model.forward(single, std::span<const int32_t>(&single_next, 1), opt, nullptr, &single_logits);
    single_next = argmax(single_logits);
  };
  using Clock = std::chrono::steady_clock;
  auto time_block = [&](auto&& step) {
    const auto t0 = Clock::now();
    for (int i = 0; i < steps_per_block; ++i) step();
    return std::chrono::duration<double>(Clock::now() - t0).count() / steps_per_block;
  };
  time_block(single_step);  // warm-up: workspaces grow to the batch's size
  time_block(batch_step);

  std::vector<double> one, many, ratio;
  for (int p = 0; p < pairs; ++p) {
    const double t1 = time_block(single_step), tn = time_block(batch_step);
    one.push_back(1 / t1);
    many.push_back(n / tn);
    ratio.push_back(n * t1 / tn);
  }
  nlohmann::json j = {{"sequences", n},
                      {"pairs", pairs},
                      {"steps_per_block", steps_per_block},
                      {"decode_tok_s_1", median(one)},
                      {"decode_tok_s_n", median(many)},
                      {"batch_speedup", median(ratio)}};
  if (!quiet)
    std::printf("batched decode: 1 sequence %.2f tok/s, %d sequences %.2f tok/s total (x%.2f, median of %d "
                "alternating pairs of %d-step blocks)\n",
                median(one), n, median(many), median(ratio), pairs, steps_per_block);
  return j;
}

}  // namespace qnext::cli
