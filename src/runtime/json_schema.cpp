// JSON Schema -> grammar text. One pass over the schema: each subschema becomes a grammar
// expression (scalars inline, objects / arrays / integer ranges / $ref targets as rules named
// after their path), over a few shared rules (ws, string, number, value, ...) emitted only when
// used. Every keyword is either enforced exactly (up to the documented strictness in
// json_schema.h) or refused; oneOf is compiled as anyOf only where its branches are plainly disjoint.
#include "runtime/json_schema.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "runtime/grammar.h"
#include "runtime/grammar_text.h"

namespace qnext {
namespace {

using json = nlohmann::ordered_json;
using namespace grammar_text;

constexpr int kMaxSchemaDepth = 64;          // nested subschemas (and $ref hops)
constexpr size_t kMaxEnumValues = 4096;      // enum values of one schema
constexpr size_t kMaxPrefixItems = 64;       // each adds a level of parentheses
constexpr int64_t kMaxCount = grammar::kMaxRepeat;  // minItems/maxItems/minLength/maxLength
constexpr int kMaxIntegerDigits = 16;
constexpr int64_t kMaxIntegerMagnitude = 9'999'999'999'999'999;  // 16 digits

// The shared rules, in the order they are written; each names the shared rules it uses.
struct SharedRule {
  const char* name;
  const char* body;
  std::vector<const char*> uses;
};

const std::vector<SharedRule>& shared_rules() {
  static const std::vector<SharedRule> rules = {
      // At most one newline and a bounded indent between tokens, so a model cannot pad forever.
      {"ws", R"(| " " | "\n" [ \t]{0,20})", {}},
      {"value", R"(object | array | string | number | "true" | "false" | "null")",
       {"object", "array", "string", "number"}},
      {"object", R"("{" ws ( member ( ws "," ws member )* ws )? "}")", {"member", "ws"}},
      {"member", R"(string ws ":" ws value)", {"string", "ws", "value"}},
      {"array", R"("[" ws ( value ( ws "," ws value )* ws )? "]")", {"value", "ws"}},
      {"string", R"("\"" char* "\"")", {"char"}},
      // One character of a string: anything but '"', '\' and controls, or an escape; a \u escape
      // of a surrogate must be a high-low pair, so one char is one code point (minLength counts
      // code points) and lone surrogates are refused.
      {"char",
       R"([^\"\\\x00-\x1F] | "\\" ( [\"\\/bfnrt] | "u" ( [0-9a-cA-CeEfF] hex hex hex | [dD] [0-7] hex hex | [dD] [89abAB] hex hex "\\u" [dD] [c-fC-F] hex hex ) ))",
       {"hex"}},
      {"hex", "[0-9a-fA-F]", {}},
      {"number", R"(integer ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?)", {"integer"}},
      {"integer", R"("-"? ( "0" | [1-9] [0-9]{0,15} ))", {}},
      {"boolean", R"("true" | "false")", {}},
      {"null", R"("null")", {}},
      // RFC 3339 full-date with the days of each month; Feb 29 only in leap years (the
      // Gregorian rule on the four digits).
      {"date",
       R"(year "-" ( ( "0" [13578] | "1" [02] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) | ( "0" [469] | "11" ) "-" ( "0" [1-9] | [12] [0-9] | "30" ) | "02-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] ) ) | leap-year "-02-29")",
       {"year", "leap-year"}},
      {"year", "[0-9]{4}", {}},
      {"leap-year",
       R"([0-9] [0-9] ( [02468] [48] | [13579] [26] | [2468] "0" ) | ( [02468] [048] | [13579] [26] ) "00")",
       {}},
      // RFC 3339 full-time without leap seconds.
      {"time",
       R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? ( [Zz] | [-+] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))",
       {}},
      {"date-time", R"(date [Tt] time)", {"date", "time"}},
      {"uuid", R"(hex{8} "-" hex{4} "-" hex{4} "-" hex{4} "-" hex{12})", {"hex"}},
  };
  return rules;
}

bool is_shared_name(std::string_view name) {
  if (name == "root") return true;
  for (const auto& r : shared_rules())
    if (name == r.name) return true;
  return false;
}

// Keywords that only annotate (or hold definitions reached through $ref).
bool is_annotation(std::string_view k) {
  static const std::set<std::string_view> kAnnotations = {
      "description", "title", "default", "examples", "$schema", "$id", "$comment",
      "deprecated", "readOnly", "writeOnly", "$defs", "definitions"};
  return kAnnotations.count(k) != 0;
}

