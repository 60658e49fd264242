// Python methods of str, dict and list values, as bound functions (see get_method in
// jinja_builtins.h). Strings are handled by code point, as Python does.
#include <utf8proc.h>

#include <algorithm>

#include "template/jinja_builtins.h"
#include "template/jinja_limits.h"
#include "template/jinja_ops.h"
#include "template/jinja_strings.h"

namespace qnext::jinja {
namespace {

const std::string& str_arg(const CallArgs& a, size_t i, const char* name, const char* method) {
  const Value* v = a.get(i, name);
  if (!v) throw JinjaError(std::string(method) + "() missing argument '" + name + "'");
  if (!v->is_string())
    throw JinjaError(std::string(method) + "() argument must be str, not " + v->type_name());
  return v->as_string();
}

// Optional char-set argument of strip/lstrip/rstrip: None/absent means whitespace.
std::optional<std::string> chars_arg(const CallArgs& a) {
  const Value* v = a.get(0, "chars");
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) throw JinjaError("strip arg must be None or str");
  return v->as_string();
}

int64_t int_arg(const CallArgs& a, size_t i, const char* name, int64_t dflt) {
  const Value* v = a.get(i, name);
  if (!v || v->is_none()) return dflt;
  if (!v->is_int() && !v->is_bool()) throw JinjaError(std::string("'") + name + "' must be an integer");
  return v->to_int();
}

bool prefix_test(const std::string& s, const Value& p, bool at_end) {
  auto one = [&](const Value& x) {
    if (!x.is_string()) throw JinjaError("startswith/endswith first arg must be str or a tuple of str");
    const std::string& t = x.as_string();
    if (t.size() > s.size()) return false;
    charge_copy(t.size());
    return at_end ? s.compare(s.size() - t.size(), t.size(), t) == 0 : s.compare(0, t.size(), t) == 0;
  };
  if (p.is_array()) return std::any_of(p.as_array()->items.begin(), p.as_array()->items.end(), one);
  return one(p);
}

template <typename Pred>
bool all_chars(const std::string& s, Pred pred) {
  std::u32string u = utf8_decode(s);
  return !u.empty() && std::all_of(u.begin(), u.end(), pred);
}

Value str_method(const std::string& s, const std::string& name, const CallArgs& a) {
  if (name == "startswith" || name == "endswith") {
    const Value* p = a.get(0, "prefix");
    if (!p) throw JinjaError(name + "() takes at least 1 argument");
    return Value(prefix_test(s, *p, name == "endswith"));
  }
  if (name == "strip") return Value(py_strip(s, chars_arg(a), true, true));
  if (name == "lstrip") return Value(py_strip(s, chars_arg(a), true, false));
  if (name == "rstrip") return Value(py_strip(s, chars_arg(a), false, true));
  if (name == "split" || name == "rsplit") {
    const Value* sep = a.get(0, "sep");
    std::optional<std::string> sp;
    if (sep && !sep->is_none()) {
      if (!sep->is_string()) throw JinjaError("must be str or None, not " + sep->type_name());
      sp = sep->as_string();
    }
    std::vector<Value> parts;
    for (auto& p : py_split(s, sp, int_arg(a, 1, "maxsplit", -1), name == "rsplit")) parts.emplace_back(p);
    return make_array(std::move(parts));
  }
  if (name == "splitlines") {
    std::vector<Value> parts;
    for (auto& p : py_split_lines(s)) parts.emplace_back(p);
    return make_array(std::move(parts));
  }
  if (name == "replace")
    return Value(py_replace(s, str_arg(a, 0, "old", "replace"), str_arg(a, 1, "new", "replace"),
                            int_arg(a, 2, "count", -1)));
  if (name == "upper") return Value(py_upper(s));
  if (name == "lower") return Value(py_lower(s));
  if (name == "title") return Value(py_title(s));
  if (name == "capitalize") return Value(py_capitalize(s));
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    const std::string& sub = str_arg(a, 0, "sub", name.c_str());
    charge_copy(s.size());
    size_t pos = (name[0] == 'r') ? s.rfind(sub) : s.find(sub);
    if (pos == std::string::npos) {
      if (name == "index" || name == "rindex") throw JinjaError("substring not found");
      return Value(int64_t{-1});
    }
    int64_t cps = 0;  // the index in code points
    charge_scan(pos);
    for (size_t i = 0; i < pos; ++cps) utf8_next(s, i);
    return Value(cps);
  }
  if (name == "count") {
    const std::string& sub = str_arg(a, 0, "sub", "count");
    if (sub.empty()) return Value(utf8_length(s) + 1);
    charge_copy(s.size());
    int64_t n = 0;
    for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
    return Value(n);
  }
  if (name == "removeprefix") {
    const std::string& p = str_arg(a, 0, "prefix", "removeprefix");
    charge_copy(p.size());
    return Value(s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s);
  }
  if (name == "removesuffix") {
    const std::string& p = str_arg(a, 0, "suffix", "removesuffix");
    charge_copy(p.size());
    bool has = p.size() <= s.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
    return Value(has && !p.empty() ? s.substr(0, s.size() - p.size()) : s);
  }
  if (name == "join") {
    const Value* it = a.get(0, "iterable");
    if (!it) throw JinjaError("join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const Value& v : iterate(*it)) {
      if (!v.is_string()) throw JinjaError("sequence item: expected str instance, " + v.type_name() + " found");
      check_room(add_sat(out.size(), add_sat(s.size(), v.as_string().size())));
      if (!first) out += s;
      first = false;
      out += v.as_string();
    }
    return Value(std::move(out));
  }
  if (name == "isspace") return Value(all_chars(s, is_py_space));
  if (name == "isdigit")
    return Value(all_chars(s, [](char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ND; }));
  if (name == "isalpha")
    return Value(all_chars(s, [](char32_t c) {
      auto k = utf8proc_category(static_cast<utf8proc_int32_t>(c));
      return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
    }));
  if (name == "isalnum")
    return Value(all_chars(s, [](char32_t c) {
      auto k = utf8proc_category(static_cast<utf8proc_int32_t>(c));
      return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || k == UTF8PROC_CATEGORY_ND;
    }));
  if (name == "isupper") return Value(py_upper(s) == s && py_lower(s) != s);
  if (name == "islower") return Value(py_lower(s) == s && py_upper(s) != s);
  throw JinjaError("'str object' has no attribute '" + name + "'");
}

