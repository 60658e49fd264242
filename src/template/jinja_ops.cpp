// Value operations with jinja2/Python semantics (see jinja_ops.h).
#include "template/jinja_ops.h"

#include <cmath>
#include <cstdio>

#include "template/jinja_builtins.h"

namespace qnext::jinja {
namespace {

constexpr size_t kMaxBuilt = size_t{1} << 28;  // cap on strings/lists built by * (no memory blow-up)

std::string undefined_message(const Undefined& u) {
  return u.what.empty() ? "value is undefined" : u.what;
}

std::string obj_desc(const Value& v) {
  if (v.is_none()) return "'None'";
  return "'" + v.type_name() + " object'";
}

// Python index normalization; returns false when out of range.
bool norm_index(int64_t& i, size_t n) {
  if (i < 0) i += static_cast<int64_t>(n);
  return i >= 0 && i < static_cast<int64_t>(n);
}

template <typename Seq>
Seq slice_seq(const Seq& s, const Value* start, const Value* stop, const Value* step) {
  auto opt = [](const Value* v) { return v && !v->is_none() && !v->is_undefined(); };
  auto as_i = [](const Value* v) {
    if (!v->is_int() && !v->is_bool())
      throw JinjaError("slice indices must be integers or None, not " + v->type_name());
    return v->to_int();
  };
  int64_t n = static_cast<int64_t>(s.size());
  int64_t st = opt(step) ? as_i(step) : 1;
  if (st == 0) throw JinjaError("slice step cannot be zero");
  int64_t lo, hi;
  if (st > 0) {
    lo = opt(start) ? as_i(start) : 0;
    hi = opt(stop) ? as_i(stop) : n;
    if (lo < 0) lo = std::max<int64_t>(0, lo + n);
    if (hi < 0) hi = std::max<int64_t>(0, hi + n);
    lo = std::min(lo, n);
    hi = std::min(hi, n);
  } else {
    lo = opt(start) ? as_i(start) : n - 1;
    hi = opt(stop) ? as_i(stop) : -1 - n;  // "before the first element"
    if (lo < 0) lo = std::max<int64_t>(-1, lo + n);
    else if (lo >= n) lo = n - 1;
    if (hi < 0) hi = std::max<int64_t>(-1, hi + n);
    else if (hi >= n) hi = n - 1;
  }
  Seq out;
  for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) out.push_back(s[static_cast<size_t>(i)]);
  return out;
}

Value arith(const std::string& op, const Value& a, const Value& b) {
  bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  if (ints) {
    int64_t x = a.to_int(), y = b.to_int();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "/") {
      if (y == 0) throw JinjaError("division by zero");
      return Value(static_cast<double>(x) / static_cast<double>(y));
    }
    if (op == "//" || op == "%") {
      if (y == 0) throw JinjaError("integer division or modulo by zero");
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors toward -inf
        --q;
        r += y;
      }
      return op == "//" ? Value(q) : Value(r);
    }
    if (op == "**") {
      if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
      int64_t r = 1;
      for (int64_t i = 0; i < y && i < 64; ++i) r *= x;
      return Value(r);
    }
  }
  double x = a.to_double(), y = b.to_double();
  if (op == "+") return Value(x + y);
  if (op == "-") return Value(x - y);
  if (op == "*") return Value(x * y);
  if (op == "/") {
    if (y == 0) throw JinjaError("float division by zero");
    return Value(x / y);
  }
  if (op == "//" || op == "%") {
    if (y == 0) throw JinjaError("float modulo by zero");
    double r = std::fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return op == "//" ? Value(std::floor(x / y)) : Value(r);
  }
  return Value(std::pow(x, y));
}

Value repeat(const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    if (seq.as_string().size() * static_cast<size_t>(n) > kMaxBuilt) throw JinjaError("string repetition too large");
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(out);
  }
  const auto& items = seq.as_array()->items;
  if (items.size() * static_cast<size_t>(n) > kMaxBuilt) throw JinjaError("list repetition too large");
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return make_array(std::move(out), seq.as_array()->is_tuple);
}

}  // namespace

void require_defined(const Value& v) {
  if (v.is_undefined()) throw JinjaError(undefined_message(v.as_undefined()));
}

Value get_attr(const Value& obj, const std::string& name) {
  require_defined(obj);
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_')
    throw JinjaError("access to attribute '" + name + "' of " + obj_desc(obj) + " is unsafe");
  Value m = get_method(obj, name);
  if (!m.is_undefined() || !m.as_undefined().what.empty()) return m;  // a method, or a refused one
  if (obj.is_object())
    if (const Value* v = obj.as_object()->find(name)) return *v;
  return Value(Undefined{obj_desc(obj) + " has no attribute '" + name + "'"});
}

