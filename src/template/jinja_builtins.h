// Built-in filters (`x | name`), tests (`x is name`) and Python methods of str/dict/list values
// (`s.startswith(...)`, `d.items()`), following jinja2 and Python semantics.
#pragma once
#include <string>

#include "template/jinja_value.h"

namespace qnext::jinja {

// Throws JinjaError for an unknown filter or bad arguments.
Value apply_filter(const std::string& name, const Value& v, const CallArgs& args);
// Names apply_filter / apply_test know (checked before rendering, like jinja2's compile step).
bool is_filter(const std::string& name);
bool is_test(const std::string& name);
// Throws JinjaError for an unknown test.
bool apply_test(const std::string& name, const Value& v, const CallArgs& args);
// A bound method of obj, or Undefined{} (empty message) if obj has no such method. Methods that
// would modify a value read as an Undefined saying so, which raises when called (an immutable
// sandbox, like transformers' ImmutableSandboxedEnvironment).
Value get_method(const Value& obj, const std::string& name);

}  // namespace qnext::jinja
