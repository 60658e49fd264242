// Next-token sampling: penalties, temperature, top-k / top-p / min-p truncation, and a
// seeded draw. One Sampler per sequence (it owns the RNG state and scratch buffers).
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"

namespace qnext {

struct SamplingParams {
  float temperature = 1.0f;  // <= 0: greedy (argmax after penalties)
  float top_p = 1.0f;        // keep the smallest high-probability set with mass >= top_p
  float min_p = 0.0f;        // drop tokens with p < min_p * p_max
  int top_k = 0;             // <= 0: no limit
  float repetition_penalty = 1.0f;  // HF: seen tokens' logits divided (if > 0) or multiplied
  float presence_penalty = 0.0f;    // OpenAI: subtracted once from seen tokens
  float frequency_penalty = 0.0f;   // OpenAI: subtracted once per occurrence
  // Presence and frequency penalties count history[penalty_counts_from:] only: the server sets
  // the prompt's length, so they count generated tokens as OpenAI and vLLM do (the repetition
  // penalty sees the whole history, as in HF and vLLM). 0: the whole history (the CLI).
  size_t penalty_counts_from = 0;
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplingParams params);

  // Picks the next token. history = tokens so far (prompt and generated) for penalties.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  // The logits after penalties (before temperature); exposed for tests.
  static void apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                              const SamplingParams& p);
  // The same with a caller's scratch for the sorted history (no allocation once it is grown).
  static void apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                              const SamplingParams& p, std::vector<int32_t>& seen);

  const SamplingParams& params() const { return params_; }
  bool greedy() const { return params_.temperature <= 0.0f || params_.top_k == 1; }

  // The distribution sample() draws from, over the whole vocab (sums to 1; one-hot for greedy):
  // penalties, temperature, top-k, top-p and min-p applied. Speculative sampling compares the
  // main model's and the draft's distributions through it.
  void distribution(std::span<const float> logits, std::span<const int32_t> history, std::vector<float>& probs);
  // A draw from non-negative weights (normalized here) with this sampler's RNG; -1 if all are 0.
  int32_t draw(std::span<const float> weights);
  double uniform01() { return uniform(); }

 private:
  struct Cand {
    float x;  // logit / temperature
    float w;  // exp(x - x_max): unnormalized probability
    int32_t id;
  };
  void apply_top_p();  // cands_ non-empty, weights set
  void build_candidates(float x_max);  // cands_ from work_ (scaled logits): what top-k/p, min-p keep
  double uniform();  // [0, 1), from the seeded engine only (reproducible across platforms)

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> work_;
  std::vector<Cand> cands_;
  std::vector<int32_t> seen_;        // [history] sorted, for penalties
  std::vector<double> bucket_mass_;  // [kBuckets] top-p's histogram
};

// Defaults from a model's generation_config.json.
struct GenerationConfig {
  SamplingParams sampling;
  std::vector<int32_t> eos_token_ids;  // empty when the file names none
  int max_new_tokens = 0;              // 0 when unspecified
};

// Reads model_dir/generation_config.json. A missing file gives the defaults; malformed
// JSON or wrongly typed fields give an error naming the file. "do_sample": false means
// greedy (temperature 0), as in HF.
Result<GenerationConfig> load_generation_config(const std::string& model_dir);
Result<GenerationConfig> parse_generation_config(const std::string& json_text, const std::string& name);

}  // namespace qnext
