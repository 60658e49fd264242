// Kernels against their definitions: every SIMD matmul against its scalar twin (random and odd
// sizes, tails), the chunked delta rule against the recurrent one, the conv state across splits,
// blocked attention against a plain softmax, and the router's top-k.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "common/exact_mode.h"
#include "common/golden.h"
#include "core/cpu.h"
#include "kernels/argmax.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/delta_rule.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/norm.h"
#include "kernels/quant.h"
#include "kernels/silu.h"

namespace qnext {
namespace {

std::vector<float> random_vec(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

struct WeightStore {
  std::vector<uint8_t> bytes;
  Matrix m;
};

WeightStore make_weights(std::mt19937& rng, DType t, int64_t rows, int64_t cols) {
  WeightStore w;
  const auto f = random_vec(rng, size_t(rows * cols));
  w.bytes.resize(f.size() * dtype_size(t));
  for (size_t i = 0; i < f.size(); ++i) {
    if (t == DType::BF16) reinterpret_cast<uint16_t*>(w.bytes.data())[i] = f32_to_bf16(f[i]);
    else if (t == DType::F16) reinterpret_cast<uint16_t*>(w.bytes.data())[i] = f32_to_f16(f[i]);
    else reinterpret_cast<float*>(w.bytes.data())[i] = f[i];
  }
  w.m = Matrix{t, w.bytes.data(), rows, cols};
  return w;
}

TEST(Matmul, SimdMatchesScalarTwin) {
  std::mt19937 rng(7);
  std::vector<Isa> isas;
  if (best_isa() >= Isa::Avx2) isas.push_back(Isa::Avx2);
  if (best_isa() >= Isa::Avx512) isas.push_back(Isa::Avx512);
  if (isas.empty()) GTEST_SKIP() << "this CPU has no AVX2";
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {4, 8}, {5, 17}, {13, 64}, {37, 300}, {64, 129}, {130, 2048}};
  for (DType t : {DType::BF16, DType::F16, DType::F32})
    for (const auto& s : shapes)
      // 12 and up: the packed GEMM (not BF16 on AVX-512: from 20 there, cols % 32 == 0, the float panels)
      for (int T : {1, 2, 3, 4, 5, 8, 12, 16, 17, 25, 31, 40}) {
        auto w = make_weights(rng, t, s[0], s[1]);
        const auto x = random_vec(rng, size_t(T * s[1]));
        std::vector<float> want(size_t(T * s[0]), -1), got(size_t(T * s[0]), -1);
        matmul_rows(Isa::Scalar, w.m, x.data(), T, want.data(), s[0], 0, s[0]);
        for (Isa isa : isas) {
          std::fill(got.begin(), got.end(), -1.0f);  // what one ISA left must not pass for another's
          matmul_rows(isa, w.m, x.data(), T, got.data(), s[0], 0, s[0]);
          const float tol = 1e-5f * float(s[1]);
          EXPECT_LE(testing::max_abs_diff(want, got), tol)
              << isa_name(isa) << " " << dtype_name(t) << " rows " << s[0] << " cols " << s[1] << " T " << T;
        }
      }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// Which float kernel runs many tokens: BF16 on AVX-512 its row kernel (faster there than the
// packed GEMM: matmul.cpp), and from kFloatPanelMinTokens tokens the float panels where the columns
// are a multiple of 32 (gemm_float_panels_fits); F32 on AVX-512 and BF16 on AVX2 the packed GEMM
// from kGemmMinTokens; bit for bit the kernel named. The kernels sum in different orders, so their bits differ here and the
// test sees which one ran.
TEST(Matmul, ManyTokensTakeTheFasterFloatKernel) {
  if (best_isa() < Isa::Avx2) GTEST_SKIP() << "this CPU has no AVX2";
  const testing::ScopedBf16Activations float_bf16(false);  // BF16 on float, whatever the environment says
  std::mt19937 rng(21);
  for (int T : {kGemmMinTokens, kFloatPanelMinTokens - 1, kFloatPanelMinTokens, 40, 64})
    for (int64_t cols : {300, 320}) {
      const int64_t rows = 37;
      const auto x = random_vec(rng, size_t(T * cols));
      std::vector<float> got(size_t(T * rows)), rows_kernel(got.size()), gemm(got.size()), panels(got.size());
      for (DType t : {DType::BF16, DType::F32}) {
        auto w = make_weights(rng, t, rows, cols);
        gemm_rows_avx2(w.m, x.data(), T, gemm.data(), rows, 0, rows);
        matmul_rows(Isa::Avx2, w.m, x.data(), T, got.data(), rows, 0, rows);
        EXPECT_EQ(got, gemm) << "AVX2 " << dtype_name(t) << " T " << T;
        if (best_isa() < Isa::Avx512) continue;
        matmul_rows_avx512(w.m, x.data(), T, rows_kernel.data(), rows, 0, rows);
        ASSERT_NE(rows_kernel, gemm) << "the kernels agree bit for bit: this test cannot tell them apart";
        const std::vector<float>* want = t == DType::BF16 ? &rows_kernel : &gemm;
        if (t == DType::BF16 && T >= kFloatPanelMinTokens && cols % 32 == 0) {  // stated here, not asked of the dispatch
          gemm_float_panels_avx512(w.m, x.data(), T, panels.data(), rows, 0, rows);
          ASSERT_NE(panels, rows_kernel) << "the kernels agree bit for bit: this test cannot tell them apart";
          want = &panels;
        }
        matmul_rows(Isa::Avx512, w.m, x.data(), T, got.data(), rows, 0, rows);
        EXPECT_EQ(got, *want) << "AVX-512 " << dtype_name(t) << " T " << T << " cols " << cols;
      }
    }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": the AVX-512 dispatch was not checked";
}

// The float panels (BF16, many tokens, AVX-512) against the scalar twin over row ranges that start
// off a panel's edge and end in a single panel or a few rows (those go to the row kernel), token
// counts that split into uneven tiles (below kFloatPanelMinTokens, called directly: tiles of 1-4
// tokens), and a wider y (ldy); nothing outside the range written.
TEST(Matmul, FloatPanelsMatchScalarTwinOnRowRanges) {
  if (best_isa() < Isa::Avx512) GTEST_SKIP() << "this CPU has no AVX-512: the float panels were not checked";
  std::mt19937 rng(29);
  const int64_t shapes[][2] = {{70, 64}, {48, 2048}, {100, 320}, {37, 48}};  // 48 columns: the row kernel
  for (const auto& s : shapes)
    for (int T : {1, 3, 7, 13, kFloatPanelMinTokens, 23, 64, 97}) {
      auto w = make_weights(rng, DType::BF16, s[0], s[1]);
      const auto x = random_vec(rng, size_t(T * s[1]));
      const int64_t ldy = s[0] + 3;
      std::vector<float> want(size_t(T * ldy), -1);
      matmul_rows_scalar(w.m, x.data(), T, want.data(), ldy, 0, s[0]);
      const int64_t ranges[][2] = {{0, s[0]}, {5, s[0] - 1}, {16, std::min<int64_t>(48, s[0])}, {3, 20}};
      for (const auto& range : ranges) {
        std::vector<float> got(want.size(), 123.0f);
        gemm_float_panels_avx512(w.m, x.data(), T, got.data(), ldy, range[0], range[1]);
        for (int t = 0; t < T; ++t)
          for (int64_t r = 0; r < ldy; ++r) {
            const size_t i = size_t(t) * size_t(ldy) + size_t(r);
            if (r < range[0] || r >= range[1]) ASSERT_EQ(got[i], 123.0f) << "row " << r << " outside the range written";
            else ASSERT_NEAR(got[i], want[i], 1e-5f * float(s[1])) << "rows " << s[0] << " cols " << s[1] << " T " << T << " row " << r << " token " << t;
          }
      }
    }
}

TEST(Matmul, RowRangeWritesOnlyItsColumns) {
  std::mt19937 rng(3);
  auto w = make_weights(rng, DType::BF16, 20, 40);
  const auto x = random_vec(rng, 3 * 40);
  for (Isa isa : {Isa::Scalar, best_isa()})
    for (int T : {1, 3}) {  // 1: the row-streaming kernels
      std::vector<float> y(3 * 20, 123.0f);
      matmul_rows(isa, w.m, x.data(), T, y.data(), 20, 5, 11);
      for (int t = 0; t < T; ++t)
        for (int r = 0; r < 20; ++r)
          if (r < 5 || r >= 11) EXPECT_EQ(y[size_t(t * 20 + r)], 123.0f);
          else EXPECT_NE(y[size_t(t * 20 + r)], 123.0f);
    }
}

TEST(Dtype, HalfAndBfloatConversions) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.0009765625f})
    EXPECT_EQ(f16_to_f32(f32_to_f16(f)), f) << f;
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);  // overflow -> inf
  EXPECT_NEAR(f16_to_f32(f32_to_f16(1e-3f)), 1e-3f, 1e-3f / 2048);  // nearest half
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.00390625f)), 1.0f);     // ties to even
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.01171875f)), 1.015625f);  // ties to even (up)
}

