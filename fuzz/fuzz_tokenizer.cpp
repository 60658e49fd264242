// The real Qwen tokenizer (assets/tokenizer) on arbitrary bytes. The first byte picks the mode:
//   even: encode the rest, then decode; ids are in the vocabulary, and text that is valid UTF-8
//         and NFC comes back unchanged;
//   odd:  the rest as little-endian int32 ids (any value, out of range included) to decode, with
//         and without special tokens; the output is valid UTF-8 and IncrementalDecoder's pieces
//         add up to it.
#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace qnext;

static const Tokenizer& tokenizer() {
  static const Tokenizer t = [] {
    auto r = Tokenizer::load(fuzz::assets("tokenizer"));
    if (!r) fuzz::fail("cannot load assets/tokenizer", r.error());
    return std::move(r).value();
  }();
  return t;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Tokenizer& tok = tokenizer();
  const uint8_t mode = data[0];
  ++data, --size;
  if (mode % 2 == 0) {
    const std::string_view text = fuzz::as_text(data, size);
    const std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids) FUZZ_CHECK(id >= 0 && size_t(id) < tok.vocab_size(), std::to_string(id));
    const std::string back = tok.decode(ids);
    FUZZ_CHECK(unicode::is_valid_utf8(back));
    if (unicode::is_valid_utf8(text) && unicode::nfc(text) == text) FUZZ_CHECK(back == text, back);
    FUZZ_CHECK(ids.empty() == text.empty());
    return 0;
  }
  std::vector<int32_t> ids(size / 4);
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * 4);
  for (bool skip : {false, true}) {
    const std::string text = tok.decode(ids, skip);
    FUZZ_CHECK(unicode::is_valid_utf8(text));
    IncrementalDecoder inc(tok, skip);
    std::string pieces;
    for (int32_t id : ids) pieces += inc.push(id);
    pieces += inc.flush();
    FUZZ_CHECK(pieces == text, pieces + " vs " + text);
    for (int32_t id : ids) (void)tok.token_bytes(id);
  }
  return 0;
}
