// `qnext bench --mtp K`: what MTP speculative decoding costs and would gain on this machine.
#pragma once
#include <nlohmann/json.hpp>

#include "model/qwen3_next.h"

namespace qnext::cli {

// For K = 1..max_k: one verify step (forward of K+1 tokens recording the DeltaNet states, the
// rewind, K drafts) against one plain decode step, medians over `steps` steps; the byte model
// beside it; projected tok/s at acceptance 0.6 / 0.8 / 0.9 (random weights accept nothing, so
// acceptance is projected, not measured). Prints a table unless quiet; returns the figures.
nlohmann::json bench_mtp(Model& model, int max_k, int steps, bool quiet);

}  // namespace qnext::cli