bool is_supported(std::string_view k) {
  static const std::set<std::string_view> kSupported = {
      "type", "enum", "const", "properties", "required", "additionalProperties", "items",
      "prefixItems", "minItems", "maxItems", "anyOf", "oneOf", "allOf", "$ref", "minLength",
      "maxLength", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
  return is_annotation(k) || kSupported.count(k) != 0;
}

const char* const kTypeNames[] = {"null", "boolean", "object", "array", "string", "number", "integer"};

std::string where(const std::string& path) { return path.empty() ? "/" : path; }

std::string pointer_token(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

Error unsupported(std::string_view keyword, const std::string& path, std::string_view why = {}) {
  std::string msg = "json schema: unsupported keyword '" + std::string(keyword) + "' at " + where(path);
  if (!why.empty()) msg += " (" + std::string(why) + ")";
  return err(std::move(msg));
}

Error invalid(std::string_view keyword, const std::string& path, std::string_view must) {
  return err("json schema: '" + std::string(keyword) + "' at " + where(path) + " must be " + std::string(must));
}

Error matches_nothing(const std::string& path, std::string_view why) {
  return err("json schema: the schema at " + where(path) + " matches nothing (" + std::string(why) + ")");
}

// Canonical JSON text of a value (as a grammar literal).
std::string json_literal(const json& v) { return literal(v.dump(-1, ' ', false)); }

// --- the converter -------------------------------------------------------------------------------

// An expression and the $ref targets it may enter before matching any character (for the
// left-recursion check).
struct Expr {
  std::string text;
  std::vector<std::string> head_refs;
};

struct Bound {
  double value;
  bool exclusive;
  const char* keyword;
  const json* raw;
};

class Converter {
 public:
  explicit Converter(const json& root) : root_(root) {}

  Result<std::string> run(std::string_view start) {
    auto top = visit(root_, "", "doc", 0);
    if (!top) return err(top.error());
    if (auto cycle = find_ref_cycle()) return err("json schema: '$ref' loop through '" + *cycle +
                                                  "': the schema refers to itself before any JSON text");
    std::string out = "# from a JSON Schema (runtime/json_schema.cpp)\n" + std::string(start) + " ::= ws " + top->text + " ws\n";
    use("ws");
    for (const auto& [name, body] : rules_)
      if (!name.empty()) out += name + " ::= " + body + "\n";
    // The shared rules the generated ones use, and the ones those use.
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& r : shared_rules())
        if (used_.count(r.name))
          for (const char* u : r.uses) grew |= used_.insert(u).second;
    }
    for (const auto& r : shared_rules())
      if (used_.count(r.name)) out += std::string(r.name) + " ::= " + r.body + "\n";
    if (out.size() > grammar::kMaxGrammarBytes)
      return err("json schema: the grammar would be " + std::to_string(out.size()) + " bytes, over the limit of " +
                 std::to_string(grammar::kMaxGrammarBytes));
    return out;
  }

 private:
  const json& root_;
  std::vector<std::pair<std::string, std::string>> rules_;  // generated, in order of creation
  std::set<std::string> names_;
  std::set<std::string> used_;                             // shared rules referenced
  std::map<std::string, size_t> ref_rules_;                // $ref target -> index in rules_
  std::set<std::string> ref_names_;                        // their rules' names
  std::map<std::string, std::vector<std::string>> ref_heads_;  // $ref target -> Expr::head_refs
  size_t bytes_ = 0;

  std::string use(const char* shared) {
    used_.insert(shared);
    return shared;
  }

  std::string reserve(const std::string& hint) {
    std::string name = hint;
    for (int i = 2; is_shared_name(name) || names_.count(name); ++i) name = hint + "-" + std::to_string(i);
    names_.insert(name);
    return name;
  }

  Result<std::string> add_rule(const std::string& hint, std::string body) {
    std::string name = reserve(hint);
    if (auto st = grow(name.size() + body.size()); !st) return err(st.error());
    rules_.emplace_back(name, std::move(body));
    return name;
  }

  Status grow(size_t n) {
    bytes_ += n + 6;
    if (bytes_ > grammar::kMaxGrammarBytes)
      return err("json schema: the grammar would be over the limit of " + std::to_string(grammar::kMaxGrammarBytes) + " bytes");
    return Ok{};
  }

  std::optional<std::string> find_ref_cycle() const {
    std::map<std::string, int> state;  // 1: on the path, 2: done
    std::optional<std::string> found;
    auto dfs = [&](auto& self, const std::string& node) -> void {
      state[node] = 1;
      auto it = ref_heads_.find(node);
      if (it != ref_heads_.end())
        for (const auto& next : it->second) {
          if (found) return;
          if (state[next] == 1) found = next;
          else if (state[next] == 0) self(self, next);
        }
      state[node] = 2;
    };
    for (const auto& [node, heads] : ref_heads_)
      if (!found && state[node] == 0) dfs(dfs, node);
    return found;
  }

  // The first keyword of `s` that constrains and is not in `allowed`.
  static std::optional<std::string> other_keyword(const json& s, std::initializer_list<std::string_view> allowed) {
    for (const auto& [k, v] : s.items()) {
      if (is_annotation(k)) continue;
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) return k;
    }
    return std::nullopt;
  }

  Result<Expr> visit(const json& s, const std::string& path, const std::string& name, int depth) {
    if (depth > kMaxSchemaDepth)
      return err("json schema: nesting deeper than " + std::to_string(kMaxSchemaDepth) + " schemas at " + where(path));
    if (s.is_boolean()) {
      if (s.get<bool>()) return Expr{use("value"), {}};
      return matches_nothing(path, "false");
    }
    if (!s.is_object()) return err("json schema: the schema at " + where(path) + " must be an object or a boolean");
    for (const auto& [k, v] : s.items())
      if (!is_supported(k)) return unsupported(k, path);

    if (s.contains("$ref")) {
      if (auto k = other_keyword(s, {"$ref"})) return unsupported(*k, path, "alongside '$ref'");
      return ref(s["$ref"], path, depth);
    }
    if (s.contains("allOf")) {
      if (auto k = other_keyword(s, {"allOf"})) return unsupported(*k, path, "alongside 'allOf'");
      const json& all = s["allOf"];
      if (!all.is_array() || all.empty()) return invalid("allOf", path, "a non-empty array");
      if (all.size() > 1) return unsupported("allOf", path, "with more than one member");
      return visit(all[0], path + "/allOf/0", name, depth + 1);
    }
    if (s.contains("anyOf") || s.contains("oneOf")) {
      // oneOf is compiled as anyOf, which is exact only when no document matches two branches:
      // accepted when that is plain (different types, or objects told apart by a required const
      // property, the usual tagged union), refused otherwise.
      const char* key = s.contains("anyOf") ? "anyOf" : "oneOf";
      if (auto k = other_keyword(s, {key})) return unsupported(*k, path, std::string("alongside '") + key + "'");
      if (key == std::string("oneOf") && s[key].is_array() && !branches_disjoint(s[key]))
        return unsupported("oneOf", path,
                           "branches that may overlap; oneOf is supported for branches of different types or objects "
                           "with a required property whose const / enum values differ");
      return any_of(s[key], path + "/" + key, name, depth);
    }
    if (s.contains("enum") || s.contains("const")) {
      if (auto k = other_keyword(s, {"enum", "const", "type"}))
        return unsupported(*k, path, s.contains("enum") ? "alongside 'enum'" : "alongside 'const'");
      return enumeration(s, path);
    }
    return typed(s, path, name, depth);
  }

  // A local $ref's target (one step), or the schema itself.
  const json& resolved(const json& s) const {
    if (!s.is_object() || !s.contains("$ref") || !s["$ref"].is_string()) return s;
    const std::string target = s["$ref"].get<std::string>();
    for (const char* dir : {"#/$defs/", "#/definitions/"}) {
      const std::string d = dir;
      const std::string group = d.substr(2, d.size() - 3);
      if (target.starts_with(d) && root_.is_object() && root_.contains(group) && root_[group].is_object() &&
          root_[group].contains(target.substr(d.size())))
        return root_[group][target.substr(d.size())];
    }
    return s;
  }

  // The JSON types a branch allows, or empty when it does not say (then: any).
  static std::set<std::string> branch_types(const json& s) {
    std::set<std::string> out;
    if (!s.is_object() || !s.contains("type")) return out;
    const json& t = s["type"];
    if (t.is_string()) out.insert(t.get<std::string>());
    if (t.is_array())
      for (const auto& x : t)
        if (x.is_string()) out.insert(x.get<std::string>());
    if (out.count("integer")) out.insert("number");  // integers are numbers
    return out;
  }

  // The values a property may take when the branch pins it (const, or enum), required.
  static std::optional<std::vector<json>> pinned(const json& s, const std::string& key) {
    if (!s.is_object() || !s.contains("properties") || !s["properties"].is_object() || !s.contains("required") ||
        !s["required"].is_array() || std::find(s["required"].begin(), s["required"].end(), key) == s["required"].end())
      return std::nullopt;
    const json& p = s["properties"];
    if (!p.contains(key) || !p[key].is_object()) return std::nullopt;
    if (p[key].contains("const")) return std::vector<json>{p[key]["const"]};
    if (p[key].contains("enum") && p[key]["enum"].is_array())
      return std::vector<json>(p[key]["enum"].begin(), p[key]["enum"].end());
    return std::nullopt;
  }

  // No document can match two of the branches, by a reason that is plain to see.
  bool branches_disjoint(const json& branches) const {
    for (size_t i = 0; i < branches.size(); ++i)
      for (size_t j = i + 1; j < branches.size(); ++j) {
        const json& a = resolved(branches[i]);
        const json& b = resolved(branches[j]);
        auto ta = branch_types(a), tb = branch_types(b);
        bool types_apart = !ta.empty() && !tb.empty() &&
                           std::none_of(ta.begin(), ta.end(), [&](const std::string& t) { return tb.count(t) != 0; });
        bool tagged_apart = false;
        if (a.is_object() && a.contains("properties") && a["properties"].is_object())
          for (const auto& [key, _] : a["properties"].items()) {
            auto va = pinned(a, key), vb = pinned(b, key);
            if (va && vb &&
                std::none_of(va->begin(), va->end(), [&](const json& x) {
                  return std::find(vb->begin(), vb->end(), x) != vb->end();
                })) {
              tagged_apart = true;
              break;
            }
          }
        if (!types_apart && !tagged_apart) return false;
      }
    return true;
  }

  Result<Expr> ref(const json& r, const std::string& path, int depth) {
    if (!r.is_string()) return invalid("$ref", path, "a string");
    std::string target = r.get<std::string>();
    if (!ref_rules_.count(target)) {
      const json* node = nullptr;
      std::string def_name = "schema";
      if (target == "#") {
        node = &root_;
      } else {
        for (const char* dir : {"#/$defs/", "#/definitions/"}) {
          std::string_view t = target;
          if (!t.starts_with(dir)) continue;
          std::string_view raw = t.substr(std::string_view(dir).size());
          if (raw.find('/') != std::string_view::npos || raw.find('%') != std::string_view::npos) break;
          std::string key;
          for (size_t i = 0; i < raw.size(); ++i) {
            if (raw[i] == '~' && i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
              key += raw[i + 1] == '0' ? '~' : '/';
              ++i;
            } else {
              key += raw[i];
            }
          }
          std::string section(std::string_view(dir).substr(2, std::string_view(dir).size() - 3));
          auto defs = root_.find(section);
          if (!root_.is_object() || defs == root_.end() || !defs->is_object() || !defs->contains(key))
            return err("json schema: '$ref' target '" + target + "' not found at " + where(path));
          node = &(*defs)[key];
          def_name = "def-" + sanitize(key);
        }
        if (!node) return unsupported("$ref", path, "only '#', '#/$defs/NAME' and '#/definitions/NAME' are supported");
      }
      // The rule exists before its body is built, so recursive references find it.
      std::string rule = reserve(def_name);
      ref_rules_[target] = rules_.size();
      ref_names_.insert(rule);
      rules_.emplace_back(rule, "");
      auto body = visit(*node, target.substr(1), rule, depth + 1);
      if (!body) return body;
      if (auto st = grow(rule.size() + body->text.size()); !st) return err(st.error());
      auto& own = rules_[ref_rules_[target]];
      // A body that is one rule made for it (an object, an array, an integer range) moves into
      // the $ref's rule instead of leaving an alias; nothing else refers to that rule.
      auto made = std::find_if(rules_.begin() + static_cast<long>(ref_rules_[target]) + 1, rules_.end(),
                               [&](const auto& r) { return r.first == body->text; });
      if (made != rules_.end() && !ref_names_.count(body->text)) {
        own.second = std::move(made->second);
        made->first.clear();  // dropped from the output
      } else {
        own.second = body->text;
      }
      ref_heads_[target] = body->head_refs;
    }
    return Expr{rules_[ref_rules_[target]].first, {target}};
  }

  Result<Expr> any_of(const json& branches, const std::string& path, const std::string& name, int depth) {
    std::string keyword = path.substr(path.rfind('/') + 1);
    if (!branches.is_array() || branches.empty()) return invalid(keyword, path.substr(0, path.rfind('/')), "a non-empty array");
    Expr out;
    std::vector<std::string> alts;
    for (size_t i = 0; i < branches.size(); ++i) {
      if (branches[i].is_boolean() && !branches[i].get<bool>()) continue;  // a branch nothing matches
      auto e = visit(branches[i], path + "/" + std::to_string(i), name + "-" + std::to_string(i), depth + 1);
      if (!e) return e;
      alts.push_back(e->text);
      out.head_refs.insert(out.head_refs.end(), e->head_refs.begin(), e->head_refs.end());
    }
    if (alts.empty()) return matches_nothing(path, "every branch is false");
    out.text = alternatives(alts);
    return out;
  }

  static bool has_type(const json& v, std::string_view type) {
    if (type == "null") return v.is_null();
    if (type == "boolean") return v.is_boolean();
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "number") return v.is_number();
    // JSON Schema's integer: any number with a zero fractional part.
    return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
  }

  Result<std::vector<std::string>> types_of(const json& s, const std::string& path) {
    auto it = s.find("type");
    if (it == s.end()) return std::vector<std::string>(std::begin(kTypeNames), std::end(kTypeNames));
    std::vector<std::string> types;
    const char* must = "a type name (null, boolean, object, array, string, number, integer) or a non-empty list of them";
    json list = it->is_array() ? *it : json::array({*it});
    if (list.empty()) return invalid("type", path, must);
    for (const auto& t : list) {
      if (!t.is_string() || std::find(std::begin(kTypeNames), std::end(kTypeNames), t.get<std::string>()) == std::end(kTypeNames))
        return invalid("type", path, must);
      if (std::find(types.begin(), types.end(), t.get<std::string>()) == types.end()) types.push_back(t.get<std::string>());
    }
    return types;
  }

  Result<Expr> enumeration(const json& s, const std::string& path) {
    json values = json::array();
    if (s.contains("enum")) {
      if (!s["enum"].is_array() || s["enum"].empty()) return invalid("enum", path, "a non-empty array");
      values = s["enum"];
    }
    if (s.contains("const")) {
      if (s.contains("enum") && std::find(values.begin(), values.end(), s["const"]) == values.end())
        return matches_nothing(path, "'const' is not in 'enum'");
      values = json::array({s["const"]});
    }
    auto types = types_of(s, path);
    if (!types) return err(types.error());
    std::vector<std::string> alts;
    for (const auto& v : values) {
      bool typed = std::any_of(types->begin(), types->end(), [&](const std::string& t) { return has_type(v, t); });
      std::string text = json_literal(v);
      if (typed && std::find(alts.begin(), alts.end(), text) == alts.end()) alts.push_back(std::move(text));
    }
    if (alts.empty()) return matches_nothing(path, "no 'enum' / 'const' value has the 'type'");
    if (alts.size() > kMaxEnumValues)
      return unsupported(s.contains("enum") ? "enum" : "const", path, "more than " + std::to_string(kMaxEnumValues) + " values");
    for (const auto& a : alts)
      if (auto st = grow(a.size()); !st) return err(st.error());
    return Expr{alternatives(alts), {}};
  }

  Result<Expr> typed(const json& s, const std::string& path, const std::string& name, int depth) {
    auto types = types_of(s, path);
    if (!types) return err(types.error());
    // Every integer document is a number document, under the same bounds.
    if (std::find(types->begin(), types->end(), "number") != types->end())
      std::erase(*types, std::string("integer"));
    std::vector<std::string> alts;
    for (const auto& t : *types) {
      Result<std::string> e = std::string();
      if (t == "null") e = use("null");
      else if (t == "boolean") e = use("boolean");
      else if (t == "string") e = string_type(s, path);
      else if (t == "number") e = number_type(s, path);
      else if (t == "integer") e = integer_type(s, path, name);
      else if (t == "object") e = object_type(s, path, name, depth);
      else e = array_type(s, path, name, depth);
      if (!e) return err(e.error());
      alts.push_back(std::move(e).value());
    }
    return Expr{alternatives(alts), {}};
  }

  static Result<std::optional<int64_t>> count(const json& s, const char* keyword, const std::string& path) {
    auto it = s.find(keyword);
    if (it == s.end()) return std::optional<int64_t>();
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0))
      return invalid(keyword, path, "a non-negative integer");
    if (it->get<uint64_t>() > static_cast<uint64_t>(kMaxCount))
      return unsupported(keyword, path, "over " + std::to_string(kMaxCount));
    return std::optional<int64_t>(it->get<int64_t>());
  }

  Result<std::string> string_type(const json& s, const std::string& path) {
    auto min_len = count(s, "minLength", path);
    if (!min_len) return err(min_len.error());
    auto max_len = count(s, "maxLength", path);
    if (!max_len) return err(max_len.error());
    if (auto it = s.find("format"); it != s.end()) {
      if (!it->is_string()) return invalid("format", path, "a string");
      std::string f = it->get<std::string>();
      if (f != "date" && f != "time" && f != "date-time" && f != "uuid")
        return unsupported("format", path, "'" + f + "'; supported: date, time, date-time, uuid");
      if (*min_len || *max_len)
        return unsupported(*min_len ? "minLength" : "maxLength", path, "alongside 'format'");
      used_.insert(f);
      return "\"\\\"\" " + f + " \"\\\"\"";
    }
    int64_t lo = min_len->value_or(0), hi = max_len->value_or(-1);
    if (hi >= 0 && hi < lo) return matches_nothing(path, "maxLength < minLength");
    if (lo == 0 && hi < 0) return use("string");
    if (hi == 0) return std::string(R"("\"\"")");
    use("char");
    return "\"\\\"\" " + repeated("char", lo, hi) + " \"\\\"\"";
  }

  // The tightest lower (or upper) bound among minimum / exclusiveMinimum (draft 4's boolean
  // exclusiveMinimum makes minimum exclusive).
  static Result<std::optional<Bound>> bound(const json& s, const std::string& path, bool lower) {
    const char* inclusive = lower ? "minimum" : "maximum";
    const char* exclusive = lower ? "exclusiveMinimum" : "exclusiveMaximum";
    std::optional<Bound> best;
    auto consider = [&](Bound b) {
      if (!best || (lower ? b.value > best->value : b.value < best->value) || (b.value == best->value && b.exclusive))
        best = b;
    };
    bool draft4_exclusive = false;
    if (auto it = s.find(exclusive); it != s.end()) {
      if (it->is_boolean()) draft4_exclusive = it->get<bool>();
      else if (it->is_number() && !std::isnan(it->get<double>())) consider({it->get<double>(), true, exclusive, &*it});
      else return invalid(exclusive, path, "a number");
    }
    if (auto it = s.find(inclusive); it != s.end()) {
      if (!it->is_number() || std::isnan(it->get<double>())) return invalid(inclusive, path, "a number");
      consider({it->get<double>(), draft4_exclusive, draft4_exclusive ? exclusive : inclusive, &*it});
    }
    return best;
  }

  Result<std::string> number_type(const json& s, const std::string& path) {
    auto lower = bound(s, path, true);
    if (!lower) return err(lower.error());
    auto upper = bound(s, path, false);
    if (!upper) return err(upper.error());
    if (*upper) return unsupported((*upper)->keyword, path, "on a number; only integer ranges and a lower bound of 0 are enforced");
    if (!*lower) return use("number");
    if ((*lower)->value != 0.0)
      return unsupported((*lower)->keyword, path, "on a number; only integer ranges and a lower bound of 0 are enforced");
    std::string tail = R"(( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?)";
    // >= 0: no sign. > 0: a non-zero digit somewhere (0.000 and 0e5 are zero).
    if (!(*lower)->exclusive) return R"(( "0" | [1-9] [0-9]{0,15} ) )" + tail;
    return std::string(R"(( [1-9] [0-9]{0,15} ( "." [0-9]{1,16} )? | "0." "0"{0,15} [1-9] [0-9]{0,15} ) ( [eE] [-+]? [0-9]{1,2} )?)");
  }

  static int64_t to_integer_bound(const Bound& b, bool lower) {
    if (b.raw->is_number_integer() || b.raw->is_number_unsigned()) {
      // Exact for 64-bit values (a double would round them).
      int64_t v = b.raw->is_number_unsigned() && b.raw->get<uint64_t>() > uint64_t{INT64_MAX} ? INT64_MAX : b.raw->get<int64_t>();
      v = std::clamp<int64_t>(v, -kMaxIntegerMagnitude - 1, kMaxIntegerMagnitude + 1);
      return b.exclusive ? (lower ? v + 1 : v - 1) : v;
    }
    double v = std::clamp(b.value, -1e17, 1e17);
    double r = lower ? (b.exclusive ? std::floor(v) + 1 : std::ceil(v)) : (b.exclusive ? std::ceil(v) - 1 : std::floor(v));
    return std::clamp<int64_t>(static_cast<int64_t>(r), -kMaxIntegerMagnitude - 1, kMaxIntegerMagnitude + 1);
  }

  Result<std::string> integer_type(const json& s, const std::string& path, const std::string& name) {
    auto lower = bound(s, path, true);
    if (!lower) return err(lower.error());
    auto upper = bound(s, path, false);
    if (!upper) return err(upper.error());
    int64_t lo = *lower ? std::max(-kMaxIntegerMagnitude, to_integer_bound(**lower, true)) : -kMaxIntegerMagnitude;
    int64_t hi = *upper ? std::min(kMaxIntegerMagnitude, to_integer_bound(**upper, false)) : kMaxIntegerMagnitude;
    if (lo > hi)
      return matches_nothing(path, "no integer of at most " + std::to_string(kMaxIntegerDigits) + " digits is within the bounds");
    if (lo == -kMaxIntegerMagnitude && hi == kMaxIntegerMagnitude) return use("integer");
    std::vector<std::string> alts;
    if (lo < 0) alts.push_back("\"-\" " + natural_range(hi < 0 ? -hi : 1, -lo));
    if (hi >= 0) alts.push_back(natural_range(std::max<int64_t>(lo, 0), hi));
    return add_rule(name + "-int", alternatives(alts));
  }

  Result<std::string> object_type(const json& s, const std::string& path, const std::string& name, int depth) {
    const json empty = json::object();
    const json* props = &empty;
    if (auto it = s.find("properties"); it != s.end()) {
      if (!it->is_object()) return invalid("properties", path, "an object");
      props = &*it;
    }
    std::vector<std::string> required;
    if (auto it = s.find("required"); it != s.end()) {
      if (!it->is_array()) return invalid("required", path, "an array of strings");
      for (const auto& r : *it) {
        if (!r.is_string()) return invalid("required", path, "an array of strings");
        required.push_back(r.get<std::string>());
      }
    }
    auto ap = s.find("additionalProperties");
    bool ap_false = ap != s.end() && ap->is_boolean() && !ap->get<bool>();
    if (props->empty() && required.empty()) {
      if (ap == s.end() || (ap->is_boolean() && ap->get<bool>())) return use("object");
      if (ap_false) return std::string(R"("{" ws "}")");
      // Every value conforms to one schema; keys are free.
      auto v = visit(*ap, path + "/additionalProperties", name + "-value", depth + 1);
      if (!v) return err(v.error());
      std::string member = use("string") + " ws \":\" ws " + v->text;
      return add_rule(name, "\"{\" ws ( " + member + " ( ws \",\" ws " + member + " )* ws )? \"}\"");
    }
    // Extra keys, where the schema allows them, are never written: only the listed properties
    // (as vLLM's and xgrammar's strict mode do). Every such document conforms; the grammar is
    // stricter than the schema, never looser. Generating extra keys exactly would need a string
    // grammar excluding the listed names in every escaped spelling.
    if (!ap_false)
      for (const auto& r : required)
        if (!props->contains(r))
          return unsupported("required", path,
                             "required property '" + r + "' has no schema in 'properties'; extra keys are not generated");
    for (const auto& r : required)
      if (!props->contains(r) || ((*props)[r].is_boolean() && !(*props)[r].get<bool>()))
        return matches_nothing(path, "required property '" + r + "' is not allowed by 'properties'");

    // Properties in the schema's order, each optional one may be left out.
    std::vector<std::string> members;
    std::vector<bool> req;
    for (const auto& [key, sub] : props->items()) {
      if (sub.is_boolean() && !sub.get<bool>()) continue;  // may not appear
      auto v = visit(sub, path + "/properties/" + pointer_token(key), name + "-" + sanitize(key), depth + 1);
      if (!v) return err(v.error());
      members.push_back(json_literal(json(key)) + " ws \":\" ws " + v->text);
      req.push_back(std::find(required.begin(), required.end(), key) != required.end());
    }
    use("ws");
    size_t n = members.size();
    if (n == 0) return std::string(R"("{" ws "}")");
    // tail[i]: the properties from i on, after one was written (each preceded by a comma).
    std::vector<std::string> tail(n + 1);
    for (size_t i = n; i-- > 1;) {
      std::string item = "ws \",\" ws " + members[i];
      std::string next = tail[i + 1].empty() ? "" : " " + tail[i + 1];
      std::string body = req[i] ? item + next : "( " + item + " )?" + next;
      // Short runs of required properties stay inline; longer ones become rules so the text
      // (and the memory while building it) stays linear in the number of properties.
      if (req[i] && body.size() <= 200) {
        tail[i] = std::move(body);
      } else {
        auto r = add_rule(name + "-after-" + std::to_string(i), std::move(body));
        if (!r) return r;
        tail[i] = *r;
      }
    }
    // first[i]: the properties from i on, none written yet (the first written takes no comma).
    std::string first;
    for (size_t i = n; i-- > 0;) {
      std::string here = members[i] + (tail[i + 1].empty() ? "" : " " + tail[i + 1]);
      if (req[i] || first.empty()) {
        first = here;
      } else {
        auto r = add_rule(name + "-from-" + std::to_string(i), here + " | " + first);
        if (!r) return r;
        first = *r;
      }
    }
    bool any_required = std::find(req.begin(), req.end(), true) != req.end();
    std::string body = any_required ? "\"{\" ws " + first + " ws \"}\"" : "\"{\" ws ( " + first + " ws )? \"}\"";
    return add_rule(name, body);
  }

  Result<std::string> array_type(const json& s, const std::string& path, const std::string& name, int depth) {
    auto min_items = count(s, "minItems", path);
    if (!min_items) return err(min_items.error());
    auto max_items = count(s, "maxItems", path);
    if (!max_items) return err(max_items.error());
    int64_t lo = min_items->value_or(0), hi = max_items->value_or(-1);  // hi < 0: unbounded
    std::vector<std::string> prefix;
    if (auto it = s.find("prefixItems"); it != s.end()) {
      if (!it->is_array()) return invalid("prefixItems", path, "an array of schemas");
      if (it->size() > kMaxPrefixItems)
        return unsupported("prefixItems", path, "more than " + std::to_string(kMaxPrefixItems) + " items");
      for (size_t i = 0; i < it->size(); ++i) {
        if (hi >= 0 && static_cast<int64_t>(i) >= hi) break;  // never reached
        if ((*it)[i].is_boolean() && !(*it)[i].get<bool>()) {
          hi = static_cast<int64_t>(i);  // no array reaches this position
          break;
        }
        auto e = visit((*it)[i], path + "/prefixItems/" + std::to_string(i), name + "-" + std::to_string(i), depth + 1);
        if (!e) return err(e.error());
        prefix.push_back(e->text);
      }
    }
    std::string item;  // empty: no items past the prefix
    bool prefix_capped = hi >= 0 && static_cast<int64_t>(prefix.size()) >= hi;
    if (auto it = s.find("items"); it != s.end() && !prefix_capped) {
      if (it->is_array()) return unsupported("items", path, "an array (draft 4 tuples); use prefixItems");
      if (it->is_boolean() && !it->get<bool>()) {
        hi = static_cast<int64_t>(prefix.size());
      } else {
        auto e = visit(*it, path + "/items", name + "-item", depth + 1);
        if (!e) return err(e.error());
        item = e->text;
      }
    } else if (!prefix_capped) {
      item = use("value");
    }
    if (hi >= 0 && hi < lo) return matches_nothing(path, "fewer items allowed than minItems");
    if (item.size() > 64 && (hi < 0 ? lo : hi) > kBlock) {
      // Long counts repeat the item a few times (see repeated()): a rule keeps that short.
      auto r = add_rule(name + "-item", item);
      if (!r) return r;
      item = *r;
    }
    use("ws");
    if (hi == 0) return std::string(R"("[" ws "]")");
    int64_t k = static_cast<int64_t>(prefix.size());
    auto element = [&](int64_t j) { return j < k ? prefix[j] : item; };
    // The elements from j on (j >= 1 written), each after a comma; nested so that a later prefix
    // item only comes after the earlier ones.
    auto rest = [&](auto& self, int64_t j) -> std::string {
      if (hi >= 0 && j >= hi) return "";
      if (j >= k) {
        if (item.empty()) return "";
        int64_t need = std::max<int64_t>(0, lo - j);
        return repeated("( ws \",\" ws " + item + " )", need, hi < 0 ? -1 : hi - j);
      }
      std::string after = self(self, j + 1);
      std::string seq = "ws \",\" ws " + element(j) + (after.empty() ? "" : " " + after);
      return j < lo ? seq : "( " + seq + " )?";
    };
    std::string after = rest(rest, 1);
    std::string inner = element(0) + (after.empty() ? "" : " " + after);
    std::string body = lo > 0 ? "\"[\" ws " + inner + " ws \"]\"" : "\"[\" ws ( " + inner + " ws )? \"]\"";
    return add_rule(name, body);
  }
};

}  // namespace

Result<std::string> json_schema_to_grammar(const nlohmann::ordered_json& schema, std::string_view start) {
  try {
    return Converter(schema).run(start);
  } catch (const nlohmann::json::exception& e) {
    // dump() refuses invalid UTF-8 in keys or values; get<>() mismatches are checked before.
    return err(std::string("json schema: ") + e.what());
  }
}

std::string json_object_grammar() {
  return json_schema_to_grammar(nlohmann::ordered_json{{"type", "object"}}).value();
}

}  // namespace qnext
