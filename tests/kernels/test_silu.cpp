// SiLU (kernels/silu.h): the scalar twin against the definition in double, the AVX2 variant against
// the twin (the same float but for rare 1-ulp rounding cases) over the whole float range that
// matters (including the exp's clamps, denormal results, infinities and NaN), every tail length,
// with and without the multiplier, and in place.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu.h"
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
  const float ulp = std::nextafter(std::fabs(b), INFINITY) - std::fabs(b);
  if (std::fabs(double(a) - double(b)) <= ulps * double(ulp)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a << " vs " << b << " (" << (double(a) - double(b)) / ulp << " ulp)";
}

std::vector<float> inputs() {
  std::vector<float> x;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f), near(-6.0f, 6.0f);
  for (int i = 0; i < 4000; ++i) x.push_back(i % 2 ? wide(rng) : near(rng));
  for (float v : {0.0f, -0.0f, 95.0f, 103.0f, 104.5f, 1e-30f, -1e-30f, 87.0f, -87.0f, 87.4f, -87.4f, 88.3f, -88.3f, 88.4f, -88.4f, 89.0f, -89.0f,
                  103.9f, -103.9f, 200.0f, -200.0f, 1e30f, -1e30f, std::numeric_limits<float>::max(),
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
    // Below -88.7 e^-x has no float and silu is -0 instead of -x e^x (under 1e-36 in size).
    const double want = silu_exact(double(x[i]));
    if (x[i] < -88.7f) EXPECT_LT(std::fabs(double(y[i]) - want), 1e-36) << "x " << x[i];
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
      EXPECT_TRUE(close_ulps(got[i], want[i], 1)) << "x " << x[i] << " m " << (mp ? m[i] : 1);
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
    for (int64_t i = 0; i < len; ++i) EXPECT_TRUE(close_ulps(part[size_t(i)], whole[size_t(3 + i)], 0)) << "len " << len << " i " << i;
    EXPECT_EQ(part[size_t(len)], 12345.0f) << "wrote past n = " << len;
  }
  // In place: out aliases x.
  std::vector<float> inplace = x;
  silu_mul_avx2(inplace.data(), m.data(), n, inplace.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(close_ulps(inplace[i], whole[i], 0)) << "x " << x[i];
}

TEST(Silu, DispatchFollowsTheActiveIsa) {
  const std::vector<float> x = inputs();
  std::vector<float> a(x.size()), b(x.size());
  const Isa before = active_isa();
  set_active_isa(Isa::Scalar);
  silu_mul(x.data(), nullptr, int64_t(x.size()), a.data());
  silu_mul_scalar(x.data(), nullptr, int64_t(x.size()), b.data());
  set_active_isa(before);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(close_ulps(a[i], b[i], 0)) << "QNEXT_ISA=scalar must run the twin";
}

}  // namespace
}  // namespace qnext
