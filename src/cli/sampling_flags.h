// Sampling options shared by `qnext run` and `qnext chat`: generation_config.json gives the
// defaults, flags given on the command line override them.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "model/qwen3_next.h"
#include "runtime/generator.h"
#include "runtime/sampling.h"

namespace qnext::cli {

struct SamplingFlags {
  SamplingParams values;  // what the flags hold (meaningful only where given)
  std::vector<std::pair<CLI::Option*, int>> given;  // option -> which field

  void add_to(CLI::App* cmd);
  // The model's defaults with the given flags applied.
  SamplingParams resolve(const SamplingParams& defaults) const;
};

// What `run` and `chat` need besides the model: tokenizer, EOS ids, sampling defaults.
struct TextSetup {
  Tokenizer tok;
  GenerationConfig gen;
  std::vector<int32_t> eos;
};
// Loads them from the model directory; prints the error and returns null on failure.
std::unique_ptr<TextSetup> load_text_setup_or_report(const Model& model);

}  // namespace qnext::cli
