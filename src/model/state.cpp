#include "model/state.h"

#include <algorithm>

namespace qnext {

void KvCache::ensure_capacity(int positions) {
  if (positions <= capacity) return;
  const int grown = std::max(positions, 2 * capacity);
  const size_t head_bytes = size_t(len) * size_t(dim) * dtype_size(type);  // what each head holds now
  for (auto* buf : {&k, &v}) {
    std::vector<uint8_t> next(size_t(heads) * size_t(grown) * size_t(dim) * dtype_size(type));
    for (int h = 0; h < heads; ++h)
      std::copy_n(buf->data() + head_offset(h), head_bytes,
                  next.data() + size_t(h) * size_t(grown) * size_t(dim) * dtype_size(type));
    buf->swap(next);
  }
  capacity = grown;
}

void KvCache::store(int pos, const float* keys, const float* values) {
  for (int h = 0; h < heads; ++h) {
    const float* kh = keys + size_t(h) * size_t(dim);
    const float* vh = values + size_t(h) * size_t(dim);
    const size_t at = head_offset(h) + size_t(pos) * size_t(dim) * dtype_size(type);
    if (type == DType::F16) {
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
  else return false;
  return true;
}

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

void SequenceState::reserve(int positions) {
  for (auto& c : kv)
    if (c.heads > 0) c.ensure_capacity(positions);
  if (mtp_kv.heads > 0) mtp_kv.ensure_capacity(positions);
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
  return layers * 2 * size_t(c.num_kv_heads) * size_t(c.head_dim) * dtype_size(kv_type);
}

}  // namespace qnext
