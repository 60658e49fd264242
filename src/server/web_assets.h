// The chat page's files (web/), embedded at build time by cmake/embed_web.cmake, and how one is
// answered: content type, a gzip copy when the client takes it, the page's security headers and
// ETag revalidation. No sockets here: http_server.cpp copies a WebReply onto the response.
#pragma once
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qnext::server {

// One file as the generated source lists it (raw and gz have a trailing 0 past their size).
struct WebAssetData {
  const char* path;  // "/index.html", "/app.js", ...
  const char* content_type;
  const char* etag;  // a prefix of the file's SHA-256
  const unsigned char* raw;
  size_t raw_size;
  const unsigned char* gz;  // gzip -9 -n of raw
  size_t gz_size;
};
extern const WebAssetData kWebAssetData[];
extern const size_t kWebAssetCount;

struct WebAsset {
  std::string_view path;
  std::string_view content_type;
  std::string_view etag;
  std::string_view raw;
  std::string_view gzip;
};

std::span<const WebAsset> web_assets();
// "/" is "/index.html"; nullptr for a path that is not a file of web/.
const WebAsset* find_web_asset(std::string_view path);

// Whether an Accept-Encoding header admits gzip ("gzip", "x-gzip" or "*", not with q=0).
bool accepts_gzip(std::string_view accept_encoding);

// The policy every page file is sent with: scripts, styles and connections from this server only,
// no inline script or style, no plugins, not framed.
inline constexpr std::string_view kWebCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct WebReply {
  int status = 200;  // 200, or 304 when If-None-Match names the representation sent
  std::vector<std::pair<std::string, std::string>> headers;  // all but Content-Type and Content-Length
  std::string_view body;  // raw or gzip bytes; empty for 304
};

WebReply web_reply(const WebAsset& asset, std::string_view accept_encoding, std::string_view if_none_match);

}  // namespace qnext::server
