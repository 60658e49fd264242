// OpenAI-style API errors: what a request handler returns instead of throwing. Rendered as
// {"error": {"message", "type", "param", "code"}} with the HTTP status.
#pragma once
#include <string>
#include <utility>
#include <variant>

namespace qnext::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the request field at fault ("" -> null)
  std::string code;   // e.g. "context_length_exceeded" ("" -> null)
};

// 400 naming the field at fault.
inline ApiError bad_param(std::string param, std::string message) {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param), ""};
}

// A value or the error to answer with.
template <typename T>
class [[nodiscard]] ApiResult {
 public:
  ApiResult(T value) : v_(std::move(value)) {}
  ApiResult(ApiError e) : v_(std::move(e)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const ApiError& error() const { return std::get<ApiError>(v_); }

 private:
  std::variant<T, ApiError> v_;
};

}  // namespace qnext::server
