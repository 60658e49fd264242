// A safetensors file's bytes (8-byte header length, JSON header, data) through parse_safetensors,
// the parser SafetensorsFile::open runs on every mapped shard. Accepted files must keep the
// promises the loader relies on: every tensor inside the data section, its byte count that of its
// shape, no two tensors overlapping, quantized formats only on U8 matrices.
#include <algorithm>
#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "io/safetensors.h"

using namespace qnext;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = parse_safetensors(data, size, "fuzz.safetensors");
  if (!r) {
    FUZZ_CHECK(!r.error().empty());
    return 0;
  }
  uint64_t header_len;
  std::memcpy(&header_len, data, 8);
  const uint8_t* begin = data + 8 + header_len;
  const uint8_t* end = data + size;
  std::vector<const TensorView*> sorted;
  for (const TensorView& t : r->tensors) {
    FUZZ_CHECK(t.data >= begin && t.nbytes <= size_t(end - t.data), t.name);
    uint64_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      FUZZ_CHECK(d >= 0, t.name);
      bytes *= uint64_t(d);
    }
    FUZZ_CHECK(bytes == t.nbytes, t.name + " " + t.shape_str());
    FUZZ_CHECK(uint64_t(t.numel()) * dtype_size(t.dtype) == t.nbytes, t.name);
    if (t.quant) FUZZ_CHECK(t.dtype == DType::U8 && t.shape.size() == 2, t.name);
    if (t.nbytes) {  // ASan checks that both ends are inside the input
      volatile uint8_t first = t.data[0], last = t.data[t.nbytes - 1];
      (void)first, (void)last;
    }
    sorted.push_back(&t);
  }
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->data < b->data; });
  for (size_t i = 1; i < sorted.size(); ++i)
    FUZZ_CHECK(sorted[i - 1]->data + sorted[i - 1]->nbytes <= sorted[i]->data, sorted[i]->name);
  return 0;
}
