#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/weight_format.h"

namespace qnext {

void quantize_row_q8_0(const float* x, int64_t n, BlockQ8_0* out) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b, x += kQuantBlock) {
    float amax = 0;
    for (int i = 0; i < kQuantBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    out[b].d = f32_to_f16(d);
    // Quantize against the scale as stored, so the f16 rounding of d is accounted for.
    const float ds = f16_to_f32(out[b].d);
    const float inv = ds > 0 ? 1.0f / ds : 0.0f;
    for (int i = 0; i < kQuantBlock; ++i)
      out[b].q[i] = int8_t(std::clamp(std::nearbyint(x[i] * inv), -127.0f, 127.0f));
  }
}

// Q4_0 has only 16 levels, so the scale is worth choosing: the largest magnitude maps to -8
// steps (the sign's full range) or a little less, whichever gives the smallest squared error.
void quantize_row_q4_0(const float* x, int64_t n, BlockQ4_0* out) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b, x += kQuantBlock) {
    float max = 0, amax = 0;
    for (int i = 0; i < kQuantBlock; ++i)
      if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
    uint16_t best_d = 0;
    float best_err = -1;
    for (float steps : {8.0f, 7.75f, 7.5f, 7.25f, 7.0f, 6.5f}) {
      const uint16_t d16 = f32_to_f16(max / -steps);
      const float d = f16_to_f32(d16);
      const float inv = d != 0 ? 1.0f / d : 0.0f;
      float e = 0;
      for (int i = 0; i < kQuantBlock; ++i) {
        const float q = std::clamp(std::nearbyint(x[i] * inv), -8.0f, 7.0f);
        const float diff = x[i] - d * q;
        e += diff * diff;
      }
      if (best_err < 0 || e < best_err) best_err = e, best_d = d16;
    }
    out[b].d = best_d;
    const float ds = f16_to_f32(best_d);
    const float inv = ds != 0 ? 1.0f / ds : 0.0f;
    uint8_t q[32];
    for (int i = 0; i < kQuantBlock; ++i) q[i] = uint8_t(std::clamp(std::nearbyint(x[i] * inv), -8.0f, 7.0f) + 8);
    for (int i = 0; i < 16; ++i) out[b].q[i] = uint8_t(q[i] | (q[i + 16] << 4));
  }
}

void quantize_row(DType type, const float* x, int64_t n, void* out) {
  if (type == DType::Q8_0) quantize_row_q8_0(x, n, static_cast<BlockQ8_0*>(out));
  else quantize_row_q4_0(x, n, static_cast<BlockQ4_0*>(out));
}

void dequantize_row(DType type, const void* row, int64_t n, float* out) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b, out += kQuantBlock) {
    if (type == DType::Q8_0) {
      const BlockQ8_0& blk = static_cast<const BlockQ8_0*>(row)[b];
      const float d = f16_to_f32(blk.d);
      for (int i = 0; i < kQuantBlock; ++i) out[i] = d * blk.q[i];
    } else {
      const BlockQ4_0& blk = static_cast<const BlockQ4_0*>(row)[b];
      const float d = f16_to_f32(blk.d);
      for (int i = 0; i < 16; ++i) {
        out[i] = d * (int(blk.q[i] & 15) - 8);
        out[i + 16] = d * (int(blk.q[i] >> 4) - 8);
      }
    }
  }
}

void quantize_activations(const float* x, int64_t n, BlockQ8x* out) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b, x += kQuantBlock) {
    float amax = 0;
    for (int i = 0; i < kQuantBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float inv = d > 0 ? 1.0f / d : 0.0f;
    out[b].d = d;
    out[b].sum = 0;
    for (int i = 0; i < kQuantBlock; ++i) {
      out[b].q[i] = int8_t(std::nearbyint(x[i] * inv));
      out[b].sum += out[b].q[i];
    }
  }
}

// The scalar twin: integer dot products per block, scaled by both scales.
void matmul_q_rows_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQuantBlock;
  for (int64_t r = r0; r < r1; ++r) {
    for (int t = 0; t < T; ++t) {
      const BlockQ8x* xb = xq + size_t(t) * size_t(nb);
      float acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t dot = 0;
        float dw;
        if (w.dtype == DType::Q8_0) {
          const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(w.row_ptr(r))[b];
          dw = f16_to_f32(blk.d);
          for (int i = 0; i < 32; ++i) dot += int32_t(blk.q[i]) * xb[b].q[i];
        } else {
          const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(w.row_ptr(r))[b];
          dw = f16_to_f32(blk.d);
          for (int i = 0; i < 16; ++i)
            dot += (int32_t(blk.q[i] & 15) - 8) * xb[b].q[i] + (int32_t(blk.q[i] >> 4) - 8) * xb[b].q[i + 16];
        }
        acc += dw * xb[b].d * float(dot);
      }
      y[size_t(t) * size_t(ldy) + size_t(r)] = acc;
    }
  }
}

