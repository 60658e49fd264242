#include "runtime/sampling.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/argmax.h"

namespace qnext {

Sampler::Sampler(SamplingParams params) : params_(params), rng_(params.seed) {}

double Sampler::uniform() { return double(rng_() >> 11) * 0x1.0p-53; }

void Sampler::apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                              const SamplingParams& p) {
  std::vector<int32_t> seen;
  apply_penalties(logits, history, p, seen);
}

// Calls f(logit, count) once per distinct id of ids (sorted into seen).
template <typename F>
static void for_each_count(std::span<float> logits, std::span<const int32_t> ids, std::vector<int32_t>& seen, F f) {
  seen.assign(ids.begin(), ids.end());
  std::sort(seen.begin(), seen.end());
  for (size_t i = 0; i < seen.size();) {
    size_t j = i;
    while (j < seen.size() && seen[j] == seen[i]) ++j;
    const int32_t id = seen[i];
    const float count = float(j - i);
    i = j;
    if (id >= 0 && size_t(id) < logits.size()) f(logits[size_t(id)], count);
  }
}

void Sampler::apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                              const SamplingParams& p, std::vector<int32_t>& seen) {
  const bool rep = p.repetition_penalty != 1.0f && p.repetition_penalty > 0.0f;
  const bool openai = p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (rep)
    for_each_count(logits, history, seen, [&](float& l, float) {
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    });
  if (openai) {
    const size_t from = std::min(history.size(), p.penalty_counts_from);
    for_each_count(logits, history.subspan(from), seen,
                   [&](float& l, float count) { l -= p.presence_penalty + p.frequency_penalty * count; });
  }
}

// Keeps the smallest set of most likely candidates whose mass reaches top_p (HF: a token
// stays if the mass strictly above it is below top_p). Instead of sorting the whole
// vocab, candidates are bucketed by scaled logit; only the bucket where the running mass
// crosses the target needs sorting.
void Sampler::apply_top_p() {
  if (cands_.empty()) return;
  auto by_x = [](const Cand& a, const Cand& b) { return a.x < b.x; };
  const float x_max = std::max_element(cands_.begin(), cands_.end(), by_x)->x;
  const size_t n = cands_.size();
  auto desc = [](const Cand& a, const Cand& b) { return a.x > b.x || (a.x == b.x && a.id < b.id); };
  double total = 0.0;
  for (const Cand& c : cands_) total += c.w;
  const double target = double(params_.top_p) * total;
  if (n <= 256) {
    std::sort(cands_.begin(), cands_.end(), desc);
    double cum = 0.0;
    for (size_t i = 0; i < n; ++i) {
      cum += cands_[i].w;
      if (cum >= target) {
        cands_.resize(i + 1);
        return;
      }
    }
    return;
  }
  // Buckets of equal width in x over [x_max - kRange, x_max]; anything lower goes in the
  // last one (its tokens weigh < e^-kRange each).
  constexpr int kBuckets = 2048;
  constexpr float kRange = 32.0f;
  auto bucket_of = [&](float x) { return std::min(kBuckets - 1, int((x_max - x) * (kBuckets / kRange))); };
  std::vector<double>& mass = bucket_mass_;
  mass.assign(kBuckets, 0.0);
  for (const Cand& c : cands_) mass[bucket_of(c.x)] += c.w;
  double cum = 0.0;
  int edge = kBuckets - 1;
  for (int b = 0; b < kBuckets; ++b) {
    if (cum + mass[b] >= target) {
      edge = b;
      break;
    }
    cum += mass[b];
  }
  // Everything above the edge bucket stays; within it, add tokens best-first.
  auto mid = std::partition(cands_.begin(), cands_.end(), [&](const Cand& c) { return bucket_of(c.x) < edge; });
  auto tail = std::partition(mid, cands_.end(), [&](const Cand& c) { return bucket_of(c.x) == edge; });
  std::sort(mid, tail, desc);
  for (auto it = mid; it != tail; ++it) {
    cum += it->w;
    if (cum >= target) {
      cands_.erase(it + 1, cands_.end());
      return;
    }
  }
  cands_.erase(tail, cands_.end());
}

