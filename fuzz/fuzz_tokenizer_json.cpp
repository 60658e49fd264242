// tokenizer.json (and, after a NUL byte, tokenizer_config.json) through Tokenizer::from_json, the
// loader behind Tokenizer::load. An accepted tokenizer then encodes and decodes a fixed text.
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace qnext;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = fuzz::as_text(data, size);
  const size_t nul = in.find('\0');
  const std::string_view tok_json = in.substr(0, nul);
  const std::string_view cfg_json = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
  auto r = Tokenizer::from_json(tok_json, cfg_json);
  if (!r) {
    FUZZ_CHECK(!r.error().empty());
    return 0;
  }
  const Tokenizer& tok = r.value();
  for (int32_t id : {tok.eos_id(), tok.pad_id(), tok.bos_id()}) FUZZ_CHECK(id >= -1 && (id < 0 || size_t(id) < tok.vocab_size()));
  const std::string text = "Hello, world! <|im_start|>user\n  caf\xc3\xa9 123 \xe4\xbd\xa0\xe5\xa5\xbd<|im_end|>\n";
  const std::vector<int32_t> ids = tok.encode(text);
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && size_t(id) < tok.vocab_size(), std::to_string(id));
  FUZZ_CHECK(unicode::is_valid_utf8(tok.decode(ids)));
  (void)tok.decode(ids, /*skip_special=*/true);
  return 0;
}
