#include "model/state.h"

#include <algorithm>
#include <cassert>

#include "kernels/quant.h"

namespace qnext {

void KvCache::ensure_capacity(int positions) {
  if (positions <= capacity) return;
  assert(kv_type_fits(type, dim));  // the loaders refuse --kv-type q8_0 for other head dims
  const int grown = std::max(positions, 2 * capacity);
  const size_t head_bytes = size_t(len) * position_bytes();  // what each head holds now
  for (auto* buf : {&k, &v}) {
    Bytes next(size_t(heads) * size_t(grown) * position_bytes());
    for (int h = 0; h < heads; ++h)
      std::copy_n(buf->data() + head_offset(h), head_bytes, next.data() + size_t(h) * size_t(grown) * position_bytes());
    buf->swap(next);
  }
  capacity = grown;
}

void KvCache::store(int pos, const float* keys, const float* values) {
  for (int h = 0; h < heads; ++h) {
    const float* kh = keys + size_t(h) * size_t(dim);
    const float* vh = values + size_t(h) * size_t(dim);
    const size_t at = head_offset(h) + size_t(pos) * position_bytes();
    if (type == DType::Q8_0) {
      quantize_row_q8_0(kh, dim, reinterpret_cast<BlockQ8_0*>(k.data() + at));
      quantize_row_q8_0(vh, dim, reinterpret_cast<BlockQ8_0*>(v.data() + at));
    } else if (type == DType::F16) {
      auto* kd = reinterpret_cast<uint16_t*>(k.data() + at);
      auto* vd = reinterpret_cast<uint16_t*>(v.data() + at);
      for (int i = 0; i < dim; ++i) {
        kd[i] = f32_to_f16(kh[i]);
        vd[i] = f32_to_f16(vh[i]);
      }
    } else {
      std::copy_n(kh, dim, reinterpret_cast<float*>(k.data() + at));
      std::copy_n(vh, dim, reinterpret_cast<float*>(v.data() + at));
    }
  }
}

bool parse_kv_type(std::string_view name, DType* out) {
  if (name == "f32") *out = DType::F32;
  else if (name == "f16") *out = DType::F16;
  else if (name == "q8_0" || name == "q8") *out = DType::Q8_0;
  else return false;
  return true;
}

bool kv_type_fits(DType t, int head_dim) { return t != DType::Q8_0 || head_dim % kQuantBlock == 0; }

SequenceState::SequenceState(const Config& c, DType kv_type) : gdn(size_t(c.num_layers)), kv(size_t(c.num_layers)) {
  KvCache empty_cache;
  empty_cache.type = kv_type;
  empty_cache.heads = c.num_kv_heads;
  empty_cache.dim = c.head_dim;
  for (int i = 0; i < c.num_layers; ++i) {
    if (c.layer_types[size_t(i)] == LayerType::LinearAttention) {
      gdn[size_t(i)].conv.assign(size_t(c.linear_conv_kernel - 1) * size_t(c.linear_qkv_dim()), 0.0f);
      gdn[size_t(i)].recurrent.assign(
          size_t(c.linear_num_value_heads) * size_t(c.linear_key_head_dim) * size_t(c.linear_value_head_dim), 0.0f);
    } else {
      kv[size_t(i)] = empty_cache;
    }
  }
  mtp_kv = empty_cache;
}

void SequenceState::reset() {
  pos = 0;
  mtp_pos = 0;
  for (auto& g : gdn) {
    std::fill(g.conv.begin(), g.conv.end(), 0.0f);
    std::fill(g.recurrent.begin(), g.recurrent.end(), 0.0f);
  }
  for (auto& c : kv) c.len = 0;
  mtp_kv.len = 0;
}

// Copies the first `len` positions of every head of src into dst (capacity at least len).
static void copy_positions(const KvCache& src, KvCache& dst, int len) {
  const size_t row = src.position_bytes();
  for (int h = 0; h < src.heads; ++h) {
    std::copy_n(src.k.data() + src.head_offset(h), size_t(len) * row, dst.k.data() + dst.head_offset(h));
    std::copy_n(src.v.data() + src.head_offset(h), size_t(len) * row, dst.v.data() + dst.head_offset(h));
  }
  dst.len = len;
}

static KvCache trimmed(const KvCache& src) {
  KvCache out;
  out.type = src.type;
  out.heads = src.heads;
  out.dim = src.dim;
  if (src.len > 0 && src.heads > 0) {
    out.ensure_capacity(src.len);
    copy_positions(src, out, src.len);
  }
  return out;
}

static void restore_kv(const KvCache& snap, KvCache& dst) {
  dst.len = 0;
  if (snap.len == 0) return;
  dst.ensure_capacity(snap.len);
  copy_positions(snap, dst, snap.len);
}

SequenceState SequenceState::snapshot() const {
  SequenceState s;
  s.pos = pos;
  s.mtp_pos = mtp_pos;
  s.gdn = gdn;
  s.kv.reserve(kv.size());
  for (const KvCache& c : kv) s.kv.push_back(trimmed(c));
  s.mtp_kv = trimmed(mtp_kv);
  return s;
}

void SequenceState::restore(const SequenceState& snap) {
  pos = snap.pos;
  mtp_pos = snap.mtp_pos;
  for (size_t l = 0; l < gdn.size(); ++l) {  // same sizes: copied in place
    std::copy(snap.gdn[l].conv.begin(), snap.gdn[l].conv.end(), gdn[l].conv.begin());
    std::copy(snap.gdn[l].recurrent.begin(), snap.gdn[l].recurrent.end(), gdn[l].recurrent.begin());
  }
  for (size_t l = 0; l < kv.size(); ++l) restore_kv(snap.kv[l], kv[l]);
  restore_kv(snap.mtp_kv, mtp_kv);
}

void DeltaNetHistory::prepare(const Config& c, int T) {
  tokens = T;
  if (T <= capacity && states.size() == size_t(c.num_layers) * size_t(capacity)) return;
  capacity = std::max(T, capacity);
  states.assign(size_t(c.num_layers) * size_t(capacity), DeltaNetState{});
  for (int l = 0; l < c.num_layers; ++l) {
    if (c.layer_types[size_t(l)] != LayerType::LinearAttention) continue;
    for (int t = 0; t < capacity; ++t) {
      DeltaNetState& s = states[size_t(l) * size_t(capacity) + size_t(t)];
      s.conv.assign(size_t(c.linear_conv_kernel - 1) * size_t(c.linear_qkv_dim()), 0.0f);
      s.recurrent.assign(
          size_t(c.linear_num_value_heads) * size_t(c.linear_key_head_dim) * size_t(c.linear_value_head_dim), 0.0f);
    }
  }
}

void SequenceState::rewind(const DeltaNetHistory& h, int keep) {
  keep = std::clamp(keep, 1, h.tokens);
  if (pos == h.start_pos + keep) return;  // already there
  pos = h.start_pos + keep;
  for (size_t l = 0; l < gdn.size(); ++l) {
    if (gdn[l].recurrent.empty()) continue;
    const DeltaNetState& s = h.at(int(l), keep - 1);
    std::copy(s.conv.begin(), s.conv.end(), gdn[l].conv.begin());
    std::copy(s.recurrent.begin(), s.recurrent.end(), gdn[l].recurrent.begin());
  }
  for (auto& c : kv)
    if (c.heads > 0) c.len = std::min(c.len, pos);
}

void SequenceState::rewind_mtp(int slots) {
  mtp_pos = std::min(mtp_pos, slots);
  mtp_kv.len = std::min(mtp_kv.len, mtp_pos);
}

void SequenceState::reserve(int positions, bool mtp) {
  for (auto& c : kv)
    if (c.heads > 0) c.ensure_capacity(positions);
  if (mtp && mtp_kv.heads > 0) mtp_kv.ensure_capacity(positions);
}

size_t SequenceState::bytes() const {
  size_t n = 0;
  for (const auto& g : gdn) n += (g.conv.size() + g.recurrent.size()) * sizeof(float);
  for (const auto& c : kv) n += c.bytes();
  n += mtp_kv.bytes();
  return n;
}

size_t fixed_state_bytes(const Config& c) {
  size_t per_layer = (size_t(c.linear_conv_kernel - 1) * size_t(c.linear_qkv_dim()) +
                      size_t(c.linear_num_value_heads) * size_t(c.linear_key_head_dim) * size_t(c.linear_value_head_dim)) *
                     sizeof(float);
  size_t n = 0;
  for (auto t : c.layer_types)
    if (t == LayerType::LinearAttention) n += per_layer;
  return n;
}

size_t kv_bytes_per_token(const Config& c, bool with_mtp, DType kv_type) {
  size_t layers = with_mtp ? 1 : 0;
  for (auto t : c.layer_types)
    if (t == LayerType::FullAttention) ++layers;
  return layers * 2 * size_t(c.num_kv_heads) * row_bytes(kv_type, c.head_dim);
}

}  // namespace qnext
