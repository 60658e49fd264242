// Quantized weights: block formats round-trip within half a step, the integer products match
// float products within the activation rounding, every SIMD variant matches the scalar twin,
// and quantized checkpoints (file or load-time) stay within KL bounds of the original.
#include <filesystem>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>
#include <random>

#include "common/golden.h"
#include "common/run.h"
#include "core/thread_pool.h"
#include "kernels/quant.h"
#include "model/qwen3_next.h"
#include "model/quantize.h"

namespace fs = std::filesystem;

namespace qnext {
namespace {

std::vector<float> random_vec(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<uint8_t> quantize_all(DType t, const std::vector<float>& w, int64_t rows, int64_t cols) {
  std::vector<uint8_t> out(size_t(rows) * row_bytes(t, cols));
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, w.data() + r * cols, cols, out.data() + size_t(r) * row_bytes(t, cols));
  return out;
}

TEST(Quant, RoundTripWithinHalfAStep) {
  std::mt19937 rng(1);
  const int64_t n = 32 * 40;
  const auto x = random_vec(rng, size_t(n));
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    const auto q = quantize_all(t, x, 1, n);
    std::vector<float> back(static_cast<size_t>(n));
    dequantize_row(t, q.data(), n, back.data());
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[size_t(b * 32 + i)]));
      // Q8_0: half a step of amax/127. Q4_0: its scale maps amax to between 6.5 and 8 steps on one
      // side, so values are within half a step, or clipped on the other side by at most a step.
      const float bound = t == DType::Q8_0 ? amax / 127 * 0.5f : amax / 6.5f;
      for (int i = 0; i < 32; ++i)
        EXPECT_LE(std::fabs(back[size_t(b * 32 + i)] - x[size_t(b * 32 + i)]), bound + amax * 1e-3f)
            << dtype_name(t) << " block " << b;
    }
  }
  // A block Q4_0 can hold exactly (levels -8..0 of one scale) comes back exactly.
  const float block[32] = {-3.0f, 0.375f * 3, 0.75f * 3};
  BlockQ4_0 q4;
  quantize_row_q4_0(block, 32, &q4);
  float back[32];
  dequantize_row(DType::Q4_0, &q4, 32, back);
  EXPECT_EQ(back[0], -3.0f);
  EXPECT_EQ(back[1], 1.125f);
  EXPECT_EQ(back[2], 2.25f);
  EXPECT_EQ(back[3], 0.0f);
}

// Integer products against float products over the dequantized weights: the only difference is
// the activations' int8 rounding, at most half a step per element.
TEST(Quant, IntegerProductMatchesFloatWithinActivationRounding) {
  std::mt19937 rng(2);
  const int64_t rows = 9, cols = 32 * 7;
  const int T = 3;
  const auto w = random_vec(rng, size_t(rows * cols)), x = random_vec(rng, size_t(T * cols));
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    const auto q = quantize_all(t, w, rows, cols);
    const Matrix m{t, q.data(), rows, cols};
    std::vector<BlockQ8x> xq(size_t(T * cols / 32));
    for (int i = 0; i < T; ++i) quantize_activations(x.data() + i * cols, cols, xq.data() + i * cols / 32);
    std::vector<float> y(size_t(T * rows));
    matmul_q_rows_scalar(m, xq.data(), T, y.data(), rows, 0, rows);
    std::vector<float> wrow(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(t, m.row_ptr(r), cols, wrow.data());
      for (int i = 0; i < T; ++i) {
        double exact = 0, bound = 0;
        for (int64_t k = 0; k < cols; ++k) {
          exact += double(wrow[size_t(k)]) * x[size_t(i * cols + k)];
          bound += std::fabs(wrow[size_t(k)]) * xq[size_t((i * cols + k) / 32)].d * 0.5;
        }
        EXPECT_LE(std::fabs(y[size_t(i * rows + r)] - exact), bound + 1e-4) << dtype_name(t);
      }
    }
  }
}

