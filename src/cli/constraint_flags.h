// --grammar FILE and --json-schema FILE, shared by `qnext run` and `qnext chat`: the output obeys
// the grammar (runtime/grammar.h's syntax) or the JSON schema from the first token.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <span>
#include <string>

#include "core/result.h"
#include "runtime/generator.h"
#include "runtime/grammar_mask.h"
#include "tokenizer/tokenizer.h"

namespace qnext::cli {

struct ConstraintFlags {
  std::string grammar_file;
  std::string json_schema_file;

  void add_to(CLI::App* cmd);
  // The compiled constraint, or null when neither flag is given; errors name the file.
  Result<std::shared_ptr<grammar::TokenMasker>> load(const Tokenizer& tok, std::span<const int32_t> eos) const;
  // load() onto the generator; prints the error and returns false on failure (also for --mtp with
  // a constraint, which speculative decoding does not follow yet).
  bool apply_or_report(Generator& gen, const Tokenizer& tok, std::span<const int32_t> eos, bool mtp) const;
};

}  // namespace qnext::cli
