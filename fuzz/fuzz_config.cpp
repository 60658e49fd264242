// A model's config.json through Config::parse (what Config::load reads), including its range
// checks: whatever it accepts must be within the limits the model code sizes its buffers by.
#include "fuzz_common.h"
#include "model/config.h"

using namespace qnext;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = Config::parse(fuzz::as_text(data, size), "config.json");
  if (!r) {
    FUZZ_CHECK(!r.error().empty());
    return 0;
  }
  const Config& c = r.value();
  auto in = [](int v, int lo, int hi) { return v >= lo && v <= hi; };
  FUZZ_CHECK(in(c.vocab_size, 1, 1 << 24));
  FUZZ_CHECK(in(c.hidden_size, 1, 1 << 16));
  FUZZ_CHECK(in(c.num_layers, 1, 1024));
  FUZZ_CHECK(in(c.num_q_heads, 1, 1024) && in(c.num_kv_heads, 1, 1024) && c.num_q_heads % c.num_kv_heads == 0);
  FUZZ_CHECK(in(c.head_dim, 0, 4096));
  FUZZ_CHECK(in(c.rotary_dim, 0, c.head_dim) && c.rotary_dim % 2 == 0);
  FUZZ_CHECK(in(c.linear_num_key_heads, 1, 1024) && in(c.linear_num_value_heads, 0, 1024));
  FUZZ_CHECK(c.linear_num_value_heads % c.linear_num_key_heads == 0);
  FUZZ_CHECK(in(c.linear_key_head_dim, 0, 4096) && in(c.linear_value_head_dim, 0, 4096));
  FUZZ_CHECK(in(c.linear_conv_kernel, 1, 64));
  FUZZ_CHECK(in(c.num_experts, 0, 1 << 16));
  if (c.num_experts > 0) FUZZ_CHECK(in(c.num_experts_per_tok, 1, c.num_experts));
  FUZZ_CHECK(in(c.moe_intermediate_size, 0, 1 << 20) && in(c.intermediate_size, 0, 1 << 20) &&
             in(c.shared_expert_intermediate_size, 0, 1 << 20));
  FUZZ_CHECK(int(c.layer_types.size()) == c.num_layers);
  for (int l = 0; l < c.num_layers; ++l) (void)c.is_moe_layer(l);
  (void)c.linear_qkv_dim();
  (void)c.to_json().dump();
  return 0;
}
