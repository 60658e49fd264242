// The KV cache: its head-major layout survives growth, an f16 cache stores what f32_to_f16 rounds
// to, and a model run on an f16 cache stays within a KL bound of the exact f32 one.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "common/golden.h"
#include "core/cpu.h"
#include "model/qwen3_next.h"

namespace qnext {
namespace {

float element(const KvCache& c, const KvCache::Bytes& buf, int head, int pos, int d) {
  const size_t at = c.head_offset(head) + (size_t(pos) * size_t(c.dim) + size_t(d)) * dtype_size(c.type);
  if (c.type == DType::F16) {
    uint16_t h;
    std::memcpy(&h, buf.data() + at, 2);
    return f16_to_f32(h);
  }
  float f;
  std::memcpy(&f, buf.data() + at, 4);
  return f;
}

// Positions stored one or a few at a time, through several geometric growths (each re-lays the
// heads out at the new capacity), read back exactly: as stored for F32, as rounded for F16. The last
// growth passes the size from which a buffer's interior is advised onto huge pages.
TEST(KvCache, GrowthKeepsEveryHeadsPositions) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3, 3);
  for (DType type : {DType::F32, DType::F16}) {
    KvCache c;
    c.type = type;
    c.heads = 3;
    c.dim = 10;
    std::vector<float> keys, values;  // [pos, heads, dim] everything stored
    int pos = 0;
    for (int step : {1, 1, 3, 1, 7, 20, 2, 40, 80000}) {
      c.ensure_capacity(pos + step);
      for (int t = 0; t < step; ++t, ++pos) {
        std::vector<float> k(30), v(30);
        for (auto& x : k) x = u(rng);
        for (auto& x : v) x = u(rng);
        c.store(pos, k.data(), v.data());
        keys.insert(keys.end(), k.begin(), k.end());
        values.insert(values.end(), v.begin(), v.end());
      }
      c.len = pos;
    }
    EXPECT_GE(c.capacity, pos);
    EXPECT_GE(c.k.size(), HugeInteriorAllocator<uint8_t>::kThreshold);  // the advised path was taken
    for (int p = 0; p < pos; ++p)
      for (int h = 0; h < 3; ++h)
        for (int d = 0; d < 10; ++d) {
          const float k = keys[size_t(p * 30 + h * 10 + d)], v = values[size_t(p * 30 + h * 10 + d)];
          const float want_k = type == DType::F16 ? f16_to_f32(f32_to_f16(k)) : k;
          const float want_v = type == DType::F16 ? f16_to_f32(f32_to_f16(v)) : v;
          ASSERT_EQ(element(c, c.k, h, p, d), want_k) << dtype_name(type) << " pos " << p << " head " << h;
          ASSERT_EQ(element(c, c.v, h, p, d), want_v) << dtype_name(type) << " pos " << p << " head " << h;
        }
    EXPECT_EQ(c.bytes(), 2 * size_t(c.capacity) * 30 * dtype_size(type));
  }
}

struct Kl {
  double mean = 0, max = 0, top1 = 0;
};

Kl kl_divergence(const std::vector<float>& p_logits, const std::vector<float>& q_logits, int V) {
  Kl k;
  const size_t T = p_logits.size() / size_t(V);
  for (size_t t = 0; t < T; ++t) {
    const float* p = p_logits.data() + t * size_t(V);
    const float* q = q_logits.data() + t * size_t(V);
    auto lse = [&](const float* l) {
      double m = *std::max_element(l, l + V), s = 0;
      for (int v = 0; v < V; ++v) s += std::exp(l[v] - m);
      return m + std::log(s);
    };
    const double zp = lse(p), zq = lse(q);
    double kl = 0;
    for (int v = 0; v < V; ++v) kl += std::exp(p[v] - zp) * ((p[v] - zp) - (q[v] - zq));
    k.mean += kl / double(T);
    k.max = std::max(k.max, kl);
    k.top1 += (testing::argmax(p, size_t(V)) == testing::argmax(q, size_t(V))) / double(T);
  }
  return k;
}

// A prompt, then tokens decoded one at a time (each reads the whole cache); all logits rows.
std::vector<float> prefill_then_decode(Model& m, const std::vector<int32_t>& prompt, const std::vector<int32_t>& next) {
  SequenceState st = m.new_state();
  std::vector<float> all, logits;
  ForwardOptions opt;
  opt.all_logits = true;
  m.forward(st, prompt, opt, nullptr, &all);
  for (int32_t id : next) {
    m.forward(st, std::span<const int32_t>(&id, 1), opt, nullptr, &logits);
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

// f16 keeps 11 significant bits: each cached number moves by at most 2^-12 of itself. Measured
// here (prompt + 24 decoded tokens): mean KL tiny-b 3e-9, tiny-real-vocab 8.6e-8 (max |logit
// change| 0.04 on its sharp random logits), on AVX2 and scalar alike. 1e-6 leaves a 10x margin,
// while a wrong cache (a head or position off, a bad conversion) gives KL of order 0.1-1.
TEST(KvCache, HalfCacheStaysWithinKlBoundOfFloat) {
  for (const char* name : {"tiny-b", "tiny-real-vocab"}) {
    testing::Reference ref(name);
    auto prompt = ref.ids("prompt_ids");
    auto loaded = Model::load(testing::data_dir(name));
    ASSERT_TRUE(loaded.ok()) << loaded.error();
    Model& m = *loaded.value();
    const int V = m.config().vocab_size;
    std::vector<int32_t> next;
    for (int i = 0; i < 24; ++i) next.push_back(int32_t((i * 97 + 11) % V));
    const auto exact = prefill_then_decode(m, prompt, next);
    m.set_kv_type(DType::F16);
    const auto& types = m.config().layer_types;
    const auto attn = std::find(types.begin(), types.end(), LayerType::FullAttention) - types.begin();
    EXPECT_EQ(m.new_state().kv[size_t(attn)].type, DType::F16);
    const auto half = prefill_then_decode(m, prompt, next);
    ASSERT_EQ(exact.size(), half.size());
    const Kl kl = kl_divergence(exact, half, V);
    std::printf("  %-16s f16 KV: mean KLD %.3g  max KLD %.3g  top-1 %.1f%%  max |dlogit| %.3g\n", name, kl.mean, kl.max,
                100 * kl.top1, testing::max_abs_diff(exact, half));
    EXPECT_LE(kl.mean, 1e-6) << name;
    EXPECT_GE(kl.top1, 0.99) << name;
    EXPECT_GT(testing::max_abs_diff(exact, half), 0.0f) << name << ": the f16 cache was not used";
  }
}

}  // namespace
}  // namespace qnext
