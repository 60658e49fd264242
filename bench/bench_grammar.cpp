// Constrained decoding's costs on the real Qwen vocabulary (151,936 ids): building the vocabulary
// trie, compiling a 50-property JSON schema, and the token mask per step while a document is
// written, cold (each grammar position walked the first time) and warm (from the cache).
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include "runtime/grammar.h"
#include "runtime/grammar_mask.h"
#include "runtime/json_schema.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace qnext::grammar;
using json = nlohmann::ordered_json;

const qnext::Tokenizer* tokenizer() {
  static auto t = qnext::Tokenizer::load(std::string(QNEXT_TEST_DATA) + "/../../assets/tokenizer");
  return t.ok() ? &t.value() : nullptr;
}

std::shared_ptr<const GrammarVocab> vocab() {
  static auto v = GrammarVocab::from_tokenizer(*tokenizer(), std::vector<int32_t>{151645, 151643});
  return v;
}

// 50 properties of mixed types, all required.
json schema50() {
  json props = json::object();
  json required = json::array();
  const char* kinds[] = {"string", "integer", "boolean", "enum", "array"};
  for (int i = 0; i < 50; ++i) {
    std::string name = "field_" + std::to_string(i);
    std::string kind = kinds[i % 5];
    if (kind == "enum") props[name] = {{"enum", {"red", "green", "blue"}}};
    else if (kind == "array") props[name] = {{"type", "array"}, {"items", {{"type", "integer"}}}, {"maxItems", 4}};
    else if (kind == "string") props[name] = {{"type", "string"}, {"maxLength", 24}};
    else props[name] = {{"type", kind}};
    required.push_back(name);
  }
  return {{"type", "object"}, {"properties", props}, {"required", required}, {"additionalProperties", false}};
}

// A document of schema50 as the model would write it.
std::string document50() {
  json doc = json::object();
  for (int i = 0; i < 50; ++i) {
    std::string name = "field_" + std::to_string(i);
    switch (i % 5) {
      case 0: doc[name] = "value number " + std::to_string(i) + " é"; break;
      case 1: doc[name] = i * 37; break;
      case 2: doc[name] = i % 2 == 0; break;
      case 3: doc[name] = "green"; break;
      default: doc[name] = {1, 2, i}; break;
    }
  }
  return doc.dump(1);
}

void BM_VocabTrie(benchmark::State& state) {
  if (!tokenizer()) return state.SkipWithError("cannot load assets/tokenizer");
  for (auto _ : state) {
    auto v = GrammarVocab::from_tokenizer(*tokenizer(), std::vector<int32_t>{151645});
    benchmark::DoNotOptimize(v.get());
  }
}
BENCHMARK(BM_VocabTrie)->Unit(benchmark::kMillisecond);

void BM_CompileSchema50(benchmark::State& state) {
  const json schema = schema50();
  for (auto _ : state) {
    auto text = qnext::json_schema_to_grammar(schema);
    auto g = Grammar::parse(text.value());
    benchmark::DoNotOptimize(g.value().get());
  }
}
BENCHMARK(BM_CompileSchema50)->Unit(benchmark::kMicrosecond);

// Writes document50 token by token: per step, the mask and the accept. arg 0: a fresh masker
// each pass (every position walked once: the first request with this schema); 1: warm cache.
void BM_MaskPerToken(benchmark::State& state) {
  if (!tokenizer()) return state.SkipWithError("cannot load assets/tokenizer");
  const bool warm = state.range(0) == 1;
  auto g = Grammar::parse(qnext::json_schema_to_grammar(schema50()).value()).value();
  const std::vector<int32_t> ids = tokenizer()->encode(document50());
  auto masker = std::make_shared<TokenMasker>(g, vocab());
  std::vector<float> logits(151936);
  auto pass = [&] {
    GrammarConstraint c(masker);
    for (int32_t id : ids) {
      c.apply(logits);
      if (!c.accept(id)) return false;
    }
    return true;
  };
  if (warm && !pass()) return state.SkipWithError("the document does not follow the grammar");
  size_t steps = 0;
  for (auto _ : state) {
    if (!warm) {
      state.PauseTiming();
      masker = std::make_shared<TokenMasker>(g, vocab());
      state.ResumeTiming();
    }
    if (!pass()) return state.SkipWithError("the document does not follow the grammar");
    steps += ids.size();
  }
  state.counters["tokens"] = double(ids.size());
  state.counters["per_token_us"] =
      benchmark::Counter(double(steps) * 1e-6, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["states"] = double(masker->cached_states());
  state.counters["cache_MB"] = double(masker->cached_bytes()) / 1e6;
}
BENCHMARK(BM_MaskPerToken)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
