// Value operations with jinja2/Python semantics (see jinja_ops.h).
#include "template/jinja_ops.h"

#include <cmath>
#include <cstdio>

#include "template/jinja_builtins.h"
#include "template/jinja_limits.h"

namespace qnext::jinja {
namespace {

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

// Python's slice.indices(n): the first index, the bound and the step of s[start:stop:step].
struct SliceIdx {
  int64_t lo, hi, st;
  int64_t count() const {  // how many indices: lo, lo + st, ... before hi
    if (st > 0) return lo < hi ? (hi - lo - 1) / st + 1 : 0;
    return lo > hi ? (lo - hi - 1) / -st + 1 : 0;
  }
};

SliceIdx slice_indices(int64_t n, const Value* start, const Value* stop, const Value* step) {
  auto opt = [](const Value* v) { return v && !v->is_none() && !v->is_undefined(); };
  auto as_i = [](const Value* v) {
    if (!v->is_int() && !v->is_bool())
      throw JinjaError("slice indices must be integers or None, not " + v->type_name());
    return v->to_int();
  };
  // Indices are clamped to [-1 - n, n] first: Python's big integers never overflow; ours then cannot.
  auto clamp = [n](int64_t i) { return std::clamp<int64_t>(i, -1 - n, n); };
  int64_t st = opt(step) ? as_i(step) : 1;
  if (st == 0) throw JinjaError("slice step cannot be zero");
  if (st == INT64_MIN) st = -INT64_MAX;  // same indices for any n, and -st stays representable
  int64_t lo, hi;
  if (st > 0) {
    lo = opt(start) ? clamp(as_i(start)) : 0;
    hi = opt(stop) ? clamp(as_i(stop)) : n;
    if (lo < 0) lo = std::max<int64_t>(0, lo + n);
    if (hi < 0) hi = std::max<int64_t>(0, hi + n);
    lo = std::min(lo, n);
    hi = std::min(hi, n);
  } else {
    lo = opt(start) ? clamp(as_i(start)) : n - 1;
    hi = opt(stop) ? clamp(as_i(stop)) : -1 - n;  // "before the first element"
    if (lo < 0) lo = std::max<int64_t>(-1, lo + n);
    else if (lo >= n) lo = n - 1;
    if (hi < 0) hi = std::max<int64_t>(-1, hi + n);
    else if (hi >= n) hi = n - 1;
  }
  return {lo, hi, st};
}

template <typename Seq>
Seq slice_seq(const Seq& s, const Value* start, const Value* stop, const Value* step) {
  SliceIdx ix = slice_indices(static_cast<int64_t>(s.size()), start, stop, step);
  Seq out;
  int64_t n = ix.count();
  charge_steps(static_cast<uint64_t>(n));
  out.reserve(static_cast<size_t>(n));
  for (int64_t k = 0, i = ix.lo; k < n; ++k, i += ix.st) out.push_back(s[static_cast<size_t>(i)]);
  return out;
}

[[noreturn]] void int_overflow() { throw JinjaError("integer overflow (beyond 64-bit integers)"); }

Value arith(const std::string& op, const Value& a, const Value& b) {
  bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  if (ints) {
    int64_t x = a.to_int(), y = b.to_int(), r;
    if (op == "+" || op == "-" || op == "*") {
      bool over = op == "+"   ? __builtin_add_overflow(x, y, &r)
                  : op == "-" ? __builtin_sub_overflow(x, y, &r)
                              : __builtin_mul_overflow(x, y, &r);
      if (over) int_overflow();
      return Value(r);
    }
    if (op == "/") {
      if (y == 0) throw JinjaError("division by zero");
      return Value(static_cast<double>(x) / static_cast<double>(y));
    }
    if (op == "//" || op == "%") {
      if (y == 0) throw JinjaError("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) {
        if (op == "%") return Value(int64_t{0});
        int_overflow();
      }
      int64_t q = x / y;
      r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors toward -inf
        --q;
        r += y;
      }
      return op == "//" ? Value(q) : Value(r);
    }
    if (op == "**") {
      if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
      int64_t p = 1;
      for (int64_t i = 0; i < y && p != 0; ++i) {  // stops at 0; |x| >= 2 overflows within 64 steps
        if (__builtin_mul_overflow(p, x, &p)) int_overflow();
        if (x == 1 || x == -1) {
          p = (x == -1 && (y % 2)) ? -1 : 1;
          break;
        }
      }
      return Value(p);
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

// s * n and list * n: the size is checked against the byte budget before anything is built.
Value repeat(const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  const uint64_t times = static_cast<uint64_t>(n);
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    check_room(mul_sat(s.size(), times));
    std::string out;
    out.reserve(s.size() * times);
    for (uint64_t i = 0; i < times && !s.empty(); ++i) out += s;
    return Value(std::move(out));
  }
  const auto& items = seq.as_array()->items;
  check_room(mul_sat(mul_sat(items.size(), times), sizeof(Value)));
  charge_steps(items.size() * times);
  std::vector<Value> out;
  out.reserve(items.size() * times);
  for (uint64_t i = 0; i < times && !items.empty(); ++i) out.insert(out.end(), items.begin(), items.end());
  return make_array(std::move(out), seq.as_array()->is_tuple);
}

std::string concat_strings(const std::string& a, const std::string& b) {
  check_room(add_sat(a.size(), b.size()));
  std::string out;
  out.reserve(a.size() + b.size());
  out += a;
  out += b;
  return out;
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
  if ((obj.is_array() || obj.is_string() || obj.is_range()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.to_int();
    if (obj.is_array()) {
      const auto& items = obj.as_array()->items;
      if (norm_index(i, items.size())) return items[static_cast<size_t>(i)];
    } else if (obj.is_range()) {
      const Range& r = obj.as_range();
      if (norm_index(i, static_cast<size_t>(r.size()))) return Value(r.at(i));
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
  if (obj.is_range()) {  // a range again, as in Python
    const Range& r = obj.as_range();
    SliceIdx ix = slice_indices(r.size(), start, stop, step);
    const __int128 lo = static_cast<__int128>(r.start) + static_cast<__int128>(ix.lo) * r.step;
    const __int128 hi = static_cast<__int128>(r.start) + static_cast<__int128>(ix.hi) * r.step;
    const __int128 st = static_cast<__int128>(r.step) * ix.st;
    auto fits = [](__int128 x) { return x >= INT64_MIN && x <= INT64_MAX; };
    if (!fits(lo) || !fits(hi) || !fits(st)) int_overflow();
    return Value(Range{static_cast<int64_t>(lo), static_cast<int64_t>(hi), static_cast<int64_t>(st)});
  }
  throw JinjaError(obj_desc(obj) + " is not subscriptable");
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value(concat_strings(to_str(a), to_str(b)));
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
    if (a.is_string() && b.is_string()) return Value(concat_strings(a.as_string(), b.as_string()));
    if (a.is_array() && b.is_array() && a.as_array()->is_tuple == b.as_array()->is_tuple) {
      const uint64_t n = add_sat(a.as_array()->items.size(), b.as_array()->items.size());
      check_room(mul_sat(n, sizeof(Value)));
      charge_steps(n);
      std::vector<Value> items;
      items.reserve(n);
      items.insert(items.end(), a.as_array()->items.begin(), a.as_array()->items.end());
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
  if (a.to_int() == INT64_MIN) int_overflow();
  return Value(-a.to_int());
}

bool contains(const Value& c, const Value& item) {
  require_defined(c);
  if (c.is_string()) {
    if (!item.is_string())
      throw JinjaError("'in <string>' requires string as left operand, not " + item.type_name());
    charge_copy(c.as_string().size());
    return c.as_string().find(item.as_string()) != std::string::npos;
  }
  if (c.is_array()) {
    for (const auto& v : c.as_array()->items) {
      charge_steps();
      if (equals(v, item)) return true;
    }
    return false;
  }
  if (c.is_range()) {  // arithmetic, as Python does for integers
    if (!item.is_number()) return false;
    int64_t x;
    if (item.is_float()) {
      const double d = item.as_float();
      if (d != std::floor(d) || !(std::fabs(d) < 9.2e18)) return false;  // also NaN and inf
      x = static_cast<int64_t>(d);
    } else {
      x = item.to_int();
    }
    const Range& r = c.as_range();
    if (r.step > 0 ? (x < r.start || x >= r.stop) : (x > r.start || x <= r.stop)) return false;
    const uint64_t off = r.step > 0 ? static_cast<uint64_t>(x) - static_cast<uint64_t>(r.start)
                                    : static_cast<uint64_t>(r.start) - static_cast<uint64_t>(x);
    const uint64_t st = r.step > 0 ? static_cast<uint64_t>(r.step) : 0 - static_cast<uint64_t>(r.step);
    return off % st == 0;
  }
  if (c.is_object()) return item.is_string() && c.as_object()->find(item.as_string()) != nullptr;
  throw JinjaError("argument of type '" + c.type_name() + "' is not iterable");
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::Array:
      charge_steps(v.as_array()->items.size());
      return v.as_array()->items;
    case Value::Kind::Object: {
      std::vector<Value> keys;
      charge_steps(v.as_object()->items.size());
      for (const auto& kv : v.as_object()->items) keys.emplace_back(kv.first);
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> chars;
      std::u32string u = utf8_decode(v.as_string());
      charge_steps(u.size());
      check_room(mul_sat(u.size(), sizeof(Value)));
      chars.reserve(u.size());
      for (char32_t c : u) chars.emplace_back(utf8_encode(std::u32string(1, c)));
      return chars;
    }
    case Value::Kind::Range: {  // materialized only here (list(), filters), within the budgets
      const Range& r = v.as_range();
      const int64_t n = r.size();
      check_room(mul_sat(static_cast<uint64_t>(n), sizeof(Value)));
      charge_steps(static_cast<uint64_t>(n));
      std::vector<Value> items;
      items.reserve(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) items.emplace_back(r.at(i));
      return items;
    }
    default: throw JinjaError("'" + v.type_name() + "' object is not iterable");
  }
}

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::Range: return v.as_range().size();
    case Value::Kind::String: return utf8_length(v.as_string());
    case Value::Kind::Array: return static_cast<int64_t>(v.as_array()->items.size());
    case Value::Kind::Object: return static_cast<int64_t>(v.as_object()->items.size());
    default: throw JinjaError("object of type '" + v.type_name() + "' has no len()");
  }
}

namespace {

// Pads s to `width` code points (spaces; on the right with the '-' flag), as Python's %s does.
std::string pad_to_width(std::string s, uint64_t width, bool left) {
  const uint64_t n = static_cast<uint64_t>(utf8_length(s));
  if (n >= width) return s;
  check_room(add_sat(s.size(), width - n));
  std::string pad(static_cast<size_t>(width - n), ' ');
  return left ? s + pad : pad + s;
}

// snprintf into a string of whatever size the result needs (no fixed buffer).
template <typename T>
std::string c_format(const std::string& cfmt, T x) {
  int n = std::snprintf(nullptr, 0, cfmt.c_str(), x);
  if (n < 0) throw JinjaError("invalid format '" + cfmt + "'");
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), cfmt.c_str(), x);
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

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
    std::string flags;
    while (j < fmt.size() && std::string("-+ #0").find(fmt[j]) != std::string::npos) flags += fmt[j++];
    // Width and precision saturate instead of overflowing; a huge one fails the byte budget below.
    auto number = [&](uint64_t& v) {
      bool any = false;
      for (v = 0; j < fmt.size() && fmt[j] >= '0' && fmt[j] <= '9'; ++j, any = true)
        v = add_sat(mul_sat(v, 10), static_cast<uint64_t>(fmt[j] - '0'));
      return any;
    };
    uint64_t width = 0, prec = 0;
    number(width);
    bool has_prec = false;
    if (j < fmt.size() && fmt[j] == '.') {
      ++j;
      number(prec);
      has_prec = true;
    }
    if (j >= fmt.size()) throw JinjaError("incomplete format");
    char conv = fmt[j];
    i = j;
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= list.size()) throw JinjaError("not enough arguments for format string");
    const Value& a = list[next++];
    const bool left = flags.find('-') != std::string::npos;
    std::string piece;
    switch (conv) {
      case 's':
      case 'r': {
        std::string s = conv == 's' ? to_str(a) : to_repr(a);
        if (has_prec && prec < s.size()) {  // at most prec code points
          std::u32string u = utf8_decode(s);
          if (prec < u.size()) s = utf8_encode(u.substr(0, static_cast<size_t>(prec)));
        }
        piece = pad_to_width(std::move(s), width, left);
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o':
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        const bool integral = conv == 'd' || conv == 'i' || conv == 'u' || conv == 'x' || conv == 'X' || conv == 'o';
        if (!a.is_number())
          throw JinjaError(integral ? "%" + std::string(1, conv) + " format: a real number is required, not " +
                                          a.type_name()
                                    : "must be real number, not " + a.type_name());
        // The longest result: the width, or the digits of a double (%f of 1e308) plus the precision.
        check_room(std::max(width, add_sat(prec, 400)));
        if (width > INT32_MAX || prec > INT32_MAX) throw JinjaError("format width or precision too big");
        std::string cfmt = "%" + flags + (width ? std::to_string(width) : "") +
                           (has_prec ? "." + std::to_string(prec) : "");
        if (integral)
          piece = c_format(cfmt + "ll" + (conv == 'i' || conv == 'u' ? 'd' : conv), static_cast<long long>(a.to_int()));
        else
          piece = c_format(cfmt + conv, a.to_double());
        break;
      }
      default: throw JinjaError(std::string("unsupported format character '") + conv + "'");
    }
    check_room(add_sat(out.size(), piece.size()));
    out += piece;
  }
  if (next < list.size() && args.is_array() && args.as_array()->is_tuple)
    throw JinjaError("not all arguments converted during string formatting");
  return out;
}

}  // namespace qnext::jinja
