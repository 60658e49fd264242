// Jinja parser: tokens (jinja_lexer) to a syntax tree (jinja_ast).
#pragma once
#include <string>

#include "core/result.h"
#include "template/jinja_ast.h"

namespace qnext::jinja {

// Parses a whole template. Errors name the line: "template syntax error at line N: ...".
Result<std::shared_ptr<const Body>> parse_template(const std::string& source);

}  // namespace qnext::jinja
