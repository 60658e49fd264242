// SiLU (kernels/silu.h): the scalar twin against the definition in double, the AVX2 variant against
// the twin (the same float but for rare cases a couple of ulp apart) over the float range that
// matters (the exp's overflow clamp, infinities, NaN), every tail length, with and without the
// multiplier, in place over x and over m; the dispatch on an input where the two differ; and
// rms_norm_gated, which takes its SiLU with the norm's row as the multiplier, against its formula.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "kernels/norm.h"
#include "kernels/silu.h"

namespace qnext {
namespace {

double silu_exact(double x) { return x / (1.0 + std::exp(-x)); }

// |a - b| within `ulps` units in the last place of b, or both tiny (below the smallest normal).
::testing::AssertionResult close_ulps(float a, float b, int ulps) {
  if (std::isnan(a) && std::isnan(b)) return ::testing::AssertionSuccess();
  if (a == b) return ::testing::AssertionSuccess();
  const float tiny = std::numeric_limits<float>::min();
  if (std::fabs(a) < tiny && std::fabs(b) < tiny) return ::testing::AssertionSuccess();
  const float ulp = std::fabs(b) - std::nextafter(std::fabs(b), 0.0f);  // toward 0: finite at FLT_MAX
  if (std::fabs(double(a) - double(b)) <= ulps * double(ulp)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a << " vs " << b << " (" << (double(a) - double(b)) / ulp << " ulp)";
}

std::vector<float> inputs() {
  std::vector<float> x;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f), near(-6.0f, 6.0f);
  for (int i = 0; i < 4000; ++i) x.push_back(i % 2 ? wide(rng) : near(rng));
  for (float v : {0.0f, -0.0f, 95.0f, 103.0f, 104.5f, 1e-30f, -1e-30f, 87.0f, -87.0f, 87.4f, -87.4f, 88.3f, -88.3f,
                  88.4f, -88.4f, 89.0f, -89.0f, 103.9f, -103.9f, 200.0f, -200.0f, 1e30f, -1e30f, std::numeric_limits<float>::max(),
                  -std::numeric_limits<float>::max(), INFINITY, -INFINITY})
    x.push_back(v);
  return x;
}

TEST(Silu, ScalarTwinIsTheDefinition) {
  const std::vector<float> x = inputs();
  std::vector<float> y(x.size());
  silu_mul_scalar(x.data(), nullptr, int64_t(x.size()), y.data());
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isinf(x[i]) && x[i] < 0) {  // -inf / inf: NaN in the definition too
      EXPECT_TRUE(std::isnan(y[i]));
      continue;
    }
    // Below -ln(FLT_MAX) e^-x has no float, and silu is -0 instead of x e^x (under 1e-36 in size).
    const double want = silu_exact(double(x[i]));
    if (x[i] < -88.7228f) EXPECT_TRUE(y[i] == 0 && std::signbit(y[i])) << "x " << x[i] << " y " << y[i];
    else EXPECT_TRUE(close_ulps(y[i], float(want), 2)) << "x " << x[i];
  }
}

