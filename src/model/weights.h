// The model's weights, named by their role. Matrices point into the memory-mapped checkpoint;
// small vectors (norms, conv taps, decay parameters) are converted to float once at load.
// The Hugging Face tensor names appear only in weights.cpp.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/gguf.h"
#include "io/quant_config.h"
#include "kernels/matmul.h"
#include "model/config.h"
#include "model/quantize.h"

namespace qnext {

// Zero-centered norms are stored here already as (1 + w).
using NormScale = std::vector<float>;

struct AttentionWeights {  // gated full attention; D = head_dim
  Matrix q_proj;  // [n_q * 2D, H]: per head [query D | gate D]
  Matrix k_proj;  // [n_kv * D, H]
  Matrix v_proj;  // [n_kv * D, H]
  Matrix o_proj;  // [H, n_q * D]
  NormScale q_norm, k_norm;  // [D]
};

struct DeltaNetWeights {  // gated DeltaNet; r = Hv / Hk value heads per key head
  // The input projection as Hugging Face stores it, one matrix grouped per key head, or as GGUF
  // stores it, two matrices already in the conv's channel order (the other form left empty).
  Matrix in_proj_qkvz;  // [Hk * (2Dk + 2rDv), H]: per key head [q Dk | k Dk | v rDv | z rDv]
  Matrix in_proj_qkv;   // [C, H]: [q all heads | k all heads | v all heads]
  Matrix in_proj_z;     // [Hv * Dv, H]
  Matrix in_proj_ba;    // [Hk * 2r, H]: per key head [b r | a r]
  std::vector<float> conv;  // [C, K], C = 2 Hk Dk + Hv Dv, channels ordered [q | k | v]
  std::vector<float> A;        // [Hv] decay rates A = -exp(A_log)
  std::vector<float> dt_bias;  // [Hv]
  std::vector<float> norm;     // [Dv] plain (not zero-centered) gated RMSNorm weight
  Matrix out_proj;  // [H, Hv * Dv]
};

struct MlpWeights {  // SwiGLU: down(silu(gate x) * up x)
  Matrix gate;  // [I, H]
  Matrix up;    // [I, H]
  Matrix down;  // [H, I]
};

struct MoeWeights {
  Matrix router;  // [E, H]
  std::vector<MlpWeights> experts;  // E of them, intermediate moe_intermediate_size
  bool has_shared = false;
  MlpWeights shared;   // intermediate shared_expert_intermediate_size
  Matrix shared_gate;  // [1, H]
};

struct LayerWeights {
  LayerType type = LayerType::LinearAttention;
  NormScale input_norm, post_attention_norm;  // [H]
  AttentionWeights attn;  // when type == FullAttention
  DeltaNetWeights gdn;    // when type == LinearAttention
  bool is_moe = true;
  MoeWeights moe;  // when is_moe
  MlpWeights mlp;  // when !is_moe (dense)
};

struct MtpWeights {  // the multi-token-prediction head
  Matrix fc;  // [H, 2H] over concat[norm(embed(next)), norm(hidden)]
  NormScale pre_fc_norm_embedding, pre_fc_norm_hidden, norm;  // [H]
  LayerWeights layer;  // one full-attention decoder layer
};

// Which weights a process computes with when several share one model (expert parallelism,
// model/expert_peers.h): the dense ones or not, and the routed experts e with e % ranks == rank.
// The rest stay mapped and untouched, so they never become resident.
struct WeightShare {
  int rank = 0, ranks = 1;
  bool dense = true;
  bool owns_expert(int e) const { return e % ranks == rank; }
};

struct Weights {
  Checkpoint checkpoint;  // owns the mapped files every Matrix points into (Hugging Face layout)
  GgufCheckpoint gguf;    // or these, for a model loaded from GGUF
  QuantConfig quant;      // config.json's quantization_config (FP8 / compressed-tensors), if any
  std::vector<std::vector<uint8_t>> quantized_at_load;  // owns matrices quantized by --quantize
  Matrix embed;    // [V, H]
  Matrix lm_head;  // [V, H] (the embedding when tie_word_embeddings)
  std::vector<LayerWeights> layers;
  NormScale final_norm;  // [H]
  std::optional<MtpWeights> mtp;
  WeightShare share;  // what this process computes with: what prefault() touches

  // Opens the checkpoint and checks every expected tensor is present with its shape.
  // recipe != None quantizes the float matrices it selects while loading.
  // Every matrix once (for `qnext info`).
  // routed_experts = false leaves out the routed experts (what an expert cache holds).
  void for_each_matrix(const std::function<void(const Matrix&)>& fn, bool routed_experts = true) const;
  // Every mixture-of-experts block: the layers' in order, then the MTP layer's.
  std::vector<const MoeWeights*> moe_blocks() const;

  // share: which matrices this process computes with; the recipe quantizes only those.
  static Result<Weights> load(const std::string& dir, const Config& config, QuantRecipe recipe = QuantRecipe::None,
                              const WeightShare& share = {});
  // The same from a GGUF file (model/weights_gguf.cpp), the converter's transforms undone.
  static Result<Weights> load_gguf(GgufCheckpoint gguf, const Config& config, QuantRecipe recipe = QuantRecipe::None,
                                   const WeightShare& share = {});

  size_t file_bytes() const;  // bytes of all tensors in the files
  std::vector<const MappedFile*> mapped_files() const;  // the files every Matrix points into
  size_t file_count() const;
  // Touches every page of the weights (in parallel), so a benchmark measures steady state rather
  // than first-touch page faults; under a share, only the matrices it holds. Files copied into
  // memory are resident already and skipped.
  void prefault() const;
  void prefault_dense() const;  // the same for every matrix but the routed experts
  // Puts every file on huge pages in memory (MappedFile::copy_into_memory); matrices keep their
  // addresses. On failure the files not yet copied stay mapped.
  Status copy_into_memory() const;
  size_t huge_page_bytes() const;  // of the copies, the bytes on huge pages (MappedFile::huge_page_bytes)
};

}  // namespace qnext
