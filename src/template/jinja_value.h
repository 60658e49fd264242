// Values of the Jinja interpreter, with Python semantics where chat templates depend on them:
// truthiness, equality, ordering, str()/repr() printing, and json.dumps-style tojson.
// Lists and dicts are shared by reference (as in Python); dicts keep insertion order.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace qnext::jinja {

// Raised inside the interpreter; the public API (ChatTemplate) turns it into a Result error.
// line == 0 means "not known yet": the evaluator fills in the line of the node it was running.
struct JinjaError : std::runtime_error {
  int line;
  JinjaError(const std::string& msg, int line_ = 0) : std::runtime_error(msg), line(line_) {}
};

class Value;
struct Array;
struct Object;
struct Function;
using ArrayPtr = std::shared_ptr<Array>;
using ObjectPtr = std::shared_ptr<Object>;
using FunctionPtr = std::shared_ptr<Function>;
using StringPtr = std::shared_ptr<const std::string>;  // strings are immutable: copies share them

// A missing variable or attribute. `what` explains why, for the error raised on misuse.
struct Undefined {
  std::string what;
};
struct None {};

// range(start, stop, step): iterated without building a list (see Range::size for its length).
struct Range {
  int64_t start = 0, stop = 0, step = 1;  // step != 0
  int64_t size() const;                   // len(); range() refuses ranges longer than INT64_MAX
  int64_t at(int64_t i) const { return start + i * step; }  // 0 <= i < size()
};

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, Array, Object, Function, Range };

  Value() : v_(Undefined{}) {}
  Value(Undefined u) : v_(std::move(u)) {}
  Value(None) : v_(None{}) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(int64_t i) : v_(i) {}
  Value(double d) : v_(d) {}
  // A new string: charged to the active render's byte budget (jinja_limits.h).
  Value(std::string s);
  Value(const char* s) : Value(std::string(s)) {}
  Value(ArrayPtr a) : v_(std::move(a)) {}
  Value(ObjectPtr o) : v_(std::move(o)) {}
  Value(FunctionPtr f) : v_(std::move(f)) {}
  Value(Range r) : v_(r) {}

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::Undefined; }
  bool is_none() const { return kind() == Kind::None; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_float() const { return kind() == Kind::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python: bool is an int
  bool is_string() const { return kind() == Kind::String; }
  bool is_array() const { return kind() == Kind::Array; }
  bool is_object() const { return kind() == Kind::Object; }
  bool is_function() const { return kind() == Kind::Function; }
  bool is_range() const { return kind() == Kind::Range; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  const std::string& as_string() const { return *std::get<StringPtr>(v_); }
  const ArrayPtr& as_array() const { return std::get<ArrayPtr>(v_); }
  const ObjectPtr& as_object() const { return std::get<ObjectPtr>(v_); }
  const FunctionPtr& as_function() const { return std::get<FunctionPtr>(v_); }
  const Undefined& as_undefined() const { return std::get<Undefined>(v_); }
  const Range& as_range() const { return std::get<Range>(v_); }

  // Numeric view of bool/int/float (caller checks is_number()).
  double to_double() const;
  int64_t to_int() const;

  bool truthy() const;
  // Python's type name, for error messages ("str", "int", "dict", ...).
  std::string type_name() const;

 private:
  std::variant<Undefined, None, bool, int64_t, double, StringPtr, ArrayPtr, ObjectPtr, FunctionPtr, Range> v_;
};

// Lists and dicts free their contents without recursing (a chain of 100,000 lists built by a
// template loop would otherwise overflow the stack when it is destroyed).
struct Array {
  std::vector<Value> items;
  bool is_tuple = false;  // only changes how it prints: (a, b) instead of [a, b]
  const char* view = nullptr;  // dict.items()/keys()/values() print as dict_items([...]) etc.
  Array() = default;
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  ~Array();
};

struct Object {
  std::vector<std::pair<std::string, Value>> items;  // insertion order, unique keys
  bool is_namespace = false;  // namespace(): the only object `set x.attr = ...` may modify
  Object() = default;
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;
  ~Object();

  const Value* find(const std::string& key) const;
  // Adds or replaces; a new key is charged to the active render's byte budget.
  void set(const std::string& key, Value v);
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;

  // Argument i by position, else by keyword name, else the default.
  const Value* get(size_t i, const std::string& name) const;
  Value get_or(size_t i, const std::string& name, Value dflt) const;
};

struct Function {
  std::string name;
  std::function<Value(const CallArgs&)> fn;
};

// A new list (its slots charged to the active render's byte budget).
Value make_array(std::vector<Value> items = {}, bool tuple = false);
Value make_object();
Value make_function(std::string name, std::function<Value(const CallArgs&)> fn);

// Conversion from JSON (ordered, so key order survives). Throws JinjaError for documents nested
// deeper than kMaxValueDepth.
Value from_json(const nlohmann::ordered_json& j);

// Python semantics. Each recursion is bounded by kMaxValueDepth (JinjaError beyond).
bool equals(const Value& a, const Value& b);
// <0, 0, >0; throws JinjaError for types Python cannot order.
int compare(const Value& a, const Value& b);
std::string to_str(const Value& v);   // str(v)
std::string to_repr(const Value& v);  // repr(v)
std::string float_repr(double d);     // repr(float)

// json.dumps(v, ensure_ascii=False, indent=..., separators=..., sort_keys=...).
struct JsonFormat {
  int indent = -1;  // < 0: None (one line)
  bool sort_keys = false;
  std::string item_sep, key_sep;  // empty: Python's defaults ", " (or "," with indent) and ": "
  bool custom_separators = false;
};
std::string to_json(const Value& v, const JsonFormat& fmt = {});

// UTF-8 helpers: Python indexes strings by code point. An invalid byte reads as one U+FFFD.
// utf8_decode and utf8_length charge their work to the active render's step budget.
std::u32string utf8_decode(const std::string& s);
int64_t utf8_length(const std::string& s);  // without decoding
// The code point at byte i (i < s.size()); i moves past it. The steps utf8_decode takes.
char32_t utf8_next(const std::string& s, size_t& i);
std::string utf8_encode(const std::u32string& s);
bool is_py_space(char32_t c);

}  // namespace qnext::jinja
