// Steady decoding allocates nothing: after a warm-up token and a reserved KV cache, each decode
// step (the forward pass on 2 threads, every kernel ISA, float and quantized weights) and each
// sampling draw runs on memory it already holds. This binary replaces the global operator new to
// count the allocations made while `counting` is on, by any thread.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "common/golden.h"
#include "core/cpu.h"
#include "core/thread_pool.h"
#include "model/qwen3_next.h"
#include "runtime/sampling.h"

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};

void* counted_alloc(size_t n, size_t align) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align) : std::malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(size_t n) { return counted_alloc(n, 0); }
void* operator new[](size_t n) { return counted_alloc(n, 0); }
void* operator new(size_t n, std::align_val_t a) { return counted_alloc(n, size_t(a)); }
void* operator new[](size_t n, std::align_val_t a) { return counted_alloc(n, size_t(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace qnext {
namespace {

// Allocations made by fn(), from any thread.
template <class F>
long allocations_during(F&& fn) {
  allocations = 0;
  counting = true;
  fn();
  counting = false;
  return allocations.load();
}

// The counter itself works: a vector's growth inside the window counts, also on a pool thread.
TEST(DecodeAlloc, CounterSeesAllocations) {
  set_num_threads(2);
  EXPECT_GE(allocations_during([] { std::vector<float> v(100); v[0] = 1; }), 1);
  EXPECT_GE(allocations_during([] {
              global_pool().parallel_for(2, [](size_t, size_t, int t) {
                if (t == 1) std::vector<int> v(10);
              });
            }),
            1);
  // A job capturing more than std::function keeps inline (16 bytes) is handed over as it is.
  std::atomic<int> a{0}, b{0}, c{0};
  EXPECT_EQ(allocations_during([&] {
              global_pool().parallel_tasks(8, [&](size_t i, int) { (i % 3 == 0 ? a : i % 3 == 1 ? b : c)++; });
              global_pool().parallel_for(8, [&](size_t i0, size_t i1, int) { a += int(i1 - i0) * int(b.load() > 0 && c.load() > 0); });
            }),
            0)
      << "handing a job to the pool allocates";
  EXPECT_EQ(a + b + c, 16);
}

void expect_decode_allocates_nothing(const std::string& model_dir, QuantRecipe recipe) {
  set_num_threads(2);
  auto loaded = Model::load(model_dir, recipe);
  ASSERT_TRUE(loaded) << loaded.error();
  Model& model = *loaded.value();
  const int V = model.config().vocab_size;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (isa > best_isa()) continue;  // reported at the end
    set_active_isa(isa);
    SequenceState state = model.new_state();
    constexpr int kSteps = 24;
    state.reserve(64, false);
    std::vector<int32_t> prompt = {1, 5, 9, 14, 3, 7, 11, 2};
    std::vector<float> logits;
    model.forward(state, prompt, ForwardOptions{}, nullptr, &logits);
    int32_t next = 4;
    model.forward(state, std::span<const int32_t>(&next, 1), ForwardOptions{}, nullptr, &logits);  // warm-up
    const long n = allocations_during([&] {
      for (int i = 0; i < kSteps; ++i) {
        next = int32_t((next * 31 + 7) % V);
        model.forward(state, std::span<const int32_t>(&next, 1), ForwardOptions{}, nullptr, &logits);
      }
    });
    EXPECT_EQ(n, 0) << recipe_name(recipe) << " on " << isa_name(isa) << ": " << n << " allocations in " << kSteps
                    << " decode steps";
    EXPECT_EQ(state.pos, int(prompt.size()) + 1 + kSteps);
  }
  set_active_isa(best_isa());
  // At the end of this helper GTEST_SKIP marks the calling test skipped (after its checks ran).
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": decode on those kernels was not checked";
}

TEST(DecodeAlloc, FloatWeights) { expect_decode_allocates_nothing(testing::data_dir("tiny-b"), QuantRecipe::None); }
TEST(DecodeAlloc, Q8Weights) { expect_decode_allocates_nothing(testing::data_dir("tiny-b"), QuantRecipe::Q8); }
TEST(DecodeAlloc, Q4Weights) { expect_decode_allocates_nothing(testing::data_dir("tiny-b"), QuantRecipe::Q4); }
// llama.cpp's Q4_K / Q6_K blocks with int8 activations (the default mode).
TEST(DecodeAlloc, GgufKQuantWeights) {
  expect_decode_allocates_nothing(testing::data_dir("gguf/tiny-k-q4_k_m"), QuantRecipe::None);
}

// Sampling with Qwen's recommended settings plus penalties, over a long history: after the first
// draw grows the scratch, draws allocate nothing.
TEST(DecodeAlloc, Sampling) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_p = 0.8f;
  p.top_k = 20;
  p.presence_penalty = 1.5f;
  p.repetition_penalty = 1.05f;
  for (int top_k : {20, 0}) {  // 0: top-p over the whole vocabulary (the bucketed path)
    p.top_k = top_k;
    Sampler s(p);
    std::vector<float> logits(151936);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = float((i * 7919) % 1000) / 100.0f;
    std::vector<int32_t> history(300);
    for (size_t i = 0; i < history.size(); ++i) history[i] = int32_t(i * 13);
    s.sample(logits, history);
    const long n = allocations_during([&] {
      for (int i = 0; i < 16; ++i) s.sample(logits, history);
    });
    EXPECT_EQ(n, 0) << "top_k " << top_k;
  }
}

}  // namespace
}  // namespace qnext
