// Quantization recipes: which tensors become Q8_0 / Q4_0, in a file (`qnext quantize`) or at load
// time (`--quantize`). Router, norms, conv taps and decay parameters always stay float.
#pragma once
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/matmul.h"

namespace qnext {

enum class QuantRecipe {
  None,
  Q8,       // every large matrix Q8_0
  Q4,       // every large matrix Q4_0
  Q4Mixed,  // routed experts Q4_0; lm_head, embeddings, attention/DeltaNet projections, shared expert Q8_0
};

Result<QuantRecipe> parse_recipe(const std::string& name);  // "q8", "q4", "q4-mixed" ("none"/"" -> None)
std::string recipe_name(QuantRecipe r);

// The format a matrix gets under the recipe, or nullopt to keep it as stored. `name` is its HF
// weight name, `stored` its format (float, or a published FP8 / int4 matrix, which are requantized).
std::optional<DType> quant_target(QuantRecipe r, const std::string& name, DType stored, int64_t cols);
std::optional<DType> quant_target(QuantRecipe r, const TensorView& t);  // a float tensor of a file

// Quantizes a matrix [rows, cols] of any format into dst (rows * row_bytes(target, cols) bytes),
// rows in parallel.
void quantize_matrix(const Matrix& src, DType target, uint8_t* dst);

// Opens the checkpoint a conversion reads and creates the directory it writes (never the same one).
Result<Checkpoint> open_for_conversion(const std::string& src_dir, const std::string& out_dir);
// src_dir/config.json, which a conversion rewrites.
Result<nlohmann::ordered_json> read_config_json(const std::string& src_dir);
// Copies the files of a model directory that are not weights or config.json (tokenizer,
// generation config, chat template).
Status copy_side_files(const std::string& src_dir, const std::string& out_dir);

// Writes a quantized copy of a checkpoint directory: same shard names and index, config and
// tokenizer files copied; loadable with --model like the original.
Status quantize_checkpoint(const std::string& src_dir, QuantRecipe recipe, const std::string& out_dir,
                           const std::function<void(size_t, size_t)>& progress);

// The same from a llama.cpp GGUF file (model/quantize_gguf.cpp): every Hugging Face tensor of the
// model rebuilt from the GGUF's (the converter's transforms undone), matrices requantized from
// their dequantized rows, the rest F32; shards of at most about `shard_bytes`, written one tensor
// at a time; config.json from Config::to_json; tokenizer files from the GGUF's metadata.
constexpr size_t kGgufShardBytes = size_t(4) << 30;
Status quantize_gguf(const std::string& gguf_path, QuantRecipe recipe, const std::string& out_dir,
                     const std::function<void(size_t, size_t)>& progress, size_t shard_bytes = kGgufShardBytes);
// tokenizer.json and tokenizer_config.json (chat template, special tokens) from a GGUF's
// tokenizer.ggml.* metadata (model/tokenizer_files_gguf.cpp); false when the file has no tokenizer.
Result<bool> write_gguf_tokenizer_files(const GgufCheckpoint& gguf, const std::string& out_dir);

}  // namespace qnext
