// model.safetensors.index.json through parse_safetensors_index, as Checkpoint::open reads it.
// Accepted weight maps name only plain file names in the checkpoint directory.
#include "fuzz_common.h"
#include "io/checkpoint.h"

using namespace qnext;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = parse_safetensors_index(fuzz::as_text(data, size), "model.safetensors.index.json");
  if (!r) {
    FUZZ_CHECK(!r.error().empty());
    return 0;
  }
  for (const auto& [tensor, shard] : r.value()) {
    FUZZ_CHECK(!shard.empty() && shard != "." && shard != "..", shard);
    FUZZ_CHECK(shard.find('/') == std::string::npos && shard.find('\\') == std::string::npos, shard);
    FUZZ_CHECK(shard.find('\0') == std::string::npos, tensor);
  }
  return 0;
}
