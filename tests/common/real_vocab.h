// A random-weight model with the real Qwen vocabulary (tests/data/tiny-real-vocab) and the real
// tokenizer (assets/tokenizer), loaded once per test binary: for tests of text generation.
#pragma once
#include <stdexcept>
#include <memory>
#include <string>

#include "common/golden.h"
#include "model/qwen3_next.h"
#include "tokenizer/tokenizer.h"

namespace qnext::testing {

inline const std::string kTokDir = std::string(QNEXT_TEST_DATA) + "/../../assets/tokenizer";

inline Model& real_vocab_model() {
  static std::unique_ptr<Model> m = [] {
    auto r = Model::load(data_dir("tiny-real-vocab"));
    // Thrown, not abort(): GoogleTest fails the calling test with this text and runs the rest.
    if (!r) throw std::runtime_error("cannot load tiny-real-vocab: " + r.error());
    return std::move(r).value();
  }();
  return *m;
}

inline const Tokenizer& qwen_tokenizer() {
  static const Tokenizer t = [] {
    auto r = Tokenizer::load(kTokDir);
    if (!r) throw std::runtime_error("cannot load the tokenizer from " + kTokDir + ": " + r.error());
    return std::move(r).value();
  }();
  return t;
}

}  // namespace qnext::testing
