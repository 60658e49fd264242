// `qnext bench --batch N`: what one forward over N decoding sequences costs against one sequence.
#pragma once
#include <nlohmann/json.hpp>

#include "model/qwen3_next.h"

namespace qnext::cli {

// N sequences with short prompts decode greedily; blocks of `steps_per_block` single-sequence
// steps alternate with blocks of N-sequence steps (forward_batch), so the ratio of each pair of
// blocks is measured within a second of this machine's drifting bandwidth. Reports the median
// tok/s of each and the median per-pair speedup (total tok/s at N over tok/s at 1).
nlohmann::json bench_batch(Model& model, int n, int pairs, int steps_per_block, bool quiet);

}  // namespace qnext::cli
