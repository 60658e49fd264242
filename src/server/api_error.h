// OpenAI-style API errors: what a request handler returns instead of throwing. Rendered as
// {"error": {"message", "type", "param", "code"}} with the HTTP status.
#pragma once
#include <string>
#include <utility>

#include "core/result.h"

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
using ApiResult = Result<T, ApiError>;

}  // namespace qnext::server