// The chunked and the recurrent delta rule are two forms of one recurrence.
TEST(DeltaRule, ChunkedEqualsRecurrent) {
  std::mt19937 rng(11);
  const int Dk = 16, Dv = 24;
  for (int T : {1, 5, 63, 64, 65, 130, 200}) {
    auto q = random_vec(rng, size_t(T * Dk)), k = random_vec(rng, size_t(T * Dk)), v = random_vec(rng, size_t(T * Dv));
    for (int t = 0; t < T; ++t) {
      l2_normalize(q.data() + t * Dk, Dk, 1e-6f);
      l2_normalize(k.data() + t * Dk, Dk, 1e-6f);
    }
    std::vector<float> g(static_cast<size_t>(T)), beta(static_cast<size_t>(T));
    std::uniform_real_distribution<float> ug(-3.0f, 0.0f), ub(0.0f, 1.0f);
    for (int t = 0; t < T; ++t) g[size_t(t)] = ug(rng), beta[size_t(t)] = ub(rng);
    const auto S0 = random_vec(rng, size_t(Dk * Dv), 0.5f);
    std::vector<float> o1(size_t(T * Dv)), o2(size_t(T * Dv)), S1(S0), S2(S0);
    DeltaRuleHead h{q.data(), k.data(), v.data(), g.data(), beta.data(), size_t(Dk), size_t(Dv), 1, o1.data(), size_t(Dv)};
    delta_rule_recurrent(h, T, Dk, Dv, S1.data());
    h.out = o2.data();
    std::vector<float> scratch(delta_rule_scratch_floats(Dk, Dv));
    delta_rule_chunked(h, T, Dk, Dv, S2.data(), scratch.data());
    EXPECT_LE(testing::max_abs_diff(o1, o2), 2e-5f) << "T=" << T;
    EXPECT_LE(testing::max_abs_diff(S1, S2), 2e-5f) << "T=" << T;
  }
}

