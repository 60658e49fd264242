// Constrained decoding end to end: a random-weight model with the real Qwen vocabulary, forced by
// 20 JSON schemas, must end every generation with EOS (only allowed where the grammar ends) and
// write a document that parses, conforms to the schema by an independent checker
// (common/json_conforms.h), and is a sentence of the compiled grammar. A random model has no
// preference for sensible text, so it reaches corners of each grammar (long tokens, multi-byte
// characters, escapes, deep whitespace) that a trained model rarely does; its logits are peaked,
// though, so runs with different seeds often share a prefix.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/json_conforms.h"
#include "common/real_vocab.h"
#include "core/thread_pool.h"
#include "runtime/generator.h"
#include "runtime/grammar.h"
#include "runtime/grammar_mask.h"
#include "runtime/json_schema.h"

namespace qnext {
namespace {

using ordered_json = nlohmann::ordered_json;
using testing::json_conforms;

struct SchemaCase {
  const char* name;
  const char* schema;
};

// Every string has a maxLength and every array a maxItems, so each document is bounded and the
// grammar must reach its end within max_tokens (whitespace between tokens is bounded by the
// grammar itself).
const SchemaCase kSchemas[] = {
    {"FlatObject", R"({"type": "object", "additionalProperties": false, "required": ["name", "age"],
      "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 120}}})"},
    {"OptionalProperties", R"({"type": "object", "additionalProperties": false, "required": ["id"],
      "properties": {"a": {"type": "boolean"}, "id": {"type": "integer", "minimum": 1, "maximum": 9},
                     "b": {"type": "string", "maxLength": 4}, "c": {"type": "null"}}})"},
    {"MixedEnum", R"({"enum": ["red", 1, 2.5, true, null, {"a": 1}, [1, "x"], "\u00e9t\u00e9"]})"},
    {"ConstValues", R"({"type": "object", "additionalProperties": false, "required": ["kind", "v", "n"],
      "properties": {"kind": {"const": "point"}, "v": {"const": [1, "x", {"z": null}]}, "n": {"const": -7}}})"},
    {"TypeList", R"({"type": "array", "maxItems": 4, "items": {"type": ["string", "null", "integer", "boolean"],
      "maxLength": 5, "minimum": -3, "maximum": 3}})"},
    {"IntegerRanges", R"({"type": "array", "maxItems": 4, "minItems": 4, "prefixItems": [
      {"type": "integer", "minimum": -50, "maximum": 50},
      {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
      {"type": "integer", "minimum": 1000, "maximum": 99999},
      {"type": "integer", "minimum": -999, "maximum": -100}], "items": false})"},
    {"Numbers", R"({"type": "object", "additionalProperties": false, "required": ["x", "nonneg", "pos"],
      "properties": {"x": {"type": "number"}, "nonneg": {"type": "number", "minimum": 0},
                     "pos": {"type": "number", "exclusiveMinimum": 0}}})"},
    {"MultibyteStrings", R"({"type": "array", "minItems": 2, "maxItems": 3,
      "items": {"type": "string", "minLength": 2, "maxLength": 6}})"},
    {"ArrayBounds", R"({"type": "object", "additionalProperties": false, "required": ["one", "few", "exact"],
      "properties": {"one": {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "boolean"}},
                     "few": {"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 3}},
                     "exact": {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "integer", "minimum": 0, "maximum": 99}}}})"},
    {"PrefixItemsThenItems", R"({"type": "array", "minItems": 2, "maxItems": 5,
      "prefixItems": [{"type": "string", "maxLength": 5}, {"type": "integer", "minimum": 0, "maximum": 5}, {"type": "boolean"}],
      "items": {"type": "null"}})"},
    {"NestedObjects", R"({"type": "object", "additionalProperties": false, "required": ["person"],
      "properties": {"person": {"type": "object", "additionalProperties": false, "required": ["name", "address"],
        "properties": {"name": {"type": "string", "maxLength": 8},
          "address": {"type": "object", "additionalProperties": false, "required": ["city", "geo"],
            "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 8},
              "zip": {"type": "string", "minLength": 5, "maxLength": 5},
              "geo": {"type": "object", "additionalProperties": false, "required": ["lat"],
                "properties": {"lat": {"type": "integer", "minimum": -90, "maximum": 90},
                               "lon": {"type": "integer", "minimum": -180, "maximum": 180}}}}}}}}})"},
    {"ArrayOfObjects", R"({"type": "array", "maxItems": 3, "items": {"type": "object", "additionalProperties": false,
      "required": ["id", "tags"], "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 999},
        "tags": {"type": "array", "maxItems": 3, "items": {"enum": ["a", "b", "c", 0, false]}}}}})"},
    {"AnyOf", R"({"type": "array", "minItems": 1, "maxItems": 3, "items": {"anyOf": [
      {"type": "string", "maxLength": 5}, {"type": "integer", "minimum": 0, "maximum": 9},
      {"type": "object", "additionalProperties": false, "required": ["x"], "properties": {"x": {"type": "boolean"}}}]}})"},
    {"OneOfTagged", R"({"type": "array", "minItems": 3, "maxItems": 3, "items": {"oneOf": [
      {"type": "object", "additionalProperties": false, "required": ["shape", "r"],
       "properties": {"shape": {"const": "circle"}, "r": {"type": "integer", "minimum": 1, "maximum": 100}}},
      {"type": "object", "additionalProperties": false, "required": ["shape", "side"],
       "properties": {"shape": {"const": "square"}, "side": {"type": "integer", "minimum": 1, "maximum": 100}}},
      {"type": "integer", "minimum": 0, "maximum": 9}]}})"},
    {"RecursiveTree", R"({"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "additionalProperties": false,
      "required": ["v"], "properties": {"v": {"type": "integer", "minimum": 0, "maximum": 9},
        "kids": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/node"}}}}}})"},
    {"RecursiveRoot", R"({"type": "object", "additionalProperties": false, "required": ["name", "next"],
      "properties": {"name": {"type": "string", "maxLength": 3}, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}})"},
    {"Formats", R"({"type": "object", "additionalProperties": false, "required": ["day", "id"],
      "properties": {"day": {"type": "string", "format": "date"}, "id": {"type": "string", "format": "uuid"},
                     "days": {"type": "array", "maxItems": 2, "items": {"type": "string", "format": "date"}}}})"},
    {"ScalarsAndLengths", R"({"type": "object", "additionalProperties": false, "required": ["flag", "nothing", "code", "empty"],
      "properties": {"flag": {"type": "boolean"}, "nothing": {"type": "null"},
                     "code": {"type": "string", "minLength": 3, "maxLength": 3}, "empty": {"type": "string", "maxLength": 0}}})"},
    {"NestedArrays", R"({"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "array", "maxItems": 3,
      "items": {"type": "array", "maxItems": 2, "items": {"type": ["integer", "string"], "minimum": -5, "maximum": 5, "maxLength": 2}}}})"},
    {"Event", R"({"type": "object", "additionalProperties": false, "required": ["id", "when", "level", "who"],
      "$defs": {"person": {"type": "object", "additionalProperties": false, "required": ["name"],
                  "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 10}, "email": {"type": "string", "maxLength": 12}}},
                "level": {"enum": ["low", "mid", "high", 3]}},
      "properties": {"id": {"type": "string", "format": "uuid"}, "when": {"type": "string", "format": "date"},
        "level": {"$ref": "#/$defs/level"}, "who": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"$ref": "#/$defs/person"}},
        "note": {"anyOf": [{"type": "string", "maxLength": 8}, {"type": "null"}]},
        "score": {"type": "integer", "exclusiveMinimum": -10, "maximum": 10000}}})"},
};

