// Microbenchmarks of the kernels, per ISA: matrix-vector (decode) and matrix-matrix (prefill)
// products over BF16 / Q8_0 / Q4_0 / FP8 / int4 weights, the delta rule, attention. Bytes/s is weight bytes
// read; compare it with the machine's read bandwidth (`qnext bench` measures it).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "core/bandwidth.h"
#include "core/cpu.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/delta_rule.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/silu.h"

namespace qnext {
namespace {

// A weight matrix well beyond the caches (like one expert group or a projection slab).
// FP8: normal weights as the published checkpoints store them (e4m3 codes, each 128 x 128 block
// scaled by its largest magnitude / 448, an F32 scale), so ~1e-4 of the codes are subnormal or zero
// as there (the bf16 decode kernel takes a slower branch for them); I4: random nibbles, a BF16
// scale per group of 128 (symmetric, as the W4A16 release).
struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<float> scales32;
  std::vector<uint16_t> scales16;
  Matrix m;
  Weights(DType t, int64_t rows, int64_t cols) {
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0, 1);
    if (t == DType::F8_E4M3 || t == DType::I4) {
      bytes.resize(size_t(rows) * row_bytes(t, cols));
      for (auto& b : bytes) b = uint8_t(rng());
      m = Matrix{t, bytes.data(), rows, cols};
      m.group = 128;
      if (t == DType::F8_E4M3) {
        m.group_rows = 128;
        scales32.assign(size_t(m.scale_rows() * m.scale_cols()), 0.0f);
        std::vector<float> block(128 * 128);  // [128 rows, 128 columns]
        for (int64_t rb = 0; rb < m.scale_rows(); ++rb)
          for (int64_t cb = 0; cb < m.scale_cols(); ++cb) {
            float largest = 0;
            for (float& v : block) largest = std::max(largest, std::fabs(v = d(rng)));
            const float scale = largest / 448.0f;
            scales32[size_t(rb * m.scale_cols() + cb)] = scale;
            for (int64_t i = 0; i < std::min<int64_t>(128, rows - rb * 128); ++i)
              for (int64_t k = 0; k < std::min<int64_t>(128, cols - cb * 128); ++k)
                bytes[size_t((rb * 128 + i) * cols + cb * 128 + k)] = f32_to_e4m3(block[size_t(i * 128 + k)] / scale);
          }
        m.scales = scales32.data();
        m.scale_dtype = DType::F32;
      } else {
        scales16.assign(size_t(m.scale_rows() * m.scale_cols()), f32_to_bf16(1e-2f));
        m.scales = scales16.data();
        m.scale_dtype = DType::BF16;
      }
      return;
    }
    bytes.resize(size_t(rows) * row_bytes(t, cols));
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (float& v : row) v = d(rng);
      uint8_t* dst = bytes.data() + size_t(r) * row_bytes(t, cols);
      if (is_quantized(t)) quantize_row(t, row.data(), cols, dst);
      else
        for (int64_t k = 0; k < cols; ++k) reinterpret_cast<uint16_t*>(dst)[k] = f32_to_bf16(row[size_t(k)]);
    }
    m = Matrix{t, bytes.data(), rows, cols};
  }
};

// The benchmarks' [rows, 2048] matrix of type t, made on first use and kept for the process (a
// few sizes: 131072 rows for decoding, 16384 for prefill, 1024 in cache).
const Weights& shared_weights(DType t, int64_t rows) {
  static std::map<std::pair<DType, int64_t>, std::unique_ptr<Weights>> made;
  auto& w = made[{t, rows}];
  if (!w) w = std::make_unique<Weights>(t, rows, 2048);
  return *w;
}