Value dict_method(const ObjectPtr& o, const std::string& name, const CallArgs& a) {
  if (name == "items") {
    std::vector<Value> out;
    for (const auto& [k, v] : o->items) out.push_back(make_array({Value(k), v}, true));
    Value r = make_array(std::move(out));
    r.as_array()->view = "dict_items";
    return r;
  }
  if (name == "keys" || name == "values") {
    std::vector<Value> out;
    for (const auto& [k, v] : o->items) out.push_back(name == "keys" ? Value(k) : v);
    Value r = make_array(std::move(out));
    r.as_array()->view = name == "keys" ? "dict_keys" : "dict_values";
    return r;
  }
  // get(key, default=None)
  const Value* key = a.get(0, "key");
  if (!key) throw JinjaError("get expected at least 1 argument, got 0");
  if (key->is_string())
    if (const Value* v = o->find(key->as_string())) return *v;
  return a.get_or(1, "default", Value(None{}));
}

Value list_method(const ArrayPtr& arr, const std::string& name, const CallArgs& a) {
  const Value* x = a.get(0, "value");
  if (!x) throw JinjaError(name + "() takes exactly one argument");
  int64_t n = 0;
  for (size_t i = 0; i < arr->items.size(); ++i) {
    charge_steps();
    if (!equals(arr->items[i], *x)) continue;
    if (name == "index") return Value(static_cast<int64_t>(i));
    ++n;
  }
  if (name == "index") throw JinjaError(to_repr(*x) + " is not in list");
  return Value(n);
}

bool one_of(const std::string& n, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* x) { return n == x; });
}

// Like jinja2's sandbox: a mutating method reads as undefined, and calling it raises.
Value unsafe(const Value& obj, const std::string& name) {
  return Value(Undefined{"access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe."});
}

}  // namespace

Value get_method(const Value& obj, const std::string& name) {
  if (obj.is_string()) {
    static const std::initializer_list<const char*> names = {
        "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines",
        "replace", "upper", "lower", "title", "capitalize", "find", "rfind", "index", "rindex", "count",
        "removeprefix", "removesuffix", "join", "isspace", "isdigit", "isalpha", "isalnum", "isupper",
        "islower"};
    if (!one_of(name, names)) return Value(Undefined{});
    // The bound method holds the (shared) string: no copy of it per call.
    return make_function(name, [obj, name](const CallArgs& a) { return str_method(obj.as_string(), name, a); });
  }
  if (obj.is_object() && !obj.as_object()->is_namespace) {
    if (one_of(name, {"items", "keys", "values", "get"})) {
      ObjectPtr o = obj.as_object();
      return make_function(name, [o, name](const CallArgs& a) { return dict_method(o, name, a); });
    }
    if (one_of(name, {"pop", "popitem", "update", "setdefault", "clear"})) return unsafe(obj, name);
  }
  if (obj.is_array()) {
    if (one_of(name, {"index", "count"})) {
      ArrayPtr arr = obj.as_array();
      return make_function(name, [arr, name](const CallArgs& a) { return list_method(arr, name, a); });
    }
    if (one_of(name, {"append", "extend", "insert", "pop", "remove", "sort", "reverse", "clear"}))
      return unsafe(obj, name);
  }
  return Value(Undefined{});
}

}  // namespace qnext::jinja