// The scalar twin of the dequantizing product: one row at a time, float dot products.
void matmul_dq_rows_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  thread_local std::vector<float> row;  // [cols]
  if (row.size() < size_t(w.cols)) row.resize(size_t(w.cols));
  for (int64_t r = r0; r < r1; ++r) {
    weight_format(w.dtype).dequant[int(Isa::Scalar)](w, r, 0, w.cols, row.data());
    for (int t = 0; t < T; ++t) {
      const float* xt = x + size_t(t) * size_t(w.cols);
      float acc = 0;
      for (int64_t k = 0; k < w.cols; ++k) acc += row[size_t(k)] * xt[k];
      y[size_t(t) * size_t(ldy) + size_t(r)] = acc;
    }
  }
}

void matmul_dq_rows(Isa isa, const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (isa == Isa::Scalar) matmul_dq_rows_scalar(w, x, T, y, ldy, r0, r1);
  else gemm_rows_avx2(w, x, T, y, ldy, r0, r1);
}

void pack_runs(const BlockQ8x* xq, int64_t nb, RunX* out) {
  for (int64_t g = 0; g < nb / 8; ++g) {
    RunX& o = out[g];
    for (int k = 0; k < 8; ++k) {
      const BlockQ8x& b = xq[8 * g + k];
      std::memcpy(o.lo + 16 * k, b.q, 16);
      std::memcpy(o.hi + 16 * k, b.q + 16, 16);
      o.d[k] = b.d;
      o.offset[k] = -8.0f * b.d * float(b.sum);
    }
  }
}

bool vnni_kernels(Isa isa) { return isa == Isa::Avx512 && cpu_has_avx512_vnni(); }

void matmul_converted_rows_scalar(RowToInt8 convert, const Matrix& w, const BlockQ8x* xq, int T, float* y,
                                  int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQuantBlock;
  thread_local std::vector<int8_t> q;  // [cols]
  thread_local std::vector<float> d;   // [nb]
  q.resize(size_t(w.cols)), d.resize(size_t(nb));
  for (int64_t r = r0; r < r1; ++r) {
    convert(w, r, q.data(), d.data());
    for (int t = 0; t < T; ++t) {
      const BlockQ8x* xb = xq + size_t(t) * size_t(nb);
      float acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t dot = 0;
        for (int i = 0; i < kQuantBlock; ++i) dot += int32_t(q[size_t(b * kQuantBlock + i)]) * xb[b].q[i];
        acc += d[size_t(b)] * xb[b].d * float(dot);
      }
      y[size_t(t) * size_t(ldy) + size_t(r)] = acc;
    }
  }
}

void matmul_q_rows_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (!cpu_has_avx512_vnni()) matmul_q_rows_avx2(w, xq, T, y, ldy, r0, r1);
  else if (T >= kVnniGemmMinTokens) gemm_q_rows_avx512(w, xq, T, y, ldy, r0, r1);
  else if ((T >= 2 || w.dtype == DType::Q8_0) && T <= kVnniRowsMaxTokens && rows_q_vnni_fits(w)) rows_q_vnni_avx512(w, xq, T, y, ldy, r0, r1);
  else if (matvec_q4_avx512_fits(w, T)) matvec_q4_avx512(w, xq, T, y, ldy, r0, r1);
  else matmul_q_rows_avx2(w, xq, T, y, ldy, r0, r1);
}

void matmul_q_rows(Isa isa, const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  weight_format(w.dtype).rows_int8[int(isa)](w, xq, T, y, ldy, r0, r1);
}

void quantize_activation_rows(Isa isa, const float* x, int T, int64_t cols, BlockQ8x* xq) {
  // The AVX-512 quantizer's file is built with VNNI enabled, so it runs only where the CPU has it.
  auto quantize = quantize_activations;
  if (vnni_kernels(isa)) quantize = quantize_activations_avx512;
  else if (isa >= Isa::Avx2) quantize = quantize_activations_avx2;
  const size_t nb = size_t(cols / kQuantBlock);
  for (int t = 0; t < T; ++t) quantize(x + size_t(t) * size_t(cols), cols, xq + size_t(t) * nb);
}

}  // namespace qnext