// The vocabulary trie is built once per binary (46 ms on the Qwen vocabulary).
const std::vector<int32_t>& eos_ids() {
  static const std::vector<int32_t> ids = [] {
    const Tokenizer& tok = testing::qwen_tokenizer();
    return std::vector<int32_t>{*tok.token_id("<|im_end|>"), *tok.token_id("<|endoftext|>")};
  }();
  return ids;
}

const std::shared_ptr<const grammar::GrammarVocab>& vocab() {
  static const auto v = grammar::GrammarVocab::from_tokenizer(testing::qwen_tokenizer(), eos_ids());
  return v;
}

class ConstrainedGeneration : public ::testing::TestWithParam<SchemaCase> {
 protected:
  static void SetUpTestSuite() { set_num_threads(1); }  // many tiny forwards: workers only cost here
};

TEST_P(ConstrainedGeneration, EndsWithEosAndConforms) {
  const SchemaCase& c = GetParam();
  const ordered_json schema = ordered_json::parse(c.schema);
  auto text = json_schema_to_grammar(schema);
  ASSERT_TRUE(text.ok()) << text.error();
  auto g = grammar::Grammar::parse(*text);
  ASSERT_TRUE(g.ok()) << g.error() << "\n" << *text;
  const std::shared_ptr<const grammar::Grammar> grammar = g.value();
  // One masker for every run: the runs share its cache, as the engine's requests do.
  auto masker = std::make_shared<grammar::TokenMasker>(grammar, vocab());

  const Tokenizer& tok = testing::qwen_tokenizer();
  const std::vector<int32_t> prompt = tok.encode("Answer in JSON:");
  Generator gen(testing::real_vocab_model(), tok, SamplingParams{}, eos_ids());
  gen.set_grammar(masker);
  GenerateOptions opt;
  opt.max_tokens = 1500;  // far above any run seen; reaching it is a failure, not a limit to raise

  // Three seeds at temperature 1 and one greedy run.
  struct Run {
    float temperature;
    uint64_t seed;
  };
  for (const Run run : {Run{1.0f, 1}, Run{1.0f, 2}, Run{1.0f, 3}, Run{0.0f, 0}}) {
    SCOPED_TRACE("temperature " + std::to_string(run.temperature) + " seed " + std::to_string(run.seed));
    SamplingParams sp;
    sp.temperature = run.temperature;
    sp.seed = run.seed;
    gen.set_sampling(sp);
    auto r = gen.generate(prompt, opt);
    ASSERT_TRUE(r.ok()) << r.error();
    const GenerationResult& out = *r;
    EXPECT_EQ(out.stop, StopReason::Eos) << stop_reason_name(out.stop) << " after " << out.ids.size()
                                         << " tokens: " << out.text;
    EXPECT_TRUE(!out.ids.empty() && (out.ids.back() == eos_ids()[0] || out.ids.back() == eos_ids()[1]));
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(out.text);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not JSON (" << e.what() << "): " << out.text;
      continue;
    }
    EXPECT_EQ(json_conforms(doc, schema), "") << out.text;
    EXPECT_TRUE(grammar::accepts(grammar, out.text)) << out.text;
    if (std::getenv("QNEXT_SHOW_DOCS")) std::printf("%s %zu tokens: %s\n", c.name, out.ids.size(), out.text.c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Schemas, ConstrainedGeneration, ::testing::ValuesIn(kSchemas),
                         [](const ::testing::TestParamInfo<SchemaCase>& info) { return std::string(info.param.name); });

// The checker must reject what breaks each keyword the schemas above use, naming where, or the
// test above could pass vacuously.
TEST(JsonConforms, RejectsWrongDocuments) {
  struct Wrong {
    const char* schema;
    const char* doc;
    const char* error_part;  // the error must contain this (the path, or the rule broken)
  };
  const Wrong wrongs[] = {
      {R"({"type": "integer"})", "1.5", "type"},
      {R"({"type": ["string", "null"]})", "3", "type"},
      {R"({"type": "object", "required": ["a"], "properties": {"a": {}}})", R"({"b": 1})", "missing required \"a\""},
      {R"({"type": "object", "additionalProperties": false, "properties": {"a": {}}})", R"({"a": 1, "b": 2})", "\"b\" not allowed"},
      {R"({"properties": {"a": {"properties": {"b": {"type": "string"}}}}})", R"({"a": {"b": 1}})", "/a/b"},
      {R"({"enum": ["red", 1, null]})", R"("blue")", "enum"},
      {R"({"enum": [[1, "x"]]})", R"([1, "y"])", "enum"},
      {R"({"const": {"z": null}})", R"({"z": 0})", "const"},
      {R"({"items": {"type": "boolean"}})", "[true, 1]", "/1"},
      {R"({"prefixItems": [{"type": "string"}, {"type": "integer"}]})", R"(["a", "b"])", "/1"},
      {R"({"prefixItems": [{"type": "string"}], "items": {"type": "null"}})", R"(["a", null, 0])", "/2"},
      {R"({"minItems": 2})", "[1]", "fewer"},
      {R"({"maxItems": 1})", "[1, 2]", "more"},
      {R"({"minLength": 3})", "\"\xc3\xa9\xc3\xa9\"", "shorter"},  // 2 code points, 4 bytes
      {R"({"maxLength": 2})", "\"abc\"", "longer"},
      {R"({"minimum": 0})", "-1", "minimum"},
      {R"({"maximum": 10})", "10.5", "maximum"},
      {R"({"exclusiveMinimum": 0})", "0", "exclusiveMinimum"},
      {R"({"exclusiveMaximum": 10})", "10", "exclusiveMaximum"},
      {R"({"anyOf": [{"type": "string"}, {"type": "integer"}]})", "true", "anyOf"},
      {R"({"oneOf": [{"type": "number"}, {"type": "integer"}]})", "3", "2 oneOf"},
      {R"({"oneOf": [{"type": "string"}, {"type": "integer"}]})", "null", "0 oneOf"},
      {R"({"$ref": "#/$defs/n", "$defs": {"n": {"properties": {"k": {"items": {"$ref": "#/$defs/n"}}, "v": {"type": "integer"}}}}})",
       R"({"k": [{"k": [{"v": "x"}]}]})", "/k/0/k/0/v"},
      {R"({"properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}, "type": "object"})", R"({"next": {"next": 1}})", "anyOf"},
      {R"({"format": "date"})", R"("2023-02-29")", "not a date"},
      {R"({"format": "date"})", R"("2024-13-01")", "not a date"},
      {R"({"format": "uuid"})", R"("123e4567-e89b-12d3-a456-42661417400")", "not a uuid"},
      {R"({"format": "uuid"})", R"("123e4567-e89b-12d3-a456-42661417400g")", "not a uuid"},
      {R"({"pattern": "a*"})", R"("a")", "does not support keyword 'pattern'"},
  };
  for (const Wrong& w : wrongs) {
    const std::string err = json_conforms(nlohmann::json::parse(w.doc), ordered_json::parse(w.schema));
    EXPECT_NE(err.find(w.error_part), std::string::npos) << "schema " << w.schema << " doc " << w.doc << " error: " << err;
  }
  // ...and accept what conforms, including the cases JSON Schema spells out: 2.0 is an integer,
  // 1 equals 1.0 in enum, a leap day, an uppercase uuid, an absent optional property.
  const std::pair<const char*, const char*> rights[] = {
      {R"({"type": "integer"})", "2.0"},
      {R"({"enum": [1.0]})", "1"},
      {R"({"format": "date"})", R"("2024-02-29")"},
      {R"({"format": "uuid"})", R"("123E4567-E89B-12D3-A456-426614174000")"},
      {R"({"maxLength": 2, "minLength": 2})", "\"\xe4\xbd\xa0\xe5\xa5\xbd\""},
      {R"({"type": "object", "required": ["a"], "properties": {"a": {}, "b": {"type": "null"}}})", R"({"a": 0})"},
  };
  for (const auto& [schema, doc] : rights)
    EXPECT_EQ(json_conforms(nlohmann::json::parse(doc), ordered_json::parse(schema)), "") << schema << " " << doc;
}

}  // namespace
}  // namespace qnext
