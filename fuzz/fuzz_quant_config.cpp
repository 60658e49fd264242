// config.json's quantization_config (fp8 block sizes, compressed-tensors groups) through
// parse_quant_config_text, what read_quant_config runs when a checkpoint is loaded.
#include "fuzz_common.h"
#include "io/quant_config.h"

using namespace qnext;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = parse_quant_config_text(fuzz::as_text(data, size), "config.json");
  if (!r) {
    FUZZ_CHECK(!r.error().empty());
    return 0;
  }
  const QuantConfig& q = r.value();
  if (q.method == QuantMethod::Fp8) FUZZ_CHECK(q.block_rows > 0 && q.block_cols > 0);
  if (q.method == QuantMethod::CompressedTensors) FUZZ_CHECK(q.bits == 4 && q.group >= 0);
  (void)q.summary();
  return 0;
}
