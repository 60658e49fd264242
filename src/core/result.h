// Result<T>: the return type of every fallible edge (files, configs, tokenizer, HTTP).
// Either a value or a human-readable message that names what was wrong.
#pragma once
#include <optional>
#include <type_traits>
#include <string>
#include <utility>
#include <variant>

namespace qnext {

struct Error {
  std::string message;
};

// E: the error type; with the default, error() is the message itself.
template <typename T, typename E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(E e) : v_(std::move(e)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  decltype(auto) error() const {
    if constexpr (std::is_same_v<E, Error>) return (std::get<Error>(v_).message);
    else return (std::get<E>(v_));
  }

 private:
  std::variant<T, E> v_;
};

// Result<void>: success or an error message.
struct Ok {};
using Status = Result<Ok>;

inline Error err(std::string msg) { return Error{std::move(msg)}; }

}  // namespace qnext
