#include "cli/sampling_flags.h"

#include <cmath>
#include <cstdio>

namespace qnext::cli {

namespace {
enum Field { Temp, TopK, TopP, MinP, Repeat, Presence, Frequency, Seed };

// A finite number in [lo, hi] (CLI11's Range lets NaN through: every comparison with it is false).
CLI::Validator finite_in(double lo, double hi) {
  const std::string range = "[" + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v) || v < lo || v > hi)
          return "must be a finite number in " + range + ", not '" + text + "'";
        return "";
      },
      "FINITE in " + range);
}
}  // namespace

void SamplingFlags::add_to(CLI::App* cmd) {
  given = {
      {cmd->add_option("--temp", values.temperature, "Temperature (0 = greedy)")->check(finite_in(0, 100)), Temp},
      {cmd->add_option("--top-k", values.top_k, "Top-k (0 = off)")->check(CLI::Range(0, 1 << 30)), TopK},
      {cmd->add_option("--top-p", values.top_p, "Top-p")->check(finite_in(1e-9, 1)), TopP},
      {cmd->add_option("--min-p", values.min_p, "Min-p")->check(finite_in(0, 1)), MinP},
      {cmd->add_option("--repeat-penalty", values.repetition_penalty, "Repetition penalty (1 = off)")
           ->check(finite_in(1e-3, 100)),
       Repeat},
      {cmd->add_option("--presence-penalty", values.presence_penalty, "Presence penalty")->check(finite_in(-2, 2)),
       Presence},
      {cmd->add_option("--frequency-penalty", values.frequency_penalty, "Frequency penalty")->check(finite_in(-2, 2)),
       Frequency},
      {cmd->add_option("--seed", values.seed, "Random seed"), Seed},
  };
}

SamplingParams SamplingFlags::resolve(const SamplingParams& defaults) const {
  SamplingParams p = defaults;
  for (auto [opt, field] : given) {
    if (opt->count() == 0) continue;
    switch (field) {
      case Temp: p.temperature = values.temperature; break;
      case TopK: p.top_k = values.top_k; break;
      case TopP: p.top_p = values.top_p; break;
      case MinP: p.min_p = values.min_p; break;
      case Repeat: p.repetition_penalty = values.repetition_penalty; break;
      case Presence: p.presence_penalty = values.presence_penalty; break;
      case Frequency: p.frequency_penalty = values.frequency_penalty; break;
      case Seed: p.seed = values.seed; break;
    }
  }
  return p;
}

std::unique_ptr<TextSetup> load_text_setup_or_report(const Model& model) {
  auto tok = Tokenizer::load(model.dir());
  if (!tok) {
    std::fprintf(stderr, "error: %s\n", tok.error().c_str());
    return nullptr;
  }
  auto gen = load_generation_config(model.dir());
  if (!gen) {
    std::fprintf(stderr, "error: %s\n", gen.error().c_str());
    return nullptr;
  }
  auto eos = collect_eos_ids(model.config(), tok.value(), gen.value());
  return std::make_unique<TextSetup>(TextSetup{std::move(tok.value()), std::move(gen.value()), std::move(eos)});
}

}  // namespace qnext::cli
