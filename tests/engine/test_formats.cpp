// The published quantized layouts (block FP8; compressed-tensors int4, symmetric and with zero
// points): e4m3 decoding, the dequant_check matrices of each fixture, every SIMD kernel against
// its scalar twin (partial blocks and groups included), and exact mode (QNEXT_ACTIVATIONS=f32)
// over Q8_0 / Q4_0.
#include <cmath>
#include <random>

#include "common/exact_mode.h"
#include "common/golden.h"
#include "core/cpu.h"
#include "io/quant_config.h"
#include "kernels/fp8.h"
#include "kernels/int4.h"
#include "kernels/quant.h"

namespace qnext {
namespace {

using testing::data_dir;
using testing::max_abs_diff;

std::vector<Isa> simd_isas() {
  std::vector<Isa> v;
  if (best_isa() >= Isa::Avx2) v.push_back(Isa::Avx2);
  if (best_isa() >= Isa::Avx512) v.push_back(Isa::Avx512);
  return v;
}

// e4m3fn from its definition, in double: (-1)^s 2^(e - 7) (1 + m / 8), subnormal 2^-6 m / 8.
TEST(Fp8, E4m3DecodesEveryCodeByDefinition) {
  for (int c = 0; c < 256; ++c) {
    const int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
    if (e == 15 && m == 7) {
      EXPECT_TRUE(std::isnan(e4m3_to_f32(uint8_t(c)))) << c;
      continue;
    }
    const double v = (s ? -1.0 : 1.0) * (e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7));
    EXPECT_EQ(double(e4m3_to_f32(uint8_t(c))), v) << "code " << c;
  }
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
}

// Every matrix of a fixture's dequant_check.safetensors, dequantized from the checkpoint by each
// ISA's dequantizer, matches the float32 values to 1e-6.
class DequantCheck : public ::testing::TestWithParam<const char*> {};

TEST_P(DequantCheck, MatchesStoredFloatMatrices) {
  const std::string dir = data_dir(GetParam());
  auto qc = read_quant_config(dir);
  ASSERT_TRUE(qc.ok()) << qc.error();
  EXPECT_NE(qc->method, QuantMethod::None);
  auto ck = Checkpoint::open(dir);
  ASSERT_TRUE(ck.ok()) << ck.error();
  auto check = SafetensorsFile::open(dir + "/dequant_check.safetensors");
  ASSERT_TRUE(check.ok()) << check.error();
  ASSERT_GE(check->tensors().size(), 3u);
  for (const auto& t : check->tensors()) {
    ASSERT_EQ(t.dtype, DType::F32);
    ASSERT_EQ(t.shape.size(), 2u);
    const int64_t rows = t.shape[0], cols = t.shape[1];
    const std::string module = t.name.substr(0, t.name.size() - 7);
    auto sm = find_scaled_matrix(ck.value(), qc.value(), module, rows, cols);
    ASSERT_TRUE(sm.ok()) << sm.error();
    ASSERT_TRUE(sm.value().has_value()) << module << " is not stored quantized";
    Matrix m{sm.value()->dtype, sm.value()->codes, rows, cols};
    m.scales = sm.value()->scales, m.scale_dtype = sm.value()->scale_dtype;
    m.group = sm.value()->group, m.group_rows = sm.value()->group_rows, m.zeros = sm.value()->zeros;
    const float* want = reinterpret_cast<const float*>(t.data);
    std::vector<Isa> isas = simd_isas();
    isas.insert(isas.begin(), Isa::Scalar);
    for (Isa isa : isas) {
      std::vector<float> got(size_t(rows * cols));
      for (int64_t r = 0; r < rows; ++r)
        weight_format(m.dtype).dequant[int(isa)](m, r, 0, cols, got.data() + size_t(r * cols));
      EXPECT_LE(max_abs_diff(want, got.data(), got.size()), 1e-6f) << t.name << " " << isa_name(isa);
    }
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}
INSTANTIATE_TEST_SUITE_P(Fixtures, DequantCheck, ::testing::Values("tiny-b-fp8", "tiny-b-w4a16", "tiny-b-awq"),
                         [](const auto& info) { return std::string(info.param).substr(7); });

// Random stored matrices with partial blocks / groups at both edges.
struct Synthetic {
  std::vector<uint8_t> codes;
  std::vector<uint16_t> scales16;
  std::vector<float> scales32;
  std::vector<int32_t> zeros;
  Matrix m;
};

// tiny: only codes of exponent field 0 (subnormal) and 1, so a kernel that mishandles subnormal
// codes fails (among all 256 codes their share of a product is too small to see).
Synthetic random_fp8(int64_t rows, int64_t cols, std::mt19937& rng, bool tiny = false) {
  Synthetic s;
  s.codes.resize(size_t(rows * cols));
  std::uniform_int_distribution<int> code(0, 255);
  for (auto& c : s.codes) {
    do c = uint8_t(code(rng));
    while ((c & 0x7f) == 0x7f || (tiny && (c & 0x78) > 0x08));
  }
  s.m = Matrix{DType::F8_E4M3, s.codes.data(), rows, cols};
  s.m.group = 128, s.m.group_rows = 128;
  s.scales32.resize(size_t(s.m.scale_rows() * s.m.scale_cols()));
  std::uniform_real_distribution<float> u(1e-4f, 3e-3f);
  for (auto& x : s.scales32) x = u(rng);
  s.m.scales = s.scales32.data();
  s.m.scale_dtype = DType::F32;
  return s;
}

Synthetic random_int4(int64_t rows, int64_t cols, int64_t group, bool asymmetric, std::mt19937& rng,
                      DType scale_dtype = DType::BF16) {
  Synthetic s;
  const int64_t words = (cols + 7) / 8;
  s.codes.resize(size_t(rows * words * 4));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& c : s.codes) c = uint8_t(byte(rng));
  s.m = Matrix{DType::I4, s.codes.data(), rows, cols};
  s.m.group = group;
  const size_t n_scales = size_t(rows * s.m.scale_cols());
  std::uniform_real_distribution<float> u(1e-3f, 2e-2f);
  if (scale_dtype == DType::F32) {
    s.scales32.resize(n_scales);
    for (auto& x : s.scales32) x = u(rng);
    s.m.scales = s.scales32.data();
  } else {
    s.scales16.resize(n_scales);
    for (auto& x : s.scales16) x = scale_dtype == DType::F16 ? f32_to_f16(u(rng)) : f32_to_bf16(u(rng));
    s.m.scales = s.scales16.data();
  }
  s.m.scale_dtype = scale_dtype;
  if (asymmetric) {
    s.zeros.resize(size_t((rows + 7) / 8 * s.m.scale_cols()));
    for (auto& z : s.zeros) z = int32_t(rng());
    s.m.zeros = s.zeros.data();
  }
  return s;
}

// y = x W^T in double from the scalar dequantizer: the definition the kernels are held to.
std::vector<double> reference_product(const Matrix& w, const std::vector<float>& x, int T) {
  std::vector<double> y(size_t(T) * size_t(w.rows));
  std::vector<float> row(size_t(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    weight_format(w.dtype).dequant[0](w, r, 0, w.cols, row.data());
    for (int t = 0; t < T; ++t) {
      double acc = 0;
      for (int64_t k = 0; k < w.cols; ++k) acc += double(row[size_t(k)]) * x[size_t(t * w.cols + k)];
      y[size_t(t) * size_t(w.rows) + size_t(r)] = acc;
    }
  }
  return y;
}

// Every ISA, every token count (decode tiles, the packed GEMM from kGemmMinTokens), through matmul_rows,
// in exact mode: the float-activation kernels. (The fast default of several tokens rounds the
// activations to bf16 on CPUs with AVX512-BF16: tests/kernels/test_gemm_bf16.cpp.)
void expect_products_match(const Matrix& w, std::mt19937& rng, const std::string& label) {
  const testing::ScopedExactActivations exact(true);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int T : {1, 2, 3, 4, 5, 13, 20}) {
    std::vector<float> x(size_t(T) * size_t(w.cols));
    for (auto& v : x) v = nd(rng);
    const auto want = reference_product(w, x, T);
    double scale = 0;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    std::vector<Isa> isas = simd_isas();
    isas.insert(isas.begin(), Isa::Scalar);
    for (Isa isa : isas) {
      std::vector<float> y(want.size(), -1.0f);
      matmul_rows(isa, w, x.data(), T, y.data(), w.rows, 0, w.rows);
      double err = 0;
      // A NaN output makes the error NaN (std::max would drop it and pass).
      for (size_t i = 0; i < y.size(); ++i) {
        const double d = std::fabs(double(y[i]) - want[i]);
        if (!(d <= err)) err = d;
      }
      EXPECT_LE(err, 2e-6 * scale * std::sqrt(double(w.cols)) + 1e-7)
          << label << " T=" << T << " " << isa_name(isa) << " (max |y| " << scale << ")";
    }
  }
}

TEST(Fp8, KernelsMatchScalarTwinWithPartialBlocks) {
  std::mt19937 rng(7);
  // 260 x 384: the AVX-512 kernel's path for whole 128-wide groups, over three row blocks.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{200, 328}, {16, 128}, {130, 1000}, {37, 20}, {260, 384}}) {
    Synthetic s = random_fp8(rows, cols, rng);
    for (Isa isa : simd_isas()) {  // the dequantizers are bit-identical
      std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
      for (int64_t r = 0; r < rows; r += 7) {
        dequant_fp8_scalar(s.m, r, 0, cols, a.data());
        weight_format(DType::F8_E4M3).dequant[int(isa)](s.m, r, 0, cols, b.data());
        ASSERT_EQ(a, b) << "row " << r;
      }
    }
    expect_products_match(s.m, rng, "fp8 " + std::to_string(rows) + "x" + std::to_string(cols));
  }
  // Rows wider than the kernels' on-stack activations (4096): their per-thread buffer.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{9, 4224}, {5, 8192}}) {
    Synthetic s = random_fp8(rows, cols, rng);
    expect_products_match(s.m, rng, "fp8 " + std::to_string(rows) + "x" + std::to_string(cols));
  }
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{130, 384}, {37, 20}, {9, 4224}}) {
    Synthetic s = random_fp8(rows, cols, rng, /*tiny=*/true);
    expect_products_match(s.m, rng, "fp8 subnormal codes " + std::to_string(rows) + "x" + std::to_string(cols));
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// The 128x128 row kernels scale the activations by 2^64 and the scales by 2^56 (fp8_rows.h): a
// call with an activation of 2^64 or more, and a row block with a scale of 2^64 or more, take the
// general kernel instead and still give every row its product (checked row by row, relative to
// the row's sum of |w x|, since the rows' magnitudes differ by 2^60 and more).
TEST(Fp8, ActivationsAndScalesBeyondTheScaledRangeStillMatch) {
  std::mt19937 rng(23);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const testing::ScopedExactActivations exact(true);
  for (bool huge_x : {false, true}) {
    Synthetic s = random_fp8(260, 384, rng);
    // Row block 1 (rows 128-255), group 2: a scale x 2^56 beyond f32's range.
    if (!huge_x) s.scales32[size_t(1 * s.m.scale_cols() + 2)] = 1e25f;
    for (int T : {1, 3, 6}) {
      std::vector<float> x(size_t(T) * 384);
      for (auto& v : x) v = nd(rng);
      if (huge_x) x[size_t(T - 1) * 384 + 5] = 4e19f;
      const auto want = reference_product(s.m, x, T);
      std::vector<float> row(384);
      for (Isa isa : simd_isas()) {
        std::vector<float> y(want.size(), -1.0f);
        matmul_rows(isa, s.m, x.data(), T, y.data(), s.m.rows, 0, s.m.rows);
        for (int64_t r = 0; r < s.m.rows; ++r) {
          dequant_fp8_scalar(s.m, r, 0, 384, row.data());
          for (int t = 0; t < T; ++t) {
            double size = 0;
            for (int k = 0; k < 384; ++k) size += std::fabs(double(row[size_t(k)]) * x[size_t(t * 384 + k)]);
            const size_t i = size_t(t) * size_t(s.m.rows) + size_t(r);
            EXPECT_LE(std::fabs(double(y[i]) - want[i]), 1e-6 * size) << isa_name(isa) << " T " << T << " row " << r
                                                                      << (huge_x ? " (huge activation)" : "");
          }
        }
      }
    }
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// The row kernels called directly on rows [r0, r1) starting and ending inside a 128-row block of
// scales, with ldy > rows: each row takes its own block's scales, rows outside stay untouched.
TEST(Fp8, RowKernelsOnSubRangesMatchScalarTwin) {
  std::mt19937 rng(17);
  Synthetic s = random_fp8(300, 512, rng);
  const int64_t r0 = 100, r1 = 230, ldy = 310;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int T : {1, 3, 6}) {
    std::vector<float> x(size_t(T) * 512);
    for (auto& v : x) v = nd(rng);
    std::vector<float> want(size_t(T * ldy), -7.0f);
    weight_format(DType::F8_E4M3).rows_f32[int(Isa::Scalar)](s.m, x.data(), T, want.data(), ldy, r0, r1);
    for (Isa isa : simd_isas()) {
      std::vector<float> got(size_t(T * ldy), -7.0f);
      weight_format(DType::F8_E4M3).rows_f32[int(isa)](s.m, x.data(), T, got.data(), ldy, r0, r1);
      for (int t = 0; t < T; ++t)
        for (int64_t r = 0; r < ldy; ++r) {
          const size_t i = size_t(t * ldy + r);
          if (r < r0 || r >= r1) EXPECT_EQ(got[i], -7.0f) << isa_name(isa) << " T " << T << " row " << r;
          else EXPECT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << isa_name(isa) << " T " << T << " row " << r;
        }
    }
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

TEST(Int4, KernelsMatchScalarTwinWithPartialGroupsAndZeroPoints) {
  std::mt19937 rng(11);
  struct C { int64_t rows, cols, group; bool asym; };
  for (C c : {C{200, 328, 128, false}, C{21, 100, 32, true}, C{64, 16, 32, true}, C{128, 1030, 128, true}, C{9, 60, 0, false}}) {
    const int64_t group = c.group ? c.group : c.cols;  // strategy "channel": one group per row
    Synthetic s = random_int4(c.rows, c.cols, group, c.asym, rng);
    const std::string label = "int4 " + std::to_string(c.rows) + "x" + std::to_string(c.cols) + " g" + std::to_string(group);
    for (Isa isa : simd_isas()) {
      std::vector<float> a(static_cast<size_t>(c.cols)), b(static_cast<size_t>(c.cols));
      for (int64_t r = 0; r < c.rows; r += 3) {
        dequant_int4_scalar(s.m, r, 0, c.cols, a.data());
        weight_format(DType::I4).dequant[int(isa)](s.m, r, 0, c.cols, b.data());
        ASSERT_EQ(a, b) << label << " row " << r;
      }
    }
    expect_products_match(s.m, rng, label);
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// The fused int4 row kernels (rows_f32 of every ISA) called directly: output rows [r0, r1) of a
// y wider than the matrix (ldy > rows), each written row against the double reference, every other
// entry untouched. Groups of 32, 128, one per row (channel) and 20 (not a whole number of words),
// partial last groups, cols % 8 != 0, symmetric and with zero points, passes of 1-4 tokens.
TEST(Int4, RowKernelsOverRowRangesAndWideOutputs) {
  std::mt19937 rng(17);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  struct C { int64_t rows, cols, group; bool asym; };
  for (C c : {C{40, 2048, 128, false}, C{40, 2048, 128, true}, C{33, 1000, 128, true}, C{24, 1001, 32, false},
              C{24, 1001, 32, true}, C{17, 328, 0, true}, C{17, 61, 0, false}, C{12, 333, 20, true}, C{8, 7, 32, true},
              C{10, 200, 64, false}}) {
    const int64_t group = c.group ? c.group : c.cols;
    Synthetic s = random_int4(c.rows, c.cols, group, c.asym, rng);
    const int64_t ldy = c.rows + 5;
    for (int T : {1, 2, 3, 5}) {
      std::vector<float> x(size_t(T) * size_t(c.cols));
      for (auto& v : x) v = nd(rng);
      const auto want = reference_product(s.m, x, T);  // [T, rows]
      double scale = 0;
      for (double v : want) scale = std::max(scale, std::fabs(v));
      std::vector<Isa> isas = simd_isas();
      isas.insert(isas.begin(), Isa::Scalar);
      for (Isa isa : isas)
        for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, c.rows}, {3, c.rows - 2}, {c.rows - 1, c.rows}, {5, 5}}) {
          const std::string label = "int4 " + std::to_string(c.rows) + "x" + std::to_string(c.cols) + " g" +
                                    std::to_string(group) + (c.asym ? " asym" : " sym") + " T=" + std::to_string(T) +
                                    " rows [" + std::to_string(r0) + ", " + std::to_string(r1) + ") " + std::string(isa_name(isa));
          std::vector<float> y(size_t(T) * size_t(ldy), -7.0f);
          weight_format(DType::I4).rows_f32[int(isa)](s.m, x.data(), T, y.data(), ldy, r0, r1);
          double err = 0;
          int untouched_bad = 0;
          for (int t = 0; t < T; ++t)
            for (int64_t r = 0; r < ldy; ++r) {
              const float got = y[size_t(t) * size_t(ldy) + size_t(r)];
              if (r < r0 || r >= r1) {
                untouched_bad += got != -7.0f;
                continue;
              }
              const double d = std::fabs(double(got) - want[size_t(t) * size_t(c.rows) + size_t(r)]);
              if (!(d <= err)) err = d;  // NaN stays
            }
          EXPECT_EQ(untouched_bad, 0) << label << ": wrote outside its rows";
          EXPECT_LE(err, 2e-6 * scale * std::sqrt(double(c.cols)) + 1e-7) << label << " (max |y| " << scale << ")";
        }
    }
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// I4 decoding with int8 activations (rows_int8): the AVX2 and VNNI kernels against their scalar
// twin over the same quantized activations, on row ranges of a wide y; the twin against the double
// product of the dequantized weights and dequantized activations; and the dispatch (int8_product):
// few tokens on a SIMD ISA in the fast default only, never in exact mode or for a matrix the
// kernels do not fit.
TEST(Int4, Int8DecodeKernelMatchesScalarTwin) {
  std::mt19937 rng(23);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  // Scales in each stored type (the AWQ release's are F16, converted inline by the kernels' row
  // setup), with and without zero points, rows of 1 to 256 groups (8192 weights, the widest the
  // kernels take); 13 rows make one-token blocks of 8, 4 and 1.
  struct C { int64_t rows, cols, group; bool asym; DType scales = DType::BF16; };
  for (C c : {C{40, 2048, 128, false}, C{40, 2048, 128, true}, C{24, 512, 32, true}, C{16, 256, 64, false},
              C{16, 256, 64, true}, C{9, 384, 256, true}, C{9, 384, 128, false}, C{9, 384, 32, true},
              C{8, 1024, 1024, false}, C{20, 2048, 32, true, DType::F16}, C{11, 1408, 128, true, DType::F16},
              C{11, 1408, 64, false, DType::F32}, C{9, 384, 32, false}, C{5, 8192, 32, true},
              C{13, 1024, 128, false, DType::F16}, C{10, 640, 64, true, DType::F32}}) {
    Synthetic s = random_int4(c.rows, c.cols, c.group, c.asym, rng, c.scales);
    ASSERT_TRUE(int4_int8_fits(s.m));
    const std::string name = "int4 " + std::to_string(c.rows) + "x" + std::to_string(c.cols) + " g" +
                             std::to_string(c.group) + (c.asym ? " asym " : " sym ") + std::string(dtype_name(c.scales));
    const int64_t ldy = c.rows + 3, nb = c.cols / 32;
    for (int T : {1, 2, 3, 5}) {
      std::vector<float> x(size_t(T) * size_t(c.cols));
      for (auto& v : x) v = nd(rng);
      std::vector<BlockQ8x> xq(size_t(T) * size_t(nb));
      quantize_activation_rows(Isa::Scalar, x.data(), T, c.cols, xq.data());
      std::vector<float> xd(x.size());  // the activations as the kernels see them
      for (size_t b = 0; b < xq.size(); ++b)
        for (int k = 0; k < 32; ++k) xd[32 * b + size_t(k)] = xq[b].d * float(xq[b].q[k]);
      const auto want = reference_product(s.m, xd, T);  // [T, rows]
      double scale = 0;
      for (double v : want) scale = std::max(scale, std::fabs(v));
      const double tol = 2e-6 * scale * std::sqrt(double(c.cols)) + 1e-7;
      std::vector<float> twin(size_t(T) * size_t(ldy), -7.0f);
      rows_int4_q8_scalar(s.m, xq.data(), T, twin.data(), ldy, 0, c.rows);
      double err = 0;
      for (int t = 0; t < T; ++t)
        for (int64_t r = 0; r < c.rows; ++r) {
          const double d = std::fabs(double(twin[size_t(t * ldy + r)]) - want[size_t(t * c.rows + r)]);
          if (!(d <= err)) err = d;
        }
      EXPECT_LE(err, tol) << name << " T=" << T << " scalar twin";
      std::vector<std::pair<const char*, Int8RowsKernel>> kernels;
      if (best_isa() >= Isa::Avx2) kernels.push_back({"AVX2", rows_int4_q8_avx2});
      if (vnni_kernels(best_isa())) kernels.push_back({"VNNI", rows_int4_q8_avx512});
      for (auto [kernel_name, kernel] : kernels) {
        for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, c.rows}, {3, c.rows - 2}, {c.rows - 1, c.rows}, {5, 5}}) {
          std::vector<float> y(size_t(T) * size_t(ldy), -7.0f);
          kernel(s.m, xq.data(), T, y.data(), ldy, r0, r1);
          double e = 0;
          int untouched_bad = 0;
          for (int t = 0; t < T; ++t)
            for (int64_t r = 0; r < ldy; ++r) {
              const float got = y[size_t(t * ldy + r)];
              if (r < r0 || r >= r1) {
                untouched_bad += got != -7.0f;
                continue;
              }
              const double d = std::fabs(double(got) - twin[size_t(t * ldy + r)]);
              if (!(d <= e)) e = d;
            }
          EXPECT_EQ(untouched_bad, 0) << name << " T=" << T << " rows [" << r0 << ", " << r1 << ") " << kernel_name
                                      << ": wrote outside its rows";
          EXPECT_LE(e, tol) << name << " T=" << T << " rows [" << r0 << ", " << r1 << ") " << kernel_name << " against the twin";
        }
      }
    }
  }
  // Dispatch.
  Synthetic fits = random_int4(32, 512, 128, true, rng), odd = random_int4(32, 520, 8, true, rng);
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    const testing::ScopedExactActivations fast(false);
    const bool simd = isa != Isa::Scalar;
    EXPECT_EQ(int8_product(isa, fits.m, 1), simd) << isa_name(isa);
    EXPECT_EQ(int8_product(isa, fits.m, kGroupMaxTokens), simd) << isa_name(isa);
    // Prefill: Q8_0's VNNI GEMM over the unpacked rows where the CPU has VNNI, else its own GEMM.
    EXPECT_EQ(int8_product(isa, fits.m, kGroupMaxTokens + 1), vnni_kernels(isa) && isa == Isa::Avx512) << isa_name(isa);
    EXPECT_FALSE(int8_product(isa, odd.m, 1)) << isa_name(isa);
    const testing::ScopedExactActivations exact(true);
    EXPECT_FALSE(int8_product(isa, fits.m, 1)) << isa_name(isa) << " in exact mode";
  }
  // Through matmul, one token, on each SIMD ISA: the fast default equals the twin over its
  // quantized activations, exact mode the float product.
  for (Isa isa : simd_isas()) {
    const Isa saved = active_isa();
    set_active_isa(isa);
    std::vector<float> x(512);
    for (auto& v : x) v = nd(rng);
    std::vector<BlockQ8x> xq(16);
    quantize_activation_rows(isa, x.data(), 1, 512, xq.data());
    std::vector<float> twin(32), fast(32), exact(32);
    rows_int4_q8_scalar(fits.m, xq.data(), 1, twin.data(), 32, 0, 32);
    {
      const testing::ScopedExactActivations mode(false);
      matmul(fits.m, x.data(), 1, fast.data());
    }
    {
      const testing::ScopedExactActivations mode(true);
      matmul(fits.m, x.data(), 1, exact.data());
    }
    const auto want = reference_product(fits.m, x, 1);
    double scale = 0;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    EXPECT_LE(max_abs_diff(fast, twin), 1e-5 * scale) << isa_name(isa);
    double exact_err = 0;
    for (size_t i = 0; i < 32; ++i) exact_err = std::max(exact_err, std::fabs(double(exact[i]) - want[i]));
    EXPECT_LE(exact_err, 1e-5 * scale) << isa_name(isa);
    EXPECT_GT(max_abs_diff(fast, exact), 1e-4 * scale) << isa_name(isa) << ": the fast default should quantize the activations";
    set_active_isa(saved);
  }
  if (!vnni_kernels(best_isa())) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI: the VNNI kernel was not checked";
}

// Exact mode: Q8_0 / Q4_0 products take float activations on every ISA and path (matmul, the
// decode group, the serial product), so they equal the float product over the dequantized
// weights up to float summation order; the default int8 activations do not.
TEST(ExactMode, QuantizedProductsUseFloatActivations) {
  const bool saved_exact = exact_activations();
  const Isa saved_isa = active_isa();
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t rows = 96, cols = 512;
  std::vector<float> wf(size_t(rows * cols));
  for (auto& v : wf) v = nd(rng);
  for (DType type : {DType::Q8_0, DType::Q4_0}) {
    std::vector<uint8_t> bytes(size_t(rows) * row_bytes(type, cols));
    for (int64_t r = 0; r < rows; ++r) quantize_row(type, wf.data() + r * cols, cols, bytes.data() + r * row_bytes(type, cols));
    const Matrix w{type, bytes.data(), rows, cols};
    std::vector<Isa> isas = simd_isas();
    isas.insert(isas.begin(), Isa::Scalar);
    for (int T : {1, 3, 7, 16}) {
      std::vector<float> x(size_t(T * cols));
      for (auto& v : x) v = nd(rng);
      const auto want = reference_product(w, x, T);
      for (Isa isa : isas) {
        set_active_isa(isa);
        auto worst = [&](bool exact, bool serial) {
          set_exact_activations(exact);
          std::vector<float> y(want.size());
          if (serial) matmul_serial(w, x.data(), T, y.data());
          else matmul(w, x.data(), T, y.data());
          double e = 0;
          for (size_t i = 0; i < y.size(); ++i) e = std::max(e, std::fabs(double(y[i]) - want[i]));
          return e;
        };
        const std::string label = std::string(dtype_name(type)) + " T=" + std::to_string(T) + " " + std::string(isa_name(isa));
        EXPECT_LE(worst(true, false), 1e-4) << label;
        EXPECT_LE(worst(true, true), 1e-4) << label << " serial";
        // The default quantizes the activations to int8 for few tokens, and for many on VNNI
        // (elsewhere prefill already dequantizes the weights): off by the activations' rounding.
        if (T < kGemmMinTokens || vnni_kernels(isa)) {
          EXPECT_GT(worst(false, false), 1e-3) << label << " default mode should quantize activations";
        }
      }
    }
  }
  set_exact_activations(saved_exact);
  set_active_isa(saved_isa);
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

}  // namespace
}  // namespace qnext
