// SIMD kernels of llama.cpp's block formats, written once over a vector-ops struct O that
// ggml_blocks_avx2.cpp and ggml_blocks_avx512.cpp define (include only from those files; all of
// it has internal linkage, so the two ISAs' copies never merge). O::kWidth weights per vector.
//
// A visitor per format hands out a block's weights kWidth at a time as float vectors, f(i, k, w)
// for weights [k, k + kWidth) (i counts 0..3 and picks an accumulator): exactly (products, then
// sums: ggml's rounding, for the dequantizers) or fused (one FMA, for the row products). The row
// products dequantize in registers and FMA into up to 4 tokens at once, streaming each row once
// from start to end (stream_prefetch.h): no buffer, every weight byte read once per 4 tokens.
#pragma once
#include <algorithm>
#include <cstring>

#include "kernels/ggml_blocks.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

// a * b - c and a * b + c, rounded twice (exact: as ggml) or once.
template <class O, bool kExact>
inline typename O::V mul_sub(typename O::V a, typename O::V b, typename O::V c) {
  if constexpr (kExact) return O::sub(O::mul(a, b), c);
  else return O::fmsub(a, b, c);
}
template <class O, bool kExact>
inline typename O::V mul_add(typename O::V a, typename O::V b, typename O::V c) {
  if constexpr (kExact) return O::add(O::mul(a, b), c);
  else return O::fmadd(a, b, c);
}

// The 32-blocks: byte l holds elements l (low nibble) and l + 16 (high nibble).
template <class O, bool kExact, class F>
inline void visit(const BlockQ4_1& b, F&& f) {
  const typename O::V d = O::set1(O::f16(b.d)), m = O::set1(O::f16(b.m));
  for (int l = 0; l < 16; l += O::kWidth) {
    const typename O::I v = O::load_u8(b.qs + l);
    f(0, l, mul_add<O, kExact>(O::cvt(O::and_(v, 15)), d, m));
    f(1, 16 + l, mul_add<O, kExact>(O::cvt(O::template shr<4>(v)), d, m));
  }
}
// Q5_0 / Q5_1: bit l of qh (little-endian) is the 5th bit of element l.
template <class O, bool kExact, class F>
inline void visit(const BlockQ5_0& b, F&& f) {
  const typename O::V d = O::set1(O::f16(b.d));
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int l = 0; l < 16; l += O::kWidth) {
    const typename O::I v = O::load_u8(b.qs + l);
    const typename O::I q0 = O::or_(O::and_(v, 15), O::slli(O::lane_bits(qh, l), 4));
    const typename O::I q1 = O::or_(O::template shr<4>(v), O::slli(O::lane_bits(qh, 16 + l), 4));
    f(0, l, O::mul(O::cvt(O::subi(q0, 16)), d));
    f(1, 16 + l, O::mul(O::cvt(O::subi(q1, 16)), d));
  }
}
template <class O, bool kExact, class F>
inline void visit(const BlockQ5_1& b, F&& f) {
  const typename O::V d = O::set1(O::f16(b.d)), m = O::set1(O::f16(b.m));
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int l = 0; l < 16; l += O::kWidth) {
    const typename O::I v = O::load_u8(b.qs + l);
    const typename O::I q0 = O::or_(O::and_(v, 15), O::slli(O::lane_bits(qh, l), 4));
    const typename O::I q1 = O::or_(O::template shr<4>(v), O::slli(O::lane_bits(qh, 16 + l), 4));
    f(0, l, mul_add<O, kExact>(O::cvt(q0), d, m));
    f(1, 16 + l, mul_add<O, kExact>(O::cvt(q1), d, m));
  }
}
template <class O, bool kExact, class F>
inline void visit(const BlockIq4Nl& b, F&& f) {
  const typename O::V d = O::set1(O::f16(b.d));
  for (int l = 0; l < 16; l += O::kWidth) {
    const typename O::I v = O::load_u8(b.qs + l);
    f(0, l, O::mul(d, O::iq4nl(O::and_(v, 15))));
    f(1, 16 + l, O::mul(d, O::iq4nl(O::template shr<4>(v))));
  }
}
template <class O, bool kExact, class F>
inline void visit(const BlockIq4Xs& b, F&& f) {
  const float d = O::f16(b.d);
  for (int ib = 0; ib < 8; ++ib) {
    const int ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 15) | (((b.scales_h >> (2 * ib)) & 3) << 4);
    const typename O::V dl = O::set1(d * float(ls - 32));
    for (int l = 0; l < 16; l += O::kWidth) {
      const typename O::I v = O::load_u8(b.qs + 16 * ib + l);
      f(0, 32 * ib + l, O::mul(dl, O::iq4nl(O::and_(v, 15))));
      f(1, 32 * ib + 16 + l, O::mul(dl, O::iq4nl(O::template shr<4>(v))));
    }
  }
}

