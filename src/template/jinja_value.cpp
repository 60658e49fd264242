// Python-compatible behaviour of Jinja values (see jinja_value.h).
#include "template/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "template/jinja_limits.h"

namespace qnext::jinja {
namespace {

// What a string costs the byte budget beyond its characters (the shared string's header).
constexpr uint64_t kStringOverhead = 48;

void check_value_depth(int depth) {
  if (depth > kMaxValueDepth)
    throw JinjaError("value nested more than " + std::to_string(kMaxValueDepth) + " levels deep");
}

// Iterative destruction: a list or dict that is the last owner of a child list/dict moves it to a
// per-thread pile instead of destroying it in place; the outermost destructor empties the pile in
// a loop, so freeing a chain of any depth takes constant stack.
thread_local std::vector<Value>* g_pile = nullptr;

bool last_owner(const Value& v) {  // (a function can hold a dict: a bound method like d.get)
  return (v.is_array() && v.as_array().use_count() == 1) || (v.is_object() && v.as_object().use_count() == 1) ||
         (v.is_function() && v.as_function().use_count() == 1);
}

template <typename Items, typename Get>
void free_children(Items& items, Get get) noexcept {
  std::vector<Value> local;
  const bool outermost = g_pile == nullptr;
  std::vector<Value>& pile = outermost ? local : *g_pile;
  for (auto& item : items)
    if (Value& v = get(item); last_owner(v)) pile.push_back(std::move(v));
  if (!outermost || local.empty()) return;
  g_pile = &local;
  while (!local.empty()) {
    Value v = std::move(local.back());
    local.pop_back();
  }  // each v's destructor adds its own children to the pile
  g_pile = nullptr;
}

}  // namespace

Value::Value(std::string s) {
  charge_bytes(add_sat(s.size(), kStringOverhead));
  v_ = std::make_shared<const std::string>(std::move(s));
}

int64_t Range::size() const {
  // The difference as unsigned: exact even when stop - start overflows int64.
  if (step > 0) {
    if (start >= stop) return 0;
    uint64_t n = (static_cast<uint64_t>(stop) - static_cast<uint64_t>(start) - 1) / static_cast<uint64_t>(step) + 1;
    return static_cast<int64_t>(std::min<uint64_t>(n, INT64_MAX));
  }
  if (start <= stop) return 0;
  uint64_t n = (static_cast<uint64_t>(start) - static_cast<uint64_t>(stop) - 1) / (0 - static_cast<uint64_t>(step)) + 1;
  return static_cast<int64_t>(std::min<uint64_t>(n, INT64_MAX));
}

Array::~Array() {
  free_children(items, [](Value& v) -> Value& { return v; });
}

Object::~Object() {
  free_children(items, [](std::pair<std::string, Value>& kv) -> Value& { return kv.second; });
}

double Value::to_double() const {
  if (is_bool()) return as_bool() ? 1.0 : 0.0;
  if (is_int()) return static_cast<double>(as_int());
  return as_float();
}

int64_t Value::to_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  if (is_int()) return as_int();
  return static_cast<int64_t>(as_float());
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return as_bool();
    case Kind::Int: return as_int() != 0;
    case Kind::Float: return as_float() != 0.0;
    case Kind::String: return !as_string().empty();
    case Kind::Array: return !as_array()->items.empty();
    case Kind::Object: return as_object()->is_namespace || !as_object()->items.empty();
    case Kind::Function: return true;
    case Kind::Range: return as_range().size() > 0;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Array: return as_array()->is_tuple ? "tuple" : "list";
    case Kind::Object: return as_object()->is_namespace ? "Namespace" : "dict";
    case Kind::Function: return "function";
    case Kind::Range: return "range";
  }
  return "?";
}

const Value* Object::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Object::set(const std::string& key, Value v) {
  for (auto& [k, old] : items)
    if (k == key) {
      old = std::move(v);
      return;
    }
  charge_bytes(add_sat(key.size(), sizeof(items[0])));
  items.emplace_back(key, std::move(v));
}

const Value* CallArgs::get(size_t i, const std::string& name) const {
  if (i < pos.size()) return &pos[i];
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}

Value CallArgs::get_or(size_t i, const std::string& name, Value dflt) const {
  const Value* v = get(i, name);
  return v ? *v : dflt;
}

Value make_array(std::vector<Value> items, bool tuple) {
  charge_bytes(mul_sat(items.size(), sizeof(Value)));
  auto a = std::make_shared<Array>();
  a->items = std::move(items);
  a->is_tuple = tuple;
  return Value(a);
}

Value make_object() { return Value(std::make_shared<Object>()); }

Value make_function(std::string name, std::function<Value(const CallArgs&)> fn) {
  auto f = std::make_shared<Function>();
  f->name = std::move(name);
  f->fn = std::move(fn);
  return Value(f);
}

