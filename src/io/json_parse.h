// Parsing JSON that came from outside (request bodies, config and tokenizer files) with a nesting
// limit. nlohmann parses without recursion, but copying, dumping or converting a document
// recurses once per level: a few megabytes of "[[[[..." would overflow the stack there, so deeper
// documents are rejected while parsing, before anything else touches them.
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace qnext {

constexpr int kMaxJsonDepth = 256;

// Json: nlohmann::json or nlohmann::ordered_json. `what` names the input in the error.
template <typename Json>
Result<Json> parse_json(std::string_view text, const std::string& what, int max_depth = kMaxJsonDepth) {
  struct TooDeep {};
  try {
    return Json::parse(text.begin(), text.end(), [max_depth](int depth, typename Json::parse_event_t, Json&) {
      if (depth > max_depth) throw TooDeep{};
      return true;
    });
  } catch (const TooDeep&) {
    return err(what + ": JSON nested deeper than " + std::to_string(max_depth) + " levels");
  } catch (const typename Json::exception& e) {
    return err(what + ": malformed JSON (" + e.what() + ")");
  }
}

}  // namespace qnext