// Q2_K / Q3_K: weight 128 h + 32 j + 16 i + l in bits 2 j of qs[32 h + 16 i + l], scale 8 h + 2 j + i.
template <class O, bool kExact, class F>
inline void visit(const BlockQ2K& b, F&& f) {
  const float d = O::f16(b.d), dmin = O::f16(b.dmin);
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 2; ++i)
      for (int l = 0; l < 16; l += O::kWidth) {
        const typename O::I v = O::load_u8(b.qs + 32 * h + 16 * i + l);
        for (int j = 0; j < 4; ++j) {
          const uint8_t sc = b.scales[8 * h + 2 * j + i];
          const typename O::V dl = O::set1(d * float(sc & 15)), ml = O::set1(dmin * float(sc >> 4));
          f(j, 128 * h + 32 * j + 16 * i + l, mul_sub<O, kExact>(dl, O::cvt(O::and_(O::srl(v, 2 * j), 3)), ml));
        }
      }
}
// Q3_K: the high bit, bit 4 h + j of hmask[16 i + l], set means q as is, clear q - 4.
template <class O, bool kExact, class F>
inline void visit(const BlockQ3K& b, F&& f) {
  const float d = O::f16(b.d);
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 2; ++i)
      for (int l = 0; l < 16; l += O::kWidth) {
        const typename O::I v = O::load_u8(b.qs + 32 * h + 16 * i + l), hm = O::load_u8(b.hmask + 16 * i + l);
        for (int j = 0; j < 4; ++j) {
          const int g = 8 * h + 2 * j + i;
          const int lo = g < 8 ? b.scales[g] & 15 : b.scales[g - 8] >> 4;
          const int sc = lo | (((b.scales[8 + g % 4] >> (2 * (g / 4))) & 3) << 4);
          const typename O::V dl = O::set1(d * float(sc - 32));
          const typename O::I q = O::or_(O::and_(O::srl(v, 2 * j), 3), O::slli(O::and_(O::srl(hm, 4 * h + j), 1), 2));
          f(j, 128 * h + 32 * j + 16 * i + l, O::mul(dl, O::cvt(O::subi(q, 4))));
        }
      }
}

// Q4_K: f(i, k, w) for the weights [k, k + kWidth) of the block; i counts the calls (it picks an
// accumulator). 64 weights share 32 bytes: low nibbles first, then high.
template <class O, bool kExact, class F>
inline void visit(const BlockQ4K& b, F&& f) {
  constexpr int W = O::kWidth;
  const float d = O::f16(b.d), dmin = O::f16(b.dmin);
  for (int c = 0; c < 4; ++c) {
    int sc, m;
    k4_scale_min(b.scales, 2 * c, &sc, &m);
    const typename O::V d1 = O::set1(d * float(sc)), m1 = O::set1(dmin * float(m));
    k4_scale_min(b.scales, 2 * c + 1, &sc, &m);
    const typename O::V d2 = O::set1(d * float(sc)), m2 = O::set1(dmin * float(m));
    const uint8_t* q = b.qs + 32 * c;
    for (int l = 0; l < 32; l += 2 * W) {
      const typename O::I v0 = O::load_u8(q + l), v1 = O::load_u8(q + l + W);
      f(0, 64 * c + l, mul_sub<O, kExact>(d1, O::cvt(O::and_(v0, 15)), m1));
      f(1, 64 * c + l + W, mul_sub<O, kExact>(d1, O::cvt(O::and_(v1, 15)), m1));
      f(2, 64 * c + 32 + l, mul_sub<O, kExact>(d2, O::cvt(O::template shr<4>(v0)), m2));
      f(3, 64 * c + 32 + l + W, mul_sub<O, kExact>(d2, O::cvt(O::template shr<4>(v1)), m2));
    }
  }
}

// Q5_K: as Q4_K, the 5th bits of sub-blocks 2c and 2c + 1 at bits 2c, 2c + 1 of qh[l].
template <class O, bool kExact, class F>
inline void visit(const BlockQ5K& b, F&& f) {
  constexpr int W = O::kWidth;
  const float d = O::f16(b.d), dmin = O::f16(b.dmin);
  for (int c = 0; c < 4; ++c) {
    int sc, m;
    k4_scale_min(b.scales, 2 * c, &sc, &m);
    const typename O::V d1 = O::set1(d * float(sc)), m1 = O::set1(dmin * float(m));
    k4_scale_min(b.scales, 2 * c + 1, &sc, &m);
    const typename O::V d2 = O::set1(d * float(sc)), m2 = O::set1(dmin * float(m));
    const uint8_t* q = b.qs + 32 * c;
    for (int l = 0; l < 32; l += 2 * W) {
      const typename O::I v0 = O::load_u8(q + l), v1 = O::load_u8(q + l + W);
      // The two high bits moved to bits 4 and 5 (x 16 once masked).
      const typename O::I h0 = O::slli(O::srl(O::load_u8(b.qh + l), 2 * c), 4);
      const typename O::I h1 = O::slli(O::srl(O::load_u8(b.qh + l + W), 2 * c), 4);
      f(0, 64 * c + l, mul_sub<O, kExact>(d1, O::cvt(O::or_(O::and_(v0, 15), O::and_(h0, 16))), m1));
      f(1, 64 * c + l + W, mul_sub<O, kExact>(d1, O::cvt(O::or_(O::and_(v1, 15), O::and_(h1, 16))), m1));
      f(2, 64 * c + 32 + l, mul_sub<O, kExact>(d2, O::cvt(O::or_(O::template shr<4>(v0), O::and_(O::template shr<1>(h0), 16))), m2));
      f(3, 64 * c + 32 + l + W, mul_sub<O, kExact>(d2, O::cvt(O::or_(O::template shr<4>(v1), O::and_(O::template shr<1>(h1), 16))), m2));
    }
  }
}