Value get_item(const Value& obj, const Value& key) {
  require_defined(obj);
  if ((obj.is_array() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.to_int();
    if (obj.is_array()) {
      const auto& items = obj.as_array()->items;
      if (norm_index(i, items.size())) return items[static_cast<size_t>(i)];
    } else {
      std::u32string s = utf8_decode(obj.as_string());
      if (norm_index(i, s.size())) return Value(utf8_encode(s.substr(static_cast<size_t>(i), 1)));
    }
    return Value(Undefined{obj_desc(obj) + " has no element " + std::to_string(key.to_int())});
  }
  if (obj.is_object() && key.is_string())
    if (const Value* v = obj.as_object()->find(key.as_string())) return *v;
  if (key.is_string()) return get_attr(obj, key.as_string());
  return Value(Undefined{obj_desc(obj) + " has no element " + to_repr(key)});
}

Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step) {
  require_defined(obj);
  if (obj.is_string()) return Value(utf8_encode(slice_seq(utf8_decode(obj.as_string()), start, stop, step)));
  if (obj.is_array())
    return make_array(slice_seq(obj.as_array()->items, start, stop, step), obj.as_array()->is_tuple);
  throw JinjaError(obj_desc(obj) + " is not subscriptable");
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value(to_str(a) + to_str(b));
  if (op == "==") return Value(equals(a, b));
  if (op == "!=") return Value(!equals(a, b));
  if (op == "in") return Value(contains(b, a));
  if (op == "not in") return Value(!contains(b, a));
  require_defined(a);
  require_defined(b);
  if (op == "<") return Value(compare(a, b) < 0);
  if (op == ">") return Value(compare(a, b) > 0);
  if (op == "<=") return Value(compare(a, b) <= 0);
  if (op == ">=") return Value(compare(a, b) >= 0);
  if (a.is_number() && b.is_number()) return arith(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
    if (a.is_array() && b.is_array() && a.as_array()->is_tuple == b.as_array()->is_tuple) {
      std::vector<Value> items = a.as_array()->items;
      items.insert(items.end(), b.as_array()->items.begin(), b.as_array()->items.end());
      return make_array(std::move(items), a.as_array()->is_tuple);
    }
    if (a.is_string() || a.is_array())
      throw JinjaError("can only concatenate " + a.type_name() + " (not \"" + b.type_name() + "\") to " +
                       a.type_name());
  }
  if (op == "*") {
    if ((a.is_string() || a.is_array()) && (b.is_int() || b.is_bool())) return repeat(a, b.to_int());
    if ((b.is_string() || b.is_array()) && (a.is_int() || a.is_bool())) return repeat(b, a.to_int());
  }
  if (op == "%" && a.is_string()) return Value(percent_format(a.as_string(), b));
  throw JinjaError("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() +
                   "'");
}

Value unary_op(const std::string& op, const Value& a) {
  if (op == "not") return Value(!a.truthy());
  require_defined(a);
  if (!a.is_number()) throw JinjaError("bad operand type for unary " + op + ": '" + a.type_name() + "'");
  if (op == "+") return a.is_bool() ? Value(a.to_int()) : a;
  if (a.is_float()) return Value(-a.as_float());
  return Value(-a.to_int());
}

bool contains(const Value& c, const Value& item) {
  require_defined(c);
  if (c.is_string()) {
    if (!item.is_string())
      throw JinjaError("'in <string>' requires string as left operand, not " + item.type_name());
    return c.as_string().find(item.as_string()) != std::string::npos;
  }
  if (c.is_array()) {
    for (const auto& v : c.as_array()->items)
      if (equals(v, item)) return true;
    return false;
  }
  if (c.is_object()) return item.is_string() && c.as_object()->find(item.as_string()) != nullptr;
  throw JinjaError("argument of type '" + c.type_name() + "' is not iterable");
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::Array: return v.as_array()->items;
    case Value::Kind::Object: {
      std::vector<Value> keys;
      for (const auto& kv : v.as_object()->items) keys.emplace_back(kv.first);
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> chars;
      for (char32_t c : utf8_decode(v.as_string())) chars.emplace_back(utf8_encode(std::u32string(1, c)));
      return chars;
    }
    default: throw JinjaError("'" + v.type_name() + "' object is not iterable");
  }
}

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return static_cast<int64_t>(utf8_decode(v.as_string()).size());
    case Value::Kind::Array: return static_cast<int64_t>(v.as_array()->items.size());
    case Value::Kind::Object: return static_cast<int64_t>(v.as_object()->items.size());
    default: throw JinjaError("object of type '" + v.type_name() + "' has no len()");
  }
}

std::string percent_format(const std::string& fmt, const Value& args) {
  std::vector<Value> list;
  if (args.is_array() && args.as_array()->is_tuple) list = args.as_array()->items;
  else list.push_back(args);
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    size_t j = i + 1;
    std::string spec;  // flags, width, precision
    while (j < fmt.size() && std::string("-+ #0123456789.").find(fmt[j]) != std::string::npos) spec += fmt[j++];
    if (j >= fmt.size()) throw JinjaError("incomplete format");
    char conv = fmt[j];
    i = j;
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= list.size()) throw JinjaError("not enough arguments for format string");
    const Value& a = list[next++];
    char buf[512];
    std::string cfmt = "%" + spec;
    switch (conv) {
      case 's': out += to_str(a); break;
      case 'r': out += to_repr(a); break;
      case 'd':
      case 'i':
      case 'x':
      case 'X':
      case 'o':
        if (!a.is_number()) throw JinjaError("%" + std::string(1, conv) + " format: a real number is required");
        std::snprintf(buf, sizeof buf, (cfmt + "ll" + (conv == 'i' ? 'd' : conv)).c_str(),
                      static_cast<long long>(a.to_int()));
        out += buf;
        break;
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G':
        if (!a.is_number()) throw JinjaError("must be real number, not " + a.type_name());
        std::snprintf(buf, sizeof buf, (cfmt + conv).c_str(), a.to_double());
        out += buf;
        break;
      default: throw JinjaError(std::string("unsupported format character '") + conv + "'");
    }
  }
  if (next < list.size() && args.is_array() && args.as_array()->is_tuple)
    throw JinjaError("not all arguments converted during string formatting");
  return out;
}

}  // namespace qnext::jinja
