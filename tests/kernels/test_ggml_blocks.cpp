// llama.cpp's block formats (kernels/ggml_blocks.h): every SIMD kernel against its scalar twin on
// random blocks (fp16 scales zero, -0, subnormal, negative; every quant bit pattern), and every
// kernel against llama.cpp's own numbers in tests/data/gguf/types (reference.md there): the
// dequantization bit for bit, the row products and the prefill GEMM within 1e-5 of sum |w x|.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/golden.h"
#include "core/cpu.h"
#include "core/mapped_file.h"
#include "io/gguf.h"
#include "kernels/ggml_blocks.h"
#include "kernels/weight_format.h"
#include "common/random_blocks.h"

namespace qnext {
namespace {

using testing::isas_here;
using testing::random_matrix;
using testing::RandomMatrix;

constexpr DType kTypes[] = {DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                            DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS};

bool same_bits(const float* a, const float* b, size_t n, size_t* at) {
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, 4) != 0) {
      *at = i;
      return false;
    }
  return true;
}

// y = x W^T in double over the scalar dequantizer, and sum |w x| (the tolerance's scale).
void reference(const Matrix& w, const float* x, int T, std::vector<double>* dot, std::vector<double>* absdot) {
  dot->assign(size_t(T) * size_t(w.rows), 0.0);
  absdot->assign(dot->size(), 0.0);
  std::vector<float> row(size_t(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    weight_format(w.dtype).dequant[0](w, r, 0, w.cols, row.data());
    for (int t = 0; t < T; ++t) {
      double s = 0, a = 0;
      for (int64_t k = 0; k < w.cols; ++k) {
        const double p = double(row[size_t(k)]) * double(x[size_t(t) * size_t(w.cols) + size_t(k)]);
        s += p;
        a += std::fabs(p);
      }
      (*dot)[size_t(t) * size_t(w.rows) + size_t(r)] = s;
      (*absdot)[size_t(t) * size_t(w.rows) + size_t(r)] = a;
    }
  }
}

TEST(GgmlBlocks, DequantizersMatchScalarTwinBitForBit) {
  std::mt19937 rng(181);
  for (DType t : kTypes) {
    const int64_t cols = 768, rows = 9;
    RandomMatrix s = random_matrix(t, rows, cols, rng);
    const WeightFormat& f = weight_format(t);
    // Whole rows, then pieces cut inside blocks and super-blocks (k0 a multiple of 32, any n).
    const std::pair<int64_t, int64_t> ranges[] = {{0, cols}, {32, 1}, {96, 200}, {224, 33}, {256, 256}, {480, 288}, {736, 32}};
    for (Isa isa : isas_here()) {
      for (int64_t r = 0; r < rows; ++r)
        for (auto [k0, n] : ranges) {
          std::vector<float> want(static_cast<size_t>(cols)), got(static_cast<size_t>(n) + 1, -7.0f);
          f.dequant[0](s.m, r, 0, cols, want.data());
          f.dequant[int(isa)](s.m, r, k0, n, got.data());
          size_t at = 0;
          ASSERT_TRUE(same_bits(want.data() + k0, got.data(), size_t(n), &at))
              << dtype_name(t) << " " << isa_name(isa) << " row " << r << " k0 " << k0 << " n " << n << ": element "
              << k0 + int64_t(at) << " " << got[at] << " vs " << want[size_t(k0) + at];
          ASSERT_EQ(got[size_t(n)], -7.0f) << dtype_name(t) << " wrote past n";
        }
    }
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// The row kernels (decode: few tokens) of every ISA against the scalar twin, on row ranges
// [r0, r1) into a y wider than the matrix: only those columns are written.
TEST(GgmlBlocks, RowKernelsMatchScalarTwin) {
  std::mt19937 rng(182);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (DType t : kTypes)
    for (int64_t cols : {256, 1024}) {
      const int64_t rows = 21, ldy = 29;
      RandomMatrix s = random_matrix(t, rows, cols, rng);
      const WeightFormat& f = weight_format(t);
      for (int T : {1, 2, 3, 5}) {
        std::vector<float> x(size_t(T) * size_t(cols));
        for (auto& v : x) v = nd(rng);
        std::vector<double> dot, absdot;
        reference(s.m, x.data(), T, &dot, &absdot);
        for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, rows}, {3, 4}, {5, 18}}) {
          std::vector<float> want(size_t(T) * size_t(ldy), -5.0f);
          f.rows_f32[0](s.m, x.data(), T, want.data(), ldy, r0, r1);
          for (Isa isa : isas_here()) {
            std::vector<float> got(size_t(T) * size_t(ldy), -5.0f);
            f.rows_f32[int(isa)](s.m, x.data(), T, got.data(), ldy, r0, r1);
            for (int tk = 0; tk < T; ++tk)
              for (int64_t r = 0; r < ldy; ++r) {
                const size_t i = size_t(tk) * size_t(ldy) + size_t(r);
                const std::string where = std::string(dtype_name(t)) + " " + std::string(isa_name(isa)) + " cols " +
                                          std::to_string(cols) + " T " + std::to_string(T) + " token " +
                                          std::to_string(tk) + " row " + std::to_string(r);
                if (r < r0 || r >= r1) {
                  ASSERT_EQ(got[i], -5.0f) << where << ": written outside [r0, r1)";
                  continue;
                }
                const size_t j = size_t(tk) * size_t(rows) + size_t(r);
                const double bound = 1e-5 * absdot[j] + 1e-30;
                ASSERT_LE(std::fabs(double(got[i]) - double(want[i])), bound) << where << ": twin " << want[i];
                ASSERT_LE(std::fabs(double(got[i]) - dot[j]), bound) << where << ": double " << dot[j];
              }
          }
        }
      }
    }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// matmul_rows with many tokens takes the packed GEMM (its panels from the AVX2 dequantizers).
TEST(GgmlBlocks, PrefillMatchesDefinition) {
  std::mt19937 rng(183);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (DType t : kTypes) {
    const int64_t rows = 19, cols = 512;
    RandomMatrix s = random_matrix(t, rows, cols, rng);
    for (int T : {4, kGemmMinTokens, 20}) {
      std::vector<float> x(size_t(T) * size_t(cols));
      for (auto& v : x) v = nd(rng);
      std::vector<double> dot, absdot;
      reference(s.m, x.data(), T, &dot, &absdot);
      for (Isa isa : isas_here()) {
        std::vector<float> y(dot.size(), -5.0f);
        matmul_rows(isa, s.m, x.data(), T, y.data(), rows, 0, rows);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_LE(std::fabs(double(y[i]) - dot[i]), 1e-5 * absdot[i] + 1e-30)
              << dtype_name(t) << " " << isa_name(isa) << " T " << T << " element " << i << ": " << y[i] << " vs " << dot[i];
      }
    }
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// ---- llama.cpp's numbers: tests/data/gguf/types -------------------------------------------------

// dequant.safetensors holds float64 dots, which io/safetensors (weights only) does not read: its
// header is parsed here, every entry checked to lie inside the file.
struct RefTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
};

struct Fixture {
  std::shared_ptr<MappedFile> gguf_file, ref_file;
  GgufContents gguf;
  std::map<std::string, RefTensor> ref;
};

std::map<std::string, RefTensor> parse_reference(const MappedFile& f) {
  uint64_t header_len = 0;
  if (f.size() < 8) throw std::runtime_error("dequant.safetensors: truncated");
  std::memcpy(&header_len, f.data(), 8);
  if (header_len > f.size() - 8) throw std::runtime_error("dequant.safetensors: header past the end");
  const auto header = nlohmann::json::parse(f.data() + 8, f.data() + 8 + header_len);
  const size_t data_size = f.size() - 8 - header_len;
  std::map<std::string, RefTensor> out;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    RefTensor t{e.at("dtype").get<std::string>(), e.at("shape").get<std::vector<int64_t>>(), nullptr};
    const auto offsets = e.at("data_offsets").get<std::vector<uint64_t>>();
    size_t n = t.dtype == "F64" ? 8 : 4;
    for (int64_t d : t.shape) n *= size_t(d);
    if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size || offsets[1] - offsets[0] != n)
      throw std::runtime_error("dequant.safetensors: bad entry " + name);
    t.data = f.data() + 8 + header_len + offsets[0];
    out[name] = t;
  }
  return out;
}

