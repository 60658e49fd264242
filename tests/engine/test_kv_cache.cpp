// The KV cache: its head-major layout survives growth, an f16 cache stores what f32_to_f16 rounds
// to and a q8_0 one what quantize_row_q8_0 makes, and a model run on either stays within a KL bound
// of the exact f32 one.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "common/golden.h"
#include "core/cpu.h"
#include "kernels/quant.h"
#include "model/qwen3_next.h"

namespace qnext {
namespace {

// One head's dim values at one position, as floats.
std::vector<float> stored_row(const KvCache& c, const KvCache::Bytes& buf, int head, int pos) {
  const uint8_t* at = buf.data() + c.head_offset(head) + size_t(pos) * c.position_bytes();
  std::vector<float> row(size_t(c.dim));
  if (c.type == DType::Q8_0) {
    dequantize_row(DType::Q8_0, at, c.dim, row.data());
  } else if (c.type == DType::F16) {
    for (int d = 0; d < c.dim; ++d) {
      uint16_t h;
      std::memcpy(&h, at + 2 * d, 2);
      row[size_t(d)] = f16_to_f32(h);
    }
  } else {
    std::memcpy(row.data(), at, 4 * size_t(c.dim));
  }
  return row;
}

// Positions stored one or a few at a time, through several geometric growths (each re-lays the
// heads out at the new capacity), read back exactly: as stored for F32, as rounded for F16, as
// quantized for Q8_0 (each head's 32 values a block). The last growth passes the size from which a
// buffer's interior is advised onto huge pages.
TEST(KvCache, GrowthKeepsEveryHeadsPositions) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3, 3);
  for (DType type : {DType::F32, DType::F16, DType::Q8_0}) {
    KvCache c;
    c.type = type;
    c.heads = 3;
    c.dim = type == DType::Q8_0 ? 64 : 10;  // q8_0: two blocks a row
    const int dim = c.dim, row = 3 * dim;
    std::vector<float> keys, values;  // [pos, heads, dim] everything stored
    int pos = 0;
    for (int step : {1, 1, 3, 1, 7, 20, 2, 40, 80000}) {
      c.ensure_capacity(pos + step);
      for (int t = 0; t < step; ++t, ++pos) {
        std::vector<float> k(static_cast<size_t>(row)), v(static_cast<size_t>(row));
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
    // What the cache should hold for one head's dim values: rounded to f16, or quantized as a Q8_0 row.
    const auto stored_as = [&](const float* x) {
      std::vector<float> out(x, x + dim);
      if (type == DType::F16)
        for (auto& e : out) e = f16_to_f32(f32_to_f16(e));
      if (type == DType::Q8_0) {
        std::vector<BlockQ8_0> q(size_t(dim) / kQuantBlock);
        quantize_row_q8_0(x, dim, q.data());
        dequantize_row(DType::Q8_0, q.data(), dim, out.data());
      }
      return out;
    };
    for (int p = 0; p < pos; ++p)
      for (int h = 0; h < 3; ++h) {
        const size_t at = size_t(p * row + h * dim);
        ASSERT_EQ(stored_row(c, c.k, h, p), stored_as(&keys[at])) << dtype_name(type) << " pos " << p << " head " << h;
        ASSERT_EQ(stored_row(c, c.v, h, p), stored_as(&values[at])) << dtype_name(type) << " pos " << p << " head " << h;
      }
    // Bytes of one head's keys at one position: 10 floats, 10 halves, 2 blocks of 34.
    const size_t position_bytes = type == DType::F32 ? 40 : type == DType::F16 ? 20 : 68;
    EXPECT_EQ(c.position_bytes(), position_bytes) << dtype_name(type);
    EXPECT_EQ(c.bytes(), 2 * size_t(c.capacity) * 3 * position_bytes) << dtype_name(type);
  }
}

// "q8" is llama.cpp users' shorthand too; q8_0 needs whole blocks of 32 per head.
TEST(KvCache, TypeNamesAndQ8HeadDims) {
  DType t = DType::F32;
  EXPECT_TRUE(parse_kv_type("q8_0", &t));
  EXPECT_EQ(t, DType::Q8_0);
  t = DType::F32;
  EXPECT_TRUE(parse_kv_type("q8", &t));
  EXPECT_EQ(t, DType::Q8_0);
  EXPECT_TRUE(parse_kv_type("f16", &t));
  EXPECT_EQ(t, DType::F16);
  EXPECT_FALSE(parse_kv_type("q4_0", &t));
  EXPECT_TRUE(kv_type_fits(DType::Q8_0, 256));
  EXPECT_TRUE(kv_type_fits(DType::Q8_0, 64));
  EXPECT_FALSE(kv_type_fits(DType::Q8_0, 72));
  EXPECT_TRUE(kv_type_fits(DType::F16, 72));
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
// q8_0 moves each number by up to half a step of its block (the block's largest / 254), some 50x
// f16's error on these values, so KL ~1000x: measured mean 2.0e-6 (tiny-b) and 4.8e-4 (tiny-real-
// vocab, max 0.034, top-1 100%) on AVX-512 and scalar. 5e-3: a 10x margin, 20x below a wrong cache.
TEST(KvCache, HalfAndQ8CachesStayWithinKlBoundsOfFloat) {
  struct Case {
    DType type;
    double max_mean_kl;
  };
  for (const char* name : {"tiny-b", "tiny-real-vocab"}) {
    testing::Reference ref(name);
    auto prompt = ref.ids("prompt_ids");
    auto loaded = Model::load(testing::data_dir(name));
    ASSERT_TRUE(loaded.ok()) << loaded.error();
    Model& m = *loaded.value();
    const int V = m.config().vocab_size;
    std::vector<int32_t> next;
    for (int i = 0; i < 24; ++i) next.push_back(int32_t((i * 97 + 11) % V));
    m.set_kv_type(DType::F32);
    const auto exact = prefill_then_decode(m, prompt, next);
    for (const Case c : {Case{DType::F16, 1e-6}, Case{DType::Q8_0, 5e-3}}) {
      m.set_kv_type(c.type);
      const auto& types = m.config().layer_types;
      const auto attn = std::find(types.begin(), types.end(), LayerType::FullAttention) - types.begin();
      EXPECT_EQ(m.new_state().kv[size_t(attn)].type, c.type);
      const auto rounded = prefill_then_decode(m, prompt, next);
      ASSERT_EQ(exact.size(), rounded.size());
      const Kl kl = kl_divergence(exact, rounded, V);
      std::printf("  %-16s %s KV: mean KLD %.3g  max KLD %.3g  top-1 %.1f%%  max |dlogit| %.3g\n", name,
                  dtype_name(c.type).data(), kl.mean, kl.max, 100 * kl.top1, testing::max_abs_diff(exact, rounded));
      EXPECT_LE(kl.mean, c.max_mean_kl) << name << " " << dtype_name(c.type);
      EXPECT_GE(kl.top1, 0.99) << name << " " << dtype_name(c.type);
      EXPECT_GT(testing::max_abs_diff(exact, rounded), 0.0f) << name << ": the " << dtype_name(c.type) << " cache was not used";
    }
  }
}

}  // namespace
}  // namespace qnext