static Value from_json_at(const nlohmann::ordered_json& j, int depth) {
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null: return Value(None{});
    case T::boolean: return Value(j.get<bool>());
    case T::number_integer: return Value(j.get<int64_t>());
    case T::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case T::number_float: return Value(j.get<double>());
    case T::string: return Value(j.get<std::string>());
    case T::array: {
      check_value_depth(depth + 1);
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_at(e, depth + 1));
      return make_array(std::move(items));
    }
    case T::object: {
      check_value_depth(depth + 1);
      auto o = std::make_shared<Object>();
      for (auto it = j.begin(); it != j.end(); ++it) o->items.emplace_back(it.key(), from_json_at(it.value(), depth + 1));
      return Value(o);
    }
    default: return Value(None{});  // binary / discarded: not produced by JSON text
  }
}

Value from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 0); }

static bool equals_at(const Value& a, const Value& b, int depth);
static int compare_at(const Value& a, const Value& b, int depth);

bool equals(const Value& a, const Value& b) { return equals_at(a, b, 0); }
int compare(const Value& a, const Value& b) { return compare_at(a, b, 0); }

static bool equals_at(const Value& a, const Value& b, int depth) {
  check_value_depth(depth);
  if (a.is_number() && b.is_number()) {
    if ((a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool())) return a.to_int() == b.to_int();
    return a.to_double() == b.to_double();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::String:
      if (&a.as_string() == &b.as_string()) return true;
      if (a.as_string().size() != b.as_string().size()) return false;
      charge_copy(a.as_string().size());
      return a.as_string() == b.as_string();
    case Value::Kind::Array: {
      if (a.as_array() == b.as_array()) return true;  // Python compares items by identity first
      const auto& x = a.as_array()->items;
      const auto& y = b.as_array()->items;
      if (a.as_array()->is_tuple != b.as_array()->is_tuple || x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        charge_steps();
        if (!equals_at(x[i], y[i], depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::Range: {  // equal as sequences
      const Range &x = a.as_range(), &y = b.as_range();
      int64_t n = x.size();
      if (n != y.size()) return false;
      return n == 0 || (x.start == y.start && (n == 1 || x.step == y.step));
    }
    case Value::Kind::Object: {
      const auto& x = *a.as_object();
      const auto& y = *b.as_object();
      if (&x == &y) return true;
      if (x.is_namespace || y.is_namespace) return false;  // identity, like Python objects
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        charge_steps();
        const Value* w = y.find(k);
        if (!w || !equals_at(v, *w, depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::Function: return a.as_function() == b.as_function();
    default: return false;
  }
}

static int compare_at(const Value& a, const Value& b, int depth) {
  check_value_depth(depth);
  if (a.is_number() && b.is_number()) {
    if ((a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool())) {
      auto x = a.to_int(), y = b.to_int();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    double x = a.to_double(), y = b.to_double();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    // Byte order of UTF-8 equals code point order, which is what Python compares.
    charge_copy(std::min(a.as_string().size(), b.as_string().size()));
    int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_array() && b.is_array()) {
    const auto& x = a.as_array()->items;
    const auto& y = b.as_array()->items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      charge_steps();
      if (equals_at(x[i], y[i], depth + 1)) continue;
      return compare_at(x[i], y[i], depth + 1);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  throw JinjaError("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() +
                   "'");
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: fixed for 1e-4 <= |d| < 1e16, else exponent.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string s(buf, res.ptr);
  bool neg = s[0] == '-';
  if (neg) s.erase(0, 1);
  size_t epos = s.find('e');
  int exp = std::stoi(s.substr(epos + 1));
  std::string digits;
  for (char c : s.substr(0, epos))
    if (c != '.') digits += c;
  std::string out;
  if (exp >= -5 + 1 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out = digits + std::string(static_cast<size_t>(exp + 1 - static_cast<int>(digits.size())), '0') + ".0";
    } else {
      out = digits.substr(0, static_cast<size_t>(exp + 1)) + "." + digits.substr(static_cast<size_t>(exp + 1));
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  }
  return neg ? "-" + out : out;
}

// Before appending about `extra` bytes to a string being built: throws unless it could still
// become a value within the render's byte budget.
static void grow_check(const std::string& out, uint64_t extra) { check_room(add_sat(out.size(), extra)); }

static void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xc0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xe0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  }
}

static void repr_string(std::string& out, const std::string& s) {
  grow_check(out, s.size() + 2);
  bool has_sq = s.find('\'') != std::string::npos;
  bool has_dq = s.find('"') != std::string::npos;
  char q = (has_sq && !has_dq) ? '"' : '\'';
  out += q;
  for (char32_t c : utf8_decode(s)) {
    char buf[16];
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if (c == 0x2028 || c == 0x2029) {  // non-printable separators (a subset of Python's list)
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      append_utf8(out, c);
    }
  }
  out += q;
}

static std::string range_repr(const Range& r) {
  std::string s = "range(" + std::to_string(r.start) + ", " + std::to_string(r.stop);
  if (r.step != 1) s += ", " + std::to_string(r.step);
  return s + ")";
}

static void repr_into(std::string& out, const Value& v, int depth) {
  check_value_depth(depth);
  switch (v.kind()) {
    case Value::Kind::String: repr_string(out, v.as_string()); return;
    case Value::Kind::Array: {
      const auto& a = *v.as_array();
      if (a.view) out += std::string(a.view) + "(";
      out += a.is_tuple ? "(" : "[";
      for (size_t i = 0; i < a.items.size(); ++i) {
        charge_steps();
        if (i) out += ", ";
        repr_into(out, a.items[i], depth + 1);
      }
      if (a.is_tuple && a.items.size() == 1) out += ",";
      out += a.is_tuple ? ")" : "]";
      if (a.view) out += ")";
      return;
    }
    case Value::Kind::Object: {
      const auto& o = *v.as_object();
      out += o.is_namespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, x] : o.items) {
        charge_steps();
        if (!first) out += ", ";
        first = false;
        repr_string(out, k);
        out += ": ";
        repr_into(out, x, depth + 1);
      }
      out += o.is_namespace ? "}>" : "}";
      return;
    }
    default: {
      std::string s = to_str(v);
      grow_check(out, s.size());
      out += s;
    }
  }
}

std::string to_repr(const Value& v) {
  std::string out;
  repr_into(out, v, 0);
  return out;
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return "";
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return v.as_bool() ? "True" : "False";
    case Value::Kind::Int: return std::to_string(v.as_int());
    case Value::Kind::Float: return float_repr(v.as_float());
    case Value::Kind::String:  // a copy: charged as a scan (a loop copying 100 MB each step would not end)
      charge_copy(v.as_string().size());
      return v.as_string();
    case Value::Kind::Function: return "<function " + v.as_function()->name + ">";
    case Value::Kind::Range: return range_repr(v.as_range());
    default: return to_repr(v);
  }
}

static void json_string(std::string& out, const std::string& s) {
  grow_check(out, s.size() + 2);
  charge_scan(s.size());
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // ensure_ascii=False: everything else verbatim
        }
    }
  }
  out += '"';
}

static void json_dump(std::string& out, const Value& v, const JsonFormat& f, int depth) {
  check_value_depth(depth);
  const int indent = f.indent;
  auto newline = [&](int d) {
    grow_check(out, 1 + static_cast<uint64_t>(indent) * static_cast<uint64_t>(d));
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  const std::string item_sep = f.custom_separators ? f.item_sep : (indent >= 0 ? "," : ", ");
  const std::string key_sep = f.custom_separators ? f.key_sep : ": ";
  switch (v.kind()) {
    case Value::Kind::Undefined: throw JinjaError("tojson: Object of type Undefined is not JSON serializable");
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.as_int()); return;
    case Value::Kind::Float: {
      double d = v.as_float();
      if (std::isnan(d)) out += "NaN";
      else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
      else out += float_repr(d);
      return;
    }
    case Value::Kind::String: json_string(out, v.as_string()); return;
    case Value::Kind::Array: {
      const auto& items = v.as_array()->items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        charge_steps();
        grow_check(out, item_sep.size());
        if (i) out += item_sep;
        if (indent >= 0) newline(depth + 1);
        json_dump(out, items[i], f, depth + 1);
      }
      if (indent >= 0) newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::Object: {
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.as_object()->items) items.push_back(&kv);
      charge_steps(items.size());
      if (f.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      if (items.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        grow_check(out, item_sep.size() + key_sep.size());
        if (i) out += item_sep;
        if (indent >= 0) newline(depth + 1);
        json_string(out, items[i]->first);
        out += key_sep;
        json_dump(out, items[i]->second, f, depth + 1);
      }
      if (indent >= 0) newline(depth);
      out += '}';
      return;
    }
    case Value::Kind::Function: throw JinjaError("tojson: Object of type function is not JSON serializable");
    case Value::Kind::Range: throw JinjaError("tojson: Object of type range is not JSON serializable");
  }
}

std::string to_json(const Value& v, const JsonFormat& fmt) {
  std::string out;
  json_dump(out, v, fmt, 0);
  return out;
}

char32_t utf8_next(const std::string& s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + static_cast<size_t>(len) > s.size()) {  // invalid byte: keep it as U+FFFD
    ++i;
    return U'\uFFFD';
  }
  char32_t cp = c & (0x7f >> len);
  for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) & 0x3f);
  i += static_cast<size_t>(len);
  return cp;
}

std::u32string utf8_decode(const std::string& s) {
  charge_decode(s.size());
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out += utf8_next(s, i);
  return out;
}

int64_t utf8_length(const std::string& s) {
  charge_scan(s.size());
  int64_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) utf8_next(s, i);
  return n;
}

std::string utf8_encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

bool is_py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

}  // namespace qnext::jinja
