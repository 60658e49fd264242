// Writes a float checkpoint in the layouts quantized models are published in (for benchmarks of
// those formats, e.g. on the real-dims slice): the official block FP8 (Qwen/*-FP8) or
// compressed-tensors pack-quantized W4A16 (symmetric, group 128, llm-compressor's Qwen3-Next
// selection: every decoder Linear but the router and shared-expert gate; mtp.* stays BF16).
#pragma once
#include <functional>
#include <string>

#include "core/result.h"

namespace qnext {

enum class PublishedLayout { Fp8, W4A16 };
Result<PublishedLayout> parse_published_layout(const std::string& name);  // "fp8", "w4a16"

Status write_published_layout(const std::string& src_dir, PublishedLayout layout, const std::string& out_dir,
                              const std::function<void(size_t, size_t)>& progress);

}  // namespace qnext