// The AVX2 builds of the delta rule and of attention against their scalar twins.
TEST(DeltaRule, Avx2MatchesScalarTwin) {
  if (best_isa() < Isa::Avx2) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(12);
  const int Dk = 32, Dv = 40, T = 150;
  auto q = random_vec(rng, size_t(T * Dk)), k = random_vec(rng, size_t(T * Dk)), v = random_vec(rng, size_t(T * Dv));
  for (int t = 0; t < T; ++t) {
    l2_normalize(q.data() + t * Dk, Dk, 1e-6f);
    l2_normalize(k.data() + t * Dk, Dk, 1e-6f);
  }
  std::vector<float> g(static_cast<size_t>(T), -0.2f), beta(static_cast<size_t>(T), 0.6f);
  const auto S0 = random_vec(rng, size_t(Dk * Dv), 0.5f);
  std::vector<float> scratch(delta_rule_scratch_floats(Dk, Dv));
  for (bool chunked : {false, true}) {
    std::vector<float> o1(size_t(T * Dv)), o2(size_t(T * Dv)), S1(S0), S2(S0);
    DeltaRuleHead h{q.data(), k.data(), v.data(), g.data(), beta.data(), size_t(Dk), size_t(Dv), 1, o1.data(), size_t(Dv)};
    if (chunked) delta_rule_chunked_scalar(h, T, Dk, Dv, S1.data(), scratch.data());
    else delta_rule_recurrent_scalar(h, T, Dk, Dv, S1.data());
    h.out = o2.data();
    if (chunked) delta_rule_chunked_avx2(h, T, Dk, Dv, S2.data(), scratch.data());
    else delta_rule_recurrent_avx2(h, T, Dk, Dv, S2.data());
    EXPECT_LE(testing::max_abs_diff(o1, o2), 1e-5f) << "chunked " << chunked;
    EXPECT_LE(testing::max_abs_diff(S1, S2), 1e-5f) << "chunked " << chunked;
  }
}