const Fixture& fixture() {
  static const Fixture* f = [] {
    const std::string dir = testing::data_dir("gguf/types");
    auto gguf_file = MappedFile::open(dir + "/types.gguf");
    if (!gguf_file) throw std::runtime_error(gguf_file.error());
    auto parsed = parse_gguf((*gguf_file)->data(), (*gguf_file)->size(), dir + "/types.gguf");
    if (!parsed) throw std::runtime_error(parsed.error());
    auto ref_file = MappedFile::open(dir + "/dequant.safetensors");
    if (!ref_file) throw std::runtime_error(ref_file.error());
    auto ref = parse_reference(**ref_file);
    return new Fixture{*gguf_file, *ref_file, std::move(*parsed), std::move(ref)};
  }();
  return *f;
}

// The reference tensor `name`, checked to be of `dtype` with `numel` elements.
const void* ref_tensor(const std::string& name, const std::string& dtype, int64_t numel) {
  const auto& ref = fixture().ref;
  const auto it = ref.find(name);
  if (it == ref.end()) throw std::runtime_error("dequant.safetensors has no " + name);
  int64_t n = 1;
  for (int64_t d : it->second.shape) n *= d;
  if (it->second.dtype != dtype || n != numel)
    throw std::runtime_error("dequant.safetensors: " + name + " is not " + dtype + " of " + std::to_string(numel));
  return it->second.data;
}

Matrix matrix_of(const GgufTensor& t) {
  const auto dtype = dtype_of_ggml(t.type);
  if (!dtype || t.shape.size() != 2) throw std::runtime_error(t.name + ": not a matrix qnext reads");
  return Matrix{*dtype, t.data, t.shape[0], t.shape[1]};
}