TEST(Silu, Avx2MatchesScalarTwin) {
  if (best_isa() < Isa::Avx2) GTEST_SKIP() << "no AVX2 on this CPU";
  std::vector<float> x = inputs();
  x.push_back(std::numeric_limits<float>::quiet_NaN());
  std::vector<float> m(x.size());
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> mult(-3.0f, 3.0f);
  for (float& v : m) v = mult(rng);
  const int64_t n = int64_t(x.size());
  for (const float* mp : {static_cast<const float*>(nullptr), static_cast<const float*>(m.data())}) {
    std::vector<float> want(x.size()), got(x.size(), -1.0f);
    silu_mul_scalar(x.data(), mp, n, want.data());
    silu_mul_avx2(x.data(), mp, n, got.data());
    size_t same = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      // A 1-ulp difference in e can grow through 1 + e, the division and the multiplier.
      EXPECT_TRUE(close_ulps(got[i], want[i], mp ? 3 : 2)) << "x " << x[i] << " m " << (mp ? m[i] : 1);
      same += std::memcmp(&got[i], &want[i], sizeof(float)) == 0 || (std::isnan(got[i]) && std::isnan(want[i]));
    }
    EXPECT_GE(double(same), 0.999 * double(x.size())) << "the exp is meant to round as std::exp does";
  }
  // Every tail length writes exactly its n values, the same as within a full vector.
  std::vector<float> whole(x.size());
  silu_mul_avx2(x.data(), m.data(), n, whole.data());
  for (int64_t len = 0; len <= 17; ++len) {
    std::vector<float> part(size_t(len) + 1, 12345.0f);
    silu_mul_avx2(x.data() + 3, m.data() + 3, len, part.data());
    EXPECT_EQ(std::memcmp(part.data(), whole.data() + 3, sizeof(float) * size_t(len)), 0) << "len " << len;
    EXPECT_EQ(part[size_t(len)], 12345.0f) << "wrote past n = " << len;
  }
  // In place: out aliases x, then m.
  std::vector<float> over_x = x, over_m = m;
  silu_mul_avx2(over_x.data(), m.data(), n, over_x.data());
  silu_mul_avx2(x.data(), over_m.data(), n, over_m.data());
  EXPECT_EQ(std::memcmp(over_x.data(), whole.data(), sizeof(float) * x.size()), 0);
  EXPECT_EQ(std::memcmp(over_m.data(), whole.data(), sizeof(float) * x.size()), 0);
}

// The two variants agree on nearly every input, so the dispatch is checked on one where they differ
// (a few in 10^5 here; found by search, since which ones depends on the libm's expf).
TEST(Silu, DispatchFollowsTheActiveIsa) {
  if (best_isa() < Isa::Avx2) GTEST_SKIP() << "no AVX2 on this CPU: silu_mul can only run the twin";
  std::vector<float> x;
  for (float v = -20.0f; v < 20.0f; v += 1.0f / 4096) x.push_back(v);
  std::vector<float> scalar(x.size()), avx2(x.size());
  silu_mul_scalar(x.data(), nullptr, int64_t(x.size()), scalar.data());
  silu_mul_avx2(x.data(), nullptr, int64_t(x.size()), avx2.data());
  size_t i = 0;
  while (i < x.size() && std::memcmp(&scalar[i], &avx2[i], sizeof(float)) == 0) ++i;
  if (i == x.size()) GTEST_SKIP() << "the variants agree on all " << x.size() << " inputs here";
  float got[2];
  const Isa before = active_isa();
  set_active_isa(Isa::Scalar);
  silu_mul(&x[i], nullptr, 1, &got[0]);
  set_active_isa(Isa::Avx2);
  silu_mul(&x[i], nullptr, 1, &got[1]);
  set_active_isa(before);
  EXPECT_EQ(std::memcmp(&got[0], &scalar[i], sizeof(float)), 0)
      << "QNEXT_ISA=scalar must run the twin (x " << x[i] << ")";
  EXPECT_EQ(std::memcmp(&got[1], &avx2[i], sizeof(float)), 0) << "AVX2 must run the AVX2 variant (x " << x[i] << ")";
}

// rms_norm_gated: rows of every tail length and longer than a value head, against the formula.
TEST(Silu, GatedNormMatchesItsFormula) {
  for (int n : {1, 7, 128, 256, 300, 600}) {
    std::mt19937 rng{uint32_t(n)};
    std::uniform_real_distribution<float> u(-4.0f, 4.0f);
    const size_t len = size_t(n);
    std::vector<float> x(len), z(len), w(len), y(len);
    for (int i = 0; i < n; ++i) x[size_t(i)] = u(rng), z[size_t(i)] = u(rng), w[size_t(i)] = u(rng);
    rms_norm_gated(x.data(), z.data(), w.data(), n, 1e-6f, y.data());
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    const double r = 1.0 / std::sqrt(ss / n + 1e-6);
    for (int i = 0; i < n; ++i) {
      const double want = double(x[size_t(i)]) * r * w[size_t(i)] * silu_exact(double(z[size_t(i)]));
      EXPECT_NEAR(y[size_t(i)], want, 1e-5 * (1 + std::fabs(want))) << "n " << n << " i " << i;
    }
  }
}

}  // namespace
}  // namespace qnext