// The recurrent kernels in column slices of the state (AVX2: 8 columns, AVX-512: 16) against the
// scalar twin, in the model's strided layout (several heads side by side): Dk with and without a
// tail past its 8 chains, several slices, a state carried through chunks of calls, and columns
// outside the head (the neighbours' state and outputs) left alone. Fewer than 4 tokens (in one call)
// run AVX-512's whole rows and AVX2's column groups (of 32 and 8: Dv 32, 48, 128, 16), as do AVX2's
// shapes the slices do not fit (Dk 300); Dv 20 (no whole vectors) runs AVX2's compiled body.
TEST(DeltaRule, SliceKernelsMatchScalarTwin) {
  if (best_isa() < Isa::Avx2) GTEST_SKIP() << "no AVX2";
  EXPECT_FALSE(delta_rule_avx512_fits(64, 128, 40));
  EXPECT_FALSE(delta_rule_avx512_fits(64, 300, 128));
  EXPECT_TRUE(delta_rule_avx512_fits(4, 128, 128));
  EXPECT_TRUE(delta_rule_avx512_fits(3, 300, 128));
  EXPECT_FALSE(delta_rule_avx512_fits(1, 128, 144));
  std::mt19937 rng(13);
  struct Shape { int Dk, Dv, T; };
  std::vector<std::pair<Isa, Shape>> cases;
  for (Isa isa : {Isa::Avx2, Isa::Avx512})
    for (Shape sh : {Shape{36, 48, 150}, Shape{128, 128, 70}, Shape{8, 16, 4}, Shape{20, 40, 9}, Shape{16, 20, 9}, Shape{32, 32, 1},
                      Shape{128, 128, 3}, Shape{36, 48, 1}, Shape{300, 16, 2}, Shape{300, 16, 9}})
      if (isa <= best_isa() && (isa == Isa::Avx2 || delta_rule_avx512_fits(sh.T, sh.Dk, sh.Dv))) cases.push_back({isa, sh});
  for (auto [isa, sh] : cases) {
    const int Dk = sh.Dk, Dv = sh.Dv, T = sh.T, heads = 3, mid = 1;  // the kernel runs head `mid`
    const size_t qk = size_t(heads * Dk), vs = size_t(heads * Dv);
    auto q = random_vec(rng, T * qk), k = random_vec(rng, T * qk), v = random_vec(rng, T * vs);
    for (int t = 0; t < T; ++t)
      for (int hh = 0; hh < heads; ++hh) {
        l2_normalize(q.data() + t * qk + size_t(hh * Dk), Dk, 1e-6f);
        l2_normalize(k.data() + t * qk + size_t(hh * Dk), Dk, 1e-6f);
      }
    std::vector<float> g(size_t(T * heads)), beta(size_t(T * heads));
    std::uniform_real_distribution<float> ug(-2.0f, 0.0f), ub(0.0f, 1.0f);
    for (size_t i = 0; i < g.size(); ++i) g[i] = ug(rng), beta[i] = ub(rng);
    const auto S0 = random_vec(rng, size_t(heads * Dk * Dv), 0.5f);
    const auto out0 = random_vec(rng, T * vs);
    std::vector<float> o1(out0), o2(out0), S1(S0), S2(S0);
    const size_t head_state = size_t(Dk) * size_t(Dv);
    auto view = [&](float* out, int t0) {
      return DeltaRuleHead{q.data() + t0 * qk + mid * Dk, k.data() + t0 * qk + mid * Dk, v.data() + t0 * vs + mid * Dv,
                           g.data() + t0 * heads + mid, beta.data() + t0 * heads + mid, qk, vs, size_t(heads),
                           out + t0 * vs + mid * Dv, vs};
    };
    delta_rule_recurrent_scalar(view(o1.data(), 0), T, Dk, Dv, S1.data() + mid * head_state);
    const int per_call = T < 4 ? T : 64;  // the state goes on from call to call
    for (int t0 = 0; t0 < T; t0 += per_call)
      (isa == Isa::Avx512 ? delta_rule_recurrent_avx512 : delta_rule_recurrent_avx2)(
          view(o2.data(), t0), std::min(per_call, T - t0), Dk, Dv, S2.data() + mid * head_state);
    EXPECT_LE(testing::max_abs_diff(o1, o2), 1e-5f) << "isa " << int(isa) << " Dk " << Dk << " Dv " << Dv;
    EXPECT_LE(testing::max_abs_diff(S1, S2), 1e-5f) << "isa " << int(isa) << " Dk " << Dk << " Dv " << Dv;
    for (size_t i = 0; i < S0.size(); ++i) {
      if (i / head_state == size_t(mid)) continue;
      ASSERT_EQ(S2[i], S0[i]) << "state of another head, index " << i;
    }
    for (size_t i = 0; i < out0.size(); ++i) {
      if ((i % vs) / size_t(Dv) == size_t(mid)) continue;
      ASSERT_EQ(o2[i], out0[i]) << "output of another head, index " << i;
    }
    EXPECT_GT(testing::max_abs_diff(S0, S2), 1e-3f) << "the state moved";
  }
}

// Attention from its definition, in double, written out here and sharing nothing with the kernels:
// out = softmax(scale * q.k_j, j < n_keys) v_j, for one query against one key/value head.
std::vector<double> attention_definition(const float* q, const float* K, const float* V, size_t stride, int n_keys,
                                         int D, double scale) {
  std::vector<double> s(size_t(n_keys), 0.0), out(size_t(D), 0.0);
  double m = -1e300, z = 0;
  for (int j = 0; j < n_keys; ++j) {
    for (int d = 0; d < D; ++d) s[size_t(j)] += double(q[d]) * double(K[size_t(j) * stride + size_t(d)]);
    s[size_t(j)] *= scale;
    m = std::max(m, s[size_t(j)]);
  }
  for (int j = 0; j < n_keys; ++j) z += std::exp(s[size_t(j)] - m);
  for (int j = 0; j < n_keys; ++j)
    for (int d = 0; d < D; ++d) out[size_t(d)] += std::exp(s[size_t(j)] - m) / z * double(V[size_t(j) * stride + size_t(d)]);
  return out;
}

