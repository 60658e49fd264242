// Everything one sequence carries between calls: the position, each DeltaNet layer's conv window
// and recurrent state (constant size), each full-attention layer's KV cache (grows with the
// sequence), and the MTP head's own KV cache. A server holds one of these per conversation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/huge_page_allocator.h"
#include "model/config.h"

namespace qnext {

// Keys and values of every position so far, as F32 (exact), F16 (half the memory; `--kv-type f16`)
// or Q8_0 (blocks of 32: an f16 scale and 32 int8, 0.53x f16's bytes; `--kv-type q8_0`, as
// llama.cpp's `-ctk q8_0 -ctv q8_0`; dim a multiple of 32).
// Head-major, so one head's positions are contiguous: attention streams them in one run, which
// the hardware prefetcher follows (rows of interleaved heads would be 2 KiB strides).
struct KvCache {
  DType type = DType::F32;
  int heads = 0, dim = 0;  // key/value heads, head_dim
  int capacity = 0;        // positions allocated
  int len = 0;             // positions stored
  using Bytes = std::vector<uint8_t, HugeInteriorAllocator<uint8_t>>;
  Bytes k;  // [heads, capacity, dim] elements of `type`
  Bytes v;  // [heads, capacity, dim]

  void ensure_capacity(int positions);  // grows geometrically, keeps contents
  // Writes position pos's keys and values (each [heads, dim]), rounding to f16 for an F16 cache,
  // quantizing each 32 to int8 with an f16 scale (as Q8_0 weights are) for a Q8_0 one.
  void store(int pos, const float* keys, const float* values);
  size_t position_bytes() const { return row_bytes(type, dim); }  // one head's key (or value) at one position
  size_t head_offset(int h) const { return size_t(h) * size_t(capacity) * position_bytes(); }  // bytes
  size_t bytes() const { return k.size() + v.size(); }
};

// The element types a KV cache may hold: "f32", "f16" or "q8_0" (also "q8").
bool parse_kv_type(std::string_view name, DType* out);
// Whether a model whose heads have head_dim elements can keep its cache as t (Q8_0: whole blocks of 32).
bool kv_type_fits(DType t, int head_dim);

struct DeltaNetState {
  std::vector<float> conv;       // [K-1, C] the last K-1 conv inputs, oldest first
  std::vector<float> recurrent;  // [Hv, Dk, Dv] the delta-rule state S per value head
};

// The DeltaNet states (conv window and recurrent state of every DeltaNet layer) after each token
// of one forward call, so a speculative verify can keep any prefix of the tokens it fed
// (ForwardOptions::gdn_history fills it). Sized on first use, then reused: no allocation.
struct DeltaNetHistory {
  int tokens = 0;                     // T of the call that filled it
  int start_pos = 0;                  // the state's position before that call
  std::vector<DeltaNetState> states;  // [num_layers, capacity]: layer l's state after token t at l * capacity + t
  int capacity = 0;                   // tokens room per layer

  // Makes room for T tokens of a model with config c (DeltaNet layers only get buffers).
  void prepare(const Config& c, int T);
  DeltaNetState* layer(int l) { return states.data() + size_t(l) * size_t(capacity); }
  const DeltaNetState& at(int l, int t) const { return states[size_t(l) * size_t(capacity) + size_t(t)]; }
};

struct SequenceState {
  explicit SequenceState(const Config& c, DType kv_type = DType::F32);

  int pos = 0;                       // tokens consumed by the main model
  std::vector<DeltaNetState> gdn;    // [num_layers]; empty for attention layers
  std::vector<KvCache> kv;           // [num_layers]; unused for DeltaNet layers
  KvCache mtp_kv;                    // the MTP layer's cache
  int mtp_pos = 0;                   // slots consumed by the MTP head

  void reset();
  // A copy whose KV caches hold only the stored positions (no spare capacity): a snapshot for
  // the state cache. restore() makes this state equal to a snapshot (same config and KV type),
  // reusing this state's buffers.
  SequenceState snapshot() const;
  void restore(const SequenceState& snap);
  // Undoes the tail of the last forward call, which fed h.tokens tokens recording h: keeps its
  // first `keep` tokens (1..h.tokens), as if only they had been fed. KV entries past the new
  // position are left in place and overwritten later.
  void rewind(const DeltaNetHistory& h, int keep);
  // Drops the MTP head's slots from `slots` on.
  void rewind_mtp(int slots);
  // Allocates the KV caches for `positions` tokens up front, so decoding up to there never
  // allocates (a server reserves a request's prompt plus max_tokens); the MTP head's too only
  // where it will speculate (else that cache stays empty, as unused).
  void reserve(int positions, bool mtp);
  size_t bytes() const;  // memory held now

 private:
  SequenceState() = default;
};

// Bytes of state per sequence: the fixed part (DeltaNet) and the part per token (KV caches).
size_t fixed_state_bytes(const Config& c);
size_t kv_bytes_per_token(const Config& c, bool with_mtp, DType kv_type = DType::F32);

}  // namespace qnext