TEST(GgmlBlocks, FixtureDequantEqualsLlamaCppBitForBit) {
  const Fixture& fx = fixture();
  ASSERT_EQ(fx.gguf.tensors.size(), 30u);
  for (const GgufTensor& t : fx.gguf.tensors) {
    const Matrix w = matrix_of(t);
    ASSERT_EQ(fx.ref.at(t.name).shape, t.shape) << t.name;
    const float* ref = static_cast<const float*>(ref_tensor(t.name, "F32", t.numel()));
    for (Isa isa : isas_here())
      for (int64_t r = 0; r < w.rows; ++r) {
        std::vector<float> got(size_t(w.cols));
        weight_format(w.dtype).dequant[int(isa)](w, r, 0, w.cols, got.data());
        size_t at = 0;
        EXPECT_TRUE(same_bits(ref + size_t(r * w.cols), got.data(), got.size(), &at))
            << t.name << " " << isa_name(isa) << " row " << r << " element " << at << ": " << got[at] << " vs llama.cpp "
            << ref[size_t(r * w.cols) + at];
      }
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// One token through each ISA's row kernel against reference.md's float64 dots.
TEST(GgmlBlocks, FixtureRowKernelsWithinTolerance) {
  const Fixture& fx = fixture();
  for (const GgufTensor& t : fx.gguf.tensors) {
    const Matrix w = matrix_of(t);
    const float* x = static_cast<const float*>(ref_tensor("x." + std::to_string(w.cols), "F32", w.cols));
    const double* dot = static_cast<const double*>(ref_tensor(t.name + ".dot", "F64", w.rows));
    const double* absdot = static_cast<const double*>(ref_tensor(t.name + ".absdot", "F64", w.rows));
    for (Isa isa : isas_here()) {
      std::vector<float> y(size_t(w.rows));
      weight_format(w.dtype).rows_f32[int(isa)](w, x, 1, y.data(), w.rows, 0, w.rows);
      for (int64_t r = 0; r < w.rows; ++r)
        EXPECT_LE(std::fabs(double(y[size_t(r)]) - dot[r]), 1e-5 * absdot[r])
            << t.name << " " << isa_name(isa) << " row " << r << ": " << y[size_t(r)] << " vs " << dot[r];
    }
  }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// Several tokens (the decode tiles at 5, the packed GEMM from kGemmMinTokens) through
// matmul_rows and the threaded matmul, against float64 dots of llama.cpp's dequantization. Exact
// mode, so Q8_0 / Q4_0 take float activations in matmul too.
TEST(GgmlBlocks, FixturePrefillWithinTolerance) {
  const Fixture& fx = fixture();
  std::mt19937 rng(184);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const Isa saved = active_isa();
  const bool saved_exact = exact_activations();
  set_exact_activations(true);
  for (const GgufTensor& t : fx.gguf.tensors) {
    const Matrix w = matrix_of(t);
    const float* deq = static_cast<const float*>(ref_tensor(t.name, "F32", t.numel()));
    const float* x0 = static_cast<const float*>(ref_tensor("x." + std::to_string(w.cols), "F32", w.cols));
    for (int T : {5, 16}) {
      // Token 0 is the fixture's x (zeros every 97th), the others random.
      std::vector<float> x(size_t(T) * size_t(w.cols));
      for (auto& v : x) v = nd(rng);
      std::memcpy(x.data(), x0, size_t(w.cols) * sizeof(float));
      std::vector<double> dot(size_t(T) * size_t(w.rows)), absdot(dot.size());
      for (int tk = 0; tk < T; ++tk)
        for (int64_t r = 0; r < w.rows; ++r) {
          double s = 0, a = 0;
          for (int64_t k = 0; k < w.cols; ++k) {
            const double p = double(deq[r * w.cols + k]) * double(x[size_t(tk * w.cols + k)]);
            s += p;
            a += std::fabs(p);
          }
          dot[size_t(tk * w.rows + r)] = s;
          absdot[size_t(tk * w.rows + r)] = a;
        }
      for (Isa isa : isas_here()) {
        std::vector<float> y(dot.size(), -5.0f), yt(dot.size(), -5.0f);
        matmul_rows(isa, w, x.data(), T, y.data(), w.rows, 0, w.rows);
        set_active_isa(isa);
        matmul(w, x.data(), T, yt.data());
        set_active_isa(saved);
        for (size_t i = 0; i < y.size(); ++i) {
          EXPECT_LE(std::fabs(double(y[i]) - dot[i]), 1e-5 * absdot[i])
              << t.name << " " << isa_name(isa) << " T " << T << " element " << i << ": " << y[i] << " vs " << dot[i];
          EXPECT_LE(std::fabs(double(yt[i]) - dot[i]), 1e-5 * absdot[i])
              << t.name << " matmul " << isa_name(isa) << " T " << T << " element " << i;
        }
      }
    }
  }
  set_exact_activations(saved_exact);
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

}  // namespace
}  // namespace qnext