TEST(Quant, SimdMatchesScalarTwin) {
  if (best_isa() == Isa::Scalar) GTEST_SKIP() << "no SIMD on this CPU";
  std::mt19937 rng(3);
  for (DType t : {DType::Q8_0, DType::Q4_0})
    for (int64_t rows : {1, 3, 4, 7, 13, 33, 131})  // 131 x 2048: several row chunks of the VNNI GEMM
      for (int64_t cols : {32, 96, 256, 2048})  // Q4_0 decode tiles on AVX-512 take runs of 8 blocks
        // From kVnniGemmMinTokens up the VNNI panel GEMM: one token tile (4-12), tiles as even as
        // they go (13: 6 + 7, 20: 10 + 10, 33: 11 x 3).
        for (int T : {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 15, 16, 17, 20, 33}) {
          const auto w = random_vec(rng, size_t(rows * cols)), x = random_vec(rng, size_t(T * cols), 3.0f);
          const auto q = quantize_all(t, w, rows, cols);
          const Matrix m{t, q.data(), rows, cols};
          std::vector<BlockQ8x> xq(size_t(T * cols / 32));
          for (int i = 0; i < T; ++i) quantize_activations(x.data() + i * cols, cols, xq.data() + i * cols / 32);
          std::vector<float> want(size_t(T * rows)), got(size_t(T * rows));
          matmul_q_rows(Isa::Scalar, m, xq.data(), T, want.data(), rows, 0, rows);
          float scale = 0;
          for (float v : want) scale = std::max(scale, std::fabs(v));
          for (Isa isa : {Isa::Avx2, Isa::Avx512}) {  // AVX-512: the VNNI GEMM where the CPU has VNNI
            if (isa > best_isa()) continue;  // reported at the end
            matmul_q_rows(isa, m, xq.data(), T, got.data(), rows, 0, rows);
            EXPECT_LE(testing::max_abs_diff(want, got), 1e-5f * (1 + scale))
                << isa_name(isa) << " " << dtype_name(t) << " rows " << rows << " cols " << cols << " T " << T;
          }
        }
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// The bound on float rounding between two sums of the same exact block dots of row r against one
// token's activations xs [nb] (see VnniRowKernelsMatchScalarTwin below): 2 (nb + 8) 2^-24 S. It
// also bounds the sign trick's terms (AVX2's Q8_0): dw dx sum w x, whose integer is sum u x minus
// the offset term, so at most S's block term in magnitude.
double rounding_bound(const Matrix& m, const BlockQ8x* xs, int64_t r) {
  const int64_t nb = m.cols / 32;
  double s = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ8x& xb = xs[b];
    const uint8_t* blk = m.row_ptr(r) + b * int64_t(row_bytes(m.dtype, 32));
    uint16_t h;
    std::memcpy(&h, blk, 2);
    double ux = 0;
    for (int k = 0; k < 32; ++k) {
      const int u = m.dtype == DType::Q8_0 ? int(int8_t(blk[2 + k])) + 128
                                          : k < 16 ? blk[2 + k] & 15 : blk[2 + k - 16] >> 4;
      ux += u * std::abs(int(xb.q[k]));
    }
    ux += (m.dtype == DType::Q8_0 ? 128.0 : 8.0) * std::abs(xb.sum);
    s += std::fabs(double(f16_to_f32(h)) * xb.d) * ux;
  }
  return 2.0 * double(nb + 8) * std::ldexp(s, -24);
}

