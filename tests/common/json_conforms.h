// A small JSON Schema checker for tests, written apart from src/runtime/json_schema.cpp so that
// it can judge what the grammar lets a model write. It knows only the keywords the tests use:
// type (one or a list; "integer" also takes 2.0), properties, required, additionalProperties
// false, enum, const, items, prefixItems, minItems / maxItems, minLength / maxLength (code points),
// minimum / maximum / exclusiveMinimum / exclusiveMaximum, anyOf, oneOf (exactly one branch),
// $ref to "#" or "#/$defs/NAME", format date / uuid. Any other keyword is an error, so a schema
// cannot be checked only in part by mistake.
#pragma once
#include <cctype>
#include <cmath>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace qnext::testing {

namespace json_conforms_detail {

using nlohmann::json;
using nlohmann::ordered_json;

inline size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count every byte that starts a character
  return n;
}

inline bool is_integer(const json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && d == std::floor(d);
}

inline bool has_type(const json& v, const std::string& t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  if (t == "number") return v.is_number();
  if (t == "integer") return is_integer(v);
  return false;
}

// Equality as JSON Schema means it: 1 and 1.0 are the same number.
inline bool same(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!same(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it)
      if (!b.contains(it.key()) || !same(it.value(), b.at(it.key()))) return false;
    return true;
  }
  return a == b;
}

inline bool digits(const std::string& s, size_t from, size_t n) {
  for (size_t i = from; i < from + n; ++i)
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
  return true;
}

