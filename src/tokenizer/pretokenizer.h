// The Split pre-tokenizer: cuts normalized text into pieces with a regex, keeping both
// the matches and the text between them (HF "Isolated" behaviour).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace qnext {

class RegexSplitter {
 public:
  // pattern uses Oniguruma syntax as found in tokenizer.json.
  static Result<RegexSplitter> compile(const std::string& pattern);

  // Calls fn(std::string_view piece) for each piece of text, in order.
  template <typename Fn>
  void split(std::string_view text, Fn&& fn) const {
    std::vector<std::pair<size_t, size_t>> spans;
    find_spans(text, spans);
    for (auto [b, e] : spans) fn(text.substr(b, e - b));
  }

  // Appends [begin, end) byte spans covering text exactly, in order.
  void find_spans(std::string_view text, std::vector<std::pair<size_t, size_t>>& spans) const;

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
};

// Rewrites \s and \S into explicit classes for Unicode White_Space, the set Oniguruma
// means by \s (PCRE2's UCP \s leaves out U+0085). Exposed for tests.
std::string rewrite_whitespace_classes(std::string_view pattern);

}  // namespace qnext
