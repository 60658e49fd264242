// Added tokens (<|im_start|>, <think>, ...): found in the input as whole strings before
// any normalization or splitting, leftmost-longest, honouring HF's lstrip / rstrip /
// single_word flags.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qnext {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

class AddedTokenMatcher {
 public:
  struct Match {
    size_t begin, end;  // span consumed in the text, including stripped whitespace
    int32_t id;
  };

  void add(const AddedToken& token);
  bool empty() const { return tokens_.empty(); }

  // All non-overlapping matches in text, left to right.
  std::vector<Match> find_all(std::string_view text) const;

 private:
  std::vector<AddedToken> tokens_;  // sorted longest first, so the first hit is the longest
  bool first_byte_[256] = {};
};

}  // namespace qnext
