// Jinja lexer: splits a template into text and tag tokens, applying whitespace control the way
// jinja2 does with trim_blocks=True and lstrip_blocks=True (as Hugging Face chat templates expect).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace qnext::jinja {

enum class Tok {
  Text,        // literal output; text = the bytes to emit
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,        // identifiers and keywords
  String,      // text = decoded literal
  Int,
  Float,
  Op,          // text = the operator or punctuation
  Eof,
};

struct Token {
  Tok type;
  std::string text;
  int64_t ival = 0;
  double fval = 0;
  int line = 1;
};

Result<std::vector<Token>> lex(const std::string& source);

}  // namespace qnext::jinja