// The AVX2 one-token kernels against the scalar twin on sub-ranges of rows: Q4_0 rows of whole
// runs of 8 blocks go two at a time (an odd range leaves one), up to the activations' kMaxRuns
// (16384 weights); longer rows and Q8_0 go block by block. Rows outside the range stay untouched.
TEST(Quant, Avx2OneTokenRowsMatchScalarTwin) {
  if (best_isa() < Isa::Avx2) GTEST_SKIP() << "this CPU lacks AVX2";
  std::mt19937 rng(22);
  struct Case {
    int64_t rows, cols, r0, r1, ldy;
  };
  const Case cases[] = {{1, 256, 0, 1, 1},   {6, 512, 1, 6, 7},     {9, 2048, 2, 9, 9},
                        {8, 2048, 3, 4, 8},  {8, 2048, 2, 6, 8},   {5, 16384, 0, 5, 5},
                        {3, 16640, 1, 3, 4}};
  for (DType t : {DType::Q8_0, DType::Q4_0})
    for (const Case& c : cases) {
      const auto w = random_vec(rng, size_t(c.rows * c.cols)), x = random_vec(rng, size_t(c.cols), 3.0f);
      const auto q = quantize_all(t, w, c.rows, c.cols);
      const Matrix m{t, q.data(), c.rows, c.cols};
      std::vector<BlockQ8x> xq(size_t(c.cols / 32));
      quantize_activations(x.data(), c.cols, xq.data());
      std::vector<float> want(size_t(c.ldy), -7.0f), got(size_t(c.ldy), -7.0f);
      matmul_q_rows_scalar(m, xq.data(), 1, want.data(), c.ldy, c.r0, c.r1);
      matmul_q_rows_avx2(m, xq.data(), 1, got.data(), c.ldy, c.r0, c.r1);
      for (int64_t r = 0; r < c.ldy; ++r) {
        if (r < c.r0 || r >= c.r1) {
          EXPECT_EQ(got[size_t(r)], -7.0f) << dtype_name(t) << " cols " << c.cols << " row " << r;
          continue;
        }
        EXPECT_LE(std::fabs(double(got[size_t(r)]) - want[size_t(r)]), rounding_bound(m, xq.data(), r))
            << dtype_name(t) << " cols " << c.cols << " row " << r;
      }
    }
}

// The VNNI row kernels for a few tokens (quant_rows_avx512.cpp) against the scalar twin, called
// directly for T = 1..5 (passes of up to 3 tokens), sub-ranges of rows, ldy > rows, and rows longer
// than the on-stack activations (16640 weights). Both sides form each block's integer dot exactly
// (the kernel in 16 int32 lanes, each under 2^24, so converted exactly) and differ only in float
// rounding: scales, products and sums in another order. Each rounding is within 2^-24 of a partial
// sum no larger than S = sum over blocks of |dw dx| (sum |u x| + |offset|), u the unsigned weight
// bytes the kernel multiplies and the offset the sum term it starts from (128 |sum x| for Q8_0's
// w + 128, 8 |sum x| for Q4_0's nibbles); there are at most nb + 8 on either side: bound 2 (nb + 8) 2^-24 S.
TEST(Quant, VnniRowKernelsMatchScalarTwin) {
  if (!vnni_kernels(Isa::Avx512)) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI: the VNNI row kernels were not checked";
  std::mt19937 rng(21);
  struct Case {
    int64_t rows, cols, r0, r1, ldy;
  };
  // Rows of 16 blocks take their scales a group at a time (one group: 512; groups and then single
  // pairs: 1088, 16640), shorter ones a pair at a time (64, 256).
  const Case cases[] = {{1, 64, 0, 1, 1},      {7, 256, 0, 7, 7},      {5, 512, 0, 5, 5},
                        {9, 1088, 1, 9, 9},    {37, 2048, 5, 30, 41},  {13, 16640, 2, 13, 16}};
  for (DType t : {DType::Q8_0, DType::Q4_0})
    for (const Case& c : cases)
      for (int T = 1; T <= 5; ++T) {
        const auto w = random_vec(rng, size_t(c.rows * c.cols)), x = random_vec(rng, size_t(T * c.cols), 3.0f);
        const auto q = quantize_all(t, w, c.rows, c.cols);
        const Matrix m{t, q.data(), c.rows, c.cols};
        ASSERT_TRUE(rows_q_vnni_fits(m));
        const int64_t nb = c.cols / 32;
        std::vector<BlockQ8x> xq(size_t(T * nb));
        for (int i = 0; i < T; ++i) quantize_activations(x.data() + i * c.cols, c.cols, xq.data() + i * nb);
        std::vector<float> want(size_t(T * c.ldy), -7.0f), got(size_t(T * c.ldy), -7.0f);
        matmul_q_rows_scalar(m, xq.data(), T, want.data(), c.ldy, c.r0, c.r1);
        rows_q_vnni_avx512(m, xq.data(), T, got.data(), c.ldy, c.r0, c.r1);
        for (int j = 0; j < T; ++j)
          for (int64_t r = 0; r < c.ldy; ++r) {
            const size_t i = size_t(j * c.ldy + r);
            if (r < c.r0 || r >= c.r1) {  // rows outside the range stay untouched
              EXPECT_EQ(got[i], -7.0f) << dtype_name(t) << " T " << T << " row " << r;
              continue;
            }
            EXPECT_LE(std::fabs(double(got[i]) - want[i]), rounding_bound(m, xq.data() + j * nb, r))
                << dtype_name(t) << " cols " << c.cols << " T " << T << " token " << j << " row " << r;
          }
      }
}

