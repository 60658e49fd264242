// A model's generation_config.json through parse_generation_config: its sampling values become the
// server's and the CLI's defaults, so accepted ones must be finite numbers and integers must not
// have been narrowed into other values.
#include <cmath>

#include "fuzz_common.h"
#include <nlohmann/json.hpp>

#include "runtime/sampling.h"

using namespace qnext;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = parse_generation_config(std::string(fuzz::as_text(data, size)), "generation_config.json");
  if (!r) {
    FUZZ_CHECK(!r.error().empty());
    return 0;
  }
  const SamplingParams& s = r->sampling;
  for (float v : {s.temperature, s.top_p, s.min_p, s.repetition_penalty, s.presence_penalty, s.frequency_penalty})
    FUZZ_CHECK(std::isfinite(v), std::to_string(v));
  const auto j = nlohmann::json::parse(fuzz::as_text(data, size));  // parsed above, so it parses
  auto same_int = [](const nlohmann::json& v, int64_t got) {
    return v.is_number_unsigned() ? v.get<uint64_t>() == uint64_t(got) && got >= 0 : v.get<int64_t>() == got;
  };
  if (j.contains("top_k") && j["top_k"].is_number_integer()) FUZZ_CHECK(same_int(j["top_k"], s.top_k), j["top_k"].dump());
  if (j.contains("max_new_tokens") && j["max_new_tokens"].is_number_integer())
    FUZZ_CHECK(same_int(j["max_new_tokens"], r->max_new_tokens), j["max_new_tokens"].dump());
  if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer())
    FUZZ_CHECK(same_int(j["eos_token_id"], r->eos_token_ids.at(0)), j["eos_token_id"].dump());
  return 0;
}