// Q6_K: weights 128 h + 32 p + l (plane p); w = (d sc) (q - 32), exact either way.
template <class O, bool kExact, class F>
inline void visit(const BlockQ6K& b, F&& f) {
  constexpr int W = O::kWidth;
  const float d = O::f16(b.d);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    const int8_t* sc = b.scales + 8 * h;
    for (int l = 0; l < 32; l += W) {
      const typename O::I a = O::load_u8(ql + l), c = O::load_u8(ql + 32 + l), hb = O::load_u8(qh + l);
      const typename O::I q0 = O::or_(O::and_(a, 15), O::and_(O::slli(hb, 4), 48));
      const typename O::I q1 = O::or_(O::and_(c, 15), O::and_(O::slli(hb, 2), 48));
      const typename O::I q2 = O::or_(O::template shr<4>(a), O::and_(hb, 48));
      const typename O::I q3 = O::or_(O::template shr<4>(c), O::and_(O::template shr<2>(hb), 48));
      const int g = l / 16;  // the 16-group of these weights within each plane
      f(0, 128 * h + l, O::mul(O::set1(d * float(sc[g])), O::cvt(O::subi(q0, 32))));
      f(1, 128 * h + 32 + l, O::mul(O::set1(d * float(sc[2 + g])), O::cvt(O::subi(q1, 32))));
      f(2, 128 * h + 64 + l, O::mul(O::set1(d * float(sc[4 + g])), O::cvt(O::subi(q2, 32))));
      f(3, 128 * h + 96 + l, O::mul(O::set1(d * float(sc[6 + g])), O::cvt(O::subi(q3, 32))));
    }
  }
}

// A whole block, bit-exact with the scalar dequantizer.
template <class O, class Block>
void dequant_block_simd(const Block& b, float* out) {
  visit<O, true>(b, [&](int, int k, typename O::V v) { O::storeu(out + k, v); });
}

// One output row for tokens [t0, t0 + TT): the row's blocks visited once, each weight vector
// multiplied into every token. One token keeps 4 accumulators so the FMA chains overlap.
template <class O, class Block, int TT>
void row_tile(const Matrix& w, const float* x, float* y, int64_t ldy, int64_t r, int t0, StreamPrefetch& prefetch) {
  constexpr int A = TT == 1 ? 4 : 2;
  typename O::V acc[TT][A];
  const float* xt[TT];
  for (int j = 0; j < TT; ++j) {
    xt[j] = x + size_t(t0 + j) * size_t(w.cols);
    for (int a = 0; a < A; ++a) acc[j][a] = O::zero();
  }
  const Block* blocks = reinterpret_cast<const Block*>(w.row_ptr(r));
  const int64_t nb = w.cols / Block::kElems;
  for (int64_t ib = 0; ib < nb; ++ib) {
    prefetch.advance(blocks + ib + 1);
    const int64_t base = ib * Block::kElems;
    auto fma = [&](int i, int k, typename O::V v) {
      for (int j = 0; j < TT; ++j) acc[j][i % A] = O::fmadd(v, O::loadu(xt[j] + base + k), acc[j][i % A]);
    };
    visit<O, false>(blocks[ib], fma);
  }
  for (int j = 0; j < TT; ++j) {
    typename O::V s = acc[j][0];
    for (int a = 1; a < A; ++a) s = O::add(s, acc[j][a]);
    y[size_t(t0 + j) * size_t(ldy) + size_t(r)] = O::hsum(s);
  }
}

// Rows [r0, r1) for T tokens, 4 tokens per pass over the rows.
template <class O, class Block>
void rows_fused(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  for (int t0 = 0; t0 < T; t0 += 4) {
    StreamPrefetch prefetch(w.row_ptr(r0), w.row_ptr(r1));
    const int tt = std::min(4, T - t0);
    for (int64_t r = r0; r < r1; ++r) {
      switch (tt) {
        case 1: row_tile<O, Block, 1>(w, x, y, ldy, r, t0, prefetch); break;
        case 2: row_tile<O, Block, 2>(w, x, y, ldy, r, t0, prefetch); break;
        case 3: row_tile<O, Block, 3>(w, x, y, ldy, r, t0, prefetch); break;
        default: row_tile<O, Block, 4>(w, x, y, ldy, r, t0, prefetch); break;
      }
    }
  }
}

}  // namespace
}  // namespace qnext
