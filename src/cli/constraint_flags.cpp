#include "cli/constraint_flags.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "io/json_parse.h"
#include "runtime/json_schema.h"

namespace qnext::cli {

void ConstraintFlags::add_to(CLI::App* cmd) {
  auto* g = cmd->add_option("--grammar", grammar_file, "Constrain the output to a grammar file (GBNF-like; see README)")
                ->check(CLI::ExistingFile);
  auto* j = cmd->add_option("--json-schema", json_schema_file, "Constrain the output to JSON following this schema file")
                ->check(CLI::ExistingFile);
  g->excludes(j);
}

Result<std::shared_ptr<grammar::TokenMasker>> ConstraintFlags::load(const Tokenizer& tok,
                                                                    std::span<const int32_t> eos) const {
  if (grammar_file.empty() && json_schema_file.empty()) return std::shared_ptr<grammar::TokenMasker>();
  const std::string& path = grammar_file.empty() ? json_schema_file : grammar_file;
  std::ifstream f(path, std::ios::binary);
  std::ostringstream text;
  text << f.rdbuf();
  if (!f) return err(path + ": cannot read the file");
  std::string grammar_text = text.str();
  if (!json_schema_file.empty()) {
    auto schema = parse_json<nlohmann::ordered_json>(grammar_text, path);
    if (!schema) return err(schema.error());
    auto converted = json_schema_to_grammar(*schema);
    if (!converted) return err(path + ": " + converted.error());
    grammar_text = std::move(converted).value();
  }
  auto g = grammar::Grammar::parse(grammar_text);
  if (!g) return err(path + ": " + g.error());
  return std::make_shared<grammar::TokenMasker>(g.value(), grammar::GrammarVocab::from_tokenizer(tok, eos));
}

bool ConstraintFlags::apply_or_report(Generator& gen, const Tokenizer& tok, std::span<const int32_t> eos,
                                      bool mtp) const {
  auto constraint = load(tok, eos);
  if (!constraint) {
    std::fprintf(stderr, "error: %s\n", constraint.error().c_str());
    return false;
  }
  if (constraint.value() && mtp) {
    std::fprintf(stderr, "error: --mtp does not combine with --grammar / --json-schema yet\n");
    return false;
  }
  gen.set_grammar(constraint.value());
  return true;
}

}  // namespace qnext::cli
