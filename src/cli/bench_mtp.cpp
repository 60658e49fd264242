#include "cli/bench_mtp.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "runtime/speculative.h"

namespace qnext::cli {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
}  // namespace

nlohmann::json bench_mtp(Model& model, int max_k, int steps, bool quiet) {
  const Config& c = model.config();
  std::mt19937 rng(7);
  auto random_id = [&] { return int32_t(rng() % uint32_t(std::min(c.vocab_size, 151643))); };
  std::vector<int32_t> prompt(64);
  for (auto& id : prompt) id = random_id();
  std::vector<float> logits, hidden;
  ForwardOptions plain_opt;

  // Plain decode steps.
  std::vector<double> plain;
  {
    SequenceState st = model.new_state();
    model.forward(st, prompt, plain_opt, nullptr, &logits);
    for (int i = 0; i < steps + 2; ++i) {
      const int32_t t = random_id();
      const auto t0 = Clock::now();
      model.forward(st, std::span<const int32_t>(&t, 1), plain_opt, nullptr, &logits);
      if (i >= 2) plain.push_back(seconds_since(t0));  // two warm-up steps
    }
  }
  const double plain_s = median(plain);

  // The byte model: T tokens read the weights of one token plus the experts the others add.
  size_t expert_bytes = 0;
  int moe_layers = 0;
  for (const auto& l : model.weights().layers)
    if (l.is_moe) {
      const auto& e = l.moe.experts[0];
      expert_bytes = e.gate.bytes() + e.up.bytes() + e.down.bytes();
      ++moe_layers;
    }
  const double E = c.num_experts, k = c.num_experts_per_tok, one = double(model.active_weight_bytes());
  auto bytes_model = [&](int T) {  // uniform routing: E (1 - (1 - k/E)^T) distinct experts per layer
    const double distinct = E * (1 - std::pow(1 - k / E, T));
    return (one + (distinct - k) * double(expert_bytes) * moe_layers) / one;
  };

  nlohmann::json rows = nlohmann::json::array();
  if (!quiet) {
    std::printf("MTP speculative decoding (random weights accept no drafts: acceptance is projected)\n");
    std::printf("plain decode step %.2f ms (%.2f tok/s)\n", 1e3 * plain_s, 1 / plain_s);
    std::printf("%-3s %11s %11s %9s %9s %10s %9s %9s %9s  %s\n", "K", "verify ms", "+record ms", "verify/x", "bytes/x",
                "draft ms", "tok/s@.6", "tok/s@.8", "tok/s@.9", "rewind vs recompute ms");
  }
  for (int K = 1; K <= max_k; ++K) {
    SequenceState st = model.new_state();
    model.forward(st, prompt, plain_opt, &hidden, &logits);
    SpeculativeDecoder dec(model, SpecOptions{K, K});
    dec.fed(hidden);
    SamplingParams g;
    g.temperature = 0;
    Sampler sampler(g);
    std::vector<int32_t> fed(prompt), out;
    int32_t next = random_id();
    // A plain decode step on a second state beside each verify step: this machine's bandwidth
    // drifts, so the cost ratio is taken pair by pair (median of the ratios).
    SequenceState plain_st = model.new_state();
    model.forward(plain_st, prompt, plain_opt, nullptr, &logits);
    std::vector<double> verify, draft, ratio;
    for (int i = 0; i < steps + 2; ++i) {
      const int32_t t = random_id();
      const auto t0 = Clock::now();
      model.forward(plain_st, std::span<const int32_t>(&t, 1), plain_opt, nullptr, &logits);
      const double plain_dt = seconds_since(t0);
      const SpecStats before = dec.stats();
      dec.step(st, fed, next, sampler, {}, out);
      const SpecStats& after = dec.stats();
      if (i >= 2) {
        verify.push_back(after.verify_s - before.verify_s);
        draft.push_back(after.draft_s - before.draft_s);
        ratio.push_back(verify.back() / plain_dt);
      }
      fed.push_back(next);
      fed.insert(fed.end(), out.begin(), out.end() - 1);
      next = out.back();
    }
    // The alternatives for rollback: the same verify forward without recording, and the
    // recomputation a rejection would need instead (restore a snapshot, refeed the kept tokens).
    std::vector<double> bare, recompute;
    std::vector<int32_t> ids(size_t(K) + 1);
    for (int i = 0; i < steps; ++i) {
      for (auto& id : ids) id = random_id();
      SequenceState snap = st.snapshot();
      ForwardOptions vo;
      vo.all_logits = true;
      vo.delta_mode = DeltaRuleMode::Recurrent;
      auto t0 = Clock::now();
      model.forward(st, ids, vo, nullptr, &logits);
      bare.push_back(seconds_since(t0));
      t0 = Clock::now();
      st.restore(snap);
      model.forward(st, std::span<const int32_t>(ids).first(size_t(K)), vo, nullptr, &logits);  // worst case: K kept
      recompute.push_back(seconds_since(t0));
      st.restore(snap);
    }
    const double v = median(verify), d = median(draft), b = median(bare), rc = median(recompute);
    const double cost = median(ratio);
    nlohmann::json row = {{"k", K},
                          {"verify_ms", 1e3 * v},
                          {"verify_unrecorded_ms", 1e3 * b},
                          {"verify_cost_vs_decode", cost},  // median of per-step ratios to a plain step beside it
                          {"byte_model_vs_decode", bytes_model(K + 1)},
                          {"draft_ms", 1e3 * d},
                          {"recompute_on_reject_ms", 1e3 * rc}};
    nlohmann::json proj = nlohmann::json::object();
    for (double a : {0.6, 0.8, 0.9}) {
      const double tokens = (1 - std::pow(a, K + 1)) / (1 - a);
      proj[std::to_string(a).substr(0, 3)] = tokens / (v + d);
    }
    row["projected_tok_s"] = proj;
    if (!quiet)
      std::printf("%-3d %11.2f %11.2f %9.3f %9.3f %10.2f %9.2f %9.2f %9.2f  %.2f vs %.2f\n", K, 1e3 * v, 1e3 * (v - b),
                  cost, bytes_model(K + 1), 1e3 * d, proj["0.6"].get<double>(), proj["0.8"].get<double>(),
                  proj["0.9"].get<double>(), 1e3 * std::max(0.0, v - b), 1e3 * rc);
    rows.push_back(row);
  }
  return {{"plain_decode_ms", 1e3 * plain_s},
          {"plain_tok_s", 1 / plain_s},
          {"note", "random weights accept no drafts: tok/s are projected at the given acceptance rates"},
          {"k", rows}};
}

}  // namespace qnext::cli
