// JSON schemas (what a client sends as response_format or tool parameters) through
// json_schema_to_grammar: a schema is refused with a "json schema: " message or converted into a
// grammar that compiles, and the grammar then runs the matcher over a few bytes without trouble.
#include "fuzz_common.h"
#include "io/json_parse.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"

using namespace qnext;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto schema = parse_json<nlohmann::ordered_json>(fuzz::as_text(data, size), "schema");
  if (!schema) return 0;
  auto text = json_schema_to_grammar(*schema);
  if (!text) {
    FUZZ_CHECK(text.error().starts_with("json schema: "), text.error());
    return 0;
  }
  auto g = grammar::Grammar::parse(*text);
  FUZZ_CHECK(g.ok(), g.ok() ? std::string() : g.error() + "\n" + *text);
  grammar::Matcher m(g.value());
  for (const char* probe : {"{", "[", "\"", "1", "t", "n", " "}) {
    grammar::Matcher copy = m;
    (void)copy.accept_bytes(probe);
  }
  return 0;
}