inline bool is_date(const std::string& s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  if (!digits(s, 0, 4) || !digits(s, 5, 2) || !digits(s, 8, 2)) return false;
  const int y = std::stoi(s.substr(0, 4)), m = std::stoi(s.substr(5, 2)), d = std::stoi(s.substr(8, 2));
  if (m < 1 || m > 12 || d < 1) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  const int days[] = {31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return d <= days[m - 1];
}

inline bool is_uuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

class Checker {
 public:
  explicit Checker(const ordered_json& root) : root_(root) {}

  // "" when `v` conforms to `schema`; otherwise the first failure, starting with v's JSON path.
  std::string check(const json& v, const ordered_json& schema, const std::string& path, int depth = 0) const {
    if (depth > 200) return path + ": schema recursion too deep";
    if (schema.is_boolean()) return schema.get<bool>() ? "" : path + ": schema false";
    if (!schema.is_object()) return path + ": schema is not an object";
    for (auto it = schema.begin(); it != schema.end(); ++it) {
      std::string e = keyword(v, schema, it.key(), it.value(), path, depth);
      if (!e.empty()) return e;
    }
    return "";
  }

 private:
  std::string keyword(const json& v, const ordered_json& schema, const std::string& key, const ordered_json& arg,
                      const std::string& path, int depth) const {
    auto fail = [&](const std::string& why) { return (path.empty() ? "/" : path) + ": " + why; };
    if (key == "$defs" || key == "description" || key == "title") return "";
    if (key == "type") {
      if (arg.is_string()) return has_type(v, arg) ? "" : fail("not of type " + arg.dump());
      for (const auto& t : arg)
        if (has_type(v, t)) return "";
      return fail("not of any type in " + arg.dump());
    }
    if (key == "$ref") {
      const std::string ref = arg;
      if (ref == "#") return check(v, root_, path, depth + 1);
      const std::string prefix = "#/$defs/";
      if (ref.rfind(prefix, 0) != 0 || !root_.contains("$defs") || !root_["$defs"].contains(ref.substr(prefix.size())))
        return fail("unresolvable $ref " + ref);
      return check(v, root_["$defs"][ref.substr(prefix.size())], path, depth + 1);
    }
    if (key == "enum") {
      for (const auto& e : arg)
        if (same(v, e)) return "";
      return fail(v.dump() + " not in enum");
    }
    if (key == "const") return same(v, arg) ? "" : fail(v.dump() + " is not the const " + arg.dump());
    if (key == "anyOf" || key == "oneOf") {
      int matched = 0;
      for (const auto& branch : arg) matched += check(v, branch, path, depth + 1).empty();
      if (key == "anyOf") return matched > 0 ? "" : fail("matches no anyOf branch");
      return matched == 1 ? "" : fail("matches " + std::to_string(matched) + " oneOf branches");
    }
    // The rest apply only to their own type (JSON Schema: "minLength" says nothing of a number).
    if (key == "properties") {
      if (!v.is_object()) return "";
      for (auto it = arg.begin(); it != arg.end(); ++it) {
        if (!v.contains(it.key())) continue;
        std::string e = check(v.at(it.key()), it.value(), path + "/" + it.key(), depth + 1);
        if (!e.empty()) return e;
      }
      return "";
    }
    if (key == "required") {
      if (!v.is_object()) return "";
      for (const auto& name : arg)
        if (!v.contains(name.get<std::string>())) return fail("missing required " + name.dump());
      return "";
    }
    if (key == "additionalProperties") {
      if (!v.is_object()) return "";
      if (arg != false) return fail("checker supports additionalProperties false only");
      for (auto it = v.begin(); it != v.end(); ++it)
        if (!schema.contains("properties") || !schema["properties"].contains(it.key()))
          return fail("property \"" + it.key() + "\" not allowed");
      return "";
    }
    if (key == "prefixItems" || key == "items") {
      if (!v.is_array()) return "";
      const size_t n_prefix = schema.contains("prefixItems") ? schema["prefixItems"].size() : 0;
      const size_t from = key == "items" ? n_prefix : 0;
      const size_t to = key == "items" ? v.size() : std::min(n_prefix, v.size());
      for (size_t i = from; i < to; ++i) {
        std::string e = check(v[i], key == "items" ? arg : arg[i], path + "/" + std::to_string(i), depth + 1);
        if (!e.empty()) return e;
      }
      return "";
    }
    if (key == "minItems") return !v.is_array() || v.size() >= arg.get<size_t>() ? "" : fail("fewer items than " + arg.dump());
    if (key == "maxItems") return !v.is_array() || v.size() <= arg.get<size_t>() ? "" : fail("more items than " + arg.dump());
    if (key == "minLength")
      return !v.is_string() || code_points(v) >= arg.get<size_t>() ? "" : fail("shorter than " + arg.dump());
    if (key == "maxLength")
      return !v.is_string() || code_points(v) <= arg.get<size_t>() ? "" : fail("longer than " + arg.dump());
    if (key == "minimum") return !v.is_number() || v.get<double>() >= arg.get<double>() ? "" : fail("below minimum");
    if (key == "maximum") return !v.is_number() || v.get<double>() <= arg.get<double>() ? "" : fail("above maximum");
    if (key == "exclusiveMinimum")
      return !v.is_number() || v.get<double>() > arg.get<double>() ? "" : fail("not above exclusiveMinimum");
    if (key == "exclusiveMaximum")
      return !v.is_number() || v.get<double>() < arg.get<double>() ? "" : fail("not below exclusiveMaximum");
    if (key == "format") {
      if (!v.is_string()) return "";
      if (arg == "date") return is_date(v) ? "" : fail(v.dump() + " is not a date");
      if (arg == "uuid") return is_uuid(v) ? "" : fail(v.dump() + " is not a uuid");
      return fail("checker does not know format " + arg.dump());
    }
    return fail("checker does not support keyword '" + key + "'");
  }

  const ordered_json& root_;
};

}  // namespace json_conforms_detail

// "" when `value` conforms to `schema`; otherwise why not, starting with the JSON path ("/a/0").
inline std::string json_conforms(const nlohmann::json& value, const nlohmann::ordered_json& schema) {
  return json_conforms_detail::Checker(schema).check(value, schema, "");
}

}  // namespace qnext::testing
