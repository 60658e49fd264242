#include "server/sse.h"

namespace qnext::server {

std::string dump_json(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string sse_event(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 16);
  size_t start = 0;
  while (true) {
    size_t nl = payload.find('\n', start);
    std::string_view line = payload.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out += "data: ";
    out += line;
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += '\n';
  return out;
}

std::string sse_json(const nlohmann::ordered_json& j) { return sse_event(dump_json(j)); }

}  // namespace qnext::server