// Causal grouped-query attention against the definition: T new tokens at positions P..P+T-1 of a
// cache of Hkv interleaved heads (stride Hkv * D), Hq query heads, query head h reading key/value
// head h / (Hq / Hkv), token t seeing the keys [0, P + t]. Each group of Hq / Hkv heads times the
// T tokens goes to one call, as the model makes them: the one-query kernel (attention_head), the
// scalar block, the AVX2 block and the AVX-512 block (D % 16 == 0). D = 72 takes AVX2's half-width
// value tile, D = 80 AVX-512's 16-dim strip after a 64-dim one; T = 13 with 2 heads per group gives
// 26 queries (4 tiles of 6 and one of 2), odd blocks and causal limits inside and across the
// 64-key blocks.
TEST(Attention, CausalGqaMatchesTheDefinition) {
  std::mt19937 rng(15);
  for (int D : {72, 80, 256}) {
    const int Hq = 4, Hkv = 2, group = Hq / Hkv, P = 137, T = 13, L = P + T;
    const size_t stride = size_t(Hkv * D);
    const double scale = 1.0 / std::sqrt(double(D));
    const auto qs = random_vec(rng, size_t(T * Hq * D), 2.0f), K = random_vec(rng, size_t(L) * stride),
               V = random_vec(rng, size_t(L) * stride);
    // want[t][h]: [T, Hq, D]
    std::vector<double> want(size_t(T * Hq * D));
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < Hq; ++h) {
        const int kvh = h / group;
        const auto o = attention_definition(qs.data() + size_t((t * Hq + h) * D), K.data() + kvh * D, V.data() + kvh * D,
                                            stride, P + t + 1, D, scale);
        std::copy(o.begin(), o.end(), want.begin() + (t * Hq + h) * D);
      }
    auto err = [&](const std::vector<float>& got) {
      double e = 0;
      for (size_t i = 0; i < got.size(); ++i) e = std::max(e, std::fabs(double(got[i]) - want[i]));
      return e;
    };
    // tokens_per_call: all T (26 queries in one call), or fewer, as decoding and MTP verification call.
    auto run_blocks = [&](auto&& kernel, int tokens_per_call = 1 << 30) {
      std::vector<float> got(want.size(), -1.0f);
      for (int kvh = 0; kvh < Hkv; ++kvh)
        for (int t0 = 0; t0 < T; t0 += tokens_per_call) {
          const KvHead kv{K.data() + kvh * D, V.data() + kvh * D, stride, DType::F32};
          std::vector<const float*> q;
          std::vector<float*> out;
          std::vector<int> n_keys;
          for (int t = t0; t < std::min(T, t0 + tokens_per_call); ++t)
            for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
              q.push_back(qs.data() + (t * Hq + h) * D);
              out.push_back(got.data() + (t * Hq + h) * D);
              n_keys.push_back(P + t + 1);
            }
          kernel(q.data(), n_keys.data(), int(q.size()), kv, D, float(scale), out.data());
        }
      return got;
    };
    // Float scores and sums over up to 150 keys and 256 dimensions: ~1e-6 off the double definition.
    constexpr double kTol = 1e-5;
    const auto single = run_blocks([](const float* const* q, const int* n_keys, int n, const KvHead& kv, int D_,
                                      float sc, float* const* out) {
      for (int i = 0; i < n; ++i) attention_head(q[i], kv, n_keys[i], D_, sc, out[i]);
    });
    EXPECT_LE(err(single), kTol) << "attention_head D=" << D;
    EXPECT_LE(err(run_blocks(attention_queries_scalar)), kTol) << "scalar D=" << D;
    if (best_isa() < Isa::Avx2) continue;  // reported below
    const auto avx2 = run_blocks(attention_queries_avx2);
    EXPECT_LE(err(avx2), kTol) << "avx2 D=" << D;
    // And the block kernel gives what each query gives alone (summation order aside).
    EXPECT_LE(testing::max_abs_diff(single, avx2), 2e-6f) << "avx2 vs attention_head D=" << D;
    if (best_isa() < Isa::Avx512 || D % 16 != 0) continue;
    // 26 queries a call take the blocks laid out for broadcast tiles; 2, 8 and 14 (1, 4 and 7
    // tokens) the few-queries path, 14 as tiles of 8 and 6.
    for (int tokens_per_call : {T, 1, 4, 7}) {
      const auto avx512 = run_blocks(attention_queries_avx512, tokens_per_call);
      EXPECT_LE(err(avx512), kTol) << "avx512 D=" << D << " tokens a call " << tokens_per_call;
      EXPECT_LE(testing::max_abs_diff(single, avx512), 2e-6f)
          << "avx512 vs attention_head D=" << D << " tokens a call " << tokens_per_call;
    }
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

using AttentionKernel = void (*)(const float* const* q, const int* n_keys, int n, const KvHead& kv, int D, float scale,
                                 float* const* out);

