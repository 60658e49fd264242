// The bf16 dot-product kernel (kernels/gemm_bf16.h): its AVX-512 form against the scalar twin for
// BF16, FP8 and int4 weights, one and two activation terms, partial tiles and padded columns; the
// two-term form against float products (what keeps BF16 within the golden tolerances); and the
// dispatch (exact mode and the scalar ISA never come here; BF16 only with QNEXT_ACTIVATIONS=bf16).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/exact_mode.h"
#include "core/cpu.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "kernels/weight_format.h"

namespace qnext {
namespace {

struct Weights {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  std::vector<int32_t> zeros;
  Matrix m;
};

Weights random_weights(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  Weights w;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  w.codes.resize(size_t(rows) * row_bytes(t, cols));
  switch (t) {
    case DType::BF16:
      for (size_t i = 0; i < size_t(rows * cols); ++i) reinterpret_cast<uint16_t*>(w.codes.data())[i] = f32_to_bf16(nd(rng));
      w.m = Matrix{t, w.codes.data(), rows, cols};
      break;
    case DType::F8_E4M3:
      for (auto& c : w.codes) {
        do c = uint8_t(rng());
        while ((c & 0x7f) == 0x7f);  // NaN codes
      }
      w.m = Matrix{t, w.codes.data(), rows, cols};
      w.m.group = 128, w.m.group_rows = 128;
      break;
    default:  // I4, asymmetric, groups of 32 (128 for 256 columns)
      for (auto& c : w.codes) c = uint8_t(rng());
      w.m = Matrix{t, w.codes.data(), rows, cols};
      w.m.group = cols == 256 ? 128 : 32;
      w.zeros.resize(size_t((rows + 7) / 8 * w.m.scale_cols()));
      for (auto& z : w.zeros) z = int32_t(rng());
      w.m.zeros = w.zeros.data();
      break;
  }
  if (t != DType::BF16) {
    w.scales.resize(size_t(w.m.scale_rows() * w.m.scale_cols()));
    std::uniform_real_distribution<float> u(1e-3f, 2e-2f);
    for (auto& s : w.scales) s = u(rng);
    w.m.scales = w.scales.data();
    w.m.scale_dtype = DType::F32;
  }
  return w;
}

// Sum over k of |w_rk x_tk| for each output: the scale of the rounding errors a sum may carry.
std::vector<double> magnitudes(const Matrix& w, const std::vector<float>& x, int T) {
  std::vector<double> m(size_t(T) * size_t(w.rows));
  std::vector<float> row(size_t(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    weight_format(w.dtype).dequant[0](w, r, 0, w.cols, row.data());
    for (int t = 0; t < T; ++t) {
      double s = 0;
      for (int64_t k = 0; k < w.cols; ++k) s += std::fabs(double(row[size_t(k)]) * x[size_t(t * w.cols + k)]);
      m[size_t(t) * size_t(w.rows) + size_t(r)] = s;
    }
  }
  return m;
}

TEST(GemmBf16, Avx512MatchesScalarTwin) {
  if (!cpu_has_avx512_bf16() || best_isa() < Isa::Avx512) GTEST_SKIP() << "this CPU lacks AVX512-BF16: the kernel was not checked";
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  struct Case { DType t; int64_t rows, cols; };
  // Rows past whole 4-row tiles, columns past whole 32-column steps and 128-column FP8 blocks.
  // 328, 360: a last partial 64-code step (FP8 codes go in whole 64-column steps, zero padded).
  // FP8 37 x 256 and 8 x 2048: decoding (T <= kFp8StreamMaxTokens) streams the codes, 8 or 4 rows
  // side by side and single rows past them; 1 in 16 random codes has exponent field 0 (its fix-up).
  for (Case c : {Case{DType::BF16, 70, 256}, {DType::BF16, 9, 200}, {DType::F8_E4M3, 133, 328}, {DType::F8_E4M3, 9, 360},
                 {DType::F8_E4M3, 8, 2048}, {DType::F8_E4M3, 37, 256}, {DType::I4, 37, 96}, {DType::I4, 64, 1000},
                 {DType::I4, 20, 256}})
    for (Bf16Terms terms : {Bf16Terms::One, Bf16Terms::HiLo})
      for (int T : {1, 3, 4, 6, 17, 70, 130}) {
        // FP8 takes vpermt2b (VBMI); 130 tokens: past kFp8ScaledActivationsMaxTokens, its scales
        // on the weights instead of the activations.
        if (c.t == DType::F8_E4M3 && !cpu_has_gfni()) continue;
        if (T == 130 && c.t != DType::F8_E4M3) continue;
        Weights w = random_weights(c.t, c.rows, c.cols, rng);
        std::vector<float> x(size_t(T) * size_t(c.cols));
        for (auto& v : x) v = nd(rng);
        const auto mag = magnitudes(w.m, x, T);
        // Rows [r0, r1) only, into a wider y: the other columns must stay untouched.
        const int64_t r0 = c.rows > 8 ? 3 : 0, r1 = c.rows, ldy = c.rows + 5;
        std::vector<float> want(size_t(T) * size_t(ldy), -7.0f), got = want;
        gemm_bf16_rows_scalar(w.m, x.data(), T, want.data(), ldy, r0, r1, terms);
        gemm_bf16_rows_avx512(w.m, x.data(), T, got.data(), ldy, r0, r1, terms);
        const std::string label = std::string(dtype_name(c.t)) + " " + std::to_string(c.rows) + "x" +
                                  std::to_string(c.cols) + " T=" + std::to_string(T) +
                                  (terms == Bf16Terms::HiLo ? " hi+lo" : " one term");
        for (int t = 0; t < T; ++t)
          for (int64_t r = 0; r < ldy; ++r) {
            const size_t i = size_t(t) * size_t(ldy) + size_t(r);
            if (r < r0 || r >= r1) {
              ASSERT_EQ(got[i], -7.0f) << label << ": wrote outside its rows at t=" << t << " r=" << r;
              continue;
            }
            // Same products, summed in another order (float accumulators, 2^-24 each).
            const double tol = 1e-6 * mag[size_t(t) * size_t(c.rows) + size_t(r)] + 1e-30;
            ASSERT_LE(std::fabs(double(got[i]) - want[i]), tol) << label << " t=" << t << " r=" << r;
          }
      }
}

// FP8 panels: subnormal and smallest normal codes only (a wrong subnormal conversion shows), with
// block scales on both sides of 128, against the scalar twin. Up to 128 tokens the codes are
// converted by bit permutations (nearly every step through the fix-up) and the scales go on the
// activations; past that (130) the weights are scaled: below 128 the
// integer conversion times scale x 2^120, from 128 up (1e4: scale x 2^120 is past f32) the F16C one.
TEST(GemmBf16, Fp8SubnormalCodesAndLargeScalesMatchScalarTwin) {
  if (!cpu_has_avx512_bf16() || best_isa() < Isa::Avx512) GTEST_SKIP() << "this CPU lacks AVX512-BF16: the kernel was not checked";
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Weights w = random_weights(DType::F8_E4M3, 140, 512, rng);
  for (auto& c : w.codes) c = uint8_t((c & 0x80) | (rng() % 16));  // exponent field 0 or 1
  // Row block 0 (rows 0-127) large scales, block 1 small ones: within a row the magnitudes stay alike,
  // so an error on either path shows against the row's sum of |w x|.
  const int64_t groups = w.m.scale_cols();
  for (size_t i = 0; i < w.scales.size(); ++i)
    w.scales[i] = int64_t(i) < groups ? 1e4f + float(i) : 1e-3f * float(1 + i);
  if (!cpu_has_gfni()) GTEST_SKIP() << "this CPU lacks GFNI: FP8 does not take the bf16 kernel";
  // 1 and 2 tokens: codes streamed; 4 and 9: rows converted for the tiles; both with the scales
  // on the activations; 130: scales on the weights.
  for (int T : {1, 2, 4, 9, 130}) {
    std::vector<float> x(size_t(T) * 512);
    for (auto& v : x) v = nd(rng);
    const auto mag = magnitudes(w.m, x, T);
    std::vector<float> want(size_t(T) * 140), got(want.size());
    gemm_bf16_rows_scalar(w.m, x.data(), T, want.data(), 140, 0, 140, Bf16Terms::HiLo);
    gemm_bf16_rows_avx512(w.m, x.data(), T, got.data(), 140, 0, 140, Bf16Terms::HiLo);
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_LE(std::fabs(double(got[i]) - want[i]), 1e-6 * mag[i] + 1e-30) << "T=" << T << " output " << i;
  }
}

// Two terms carry x to ~2^-16 and BF16 weights are exact: the products stay within a few 2^-16
// of the float products, where one term (x rounded to 2^-9) does not.
TEST(GemmBf16, TwoTermsMatchFloatProducts) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int T = 9;
  Weights w = random_weights(DType::BF16, 48, 512, rng);
  std::vector<float> x(size_t(T) * 512);
  for (auto& v : x) v = nd(rng);
  const auto mag = magnitudes(w.m, x, T);
  std::vector<float> exact(size_t(T) * 48), two(exact.size()), one(exact.size());
  matmul_rows_scalar(w.m, x.data(), T, exact.data(), 48, 0, 48);
  gemm_bf16_rows_scalar(w.m, x.data(), T, two.data(), 48, 0, 48, Bf16Terms::HiLo);
  gemm_bf16_rows_scalar(w.m, x.data(), T, one.data(), 48, 0, 48, Bf16Terms::One);
  double worst_two = 0, worst_one = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    worst_two = std::max(worst_two, std::fabs(double(two[i]) - exact[i]) / mag[i]);
    worst_one = std::max(worst_one, std::fabs(double(one[i]) - exact[i]) / mag[i]);
  }
  EXPECT_LT(worst_two, 4.0 / 65536) << "two terms";
  EXPECT_GT(worst_one, 16.0 / 65536) << "one term rounds x to 2^-9: this test would not see a lost lo term";
}

// FP8 blocks other than 128 x 128 (64 columns x 16 rows here, scales in bf16): up to 16 tokens (a
// block's rows) the scales go on the activations, past that on the weights; both against the twin.
TEST(GemmBf16, Fp8OtherBlockShapesMatchScalarTwin) {
  if (!cpu_has_avx512_bf16() || best_isa() < Isa::Avx512 || !cpu_has_gfni())
    GTEST_SKIP() << "this CPU lacks AVX512-BF16 or GFNI: FP8 does not take the bf16 kernel";
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Weights w = random_weights(DType::F8_E4M3, 45, 200, rng);
  w.m.group = 64, w.m.group_rows = 16;
  std::vector<uint16_t> scales16(size_t(w.m.scale_rows() * w.m.scale_cols()));
  std::uniform_real_distribution<float> u(1e-3f, 2e-2f);
  for (auto& v : scales16) v = f32_to_bf16(u(rng));
  w.m.scales = scales16.data();
  w.m.scale_dtype = DType::BF16;
  for (int T : {4, 16, 17})
    for (Bf16Terms terms : {Bf16Terms::One, Bf16Terms::HiLo}) {
      std::vector<float> x(size_t(T) * 200);
      for (auto& v : x) v = nd(rng);
      const auto mag = magnitudes(w.m, x, T);
      std::vector<float> want(size_t(T) * 45), got(want.size());
      gemm_bf16_rows_scalar(w.m, x.data(), T, want.data(), 45, 5, 45, terms);
      gemm_bf16_rows_avx512(w.m, x.data(), T, got.data(), 45, 5, 45, terms);
      for (int t = 0; t < T; ++t)
        for (int64_t r = 5; r < 45; ++r) {
          const size_t i = size_t(t) * 45 + size_t(r);
          ASSERT_LE(std::fabs(double(got[i]) - want[i]), 1e-6 * mag[i] + 1e-30) << "T=" << T << " r=" << r;
        }
    }
}

// A token's outputs are bit-identical whether it is computed alone, in a pair, a triple or a batch
// of 11, and whatever rows the call covers: serving batches sequences without changing their
// results (FP8 within batches of up to 128 tokens: gemm_bf16.h; its 1-3 tokens stream the codes,
// 8 or 4 rows side by side and single rows past them, against the tiles' converted rows).
TEST(GemmBf16, TokenResultsDoNotDependOnTheBatch) {
  if (!cpu_has_avx512_bf16() || best_isa() < Isa::Avx512) GTEST_SKIP() << "this CPU lacks AVX512-BF16: the kernel was not checked";
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (DType t : {DType::BF16, DType::F8_E4M3})
    for (Bf16Terms terms : {Bf16Terms::One, Bf16Terms::HiLo}) {
      if (t == DType::F8_E4M3 && !cpu_has_gfni()) continue;  // its code conversion is GFNI's
      const int64_t rows = 22, cols = 256;
      Weights w = random_weights(t, rows, cols, rng);
      const int T = 11;
      std::vector<float> x(size_t(T) * size_t(cols));
      for (auto& v : x) v = nd(rng);
      std::vector<float> batch(size_t(T) * size_t(rows));
      gemm_bf16_rows_avx512(w.m, x.data(), T, batch.data(), rows, 0, rows, terms);
      for (int t0 = 0; t0 < T; ++t0)
        for (int n : {1, 2, 3}) {
          if (t0 + n > T) continue;
          std::vector<float> part(size_t(n) * size_t(rows));
          gemm_bf16_rows_avx512(w.m, x.data() + size_t(t0) * size_t(cols), n, part.data(), rows, 0, 5, terms);
          gemm_bf16_rows_avx512(w.m, x.data() + size_t(t0) * size_t(cols), n, part.data(), rows, 5, rows, terms);
          for (int j = 0; j < n; ++j)
            for (int64_t r = 0; r < rows; ++r)
              ASSERT_EQ(part[size_t(j) * size_t(rows) + size_t(r)], batch[size_t(t0 + j) * size_t(rows) + size_t(r)])
                  << dtype_name(t) << " token " << t0 + j << " of " << n << " row " << r;
        }
    }
}

TEST(GemmBf16, DispatchLeavesExactModeAndScalarAlone) {
  Bf16Terms terms;
  {
    const testing::ScopedExactActivations exact(true);
    EXPECT_FALSE(use_bf16_gemm(Isa::Avx512, DType::F8_E4M3, 64, &terms));
    EXPECT_FALSE(use_bf16_gemm(Isa::Avx512, DType::BF16, 64, &terms));
  }
  const testing::ScopedExactActivations fast(false);
  const testing::ScopedBf16Activations float_bf16(false);  // whatever QNEXT_ACTIVATIONS says
  EXPECT_FALSE(use_bf16_gemm(Isa::Scalar, DType::F8_E4M3, 64, &terms));
  EXPECT_FALSE(use_bf16_gemm(Isa::Avx2, DType::BF16, 64, &terms));
  EXPECT_FALSE(use_bf16_gemm(Isa::Avx512, DType::F32, 64, &terms));
  EXPECT_FALSE(use_bf16_gemm(Isa::Avx512, DType::I4, kBf16MinTokens - 1, &terms));
  // BF16 by default on float (gemm_bf16.cpp says why); with QNEXT_ACTIVATIONS=bf16 on one term
  // from kGemmMinTokens tokens (fewer: the float row kernel, as fast there).
  EXPECT_FALSE(use_bf16_gemm(Isa::Avx512, DType::BF16, 64, &terms));
  EXPECT_EQ(activations_name(), "int8");
  {
    const testing::ScopedBf16Activations bf16(true);
    // What qnext bench reports: bf16 exactly where the dispatch takes the bf16 kernel.
    Bf16Terms active_terms;
    EXPECT_EQ(activations_name() == "bf16", use_bf16_gemm(active_isa(), DType::BF16, kGemmMinTokens, &active_terms));
    EXPECT_FALSE(use_bf16_gemm(Isa::Avx512, DType::BF16, kGemmMinTokens - 1, &terms));
    EXPECT_FALSE(use_bf16_gemm(Isa::Avx2, DType::BF16, 64, &terms));
    EXPECT_EQ(use_bf16_gemm(Isa::Avx512, DType::BF16, kGemmMinTokens, &terms), cpu_has_avx512_bf16());
    if (cpu_has_avx512_bf16()) {
      EXPECT_EQ(terms, Bf16Terms::One);
    }
    const testing::ScopedExactActivations exact(true);  // exact mode wins
    EXPECT_FALSE(use_bf16_gemm(Isa::Avx512, DType::BF16, 64, &terms));
    EXPECT_EQ(activations_name(), "f32");
  }
  if (cpu_has_avx512_bf16()) {
    // FP8's code conversion is GFNI's (vgf2p8affineqb): without it, FP8 stays on the float
    // kernels. With it, from one token (decoding streams the codes).
    for (int T : {1, kFp8StreamMaxTokens, kBf16MinTokens}) {
      const bool expected = cpu_has_gfni();
      EXPECT_EQ(use_bf16_gemm(Isa::Avx512, DType::F8_E4M3, T, &terms), expected) << T << " tokens";
      if (expected) {
        EXPECT_EQ(terms, Bf16Terms::One);
      }
    }
    // What matmul asks: decoding rows that are not whole 64-column steps stay on the float rows.
    std::mt19937 rng(4);
    const Weights whole = random_weights(DType::F8_E4M3, 8, 2048, rng);
    const Weights partial = random_weights(DType::F8_E4M3, 9, 360, rng);
    EXPECT_EQ(use_bf16_gemm(Isa::Avx512, whole.m, 1, &terms), cpu_has_gfni());
    EXPECT_EQ(fp8_streams(whole.m, 1), cpu_has_gfni());
    EXPECT_FALSE(use_bf16_gemm(Isa::Avx512, partial.m, 1, &terms));
    EXPECT_FALSE(fp8_streams(partial.m, 1));
    EXPECT_EQ(use_bf16_gemm(Isa::Avx512, partial.m, kBf16MinTokens, &terms), cpu_has_gfni());
    EXPECT_TRUE(use_bf16_gemm(Isa::Avx512, DType::I4, 64, &terms));
    EXPECT_EQ(terms, Bf16Terms::One);
  }
}

}  // namespace
}  // namespace qnext
