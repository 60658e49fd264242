// Everything one sequence carries between calls: the position, each DeltaNet layer's conv window
// and recurrent state (constant size), each full-attention layer's KV cache (grows with the
// sequence), and the MTP head's own KV cache. A server holds one of these per conversation.
#pragma once
#include <cstddef>
#include <vector>

#include "model/config.h"

namespace qnext {

struct KvCache {
  std::vector<float> k;  // [capacity, n_kv, D]
  std::vector<float> v;  // [capacity, n_kv, D]
  int len = 0;           // positions stored
  size_t row = 0;        // n_kv * D floats per position

  void ensure_capacity(int positions);  // grows geometrically, keeps contents
  float* k_at(int pos) { return k.data() + size_t(pos) * row; }
  float* v_at(int pos) { return v.data() + size_t(pos) * row; }
};

struct DeltaNetState {
  std::vector<float> conv;       // [K-1, C] the last K-1 conv inputs, oldest first
  std::vector<float> recurrent;  // [Hv, Dk, Dv] the delta-rule state S per value head
};

struct SequenceState {
  explicit SequenceState(const Config& c);

  int pos = 0;                       // tokens consumed by the main model
  std::vector<DeltaNetState> gdn;    // [num_layers]; empty for attention layers
  std::vector<KvCache> kv;           // [num_layers]; unused for DeltaNet layers
  KvCache mtp_kv;                    // the MTP layer's cache
  int mtp_pos = 0;                   // slots consumed by the MTP head

  void reset();
  size_t bytes() const;  // memory held now
};

// Bytes of state per sequence: the fixed part (DeltaNet) and the part per token (KV caches).
size_t fixed_state_bytes(const Config& c);
size_t kv_bytes_per_token(const Config& c, bool with_mtp);

}  // namespace qnext