// Fills cands_ from work_ (scaled logits, max x_max) with the tokens top-k, top-p and min-p keep.
void Sampler::build_candidates(float x_max) {
  const size_t n = work_.size();
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const bool top_k_on = params_.top_k > 0 && size_t(params_.top_k) < n;
  const bool top_p_on = params_.top_p < 1.0f;
  const bool min_p_on = params_.min_p > 0.0f;
  // HF order: top-k, then top-p on the top-k distribution, then min-p. min-p is a fixed
  // threshold on the scaled logit (p_i / p_max = exp(x_i - x_max)); when top-p is off it
  // can be applied while collecting candidates, which keeps the list short.
  const float min_x = min_p_on ? x_max + std::log(params_.min_p) : kNegInf;
  const float floor_x = top_p_on ? kNegInf : min_x;
  cands_.clear();
  if (top_k_on && size_t(params_.top_k) <= 4096) {
    // Small k: a bounded min-heap; after warm-up nearly every token fails one compare.
    const size_t k = size_t(params_.top_k);
    auto worse = [](const Cand& a, const Cand& b) { return a.x > b.x || (a.x == b.x && a.id < b.id); };
    for (size_t i = 0; i < n; ++i) {
      float x = work_[i];
      if (x == kNegInf || x < floor_x) continue;
      if (cands_.size() < k) {
        cands_.push_back({x, 0.0f, int32_t(i)});
        std::push_heap(cands_.begin(), cands_.end(), worse);
      } else if (x > cands_.front().x) {
        std::pop_heap(cands_.begin(), cands_.end(), worse);
        cands_.back() = {x, 0.0f, int32_t(i)};
        std::push_heap(cands_.begin(), cands_.end(), worse);
      }
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      float x = work_[i];
      if (x != kNegInf && x >= floor_x) cands_.push_back({x, 0.0f, int32_t(i)});
    }
    if (top_k_on && cands_.size() > size_t(params_.top_k)) {
      auto desc = [](const Cand& a, const Cand& b) { return a.x > b.x || (a.x == b.x && a.id < b.id); };
      std::nth_element(cands_.begin(), cands_.begin() + params_.top_k, cands_.end(), desc);
      cands_.resize(params_.top_k);
    }
  }
  for (Cand& c : cands_) c.w = std::exp(c.x - x_max);
  if (top_p_on) apply_top_p();
  if (min_p_on) std::erase_if(cands_, [&](const Cand& c) { return c.x < min_x; });
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const size_t n = logits.size();
  if (n == 0) return -1;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const bool penalties = params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                         params_.frequency_penalty != 0.0f;
  if ((params_.temperature <= 0.0f || params_.top_k == 1) && !penalties) {
    // Greedy without penalties: the first largest logit (NaN never wins), with no copy of the vocab.
    return int32_t(qnext::argmax(logits.data(), int64_t(n)));
  }
  work_.resize(n);
  for (size_t i = 0; i < n; ++i) work_[i] = std::isnan(logits[i]) ? kNegInf : logits[i];
  apply_penalties(work_, history, params_, seen_);
  auto argmax = [&] { return int32_t(qnext::argmax(work_.data(), int64_t(n))); };

  if (params_.temperature <= 0.0f || params_.top_k == 1) return argmax();
  const float inv_t = 1.0f / params_.temperature;
  float x_max = kNegInf;
  for (float& l : work_) {
    l *= inv_t;
    x_max = std::max(x_max, l);
  }
  if (!std::isfinite(x_max)) return argmax();  // everything masked, or +inf present

  const bool top_k_on = params_.top_k > 0 && size_t(params_.top_k) < n;
  const bool top_p_on = params_.top_p < 1.0f;
  const bool min_p_on = params_.min_p > 0.0f;
  if (!top_k_on && !top_p_on && !min_p_on) {
    // Plain sampling over the whole vocab: no candidate list needed.
    double mass = 0.0;
    for (float& x : work_) mass += (x = std::exp(x - x_max));
    double u = uniform() * mass;
    for (size_t i = 0; i < n; ++i) {
      u -= work_[i];
      if (u < 0.0) return int32_t(i);
    }
    return argmax();  // rounding left u a hair above zero: the likeliest token
  }

  build_candidates(x_max);
  if (cands_.empty()) return argmax();

  double mass = 0.0;
  for (const Cand& c : cands_) mass += c.w;
  double u = uniform() * mass;
  for (const Cand& c : cands_) {
    u -= c.w;
    if (u < 0.0) return c.id;
  }
  return cands_.front().id;  // rounding left u a hair above zero
}

