// Operations on Jinja values with jinja2/Python semantics: attribute and item access,
// slicing, arithmetic and comparison operators, membership, iteration, len().
// All failures throw JinjaError (line filled in by the evaluator).
#pragma once
#include <string>
#include <vector>

#include "template/jinja_value.h"

namespace qnext::jinja {

// Throws the UndefinedError an undefined value carries, if v is undefined.
void require_defined(const Value& v);

// obj.name: Python attribute first (string/dict methods), then the dict key; Undefined if missing.
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: the key/index first, then a string key falls back to the attribute; Undefined if missing.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step]; null pointers (or None values) are omitted parts.
Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step);

Value binary_op(const std::string& op, const Value& a, const Value& b);
Value unary_op(const std::string& op, const Value& a);
bool contains(const Value& container, const Value& item);  // `item in container`

// Items a for loop visits: list items, dict keys, string characters; Undefined is empty.
std::vector<Value> iterate(const Value& v);
int64_t length(const Value& v);  // len(v)

// Python's "fmt % args" for the common conversions (%s %r %d %i %f %x %%).
std::string percent_format(const std::string& fmt, const Value& args);

}  // namespace qnext::jinja
