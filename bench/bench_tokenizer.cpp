// Tokenizer throughput on tests/data/tokenizer/bench_text.txt (51 KB of mixed text).
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const qnext::Tokenizer* tokenizer() {
  static auto t = qnext::Tokenizer::load(std::string(QNEXT_TEST_DATA) + "/../../assets/tokenizer");
  return t.ok() ? &t.value() : nullptr;
}

const std::string& bench_text() {
  static const std::string text = slurp(std::string(QNEXT_TEST_DATA) + "/tokenizer/bench_text.txt");
  return text;
}

void BM_Encode(benchmark::State& state) {
  const auto* tok = tokenizer();
  if (!tok) {
    state.SkipWithError("cannot load assets/tokenizer");
    return;
  }
  const std::string& text = bench_text();
  size_t n = 0;
  for (auto _ : state) {
    auto ids = tok->encode(text);
    n = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
  state.counters["tokens"] = double(n);
}
BENCHMARK(BM_Encode)->Unit(benchmark::kMillisecond);

void BM_Decode(benchmark::State& state) {
  const auto* tok = tokenizer();
  if (!tok) {
    state.SkipWithError("cannot load assets/tokenizer");
    return;
  }
  auto ids = tok->encode(bench_text());
  for (auto _ : state) {
    std::string s = tok->decode(ids);
    benchmark::DoNotOptimize(s.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bench_text().size()));
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

void BM_Load(benchmark::State& state) {
  for (auto _ : state) {
    auto t = qnext::Tokenizer::load(std::string(QNEXT_TEST_DATA) + "/../../assets/tokenizer");
    benchmark::DoNotOptimize(t.ok());
  }
}
BENCHMARK(BM_Load)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace

BENCHMARK_MAIN();