void Sampler::distribution(std::span<const float> logits, std::span<const int32_t> history,
                           std::vector<float>& probs) {
  const size_t n = logits.size();
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  probs.assign(n, 0.0f);
  if (n == 0) return;
  work_.resize(n);
  for (size_t i = 0; i < n; ++i) work_[i] = std::isnan(logits[i]) ? kNegInf : logits[i];
  apply_penalties(work_, history, params_, seen_);
  auto one_hot = [&] { probs[size_t(qnext::argmax(work_.data(), int64_t(n)))] = 1.0f; };
  if (params_.temperature <= 0.0f || params_.top_k == 1) return one_hot();
  const float inv_t = 1.0f / params_.temperature;
  float x_max = kNegInf;
  for (float& l : work_) {
    l *= inv_t;
    x_max = std::max(x_max, l);
  }
  if (!std::isfinite(x_max)) return one_hot();
  const bool truncating = (params_.top_k > 0 && size_t(params_.top_k) < n) || params_.top_p < 1.0f || params_.min_p > 0.0f;
  double mass = 0.0;
  if (!truncating) {
    for (size_t i = 0; i < n; ++i) mass += (probs[i] = std::exp(work_[i] - x_max));
  } else {
    build_candidates(x_max);
    if (cands_.empty()) return one_hot();
    for (const Cand& c : cands_) mass += (probs[size_t(c.id)] = c.w);
  }
  const float inv = float(1.0 / mass);
  for (float& p : probs) p *= inv;
}

int32_t Sampler::draw(std::span<const float> weights) {
  double mass = 0.0;
  for (float w : weights) mass += w;
  double u = uniform() * mass;
  int32_t last = -1;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0.0f) continue;
    last = int32_t(i);
    u -= weights[i];
    if (u < 0.0) return int32_t(i);
  }
  return last;  // rounding left u a hair above zero: the last token with weight
}

// --- generation_config.json -----------------------------------------------------------------

Result<GenerationConfig> parse_generation_config(const std::string& text, const std::string& name) {
  using nlohmann::json;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return err(name + ": malformed JSON: " + e.what());
  }
  if (!j.is_object()) return err(name + ": top level is not a JSON object");
  GenerationConfig cfg;
  auto number = [&](const char* field, float& dst) -> Status {
    if (!j.contains(field) || j[field].is_null()) return Ok{};
    if (!j[field].is_number()) return err(name + ": field '" + field + "' is not a number");
    const double v = j[field].get<double>();
    if (!(std::fabs(v) <= 1e6))  // 1e300 was an infinite float
      return err(name + ": field '" + field + "' is " + j[field].dump() + ", beyond any sampling setting");
    dst = float(v);
    return Ok{};
  };
  // Integers are taken only when they fit: top_k 202147483648 became 318198656 (found by
  // fuzz_generation_config).
  auto int32 = [&](const json& v) {
    return v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT32_MAX)) &&
           v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX;
  };
  SamplingParams& s = cfg.sampling;
  for (auto [field, dst] : {std::pair{"temperature", &s.temperature}, {"top_p", &s.top_p}, {"min_p", &s.min_p},
                            {"repetition_penalty", &s.repetition_penalty},
                            {"presence_penalty", &s.presence_penalty},
                            {"frequency_penalty", &s.frequency_penalty}}) {
    Status st = number(field, *dst);
    if (!st) return err(st.error());
  }
  if (j.contains("top_k") && !j["top_k"].is_null()) {
    if (!int32(j["top_k"])) return err(name + ": field 'top_k' is not a 32-bit integer");
    s.top_k = j["top_k"].get<int>();
  }
  if (j.contains("max_new_tokens") && !j["max_new_tokens"].is_null()) {
    if (!int32(j["max_new_tokens"])) return err(name + ": field 'max_new_tokens' is not a 32-bit integer");
    cfg.max_new_tokens = j["max_new_tokens"].get<int>();
  }
  if (j.contains("do_sample") && j["do_sample"].is_boolean() && !j["do_sample"].get<bool>()) s.temperature = 0.0f;
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    const json& e = j["eos_token_id"];
    if (e.is_number_integer()) {
      if (!int32(e)) return err(name + ": field 'eos_token_id' is not a 32-bit integer");
      cfg.eos_token_ids.push_back(e.get<int32_t>());
    } else if (e.is_array()) {
      for (const json& v : e) {
        if (!int32(v)) return err(name + ": field 'eos_token_id' has an entry that is not a 32-bit integer");
        cfg.eos_token_ids.push_back(v.get<int32_t>());
      }
    } else {
      return err(name + ": field 'eos_token_id' is neither an integer nor a list");
    }
  }
  return cfg;
}

Result<GenerationConfig> load_generation_config(const std::string& model_dir) {
  std::string path = (std::filesystem::path(model_dir) / "generation_config.json").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return GenerationConfig{};
  std::ifstream f(path, std::ios::binary);
  if (!f) return err(path + ": cannot open file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_generation_config(ss.str(), path);
}

}  // namespace qnext