// The VNNI row kernels read no byte past the matrix: it ends where an inaccessible page begins (a
// mapped file's last page), for each format, row width and token count (the weight-scale loads of
// a group of blocks are masked at the group's end).
TEST(Quant, VnniRowKernelsStayInsideTheMatrix) {
  if (!vnni_kernels(Isa::Avx512)) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI: the VNNI row kernels were not checked";
  std::mt19937 rng(5);
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  for (DType t : {DType::Q8_0, DType::Q4_0})
    for (int64_t cols : {512, 1088, 2048})
      for (int T = 1; T <= 3; ++T) {
        const int64_t rows = 3;
        const auto q = quantize_all(t, random_vec(rng, size_t(rows * cols)), rows, cols);
        const size_t span = (q.size() + page - 1) / page * page;
        void* base = mmap(nullptr, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_NE(base, MAP_FAILED);
        ASSERT_EQ(mprotect(static_cast<uint8_t*>(base) + span, page, PROT_NONE), 0);
        uint8_t* at = static_cast<uint8_t*>(base) + span - q.size();  // the last byte touches the guard page
        std::memcpy(at, q.data(), q.size());
        const Matrix m{t, at, rows, cols};
        const auto x = random_vec(rng, size_t(T * cols));
        std::vector<BlockQ8x> xq(size_t(T * cols / 32));
        for (int i = 0; i < T; ++i) quantize_activations(x.data() + i * cols, cols, xq.data() + i * cols / 32);
        std::vector<float> want(size_t(T * rows)), got(size_t(T * rows));
        matmul_q_rows_scalar(m, xq.data(), T, want.data(), rows, 0, rows);
        rows_q_vnni_avx512(m, xq.data(), T, got.data(), rows, 0, rows);
        float scale = 0;
        for (float v : want) scale = std::max(scale, std::fabs(v));
        EXPECT_LE(testing::max_abs_diff(want, got), 1e-5f * (1 + scale)) << dtype_name(t) << " cols " << cols << " T " << T;
        munmap(base, span + page);
      }
}

// A group of products (decoding's fused projections and experts) gives each product exactly what
// the same kernels give it alone: chunks of several rows, inputs shared between products
// (quantized once), float and quantized weights, one and two tokens, two threads.
TEST(Quant, ProductGroupEqualsSeparateProducts) {
  std::mt19937 rng(11);
  struct Case {
    DType type;
    int64_t rows, cols;
    int input;  // which input: 0 = [1, 2048], 1 = [2, 256]
  };
  const Case cases[] = {{DType::Q8_0, 300, 2048, 0}, {DType::Q4_0, 200, 2048, 0}, {DType::BF16, 150, 2048, 0},
                        {DType::Q4_0, 37, 256, 1},   {DType::F32, 5, 256, 1}};
  const int tokens[2] = {1, 2};
  const std::vector<float> inputs[2] = {random_vec(rng, 2048), random_vec(rng, 2 * 256)};
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<Matrix> mats;
  for (const Case& c : cases) {
    const auto w = random_vec(rng, size_t(c.rows * c.cols));
    if (is_quantized(c.type)) {
      bytes.push_back(quantize_all(c.type, w, c.rows, c.cols));
    } else {
      std::vector<uint8_t> b(w.size() * dtype_size(c.type));
      for (size_t i = 0; i < w.size(); ++i)
        if (c.type == DType::BF16) reinterpret_cast<uint16_t*>(b.data())[i] = f32_to_bf16(w[i]);
        else reinterpret_cast<float*>(b.data())[i] = w[i];
      bytes.push_back(std::move(b));
    }
    mats.push_back(Matrix{c.type, bytes.back().data(), c.rows, c.cols});
  }
  ASSERT_GT(mats[0].bytes(), 2 * kGroupChunkBytes);  // the first product spans several chunks
  set_num_threads(2);
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (isa > best_isa()) continue;  // reported at the end
    set_active_isa(isa);
    std::vector<std::vector<float>> want, got;
    std::vector<Product> group;
    for (size_t i = 0; i < mats.size(); ++i) {
      const Matrix& m = mats[i];
      const int T = tokens[cases[i].input];
      const float* x = inputs[cases[i].input].data();
      want.emplace_back(size_t(T * m.rows));
      got.emplace_back(size_t(T * m.rows), -1.0f);
      if (is_quantized(m.dtype)) {
        std::vector<BlockQ8x> xq(size_t(T * m.cols / 32));
        quantize_activation_rows(isa, x, T, m.cols, xq.data());
        matmul_q_rows(isa, m, xq.data(), T, want.back().data(), m.rows, 0, m.rows);
      } else {
        matmul_rows(isa, m, x, T, want.back().data(), m.rows, 0, m.rows);
      }
      group.push_back({&mats[i], x, T, nullptr});
    }
    for (size_t i = 0; i < group.size(); ++i) group[i].y = got[i].data();
    matmul_group(group.data(), group.size());
    for (size_t i = 0; i < mats.size(); ++i)
      EXPECT_EQ(want[i], got[i]) << isa_name(isa) << " product " << i << " (" << dtype_name(mats[i].dtype) << ")";
  }
  set_active_isa(best_isa());
  if (const auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
    GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
}

// The SIMD activation quantizer gives the very same blocks as the scalar twin.
TEST(Quant, SimdActivationQuantizerIsBitIdentical) {
  if (best_isa() < Isa::Avx2) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(5);
  const int64_t n = 32 * 33;
  auto x = random_vec(rng, size_t(n), 4.0f);
  for (int i = 0; i < 32; ++i) x[size_t(64 + i)] = 0.0f;  // an all-zero block
  x[7] = 1e-30f;
  // A block whose products land on halves (d = 0.5, so x / d = k + 0.5): ties round to even.
  x[96] = 63.5f;
  for (int i = 1; i < 32; ++i) x[size_t(96 + i)] = float(i - 16) * 0.5f + 0.25f;
  std::vector<BlockQ8x> want(size_t(n / 32));
  quantize_activations(x.data(), n, want.data());
  std::vector<std::pair<const char*, void (*)(const float*, int64_t, BlockQ8x*)>> variants = {
      {"avx2", quantize_activations_avx2}};
  if (vnni_kernels(best_isa())) variants.push_back({"avx512", quantize_activations_avx512});
  for (const auto& [name, quantize] : variants) {
    std::vector<BlockQ8x> got(size_t(n / 32));
    quantize(x.data(), n, got.data());
    for (size_t b = 0; b < want.size(); ++b) {
      EXPECT_EQ(want[b].d, got[b].d) << name << " block " << b;
      EXPECT_EQ(want[b].sum, got[b].sum) << name << " block " << b;
      EXPECT_EQ(0, std::memcmp(want[b].q, got[b].q, 32)) << name << " block " << b;
    }
  }
}

TEST(Quant, DequantizingProductMatchesScalarTwinAndFloat) {
  std::mt19937 rng(4);
  for (DType t : {DType::Q8_0, DType::Q4_0})
    for (int64_t rows : {1, 5, 8, 19, 131})
      for (int T : {1, 8, 12, 16, 31, 33}) {
        const int64_t cols = rows == 131 ? 2048 : 96;  // 131 x 2048: several row chunks and a 5-row tail
        const auto w = random_vec(rng, size_t(rows * cols)), x = random_vec(rng, size_t(T * cols));
        const auto q = quantize_all(t, w, rows, cols);
        const Matrix m{t, q.data(), rows, cols};
        // Reference: the dequantized weights in a plain float product.
        std::vector<float> deq(size_t(rows * cols)), want(size_t(T * rows)), a(size_t(T * rows)), b(size_t(T * rows));
        for (int64_t r = 0; r < rows; ++r) dequantize_row(t, m.row_ptr(r), cols, deq.data() + r * cols);
        const Matrix f{DType::F32, deq.data(), rows, cols};
        matmul_rows_scalar(f, x.data(), T, want.data(), rows, 0, rows);
        matmul_dq_rows(Isa::Scalar, m, x.data(), T, a.data(), rows, 0, rows);
        EXPECT_LE(testing::max_abs_diff(want, a), 1e-5f);
        if (best_isa() >= Isa::Avx2) {
          matmul_dq_rows(Isa::Avx2, m, x.data(), T, b.data(), rows, 0, rows);
          EXPECT_LE(testing::max_abs_diff(a, b), 1e-4f) << dtype_name(t) << " rows " << rows << " T " << T;
        }
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

std::vector<float> prefill(Model& m, const std::vector<int32_t>& ids) {
  SequenceState st(m.config());
  std::vector<float> logits;
  ForwardOptions opt;
  opt.all_logits = true;
  m.forward(st, ids, opt, nullptr, &logits);
  return logits;
}

// Bounds: measured on tiny-b's 150-token prompt (q8 mean 0.015, q4-mixed 0.056, q4 0.98; top-1
// 95%, 91%, 60%) with room for the other ISA's rounding. A tiny random model is a harsh case:
// no redundancy, sharp logits (std 3.4), and 4-bit steps of 1/8 of each block's largest weight.
TEST(Quant, QuantizedCheckpointsStayWithinKlBounds) {
  testing::Reference ref("tiny-b");
  const auto ids = ref.ids("prompt_ids");
  auto base = Model::load(testing::data_dir("tiny-b"));
  ASSERT_TRUE(base.ok()) << base.error();
  const auto want = prefill(*base.value(), ids);
  struct Bound {
    std::string type;
    double mean, top1;
  };
  for (const Bound& b : {Bound{"q8", 0.03, 0.92}, Bound{"q4-mixed", 0.12, 0.85}, Bound{"q4", 2.0, 0.45}}) {
    const std::string dir = (fs::temp_directory_path() / ("qnext_quant_" + std::to_string(::getpid()) + b.type)).string();
    auto r = testing::run(testing::qnext_bin() + " quantize --model " + testing::data_dir("tiny-b") + " --type " + b.type +
                          " --out " + dir);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto q = Model::load(dir);
    ASSERT_TRUE(q.ok()) << q.error();
    EXPECT_LT(q.value()->active_weight_bytes(), base.value()->active_weight_bytes() * 3 / 4) << b.type;
    const auto got = prefill(*q.value(), ids);
    const Kl kl = kl_divergence(want, got, base.value()->config().vocab_size);
    std::printf("  %-9s mean KLD %.4f  max KLD %.4f  top-1 %.1f%%\n", b.type.c_str(), kl.mean, kl.max, 100 * kl.top1);
    EXPECT_LE(kl.mean, b.mean) << b.type;
    EXPECT_GE(kl.top1, b.top1) << b.type;
    EXPECT_GT(kl.mean, 0.0) << b.type << ": nothing was quantized";

    // Quantizing at load time gives the very same weights as the file.
    auto at_load = Model::load(testing::data_dir("tiny-b"), parse_recipe(b.type).value());
    ASSERT_TRUE(at_load.ok());
    EXPECT_EQ(testing::max_abs_diff(prefill(*at_load.value(), ids), got), 0.0f) << b.type;
    fs::remove_all(dir);
  }
}

TEST(Quant, QuantizeRejectsBadArguments) {
  auto r = testing::run(testing::qnext_bin() + " quantize --model " + testing::data_dir("tiny-b") + " --type q3 --out /tmp/x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("unknown quantization type 'q3'"), std::string::npos) << r.output;
  r = testing::run(testing::qnext_bin() + " quantize --model /nonexistent --type q8 --out /tmp/x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("/nonexistent: not a directory"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace qnext