// The outputs [n, D] of n queries (qs: [n, D]) over one head of a cache.
std::vector<float> attend(AttentionKernel kernel, const std::vector<float>& qs, const std::vector<int>& n_keys,
                          const KvHead& kv, int D) {
  const int n = int(n_keys.size());
  std::vector<float> out(size_t(n * D), -1.0f);
  std::vector<const float*> q(n);
  std::vector<float*> o(n);
  for (int i = 0; i < n; ++i) q[size_t(i)] = qs.data() + i * D, o[size_t(i)] = out.data() + i * D;
  kernel(q.data(), n_keys.data(), n, kv, D, 0.1f, o.data());
  return out;
}

// A cache of type t (F16, or Q8_0: int8 blocks with f16 scales) holds rounded keys and values;
// attention over it must equal attention over an f32 cache holding the numbers it stores (widening
// is exact) in the scalar twin. Each SIMD kernel is within 2e-6 of that, and gives the same bits over
// both caches (the same floats, in the same order of sums). Each query sees its own number of keys
// (1 to 200: some see nothing of later blocks). Two heads per position, as the model's cache has.
void check_rounded_cache(DType t, int D, int n, std::mt19937& rng) {
  const int L = 200, stride = 2 * D;
  const auto qs = random_vec(rng, size_t(n * D), 2.0f), K = random_vec(rng, size_t(L * stride)),
             V = random_vec(rng, size_t(L * stride));
  std::vector<uint8_t> Kc(row_bytes(t, K.size())), Vc(row_bytes(t, V.size()));  // the cache as stored
  std::vector<float> Kr(K.size()), Vr(V.size());                                // and as widened
  if (t == DType::Q8_0) {
    quantize_row_q8_0(K.data(), int64_t(K.size()), reinterpret_cast<BlockQ8_0*>(Kc.data()));
    quantize_row_q8_0(V.data(), int64_t(V.size()), reinterpret_cast<BlockQ8_0*>(Vc.data()));
    dequantize_row(DType::Q8_0, Kc.data(), int64_t(K.size()), Kr.data());
    dequantize_row(DType::Q8_0, Vc.data(), int64_t(V.size()), Vr.data());
  } else {
    for (size_t i = 0; i < K.size(); ++i) {
      const uint16_t k = f32_to_f16(K[i]), v = f32_to_f16(V[i]);
      std::memcpy(Kc.data() + 2 * i, &k, 2);
      std::memcpy(Vc.data() + 2 * i, &v, 2);
      Kr[i] = f16_to_f32(k), Vr[i] = f16_to_f32(v);
    }
  }
  ASSERT_GT(testing::max_abs_diff(K, Kr), 0.0f) << dtype_name(t) << ": the cache does round";
  std::vector<int> n_keys(n);
  for (int i = 0; i < n; ++i) n_keys[size_t(i)] = 1 + (i * 41 + 3) % L;
  n_keys[size_t(std::min(1, n - 1))] = L;
  const std::string label = std::string(dtype_name(t)) + " D=" + std::to_string(D) + " n=" + std::to_string(n);
  for (int head = 0; head < 2; ++head) {
    const size_t at = row_bytes(t, head * D);  // the head's first element, in bytes
    const KvHead f32{Kr.data() + head * D, Vr.data() + head * D, size_t(stride), DType::F32};
    const KvHead rounded{Kc.data() + at, Vc.data() + at, size_t(stride), t};
    const auto want = attend(attention_queries_scalar, qs, n_keys, f32, D);
    EXPECT_LE(testing::max_abs_diff(want, attend(attention_queries_scalar, qs, n_keys, rounded, D)), 0.0f)
        << "scalar " << label;
    if (best_isa() < Isa::Avx2) continue;  // the tests report it
    const auto avx2 = attend(attention_queries_avx2, qs, n_keys, rounded, D);
    EXPECT_LE(testing::max_abs_diff(want, avx2), 2e-6f) << "avx2 " << label;
    EXPECT_EQ(avx2, attend(attention_queries_avx2, qs, n_keys, f32, D)) << "avx2 " << label;
    if (best_isa() < Isa::Avx512 || D % 16 != 0) continue;
    const auto avx512 = attend(attention_queries_avx512, qs, n_keys, rounded, D);
    EXPECT_LE(testing::max_abs_diff(want, avx512), 2e-6f) << "avx512 " << label;
    EXPECT_EQ(avx512, attend(attention_queries_avx512, qs, n_keys, f32, D)) << "avx512 " << label;
  }
}

