// Jinja evaluator: runs a parsed template (jinja_ast) with jinja2 scoping rules:
// `for` bodies and macros get their own scope (a `set` inside does not leak out, and each loop
// iteration starts afresh), `if` does not; namespace() objects are shared by reference.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "template/jinja_ast.h"
#include "template/jinja_limits.h"

namespace qnext::jinja {

using Vars = std::vector<std::pair<std::string, Value>>;

// Renders body with the given variables on top of the built-in globals (range, namespace, dict,
// raise_exception, strftime_now). Errors read "template error at line N: ..."; exceeding a limit
// names it ("... render exceeded the limit of 10,000,000 evaluation steps"). `stats`, if given,
// receives what the render used (also when it fails).
Result<std::string> render(const Body& body, const Vars& vars, const RenderLimits& limits = {},
                           RenderStats* stats = nullptr);

// Rejects unknown filters and tests before rendering, as jinja2 does when compiling (outside
// `if` bodies, where jinja2 defers the error until the code runs); also break/continue outside loops.
Status check_names(const Body& body);

}  // namespace qnext::jinja
