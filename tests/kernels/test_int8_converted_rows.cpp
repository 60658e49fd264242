// Formats whose prefill runs on Q8_0's int8 GEMM over rows converted to int8 blocks
// (weight_format.h's to_int8): FP8 (kernels/fp8.h: the rule that turns a segment's codes into
// int8 against e4m3's definition) and int4 (kernels/int4.h: exact). For each, the AVX-512
// conversion against its scalar twin (byte for byte), the GEMM over converted rows against the
// scalar int8 product (one and several slabs, partial segments and groups, row ranges), and the
// dispatch: 4+ tokens in the default mode take it, exact mode does not (nor FP8 decoding).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/exact_mode.h"
#include "core/cpu.h"
#include "kernels/fp8.h"
#include "kernels/gemm_bf16.h"
#include "kernels/int4.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/weight_format.h"

namespace qnext {
namespace {

struct Fp8Weights {
  std::vector<uint8_t> codes;  // [rows, cols]
  std::vector<float> scales;   // [ceil(rows / 128), ceil(cols / group)]
  Matrix m;
};

// How the codes are drawn (never NaN).
enum class Codes {
  Gaussian,  // e4m3 of N(0, 100): a segment's codes span few binades (real weights under amax scales)
  Any,       // all 254 codes: many more than 3 binades below their segment's largest, rounded
  // Gaussian, each segment of 128 of a row times its own 2^-k, k in 0..20: every S from 14 down to
  // 0 (all-subnormal segments), and segments of zeros and signed zeros only (0x00, 0x80)
  Scaled,
};

Fp8Weights random_fp8(int64_t rows, int64_t cols, int64_t group, Codes codes, std::mt19937& rng,
                      DType scale_dtype = DType::F32) {
  Fp8Weights w;
  w.codes.resize(size_t(rows * cols));
  std::normal_distribution<float> nd(0.0f, 100.0f);
  std::uniform_int_distribution<int> binades(0, 20);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k0 = 0; k0 < cols; k0 += 128) {
      const float factor = codes == Codes::Scaled ? std::ldexp(1.0f, -binades(rng)) : 1.0f;
      for (int64_t k = k0; k < std::min(cols, k0 + 128); ++k) {
        uint8_t& c = w.codes[size_t(r * cols + k)];
        if (codes == Codes::Any) {
          do c = uint8_t(rng());
          while ((c & 0x7f) == 0x7f);
        } else {
          c = f32_to_e4m3(nd(rng) * factor);
        }
      }
    }
  w.m = Matrix{DType::F8_E4M3, w.codes.data(), rows, cols};
  w.m.group = group, w.m.group_rows = 128;
  w.scales.resize(size_t(w.m.scale_rows() * w.m.scale_cols()));
  std::uniform_real_distribution<float> u(1e-4f, 3e-3f);
  for (auto& s : w.scales) s = u(rng);
  if (scale_dtype != DType::F32) {  // the scales' bf16 / f16 values, stored in place of the floats
    auto* h = reinterpret_cast<uint16_t*>(w.scales.data());
    for (size_t i = 0; i < w.scales.size(); ++i)
      h[i] = scale_dtype == DType::BF16 ? f32_to_bf16(w.scales[i]) : f32_to_f16(w.scales[i]);
  }
  w.m.scales = w.scales.data();
  w.m.scale_dtype = scale_dtype;
  return w;
}

// Random int4 words (every nibble), scales of scale_dtype, zero points when asymmetric.
struct Int4Weights {
  std::vector<uint32_t> words;    // [rows, cols / 8]
  std::vector<uint16_t> scales16;  // [rows, groups] (BF16, F16)
  std::vector<float> scales32;     // [rows, groups] (F32)
  std::vector<int32_t> zeros;      // [ceil(rows / 8), groups]
  Matrix m;
};
Int4Weights random_int4(int64_t rows, int64_t cols, int64_t group, bool asymmetric, DType scale_dtype, std::mt19937& rng) {
  Int4Weights w;
  w.words.resize(size_t(rows * cols / 8));
  for (auto& v : w.words) v = uint32_t(rng());
  w.m = Matrix{DType::I4, w.words.data(), rows, cols};
  w.m.group = group;
  std::uniform_real_distribution<float> u(1e-3f, 2e-2f);
  const size_t n = size_t(rows * w.m.scale_cols());
  if (scale_dtype == DType::F32) {
    for (size_t i = 0; i < n; ++i) w.scales32.push_back(u(rng));
    w.m.scales = w.scales32.data();
  } else {
    for (size_t i = 0; i < n; ++i) w.scales16.push_back(scale_dtype == DType::F16 ? f32_to_f16(u(rng)) : f32_to_bf16(u(rng)));
    w.m.scales = w.scales16.data();
  }
  w.m.scale_dtype = scale_dtype;
  if (asymmetric) {
    w.zeros.resize(size_t((rows + 7) / 8 * w.m.scale_cols()));
    for (auto& z : w.zeros) z = int32_t(rng());
    w.m.zeros = w.zeros.data();
  }
  return w;
}

bool has_kernel() { return vnni_kernels(Isa::Avx512) && cpu_has_avx512_vbmi(); }

// The twin's int8 blocks give each weight within half a step (d / 2) of e4m3 * scale, exactly for
// codes within 3 binades of their segment's largest (e4m3 = I * 2^(max(e, 1) - 10): exact when
// max(e, 1) >= max(e_largest, 1) - 3), and no integer beyond 120; over segments of every S.
TEST(Fp8Int8, ScalarRuleMatchesTheDefinition) {
  std::mt19937 rng(3);
  for (Codes codes : {Codes::Gaussian, Codes::Any, Codes::Scaled}) {
    const Fp8Weights w = random_fp8(130, 416, 128, codes, rng);  // segments of 128, 128, 128, 32
    std::vector<int8_t> q(416);
    std::vector<float> d(416 / 32);
    size_t exact = 0, rounded = 0;
    bool seen_shift[15] = {};
    for (int64_t r = 0; r < w.m.rows; ++r) {
      fp8_row_to_int8_scalar(w.m, r, q.data(), d.data());
      for (int64_t k0 = 0; k0 < w.m.cols; k0 += 128) {
        const int64_t end = std::min<int64_t>(w.m.cols, k0 + 128);
        int binade_largest = 1;  // max(e, 1) over the segment
        for (int64_t k = k0; k < end; ++k) binade_largest = std::max(binade_largest, (w.codes[size_t(r * w.m.cols + k)] >> 3) & 15);
        seen_shift[binade_largest - 1] = true;
        for (int64_t k = k0; k < end; ++k) {
          const uint8_t code = w.codes[size_t(r * w.m.cols + k)];
          const double want = double(e4m3_to_f32(code)) * w.scales[size_t((r / 128) * w.m.scale_cols() + k / 128)];
          const double got = double(q[size_t(k)]) * d[size_t(k / 32)];
          ASSERT_LE(std::abs(q[size_t(k)]), 120);
          ASSERT_LE(std::fabs(got - want), 0.5 * d[size_t(k / 32)] * (1 + 1e-6)) << "row " << r << " col " << k;
          if (std::max((code >> 3) & 15, 1) >= binade_largest - 3) {
            ASSERT_EQ(got, want) << "row " << r << " col " << k << " code " << int(code);
          }
          if (got == want) ++exact;
          else ++rounded;
        }
      }
    }
    EXPECT_GT(exact, 0u);
    if (codes != Codes::Gaussian) {
      EXPECT_GT(rounded, 0u);  // the rounding path ran
    }
    if (codes == Codes::Scaled) {
      for (int shift = 0; shift < 15; ++shift) EXPECT_TRUE(seen_shift[shift]) << "no segment of S " << shift;
    }
  }
}

TEST(Fp8Int8, Avx512ConversionEqualsScalarTwin) {
  if (!has_kernel()) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI or VBMI: the conversion was not checked";
  std::mt19937 rng(5);
  struct Case {
    int64_t rows, cols, group;
    DType scale_dtype = DType::F32;
  };
  // Segments cut by the row's end (32, 64, 96 left), by groups of 64 and 96; rows of whole runs
  // of four segments (2048) and runs with segments after them (640, 1184: the four-segment path
  // for F32 scales in groups of 128), and BF16 / F16 scales (segment by segment).
  for (const Case c : {Case{3, 32, 128}, {5, 96, 128}, {7, 160, 128}, {9, 224, 128}, {4, 2048, 128}, {6, 320, 64},
                       {6, 288, 96}, {5, 640, 128}, {3, 1184, 128}, {5, 1184, 128, DType::BF16},
                       {4, 640, 128, DType::F16}, {40, 2048, 128}}) {
    for (Codes codes : {Codes::Gaussian, Codes::Any, Codes::Scaled}) {
      const Fp8Weights w = random_fp8(c.rows, c.cols, c.group, codes, rng, c.scale_dtype);
      std::vector<int8_t> qa(size_t(c.cols)), qb(size_t(c.cols));
      std::vector<float> da(size_t(c.cols / 32)), db(size_t(c.cols / 32));
      for (int64_t r = 0; r < c.rows; ++r) {
        fp8_row_to_int8_scalar(w.m, r, qa.data(), da.data());
        fp8_row_to_int8_avx512(w.m, r, qb.data(), db.data());
        ASSERT_EQ(qa, qb) << c.cols << " cols, group " << c.group << ", row " << r;
        ASSERT_EQ(da, db) << c.cols << " cols, group " << c.group << ", row " << r;
      }
    }
  }
}

// int4 rows: the twin's q * d is the dequantized weight exactly, and the AVX-512 kernel gives the
// twin's bytes and scales: groups of 32, 64, 96, 128 and per channel (one group a row), rows whose
// last group is partial, symmetric and with zero points, BF16 / F16 / F32 scales.
TEST(Int4Int8, ConversionIsExactAndAvx512EqualsScalarTwin) {
  std::mt19937 rng(13);
  struct Case {
    int64_t rows, cols, group;
    bool asymmetric;
    DType scale_dtype;
  };
  const bool avx512 = vnni_kernels(Isa::Avx512);
  for (const Case c : {Case{9, 256, 32, true, DType::F16}, {9, 512, 64, false, DType::BF16}, {17, 384, 96, true, DType::F32},
                       {8, 1024, 128, false, DType::BF16}, {11, 352, 128, true, DType::BF16}, {5, 640, 640, false, DType::F32},
                       {6, 352, 352, true, DType::F16}}) {
    const Int4Weights w = random_int4(c.rows, c.cols, c.group, c.asymmetric, c.scale_dtype, rng);
    std::vector<int8_t> qa(size_t(c.cols)), qb(size_t(c.cols));
    std::vector<float> da(size_t(c.cols / 32)), db(size_t(c.cols / 32)), deq(size_t(c.cols));
    const std::string label = std::to_string(c.cols) + " cols, group " + std::to_string(c.group);
    for (int64_t r = 0; r < c.rows; ++r) {
      int4_row_to_int8_scalar(w.m, r, qa.data(), da.data());
      dequant_int4_scalar(w.m, r, 0, c.cols, deq.data());
      for (int64_t k = 0; k < c.cols; ++k) ASSERT_EQ(float(qa[size_t(k)]) * da[size_t(k / 32)], deq[size_t(k)]) << label << " row " << r << " col " << k;
      if (!avx512) continue;
      int4_row_to_int8_avx512(w.m, r, qb.data(), db.data());
      ASSERT_EQ(qa, qb) << label << ", row " << r;
      ASSERT_EQ(da, db) << label << ", row " << r;
    }
  }
  if (!avx512) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI: the AVX-512 conversion was not checked";
}

// The VNNI panel GEMM over converted rows against the scalar int8 product (the formats' scalar
// slots): one token tile (4-12 tokens), tiles as even as they go (13+), rows [r0, r1) inside the
// matrix with ldy > rows.
void expect_gemm_matches_twin(const Matrix& w, std::mt19937& rng, const std::string& label) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t cols = w.cols;
  for (int T : {4, 8, 9, 12, 13, 15, 16, 20, 33}) {
    std::vector<float> x(size_t(T * cols));
    for (auto& v : x) v = nd(rng);
    std::vector<BlockQ8x> xq(size_t(T * cols / 32));
    for (int t = 0; t < T; ++t) quantize_activations(x.data() + t * cols, cols, xq.data() + t * cols / 32);
    const int64_t r0 = 13, r1 = w.rows - 10, ldy = w.rows + 5;
    std::vector<float> want(size_t(T * ldy), -7.0f), got(size_t(T * ldy), -7.0f);
    weight_format(w.dtype).rows_int8[int(Isa::Scalar)](w, xq.data(), T, want.data(), ldy, r0, r1);
    weight_format(w.dtype).rows_int8[int(Isa::Avx512)](w, xq.data(), T, got.data(), ldy, r0, r1);
    for (int t = 0; t < T; ++t)
      for (int64_t r = 0; r < ldy; ++r) {
        const size_t i = size_t(t * ldy + r);
        if (r < r0 || r >= r1) ASSERT_EQ(got[i], -7.0f) << label << " T " << T << " row " << r;
        else ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << label << ", T " << T << ", row " << r;
      }
  }
}