// n = 11 takes AVX-512's few-query path, 19, 40 and 128 its laid-out blocks with tiles of 6 and a
// last tile of 1, 4 and 2 queries.
TEST(Attention, HalfCacheEqualsFloatCacheOfTheRoundedValues) {
  std::mt19937 rng(16);
  for (int D : {72, 80, 256})
    for (int n : {11, 19, 40, 128}) check_rounded_cache(DType::F16, D, n, rng);
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// 1 and 8 queries take AVX-512's few-query path (a decoded token), 19 and 128 its laid-out blocks;
// D 96: three blocks, an odd number.
TEST(Attention, Q8CacheEqualsFloatCacheOfTheDequantizedValues) {
  std::mt19937 rng(17);
  for (int D : {96, 256})
    for (int n : {1, 8, 19, 128}) check_rounded_cache(DType::Q8_0, D, n, rng);
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

TEST(DeltaRule, RecurrentFollowsTheDefinition) {
  // One step by hand: S = e^g S0 + k (beta (v - e^g S0^T k))^T, o = S^T q.
  const int Dk = 2, Dv = 2;
  const float q[2] = {1, 0}, k[2] = {0.6f, 0.8f}, v[2] = {1, -1}, g = std::log(0.5f), beta = 0.25f;
  float S[4] = {1, 2, 3, 4};
  float o[2];
  DeltaRuleHead h{q, k, v, &g, &beta, 2, 2, 1, o, 2};
  delta_rule_recurrent(h, 1, Dk, Dv, S);
  // S0^T k = [0.6*1 + 0.8*3, 0.6*2 + 0.8*4] = [3.0, 4.4]; u = 0.25 * (v - 0.5 * that) = [-0.125, -0.8]
  const float want_S[4] = {0.5f + 0.6f * -0.125f, 1.0f + 0.6f * -0.8f, 1.5f + 0.8f * -0.125f, 2.0f + 0.8f * -0.8f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(S[i], want_S[i], 1e-6f);
  EXPECT_NEAR(o[0], want_S[0], 1e-6f);
  EXPECT_NEAR(o[1], want_S[1], 1e-6f);
}

TEST(Conv, StateCarriesAcrossSplitCalls) {
  std::mt19937 rng(5);
  const int C = 9, K = 4, T = 11;
  const auto x = random_vec(rng, size_t(T * C)), w = random_vec(rng, size_t(C * K));
  std::vector<float> state_a(size_t((K - 1) * C), 0), out_a(size_t(T * C));
  conv1d_silu(x.data(), T, C, w.data(), K, state_a.data(), out_a.data());
  for (int split : {1, 2, 3, 5}) {
    std::vector<float> state_b(size_t((K - 1) * C), 0), out_b(size_t(T * C));
    for (int t = 0; t < T; t += split) {
      const int n = std::min(split, T - t);
      conv1d_silu(x.data() + t * C, n, C, w.data(), K, state_b.data(), out_b.data() + t * C);
    }
    EXPECT_LE(testing::max_abs_diff(out_a, out_b), 1e-6f) << "split " << split;
    EXPECT_EQ(testing::max_abs_diff(state_a, state_b), 0.0f) << "split " << split;
  }
  // Token 0 sees only its own tap (the newest, K-1) against a zero state.
  const float pre = x[0] * w[K - 1];
  EXPECT_NEAR(out_a[0], pre / (1 + std::exp(-pre)), 1e-6f);
}

// The AVX2 conv against its scalar twin: 4 taps in lanes (channel counts with and without a tail
// past the lanes), other K on the twin's rows; a state from earlier tokens, one and several tokens.
// The sums before the SiLU are the twin's, bit for bit (so its output is silu_mul_avx2 of the
// twin's rows); against the twin's std::exp SiLU, 1-2 ulp. The state rolls by copies.
TEST(Conv, Avx2MatchesScalarTwin) {
  if (best_isa() < Isa::Avx2) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(6);
  for (int K : {4, 3})
    for (int C : {8, 37, 8192})
      for (int T : {1, 5}) {
        const auto x = random_vec(rng, size_t(T * C)), w = random_vec(rng, size_t(C * K));
        const auto state0 = random_vec(rng, size_t((K - 1) * C));
        std::vector<float> state_a(state0), state_b(state0), out_a(size_t(T * C)), out_b(size_t(T * C));
        conv1d_silu_scalar(x.data(), T, C, w.data(), K, state_a.data(), out_a.data());
        conv1d_silu_avx2(x.data(), T, C, w.data(), K, state_b.data(), out_b.data());
        EXPECT_LE(testing::max_abs_diff(out_a, out_b), 2e-6f) << "K " << K << " C " << C << " T " << T;
        EXPECT_EQ(testing::max_abs_diff(state_a, state_b), 0.0f) << "K " << K << " C " << C << " T " << T;
        std::vector<float> rows(size_t(T * C));
        for (int t = 0; t < T; ++t) {
          const float* in[4];
          for (int j = 0; j < K; ++j) {
            const int idx = t + j - (K - 1);
            in[j] = idx >= 0 ? x.data() + idx * C : state0.data() + (K - 1 + idx) * C;
          }
          conv_taps_row_scalar(in, K, C, w.data(), rows.data() + t * C, 0);
        }
        silu_mul_avx2(rows.data(), nullptr, T * C, rows.data());
        ASSERT_EQ(0, std::memcmp(rows.data(), out_b.data(), rows.size() * sizeof(float))) << "K " << K << " C " << C;
        // The window reached the state: token 0's output moves with it.
        std::vector<float> zero_state(state0.size(), 0.0f), out_z(size_t(T * C));
        conv1d_silu_avx2(x.data(), T, C, w.data(), K, zero_state.data(), out_z.data());
        EXPECT_GT(testing::max_abs_diff(out_b, out_z), 1e-3f);
      }
}

TEST(Attention, BlockedOnlineSoftmaxMatchesPlain) {
  std::mt19937 rng(9);
  const int D = 32;
  for (int L : {1, 7, 64, 65, 300}) {
    const auto q = random_vec(rng, D, 2.0f), K = random_vec(rng, size_t(L * D), 2.0f), V = random_vec(rng, size_t(L * D));
    std::vector<float> out(D), want(D, 0);
    attention_head(q.data(), KvHead{K.data(), V.data(), size_t(D), DType::F32}, L, D, 0.125f, out.data());
    std::vector<double> s(static_cast<size_t>(L));
    double m = -1e30, z = 0;
    for (int j = 0; j < L; ++j) {
      double d = 0;
      for (int i = 0; i < D; ++i) d += double(q[size_t(i)]) * K[size_t(j * D + i)];
      s[size_t(j)] = d * 0.125;
      m = std::max(m, s[size_t(j)]);
    }
    for (int j = 0; j < L; ++j) z += std::exp(s[size_t(j)] - m);
    for (int j = 0; j < L; ++j)
      for (int i = 0; i < D; ++i) want[size_t(i)] += float(std::exp(s[size_t(j)] - m) / z * V[size_t(j * D + i)]);
    EXPECT_LE(testing::max_abs_diff(want, out), 1e-5f) << "L=" << L;
  }
}

TEST(Moe, TopKRoutingRenormalizesAndBreaksTiesByLowerId) {
  const float logits[6] = {0.5f, 2.0f, 1.0f, 2.0f, -1.0f, 1.0f};
  int ids[3];
  float w[3];
  route_top_k(logits, 6, 3, false, ids, w);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 3);
  EXPECT_EQ(ids[2], 2);
  double z = 0;
  for (float l : logits) z += std::exp(l);
  EXPECT_NEAR(w[0], std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(w[2], std::exp(1.0) / z, 1e-6);
  route_top_k(logits, 6, 3, true, ids, w);
  EXPECT_NEAR(w[0] + w[1] + w[2], 1.0f, 1e-6f);
  EXPECT_NEAR(w[0], std::exp(2.0) / (2 * std::exp(2.0) + std::exp(1.0)), 1e-6);
}

// Every argmax variant against its definition (the first index of the largest non-NaN value, 0
// when none is above -inf): random vectors of lengths around the vector widths, ties (the first
// wins), the maximum in the tail, -0 / +0, -inf everywhere, NaNs (never the maximum, also at 0).
TEST(Argmax, EveryVariantMatchesTheDefinition) {
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  const float nan = std::nanf(""), inf = INFINITY;
  std::vector<std::vector<float>> cases;
  for (int n : {1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 100, 1000, 151936}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = u(rng);
    cases.push_back(x);
    auto tie = x;  // the maximum twice: the first wins
    const size_t m = size_t(std::max_element(tie.begin(), tie.end()) - tie.begin());
    tie[size_t(n) - 1] = tie[m];
    cases.push_back(tie);
    auto last = x;  // the maximum in the last element (the SIMD tails)
    last[size_t(n) - 1] = 100.0f;
    cases.push_back(last);
    auto nans = x;  // NaNs everywhere but the maximum
    for (size_t i = 1; i < nans.size(); i += 3) nans[i] = nan;
    cases.push_back(nans);
    auto nan0 = x;
    nan0[0] = nan;
    cases.push_back(nan0);
    cases.push_back(std::vector<float>(static_cast<size_t>(n), -inf));
  }
  cases.push_back({-1.0f, -0.0f, 0.0f, -0.0f});
  cases.push_back({0.0f, -0.0f});
  cases.push_back({-0.0f, 0.0f, 1e-45f});
  cases.push_back({nan, -inf, -inf});
  cases.push_back({nan, nan, -inf, 2.0f, nan});
  for (const auto& x : cases) {
    int64_t want = 0;  // the definition, over non-NaN values
    for (size_t i = 0; i < x.size(); ++i)
      if (!std::isnan(x[i]) && x[i] > -inf && (std::isnan(x[size_t(want)]) || x[size_t(want)] == -inf || x[i] > x[size_t(want)]))
        want = int64_t(i);
    ASSERT_EQ(argmax_scalar(x.data(), int64_t(x.size())), want);
    if (best_isa() >= Isa::Avx2) {
      ASSERT_EQ(argmax_avx2(x.data(), int64_t(x.size())), want) << "n " << x.size();
    }
  }
  if (best_isa() < Isa::Avx2) GTEST_SKIP() << "no AVX2: its argmax was not checked";
}

}  // namespace
}  // namespace qnext