// Decoding (T = 1) streams weights from memory, so its matrix is 4x the 32 MiB L3 of a typical
// server core complex even at 4 bits; the prefill products reuse each row across T tokens.
// rows_override: a matrix that stays in the L2/L3 caches, to see the kernel's arithmetic ceiling.
void run_matmul(benchmark::State& state, DType t, Isa isa, int T, int threads, int64_t rows_override = 0) {
  if (isa > best_isa()) {
    state.SkipWithError("ISA not supported by this CPU");
    return;
  }
  set_active_isa(isa);
  set_num_threads(threads);
  const int64_t rows = rows_override ? rows_override : T == 1 ? 131072 : 16384, cols = 2048;
  const Weights* wt = &shared_weights(t, rows);
  std::vector<float> x(size_t(T) * size_t(cols), 0.5f), y(size_t(T) * size_t(rows));
  for (auto _ : state) {
    matmul(wt->m, x.data(), T, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(wt->m.bytes()));
  state.counters["flops"] =
      benchmark::Counter(2.0 * double(rows) * double(cols) * T * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Matvec(benchmark::State& s) { run_matmul(s, DType(s.range(0)), Isa(s.range(1)), 1, int(s.range(2))); }
// 1024 x 2048 weights (1-4 MiB): from cache, so bytes/s well above the memory's means the kernel
// can keep up with memory; near it means the arithmetic, not the memory, bounds BM_Matvec.
void BM_MatvecCached(benchmark::State& s) { run_matmul(s, DType(s.range(0)), Isa(s.range(1)), 1, int(s.range(2)), 1024); }
void BM_Matmul64(benchmark::State& s) { run_matmul(s, DType(s.range(0)), Isa(s.range(1)), 64, int(s.range(2))); }
// An expert's share of a 512-token prompt (512 x 10 routed / 512 experts): each weight row is
// converted or unpacked for only 10 tokens, so the per-weight costs show.
void BM_Matmul10(benchmark::State& s) { run_matmul(s, DType(s.range(0)), Isa(s.range(1)), 10, int(s.range(2))); }
void BM_Matmul10Cached(benchmark::State& s) { run_matmul(s, DType(s.range(0)), Isa(s.range(1)), 10, int(s.range(2)), 1024); }

void matmul_args(benchmark::internal::Benchmark* b) {
  for (DType t : {DType::BF16, DType::Q8_0, DType::Q4_0, DType::F8_E4M3, DType::I4})
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
      for (int threads : {1, 2}) b->Args({int64_t(t), int64_t(isa), threads});
  b->ArgNames({"dtype", "isa", "threads"})->UseRealTime();
}
BENCHMARK(BM_Matvec)->Apply(matmul_args);

// The read-bandwidth probe of `qnext bench` over a buffer the size of BM_Matvec's BF16 matrix: run
// beside BM_Matvec (--benchmark_repetitions alternates nothing, so filter both into one run) it is
// the decode kernels' limit at the same moment of a noisy machine. Timed reads only (manual time).
void BM_ReadBandwidth(benchmark::State& state) {
  const size_t bytes = size_t(131072) * 2048 * 2;
  for (auto _ : state) state.SetIterationTime(double(bytes) / (measure_read_bandwidth(int(state.range(0)), bytes, 1) * 1e9));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->ArgName("threads")->UseManualTime();
BENCHMARK(BM_MatvecCached)->Apply(matmul_args);

// One decoded token's routed experts as the model runs them: 10 distinct experts of the matrix's
// 85 (gate and up [512, 2048], down [2048, 512], each a 1536-row slice of BM_Matvec's matrix), as
// two matmul_group calls of 20 then 10 products (0.5-2 MiB each). Unlike BM_Matvec's one long
// stream, each thread's work is many short runs of memory, as in `qnext bench`'s decode. Each
// iteration takes the next 10 experts in turn, so none was read in the iteration before.
// cached: the 10 drawn from the first 2 experts only (3-12 MiB), to see the arithmetic's ceiling
// on these shapes (short rows: the down projection's 512 weights).
void BM_MatvecExperts(benchmark::State& state) {
  const DType t = DType(state.range(0));
  const Isa isa = Isa(state.range(1));
  if (isa > best_isa()) return state.SkipWithError("ISA not supported by this CPU");
  set_active_isa(isa);
  set_num_threads(int(state.range(2)));
  const bool cached = state.range(3) != 0;
  const int64_t rows = 131072, cols = 2048, inter = 512, experts = rows / (3 * inter), picked = 10;
  const Matrix& all = shared_weights(t, rows).m;
  auto slice = [&](int64_t r0, int64_t n, int64_t k) {  // rows [r0, r0 + n) as [n * cols / k, k]
    Matrix m = all;
    m.data = all.row_ptr(r0);
    m.rows = n * cols / k;
    m.cols = k;  // FP8 / int4 keep the matrix's first side scales: all hold the same constant
    return m;
  };
  std::vector<Matrix> gate, up, down;  // [experts]
  for (int64_t e = 0; e < experts; ++e) {
    gate.push_back(slice(3 * inter * e, inter, cols));
    up.push_back(slice(3 * inter * e + inter, inter, cols));
    down.push_back(slice(3 * inter * e + 2 * inter, inter, inter));
  }
  std::vector<float> x(size_t(cols), 0.5f), h(size_t(picked) * 2 * size_t(inter), 0.25f), y(size_t(picked) * size_t(cols));
  std::vector<Product> first, second;
  int64_t bytes = 0, next = 0;
  for (auto _ : state) {
    first.clear();
    second.clear();
    for (int64_t j = 0; j < picked; ++j) {
      const size_t e = size_t(next++ % (cached ? 2 : experts));
      first.push_back({&gate[e], x.data(), 1, h.data() + size_t(2 * j) * size_t(inter)});
      first.push_back({&up[e], x.data(), 1, h.data() + size_t(2 * j + 1) * size_t(inter)});
      second.push_back({&down[e], h.data() + size_t(2 * j) * size_t(inter), 1, y.data() + size_t(j) * size_t(cols)});
      bytes += int64_t(gate[e].bytes() + up[e].bytes() + down[e].bytes());
    }
    matmul_group(first.data(), first.size());
    matmul_group(second.data(), second.size());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_MatvecExperts)
    ->ArgsProduct({{int64_t(DType::BF16), int64_t(DType::Q8_0), int64_t(DType::Q4_0), int64_t(DType::F8_E4M3),
                    int64_t(DType::I4)},
                   {int64_t(Isa::Avx2), int64_t(Isa::Avx512)},
                   {1, 2},
                   {0, 1}})
    ->ArgNames({"dtype", "isa", "threads", "cached"})
    ->UseRealTime();

// BF16 weights on the float kernels and the bf16 kernel (vdpbf16ps), split over the threads as
// matmul splits rows. kernel: 0 the float row kernel (what BF16 runs on AVX-512 below
// kFloatPanelMinTokens tokens), 1 the packed float GEMM (what other float weights run from
// kGemmMinTokens tokens), 2 two activation terms (x = hi + lo), 3 one (x rounded to bf16:
// QNEXT_ACTIVATIONS=bf16), 4 the float panels (rows in the lanes: what BF16 runs from
// kFloatPanelMinTokens tokens on AVX-512). T 1-2:
// decoding (the 512 MiB matrix, or the 4 MiB one with cached:1); 10 and up: an expert's share of
// a prompt, up to a dense projection's (the 64 MiB matrix).
void BM_Bf16Terms(benchmark::State& state) {
  if (best_isa() < Isa::Avx512 || !cpu_has_avx512_bf16()) {
    state.SkipWithError("needs AVX512-BF16");
    return;
  }
  const int kernel = int(state.range(0));
  const bool cached = state.range(1) != 0;
  const int T = int(state.range(2)), threads = int(state.range(3));
  set_active_isa(Isa::Avx512);
  set_num_threads(threads);
  const int64_t rows = cached ? 1024 : T <= 2 ? 131072 : 16384, cols = 2048;
  const Weights* wt = &shared_weights(DType::BF16, rows);
  std::vector<float> x(size_t(T) * size_t(cols), 0.5f), y(size_t(T) * size_t(rows));
  for (auto _ : state) {
    global_pool().parallel_for(size_t(rows), [&](size_t b, size_t e, int) {
      const int64_t r0 = int64_t(b), r1 = int64_t(e);
      switch (kernel) {
        case 0: matmul_rows_avx512(wt->m, x.data(), T, y.data(), rows, r0, r1); break;
        case 1: gemm_rows_avx2(wt->m, x.data(), T, y.data(), rows, r0, r1); break;
        case 4: gemm_float_panels_avx512(wt->m, x.data(), T, y.data(), rows, r0, r1); break;
        case 2: gemm_bf16_rows_avx512(wt->m, x.data(), T, y.data(), rows, r0, r1, Bf16Terms::HiLo); break;
        default: gemm_bf16_rows_avx512(wt->m, x.data(), T, y.data(), rows, r0, r1, Bf16Terms::One); break;
      }
    }, 16);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(wt->m.bytes()));
  state.counters["flops"] =
      benchmark::Counter(2.0 * double(rows) * double(cols) * T * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Bf16Terms)
    ->ArgsProduct({{0, 1, 2, 3, 4}, {0, 1}, {1, 2, 10, 16, 24, 32, 64, 512}, {1, 2}})
    ->ArgNames({"kernel", "cached", "T", "threads"})
    ->UseRealTime();
BENCHMARK(BM_Matmul64)->Apply(matmul_args);
BENCHMARK(BM_Matmul10)->Apply(matmul_args);
BENCHMARK(BM_Matmul10Cached)->Apply(matmul_args);

void BM_DeltaRule(benchmark::State& state) {
  const int T = int(state.range(0)), Dk = 128, Dv = 128;
  const bool chunked = state.range(1);
  const Isa isa = Isa(state.range(2));
  if (isa > best_isa()) {
    state.SkipWithError("ISA not supported by this CPU");
    return;
  }
  set_active_isa(isa);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  std::vector<float> q(size_t(T) * Dk), k(size_t(T) * Dk), v(size_t(T) * Dv), g(static_cast<size_t>(T), -0.1f),
      beta(static_cast<size_t>(T), 0.5f), o(size_t(T) * Dv), S(size_t(Dk) * Dv), scratch(delta_rule_scratch_floats(Dk, Dv));
  for (auto* vec : {&q, &k, &v}) for (float& f : *vec) f = u(rng);
  DeltaRuleHead h{q.data(), k.data(), v.data(), g.data(), beta.data(), size_t(Dk), size_t(Dv), 1, o.data(), size_t(Dv)};
  for (auto _ : state) {
    if (chunked) delta_rule_chunked(h, T, Dk, Dv, S.data(), scratch.data());
    else delta_rule_recurrent(h, T, Dk, Dv, S.data());
    benchmark::DoNotOptimize(o.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * T);  // tokens per head
}
BENCHMARK(BM_DeltaRule)->ArgsProduct({{1, 64, 512}, {0, 1}, {0, 1, 2}})->ArgNames({"T", "chunked", "isa"});

// SiLU over one decoded token's share of a DeltaNet layer (the conv's 8192 channels, the gated
// norm's 4096, ten experts' and the shared expert's 5632 SwiGLU lanes): isa 0 the scalar twin
// (std::exp), 1 the AVX2 variant. Values in [-8, 8], as activations are.
void BM_Silu(benchmark::State& state) {
  const Isa isa = Isa(state.range(0));
  if (isa > best_isa()) return state.SkipWithError("ISA not supported by this CPU");
  const int64_t n = 8192 + 4096 + 5632;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-8.0f, 8.0f);
  std::vector<float> x(size_t(n), 0.0f), y(size_t(n), 0.0f);
  for (float& f : x) f = u(rng);
  for (auto _ : state) {
    if (isa == Isa::Scalar) silu_mul_scalar(x.data(), nullptr, n, y.data());
    else silu_mul_avx2(x.data(), nullptr, n, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * n);
}
BENCHMARK(BM_Silu)->Arg(0)->Arg(1)->ArgName("isa");

// The DeltaNet's causal conv + SiLU for one decoded token: Qwen3-Next's 8192 channels (q, k, v)
// and 4 taps; isa 0 the scalar twin (its SiLU std::exp's), 1 the AVX2 variant.
void BM_Conv(benchmark::State& state) {
  const Isa isa = Isa(state.range(0));
  if (isa > best_isa()) return state.SkipWithError("ISA not supported by this CPU");
  const size_t C = 8192, K = 4;
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(C), w(C * K), conv_state((K - 1) * C), y(C);
  for (auto* v : {&x, &w, &conv_state}) for (float& f : *v) f = u(rng);
  for (auto _ : state) {
    if (isa == Isa::Scalar) conv1d_silu_scalar(x.data(), 1, int(C), w.data(), int(K), conv_state.data(), y.data());
    else conv1d_silu_avx2(x.data(), 1, int(C), w.data(), int(K), conv_state.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(C));
}
BENCHMARK(BM_Conv)->Arg(0)->Arg(1)->ArgName("isa");

// A GQA group's 8 query heads for one decoded token (queries 8) or a prefill block of 8 or 16
// tokens (queries 64, 128) over L cached positions, D 256, laid out as the model lays them: one
// head's cache rows contiguous (head-major cache), the queries in a [tokens, 16 heads, 2 D] buffer
// (each query beside its gate) and the outputs in [tokens, 16 heads, D], this group the first 8
// heads. cache: 0 f32, 1 f16, 2 q8_0. kernel: 1 the AVX2 kernel, 2 the AVX-512 one. Bytes/s counts
// the keys and values read; GFLOP/s the products' arithmetic (2 * 2 * n * L * D).
void BM_AttentionQueries(benchmark::State& state) {
  const int L = int(state.range(0)), n = int(state.range(1)), D = 256, stride = D, heads = 16, group = 8;
  const DType cache = state.range(2) == 2 ? DType::Q8_0 : state.range(2) == 1 ? DType::F16 : DType::F32;
  const Isa kernel = Isa(state.range(3));
  if (best_isa() < kernel) return state.SkipWithError("this CPU lacks the kernel's ISA");
  const auto run = kernel == Isa::Avx512 ? attention_queries_avx512 : attention_queries_avx2;
  const int tokens = n / group;
  // Random numbers (the scores' spread made no difference to the speed).
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> qs(size_t(tokens) * heads * 2 * D), outs(size_t(tokens) * heads * D), K(size_t(L) * stride),
      V(size_t(L) * stride);
  for (float& x : qs) x = normal(rng);
  for (float& x : K) x = normal(rng);
  for (float& x : V) x = normal(rng);
  std::vector<uint16_t> K16, V16;
  std::vector<BlockQ8_0> Kq, Vq;
  KvHead kv{K.data(), V.data(), size_t(stride), DType::F32};
  if (cache == DType::F16) {
    K16.resize(K.size()), V16.resize(V.size());
    for (size_t i = 0; i < K.size(); ++i) K16[i] = f32_to_f16(K[i]), V16[i] = f32_to_f16(V[i]);
    kv = KvHead{K16.data(), V16.data(), size_t(stride), DType::F16};
  } else if (cache == DType::Q8_0) {
    Kq.resize(K.size() / kQuantBlock), Vq.resize(V.size() / kQuantBlock);
    quantize_row_q8_0(K.data(), int64_t(K.size()), Kq.data());
    quantize_row_q8_0(V.data(), int64_t(V.size()), Vq.data());
    kv = KvHead{Kq.data(), Vq.data(), size_t(stride), DType::Q8_0};
  }
  std::vector<const float*> q;
  std::vector<float*> out;
  std::vector<int> n_keys;
  for (int t = 0; t < tokens; ++t)
    for (int h = 0; h < group; ++h) {
      q.push_back(qs.data() + (size_t(t) * heads + h) * 2 * D);
      out.push_back(outs.data() + (size_t(t) * heads + h) * D);
      n_keys.push_back(L - tokens + t + 1);
    }
  for (auto _ : state) {
    run(q.data(), n_keys.data(), n, kv, D, 0.0625f, out.data());
    benchmark::DoNotOptimize(outs.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * L * 2 * int64_t(row_bytes(cache, D)));
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * n * L * D * double(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}
// L 65536: the cache from DRAM, as when decoding at depth (one decoded token's 8 queries only).
BENCHMARK(BM_AttentionQueries)
    ->ArgsProduct({{512, 8192}, {8, 64, 128}, {0, 1, 2}, {1, 2}})
    ->ArgsProduct({{65536}, {8}, {0, 1, 2}, {1, 2}})
    ->ArgNames({"L", "queries", "cache", "kernel"});

}  // namespace
}  // namespace qnext

BENCHMARK_MAIN();