TEST(Fp8Int8, GemmMatchesScalarTwin) {
  if (!has_kernel()) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI or VBMI: the GEMM was not checked";
  std::mt19937 rng(7);
  for (const int64_t cols : {int64_t(416), int64_t(2048)}) {
    const Fp8Weights w = random_fp8(300, cols, 128, Codes::Scaled, rng);
    expect_gemm_matches_twin(w.m, rng, "fp8 " + std::to_string(cols) + " cols");
  }
}

TEST(Int4Int8, GemmMatchesScalarTwin) {
  if (!vnni_kernels(Isa::Avx512)) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI: the GEMM was not checked";
  std::mt19937 rng(17);
  const Int4Weights awq = random_int4(300, 416, 32, true, DType::F16, rng);
  expect_gemm_matches_twin(awq.m, rng, "int4 group 32 with zero points");
  const Int4Weights w4a16 = random_int4(300, 2048, 128, false, DType::BF16, rng);
  expect_gemm_matches_twin(w4a16.m, rng, "int4 group 128 symmetric");
}

// Through matmul on AVX-512: 4+ tokens in the default mode give the int8 product (the activations
// quantized as Q8_0's), exact mode the float product over the dequantized weights; FP8 decoding
// (1-3 tokens) the bf16 product where the CPU has AVX512-BF16 and GFNI (gemm_bf16.h), else
// the float one (int4 decoding has its own int8 kernels: test_formats).
void expect_dispatch(const Matrix& w, RowsKernel float_twin, const std::vector<int>& tokens, std::mt19937& rng,
                     const std::string& name) {
  const Isa saved_isa = active_isa();
  set_active_isa(Isa::Avx512);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t rows = w.rows, cols = w.cols;
  auto distance = [](const std::vector<float>& a, const std::vector<float>& b) {
    double e = 0;
    for (size_t i = 0; i < a.size(); ++i) e = std::max(e, std::fabs(double(a[i]) - b[i]) / (1 + std::fabs(b[i])));
    return e;
  };
  for (int T : tokens) {
    std::vector<float> x(size_t(T * cols));
    for (auto& v : x) v = nd(rng);
    std::vector<BlockQ8x> xq(size_t(T * cols / 32));
    for (int t = 0; t < T; ++t) quantize_activations(x.data() + t * cols, cols, xq.data() + t * cols / 32);
    std::vector<float> int8_want(size_t(T * rows)), float_want(size_t(T * rows)), bf16_want(size_t(T * rows));
    weight_format(w.dtype).rows_int8[int(Isa::Scalar)](w, xq.data(), T, int8_want.data(), rows, 0, rows);
    float_twin(w, x.data(), T, float_want.data(), rows, 0, rows);
    gemm_bf16_rows_scalar(w, x.data(), T, bf16_want.data(), rows, 0, rows, Bf16Terms::One);
    for (bool exact : {false, true}) {
      const testing::ScopedExactActivations mode(exact);
      std::vector<float> y(size_t(T * rows));
      matmul(w, x.data(), T, y.data());
      const bool int8 = !exact && T >= kVnniGemmMinTokens;
      Bf16Terms terms;
      const bool bf16 = !int8 && use_bf16_gemm(Isa::Avx512, w, T, &terms);
      const std::string label = name + " T " + std::to_string(T) + (exact ? " exact" : " default");
      EXPECT_EQ(int8_product(Isa::Avx512, w, T), int8) << label;
      EXPECT_EQ(bf16, w.dtype == DType::F8_E4M3 && !exact && T < kVnniGemmMinTokens && cpu_has_avx512_bf16() && cpu_has_gfni())
          << label;
      if (int8) {
        EXPECT_LE(distance(y, int8_want), 1e-5) << label;
        EXPECT_GT(distance(y, float_want), 1e-4) << label << ": the int8 product should differ from float";
      } else if (bf16) {
        EXPECT_LE(distance(y, bf16_want), 1e-5) << label;
        EXPECT_GT(distance(y, float_want), 1e-4) << label << ": the bf16 product should differ from float";
      } else {
        EXPECT_LE(distance(y, float_want), 1e-5) << label;
      }
    }
  }
  set_active_isa(saved_isa);
}

TEST(Fp8Int8, DispatchTakesTheGemmForPrefillOnly) {
  if (!has_kernel() || best_isa() < Isa::Avx512) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI or VBMI: not dispatched";
  std::mt19937 rng(9);
  const Fp8Weights w = random_fp8(256, 512, 128, Codes::Gaussian, rng);
  expect_dispatch(w.m, rows_fp8_scalar, {2, 6, 20}, rng, "fp8");
  // Nothing but AVX-512 with VNNI and VBMI takes it (FP8 has no AVX2 int8 slot).
  for (Isa isa : {Isa::Scalar, Isa::Avx2}) EXPECT_FALSE(int8_product(isa, w.m, 20)) << isa_name(isa);
}

TEST(Int4Int8, DispatchTakesTheGemmForPrefill) {
  if (!vnni_kernels(Isa::Avx512) || best_isa() < Isa::Avx512) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI: not dispatched";
  std::mt19937 rng(19);
  const Int4Weights w = random_int4(256, 512, 32, true, DType::BF16, rng);
  expect_dispatch(w.m, rows_int4_scalar, {6, 20}, rng, "int4");
}

}  // namespace
}  // namespace qnext
