#include "model/state.h"

#include <algorithm>

namespace qnext {

void KvCache::ensure_capacity(int positions) {
  const size_t need = size_t(positions) * row;
  if (k.size() >= need) return;
  const size_t grown = std::max(need, k.size() * 2);
  k.resize(grown);
  v.resize(grown);
}

SequenceState::SequenceState(const Config& c) : gdn(size_t(c.num_layers)), kv(size_t(c.num_layers)) {
  const size_t kv_row = size_t(c.num_kv_heads) * size_t(c.head_dim);
  for (int i = 0; i < c.num_layers; ++i) {
    if (c.layer_types[size_t(i)] == LayerType::LinearAttention) {
      gdn[size_t(i)].conv.assign(size_t(c.linear_conv_kernel - 1) * size_t(c.linear_qkv_dim()), 0.0f);
      gdn[size_t(i)].recurrent.assign(
          size_t(c.linear_num_value_heads) * size_t(c.linear_key_head_dim) * size_t(c.linear_value_head_dim), 0.0f);
    } else {
      kv[size_t(i)].row = kv_row;
    }
  }
  mtp_kv.row = kv_row;
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

size_t SequenceState::bytes() const {
  size_t n = 0;
  for (const auto& g : gdn) n += (g.conv.size() + g.recurrent.size()) * sizeof(float);
  for (const auto& c : kv) n += (c.k.size() + c.v.size()) * sizeof(float);
  n += (mtp_kv.k.size() + mtp_kv.v.size()) * sizeof(float);
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

size_t kv_bytes_per_token(const Config& c, bool with_mtp) {
  size_t layers = with_mtp ? 1 : 0;
  for (auto t : c.layer_types)
    if (t == LayerType::FullAttention) ++layers;
  return layers * 2 * size_t(c.num_kv_heads) * size_t(c.head_dim) * sizeof(float);
}

}  // namespace qnext
