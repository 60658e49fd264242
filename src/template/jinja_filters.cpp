// Built-in filters and tests (see jinja_builtins.h), after jinja2's documented behaviour.
// tojson is transformers' version: json.dumps(ensure_ascii=False), no HTML escaping.
#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "template/jinja_builtins.h"
#include "template/jinja_limits.h"
#include "template/jinja_ops.h"
#include "template/jinja_strings.h"

namespace qnext::jinja {
namespace {

const std::string& need_str(const Value& v, const std::string& filter) {
  if (!v.is_string()) throw JinjaError("filter '" + filter + "' expects a string, got " + v.type_name());
  return v.as_string();
}

bool arg_bool(const CallArgs& a, size_t i, const char* name, bool dflt) {
  const Value* v = a.get(i, name);
  return v ? v->truthy() : dflt;
}

// jinja2's attribute getter: "a.b.0" walks dict keys/attributes and integer indices.
Value walk_attr(const Value& v, const Value& attr) {
  if (!attr.is_string()) return get_item(v, attr);
  Value cur = v;
  const std::string& path = attr.as_string();
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && part.size() <= 18 && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = digits ? get_item(cur, Value(static_cast<int64_t>(std::stoll(part)))) : get_item(cur, Value(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Arguments after the first `skip` positional ones, for select/map-style forwarding.
CallArgs rest_args(const CallArgs& a, size_t skip) {
  CallArgs r;
  for (size_t i = skip; i < a.pos.size(); ++i) r.pos.push_back(a.pos[i]);
  r.kw = a.kw;
  return r;
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(py_lower(v.as_string()));
  return v;
}

Value select_items(const Value& seq, const CallArgs& a, bool by_attr, bool keep) {
  std::vector<Value> out;
  size_t skip = by_attr ? 2 : 1;
  CallArgs targs = rest_args(a, skip);
  targs.kw.clear();
  for (const Value& item : iterate(seq)) {
    Value subject = by_attr ? walk_attr(item, a.get_or(0, "attribute", Value(""))) : item;
    bool ok;
    const Value* test = a.get(by_attr ? 1 : 0, "test_name");
    if (!test) ok = subject.truthy();
    else ok = apply_test(to_str(*test), subject, targs);
    if (ok == keep) out.push_back(item);
  }
  return make_array(std::move(out));
}

Value min_max(const Value& v, const CallArgs& a, bool want_max) {
  bool cs = arg_bool(a, 0, "case_sensitive", false);
  const Value* attr = a.get(1, "attribute");
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value(Undefined{"No aggregated item, sequence was empty."});
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    Value x = sort_key(attr ? walk_attr(items[i], *attr) : items[i], cs);
    Value y = sort_key(attr ? walk_attr(items[best], *attr) : items[best], cs);
    int c = compare(x, y);
    if (want_max ? c > 0 : c < 0) best = i;
  }
  return items[best];
}

std::string html_escape(const std::string& s) {
  uint64_t size = s.size();
  for (char c : s) size += c == '&' ? 4 : (c == '<' || c == '>') ? 3 : (c == '"' || c == '\'') ? 4 : 0;
  charge_scan(s.size());
  check_room(size);
  std::string out;
  out.reserve(size);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Value to_int_value(const Value& v, const CallArgs& a) {
  Value dflt = a.get_or(0, "default", Value(int64_t{0}));
  if (v.is_number()) return Value(v.to_int());
  if (v.is_string()) {
    try {
      size_t used = 0;
      std::string s = py_strip(v.as_string(), std::nullopt, true, true);
      long long i = std::stoll(s, &used, static_cast<int>(a.get_or(1, "base", Value(int64_t{10})).to_int()));
      if (used == s.size()) return Value(static_cast<int64_t>(i));
      double d = std::stod(s, &used);
      if (used == s.size()) return Value(static_cast<int64_t>(d));
    } catch (...) {
    }
  }
  return dflt;
}

Value to_float_value(const Value& v, const CallArgs& a) {
  Value dflt = a.get_or(0, "default", Value(0.0));
  if (v.is_number()) return Value(v.to_double());
  if (v.is_string()) {
    try {
      size_t used = 0;
      std::string s = py_strip(v.as_string(), std::nullopt, true, true);
      double d = std::stod(s, &used);
      if (used == s.size()) return Value(d);
    } catch (...) {
    }
  }
  return dflt;
}

bool listed(const std::string& n, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* x) { return n == x; });
}

}  // namespace

bool is_filter(const std::string& n) {
  return listed(n, {"default", "d", "length", "count", "string", "safe", "e", "escape", "forceescape", "tojson",
                    "trim", "lower", "upper", "capitalize", "title", "replace", "join", "first", "last", "items",
                    "list", "reverse", "int", "float", "abs", "round", "sort", "dictsort", "unique", "min", "max",
                    "sum", "map", "select", "reject", "selectattr", "rejectattr", "attr", "format", "indent",
                    "wordcount"});
}

bool is_test(const std::string& n) {
  return listed(n, {"defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true",
                    "false", "mapping", "sequence", "iterable", "callable", "odd", "even", "divisibleby", "eq",
                    "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge",
                    ">=", "in", "sameas", "lower", "upper", "escaped"});
}

Value apply_filter(const std::string& name, const Value& v, const CallArgs& a) {
  if (name == "default" || name == "d") {
    bool boolean = arg_bool(a, 1, "boolean", false);
    if (v.is_undefined() || (boolean && !v.truthy())) return a.get_or(0, "default_value", Value(""));
    return v;
  }
  if (name == "length" || name == "count") return Value(length(v));
  if (name == "string") return Value(to_str(v));
  if (name == "safe") return v;
  if (name == "e" || name == "escape" || name == "forceescape") return Value(html_escape(to_str(v)));
  if (name == "tojson") {
    JsonFormat f;
    const Value* ind = a.get(0, "indent");
    if (ind && !ind->is_none()) {
      if (!ind->is_int()) throw JinjaError("tojson: indent must be an integer");
      f.indent = static_cast<int>(std::clamp<int64_t>(ind->as_int(), 0, 64));
    }
    f.sort_keys = arg_bool(a, 99, "sort_keys", false);
    if (const Value* sep = a.get(99, "separators"); sep && !sep->is_none()) {
      if (!sep->is_array() || sep->as_array()->items.size() != 2 || !sep->as_array()->items[0].is_string() ||
          !sep->as_array()->items[1].is_string())
        throw JinjaError("tojson: separators must be a pair of strings");
      f.custom_separators = true;
      f.item_sep = sep->as_array()->items[0].as_string();
      f.key_sep = sep->as_array()->items[1].as_string();
    }
    return Value(to_json(v, f));
  }
  require_defined(v);
  if (name == "trim") {
    const Value* chars = a.get(0, "chars");
    std::optional<std::string> set;
    if (chars && !chars->is_none()) set = to_str(*chars);
    return Value(py_strip(need_str(v, name), set, true, true));
  }
  if (name == "lower") return Value(py_lower(to_str(v)));
  if (name == "upper") return Value(py_upper(to_str(v)));
  if (name == "capitalize") return Value(py_capitalize(to_str(v)));
  if (name == "title") return Value(py_title(to_str(v)));
  if (name == "replace") {
    const Value* count = a.get(2, "count");
    return Value(py_replace(to_str(v), to_str(a.get_or(0, "old", Value(""))), to_str(a.get_or(1, "new", Value(""))),
                            count && !count->is_none() ? count->to_int() : -1));
  }
  if (name == "join") {
    std::string sep = to_str(a.get_or(0, "d", Value("")));
    const Value* attr = a.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      std::string part = to_str(attr ? walk_attr(item, *attr) : item);
      check_room(add_sat(out.size(), add_sat(sep.size(), part.size())));
      if (!first) out += sep;
      first = false;
      out += part;
    }
    return Value(std::move(out));
  }
  if ((name == "first" || name == "last") && v.is_range()) {  // without building the range
    const Range& r = v.as_range();
    if (r.size() == 0) return Value(Undefined{"No " + name + " item, sequence was empty."});
    return Value(r.at(name == "first" ? 0 : r.size() - 1));
  }
  if (name == "first" || name == "last") {
    std::vector<Value> items = iterate(v);
    if (items.empty()) return Value(Undefined{"No " + name + " item, sequence was empty."});
    return name == "first" ? items.front() : items.back();
  }
  if (name == "items") {
    if (!v.is_object()) throw JinjaError("filter 'items' expects a mapping, got " + v.type_name());
    return get_method(v, "items").as_function()->fn(CallArgs{});
  }
  if (name == "list") return make_array(iterate(v));
  if (name == "reverse") {
    if (v.is_string()) {
      std::u32string u = utf8_decode(v.as_string());
      std::reverse(u.begin(), u.end());
      return Value(utf8_encode(u));
    }
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return make_array(std::move(items));
  }
  if (name == "int") return to_int_value(v, a);
  if (name == "float") return to_float_value(v, a);
  if (name == "abs") {
    if (!v.is_number()) throw JinjaError("bad operand type for abs(): '" + v.type_name() + "'");
    if (v.is_float()) return Value(std::fabs(v.as_float()));
    if (v.to_int() == INT64_MIN) throw JinjaError("integer overflow (beyond 64-bit integers)");
    return Value(static_cast<int64_t>(std::llabs(v.to_int())));
  }
  if (name == "round") {
    if (!v.is_number()) throw JinjaError("filter 'round' expects a number");
    int64_t prec = a.get_or(0, "precision", Value(int64_t{0})).to_int();
    std::string method = to_str(a.get_or(1, "method", Value("common")));
    double scale = std::pow(10.0, static_cast<double>(prec));
    double x = v.to_double() * scale;
    double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::nearbyint(x);
    return Value(r / scale);
  }
  if (name == "sort") {
    bool rev = arg_bool(a, 0, "reverse", false), cs = arg_bool(a, 1, "case_sensitive", false);
    const Value* attr = a.get(2, "attribute");
    std::vector<Value> items = iterate(v);
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      charge_steps();
      Value kx = sort_key(attr ? walk_attr(x, *attr) : x, cs), ky = sort_key(attr ? walk_attr(y, *attr) : y, cs);
      return rev ? compare(ky, kx) < 0 : compare(kx, ky) < 0;
    });
    return make_array(std::move(items));
  }
  if (name == "dictsort") {
    if (!v.is_object()) throw JinjaError("filter 'dictsort' expects a mapping");
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    bool by_value = to_str(a.get_or(1, "by", Value("key"))) == "value";
    bool rev = arg_bool(a, 2, "reverse", false);
    std::vector<Value> items = get_method(v, "items").as_function()->fn(CallArgs{}).as_array()->items;
    size_t k = by_value ? 1 : 0;
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      charge_steps();
      Value kx = sort_key(x.as_array()->items[k], cs), ky = sort_key(y.as_array()->items[k], cs);
      return rev ? compare(ky, kx) < 0 : compare(kx, ky) < 0;
    });
    return make_array(std::move(items));
  }
  if (name == "unique") {
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    const Value* attr = a.get(1, "attribute");
    std::vector<Value> out, seen;
    for (const Value& item : iterate(v)) {
      Value key = sort_key(attr ? walk_attr(item, *attr) : item, cs);
      if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) {
            charge_steps();
            return equals(s, key);
          }))
        continue;
      seen.push_back(key);
      out.push_back(item);
    }
    return make_array(std::move(out));
  }
  if (name == "min" || name == "max") return min_max(v, a, name == "max");
  if (name == "sum") {
    const Value* attr = a.get(0, "attribute");
    Value total = a.get_or(1, "start", Value(int64_t{0}));
    for (const Value& item : iterate(v)) total = binary_op("+", total, attr ? walk_attr(item, *attr) : item);
    return total;
  }
  if (name == "map") {
    std::vector<Value> out;
    const Value* attr = nullptr;
    for (const auto& [k, x] : a.kw)
      if (k == "attribute") attr = &x;
    for (const Value& item : iterate(v)) {
      if (attr) {
        Value r = walk_attr(item, *attr);
        if (r.is_undefined())
          for (const auto& [k, x] : a.kw)
            if (k == "default") r = x;
        out.push_back(r);
      } else {
        if (a.pos.empty()) throw JinjaError("map requires a filter name or attribute=");
        out.push_back(apply_filter(to_str(a.pos[0]), item, rest_args(a, 1)));
      }
    }
    return make_array(std::move(out));
  }
  if (name == "select" || name == "reject") return select_items(v, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") return select_items(v, a, true, name == "selectattr");
  if (name == "attr") return get_attr(v, to_str(a.get_or(0, "name", Value(""))));
  if (name == "format") {
    CallArgs fa = a;
    return Value(percent_format(need_str(v, name), make_array(fa.pos, true)));
  }
  if (name == "indent") {
    Value width = a.get_or(0, "width", Value(int64_t{4}));  // a count of spaces, or the pad itself
    std::string pad = width.is_string() ? width.as_string()
                                        : std::string(static_cast<size_t>(std::clamp<int64_t>(width.to_int(), 0, 256)), ' ');
    bool first = arg_bool(a, 1, "first", false), blank = arg_bool(a, 2, "blank", false);
    std::string s = to_str(v), out;
    charge_copy(s.size());
    size_t start = 0;
    for (size_t i = 0;; ++i) {
      size_t nl = s.find('\n', start);
      std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      check_room(add_sat(out.size(), add_sat(line.size(), pad.size() + 1)));
      if (i) out += '\n';
      if ((i > 0 || first) && (blank || !line.empty())) out += pad;
      out += line;
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
    return Value(out);
  }
  if (name == "wordcount") return Value(static_cast<int64_t>(py_split(to_str(v), std::nullopt, -1, false).size()));
  throw JinjaError("no filter named '" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, const CallArgs& a) {
  auto arg = [&]() -> const Value& {
    if (a.pos.empty()) throw JinjaError("test '" + name + "' needs an argument");
    return a.pos[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "mapping") return v.is_object() && !v.as_object()->is_namespace;
  if (name == "sequence")
    return v.is_string() || v.is_array() || v.is_range() || (v.is_object() && !v.as_object()->is_namespace);
  if (name == "iterable") return v.is_string() || v.is_array() || v.is_range() || v.is_object() || v.is_undefined();
  if (name == "callable") return v.is_function();
  if (name == "odd" || name == "even") {
    if (!v.is_int() && !v.is_bool()) throw JinjaError("test '" + name + "' expects an integer");
    bool odd = (v.to_int() % 2) != 0;
    return name == "odd" ? odd : !odd;
  }
  if (name == "divisibleby") {
    int64_t d = arg().to_int();
    if (d == 0) throw JinjaError("integer division or modulo by zero");
    return v.to_int() % d == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, arg());
  if (name == "ne" || name == "!=") return !equals(v, arg());
  if (name == "lt" || name == "lessthan" || name == "<") return compare(v, arg()) < 0;
  if (name == "le" || name == "<=") return compare(v, arg()) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, arg()) > 0;
  if (name == "ge" || name == ">=") return compare(v, arg()) >= 0;
  if (name == "in") return contains(arg(), v);
  if (name == "sameas") {
    const Value& o = arg();
    if (v.kind() != o.kind()) return false;
    if (v.is_array()) return v.as_array() == o.as_array();
    if (v.is_object()) return v.as_object() == o.as_object();
    return equals(v, o);
  }
  if (name == "lower") return v.is_string() && py_lower(v.as_string()) == v.as_string();
  if (name == "upper") return v.is_string() && py_upper(v.as_string()) == v.as_string();
  if (name == "escaped") return false;
  throw JinjaError("no test named '" + name + "'");
}

}  // namespace qnext::jinja
