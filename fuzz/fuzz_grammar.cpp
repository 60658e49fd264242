// Grammar text (runtime/grammar.h) from the input up to its first NUL byte, then the matcher and
// the token masks over a small fixed vocabulary driven by the rest: the cached masks must equal
// the brute-force answer (each token fed to a copy of the matcher) at every step, and a token the
// mask allows must be accepted. Bytes after the NUL pick the tokens.
#include <algorithm>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "runtime/grammar.h"
#include "runtime/grammar_mask.h"

using namespace qnext::grammar;

namespace {

// ASCII pieces, every continuation byte, and multi-byte characters cut anywhere.
std::shared_ptr<const GrammarVocab> vocab() {
  static const auto v = [] {
    std::vector<std::string> t;
    for (int c = 0x09; c < 0x7f; ++c) t.push_back(std::string(1, char(c)));
    for (int c = 0x80; c < 0xC0; ++c) t.push_back(std::string(1, char(c)));
    for (const char* s : {"\xC3", "\xE6\x97", "\xF0\x9F", "é", "日本", "😀", "ab", "\"a", "\":", "{\"", "true", "null",
                          "12", "  ", "\n ", "a\xC3", "\xA9x", "]}", "<tool_call>", "abc\xE6"})
      t.push_back(s);
    t.push_back("");  // EOS
    return std::make_shared<const GrammarVocab>(t, std::vector<int32_t>{int32_t(t.size() - 1)});
  }();
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = qnext::fuzz::as_text(data, size);
  const size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  const std::string_view picks = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  auto g = Grammar::parse(text);
  if (!g) {
    FUZZ_CHECK(g.error().starts_with("grammar: "), g.error());
    return 0;
  }
  auto v = vocab();
  auto masker = std::make_shared<TokenMasker>(g.value(), v);
  GrammarConstraint c(masker);
  std::vector<float> logits(v->size());
  for (size_t step = 0; step < std::min<size_t>(picks.size(), 12); ++step) {
    // Masks are compared while the grammar is mildly ambiguous: near the ambiguity bounds
    // (grammar.h) the matcher and the per-stack mask walks drop different parses, and the
    // brute force's cost grows with every stack.
    if (c.matcher().stacks().size() > 16) break;
    c.apply(logits);
    std::vector<int32_t> allowed;
    for (size_t id = 0; id < v->size(); ++id) {
      const bool in_mask = (c.last_mask()[id / 64] >> (id % 64)) & 1;
      bool brute;
      if (v->bytes(int32_t(id)).empty()) {
        brute = id == v->size() - 1 && c.matcher().can_end();
      } else {
        Matcher copy = c.matcher();
        brute = copy.accept_bytes(v->bytes(int32_t(id)));
      }
      FUZZ_CHECK(in_mask == brute, "token " + std::to_string(id) + " at step " + std::to_string(step));
      if (in_mask) allowed.push_back(int32_t(id));
    }
    if (allowed.empty()) break;
    const int32_t pick = allowed[uint8_t(picks[step]) % allowed.size()];
    if (pick == int32_t(v->size() - 1)) break;
    FUZZ_CHECK(c.accept(pick));
  }
  return 0;
}
