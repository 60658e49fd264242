// The model's hyper-parameters, read from a Hugging Face config.json of model_type "qwen3_next".
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "io/gguf.h"

namespace qnext {

enum class LayerType { LinearAttention, FullAttention };

struct RopeScaling {  // YaRN (arXiv 2309.00071); absent means plain RoPE
  bool yarn = false;
  double factor = 1;
  double original_max_position = 0;
  double beta_fast = 32, beta_slow = 1;
  bool truncate = true;
  double attention_factor = 0;  // 0: derive from factor / mscale
  double mscale = 0, mscale_all_dim = 0;
  bool operator==(const RopeScaling&) const = default;
};

struct Config {
  int vocab_size = 0;
  int hidden_size = 0;      // H
  int num_layers = 0;
  std::vector<LayerType> layer_types;
  float rms_norm_eps = 1e-6f;
  bool tie_word_embeddings = false;
  int max_position_embeddings = 0;
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;

  // gated full attention
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  double rope_theta = 10000;
  double partial_rotary_factor = 0.25;
  int rotary_dim = 0;  // head_dim * partial_rotary_factor
  RopeScaling rope_scaling;

  // gated DeltaNet
  int linear_num_key_heads = 0;    // Hk
  int linear_num_value_heads = 0;  // Hv
  int linear_key_head_dim = 0;     // Dk
  int linear_value_head_dim = 0;   // Dv
  int linear_conv_kernel = 4;

  // mixture of experts / dense MLP
  int num_experts = 0;
  int num_experts_per_tok = 0;
  bool norm_topk_prob = true;
  int moe_intermediate_size = 0;
  int shared_expert_intermediate_size = 0;
  int intermediate_size = 0;  // dense MLP layers
  int decoder_sparse_step = 1;
  std::vector<int> mlp_only_layers;
  int num_mtp_layers = 1;  // num_nextn_predict_layers

  bool is_moe_layer(int layer) const;
  int linear_qkv_dim() const { return 2 * linear_num_key_heads * linear_key_head_dim + linear_num_value_heads * linear_value_head_dim; }

  static Result<Config> from_json(const nlohmann::json& j, const std::string& where);
  static Result<Config> parse(std::string_view text, const std::string& where);  // config.json's text
  static Result<Config> load(const std::string& model_dir);  // reads model_dir/config.json
  // The hyperparameters of a `qwen3next` GGUF file (model/config_gguf.cpp), range-checked as
  // config.json's are.
  static Result<Config> from_gguf(const GgufCheckpoint& gguf);
  // The HF config.json form (synth, GGUF conversion); from_json gives this Config back.
  nlohmann::json to_json() const;
  bool operator==(const Config&) const = default;
};

}  // namespace qnext
