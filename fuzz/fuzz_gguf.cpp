// A GGUF file's bytes through parse_gguf, which GgufCheckpoint::open runs on every mapped file.
// Accepted files must keep the promises the loader relies on: every tensor inside the input, its
// byte count that of its type and shape, rows whole blocks, no two tensors overlapping, names unique.
#include <algorithm>
#include <set>
#include <vector>

#include "fuzz_common.h"
#include "io/gguf.h"

using namespace qnext;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = parse_gguf(data, size, "fuzz.gguf");
  if (!r) {
    FUZZ_CHECK(!r.error().empty());
    return 0;
  }
  FUZZ_CHECK(r->version == 2 || r->version == 3);
  FUZZ_CHECK(r->alignment > 0 && (r->alignment & (r->alignment - 1)) == 0);
  std::vector<const GgufTensor*> sorted;
  std::set<std::string> names;
  for (const GgufTensor& t : r->tensors) {
    FUZZ_CHECK(names.insert(t.name).second, t.name);
    const GgmlTypeInfo* info = ggml_type_info(t.type);
    FUZZ_CHECK(info != nullptr, t.name);
    FUZZ_CHECK(!t.shape.empty() && t.shape.size() <= 4, t.name);
    FUZZ_CHECK(t.shape.back() % info->block_elems == 0, t.name);
    unsigned __int128 bytes = (unsigned __int128)(t.shape.back() / info->block_elems) * info->block_bytes;
    for (size_t d = 0; d + 1 < t.shape.size(); ++d) {
      FUZZ_CHECK(t.shape[d] > 0, t.name);
      bytes *= uint64_t(t.shape[d]);
    }
    FUZZ_CHECK(bytes == t.nbytes, t.name + " " + t.shape_str());
    FUZZ_CHECK(t.data >= data && t.nbytes <= size_t(data + size - t.data), t.name);
    if (auto dt = dtype_of_ggml(t.type)) FUZZ_CHECK(row_bytes(*dt, t.shape.back()) * uint64_t(t.numel() / t.shape.back()) == t.nbytes, t.name);
    if (t.nbytes) {  // ASan checks that both ends are inside the input
      volatile uint8_t first = t.data[0], last = t.data[t.nbytes - 1];
      (void)first, (void)last;
    }
    sorted.push_back(&t);
  }
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->data < b->data; });
  for (size_t i = 1; i < sorted.size(); ++i)
    FUZZ_CHECK(sorted[i - 1]->nbytes == 0 || sorted[i - 1]->data + sorted[i - 1]->nbytes <= sorted[i]->data,
               sorted[i - 1]->name + " / " + sorted[i]->name);
  return 0;
}
