// Microbenchmarks of llama.cpp's K-quant blocks (Q4_K, Q6_K) against Q8_0: one token (decode,
// bytes/s of weights read) and 64 tokens (prefill, flops), with float activations (exact mode,
// QNEXT_ACTIVATIONS=f32) and int8 activations (the default; kernels/ggml_blocks_q8.h). Run with
// --benchmark_enable_random_interleaving=true --benchmark_repetitions=N for alternating medians.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "core/bandwidth.h"
#include "core/cpu.h"
#include "core/thread_pool.h"
#include "kernels/ggml_blocks.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"

namespace qnext {
namespace {

// Random levels and scales; the f16 scale fields normal and small (no subnormals, no NaN).
struct Weights {
  std::vector<uint8_t> bytes;
  Matrix m;
  Weights(DType t, int64_t rows, int64_t cols) {
    std::mt19937 rng(1);
    bytes.resize(size_t(rows) * row_bytes(t, cols));
    for (auto& b : bytes) b = uint8_t(rng());
    std::vector<size_t> f16s;
    if (t == DType::Q4_K) f16s = {offsetof(BlockQ4K, d), offsetof(BlockQ4K, dmin)};
    if (t == DType::Q6_K) f16s = {offsetof(BlockQ6K, d)};
    if (t == DType::Q8_0) f16s = {0};
    const size_t bb = block_bytes(t);
    for (size_t i = 0; i < bytes.size() / bb; ++i)
      for (size_t off : f16s) {
        const uint16_t h = f32_to_f16(std::ldexp(1.0f + float(rng() % 100) / 100.0f, -8));
        std::memcpy(bytes.data() + i * bb + off, &h, 2);
      }
    m = Matrix{t, bytes.data(), rows, cols};
  }
};

// mode 0: float activations (exact), 1: int8 activations.
void run(benchmark::State& state, int T, int64_t rows) {
  const DType t = DType(state.range(0));
  const bool exact = state.range(1) == 0;
  const int threads = int(state.range(2));
  set_active_isa(best_isa());
  set_num_threads(threads);
  set_exact_activations(exact);
  const int64_t cols = 2048;
  static std::vector<std::pair<std::pair<int, int64_t>, Weights*>> cache;
  Weights* wt = nullptr;
  for (auto& [key, w] : cache)
    if (key.first == int(t) && key.second == rows) wt = w;
  if (!wt) cache.push_back({{int(t), rows}, wt = new Weights(t, rows, cols)});
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(size_t(T) * size_t(cols)), y(size_t(T) * size_t(rows));
  for (auto& v : x) v = nd(rng);
  for (auto _ : state) {
    matmul(wt->m, x.data(), T, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_exact_activations(false);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(wt->m.bytes()));
  state.counters["Gweights/s"] =
      benchmark::Counter(double(rows) * double(cols) * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2e-9 * double(rows) * double(cols) * T * double(state.iterations()), benchmark::Counter::kIsRate);
}

// 131072 x 2048: 151 MB at Q4_K, 220 MB at Q6_K, 285 MB at Q8_0, well past the L3 (decoding reads
// its weights from memory; BM_ReadBandwidth is the memory's pace at the same moment).
void BM_KMatvec(benchmark::State& s) { run(s, 1, 131072); }
// 1024 x 2048 from cache: the kernel's arithmetic ceiling.
void BM_KMatvecCached(benchmark::State& s) { run(s, 1, 1024); }
void BM_KMatmul64(benchmark::State& s) { run(s, 64, 16384); }
// An expert's share of a 512-token prompt (512 x 10 routed / 512 experts): 10 tokens a weight row.
void BM_KMatmul10(benchmark::State& s) { run(s, 10, 16384); }

void args(benchmark::internal::Benchmark* b, int threads) {
  for (DType t : {DType::Q4_K, DType::Q6_K, DType::Q8_0})
    for (int mode : {0, 1}) b->Args({int64_t(t), mode, threads});
  b->ArgNames({"dtype", "int8", "threads"})->UseRealTime();
}
BENCHMARK(BM_KMatvec)->Apply([](auto* b) { args(b, 1); });
BENCHMARK(BM_KMatvec)->Apply([](auto* b) { args(b, 2); });
BENCHMARK(BM_KMatvecCached)->Apply([](auto* b) { args(b, 1); });
BENCHMARK(BM_KMatvecCached)->Apply([](auto* b) { args(b, 2); });

// The read-bandwidth probe of `qnext bench` over 256 MiB, to run beside BM_KMatvec (filter both).
void BM_ReadBandwidth(benchmark::State& state) {
  const size_t bytes = size_t(256) << 20;
  for (auto _ : state) state.SetIterationTime(double(bytes) / (measure_read_bandwidth(int(state.range(0)), bytes, 1) * 1e9));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->ArgName("threads")->UseManualTime();
BENCHMARK(BM_KMatmul64)->Apply([](auto* b) { args(b, 2); });
BENCHMARK(BM_KMatmul64)->Apply([](auto* b) { args(b, 1); });
BENCHMARK(BM_KMatmul10)->Apply([](auto* b) { args(b, 1); });

}  // namespace
}  // namespace qnext

BENCHMARK_MAIN();
