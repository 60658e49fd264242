#include "server/web_assets.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace qnext::server {

namespace {

std::string_view bytes(const unsigned char* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// Calls f(item) for each comma-separated item of a header value, trimmed, empty ones skipped.
template <typename F>
void each_item(std::string_view list, F f) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view item = trim(list.substr(0, comma));
    if (!item.empty()) f(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// The q value of "coding;q=0.5" (1 when absent; 0 when unreadable, so a garbled one never enables).
double q_value(std::string_view params) {
  double q = 1.0;
  while (!params.empty()) {
    const size_t semi = params.find(';');
    std::string_view p = trim(params.substr(0, semi));
    if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
      const std::string v(trim(p.substr(2)));
      char* end = nullptr;
      q = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(q >= 0.0 && q <= 1.0)) q = 0.0;
    }
    if (semi == std::string_view::npos) break;
    params.remove_prefix(semi + 1);
  }
  return q;
}

}  // namespace

std::span<const WebAsset> web_assets() {
  static const std::vector<WebAsset> assets = [] {
    std::vector<WebAsset> v;
    for (size_t i = 0; i < kWebAssetCount; ++i) {
      const WebAssetData& d = kWebAssetData[i];
      v.push_back(WebAsset{d.path, d.content_type, d.etag, bytes(d.raw, d.raw_size), bytes(d.gz, d.gz_size)});
    }
    return v;
  }();
  return assets;
}

const WebAsset* find_web_asset(std::string_view path) {
  if (path == "/") path = "/index.html";
  for (const WebAsset& a : web_assets())
    if (a.path == path) return &a;
  return nullptr;
}

bool accepts_gzip(std::string_view accept_encoding) {
  // An explicit "gzip" entry wins over "*" whatever their order (RFC 9110 12.5.3).
  double gzip_q = -1.0, star_q = -1.0;
  each_item(accept_encoding, [&](std::string_view item) {
    const size_t semi = item.find(';');
    const std::string_view coding = trim(item.substr(0, semi));
    const double q = semi == std::string_view::npos ? 1.0 : q_value(item.substr(semi + 1));
    if (iequals(coding, "gzip") || iequals(coding, "x-gzip"))
      gzip_q = std::max(gzip_q, q);
    else if (coding == "*")
      star_q = std::max(star_q, q);
  });
  return gzip_q >= 0.0 ? gzip_q > 0.0 : star_q > 0.0;
}

WebReply web_reply(const WebAsset& asset, std::string_view accept_encoding, std::string_view if_none_match) {
  WebReply r;
  const bool gz = accepts_gzip(accept_encoding);
  // Each representation has its own tag, so a cache never takes one encoding for the other.
  const std::string etag = "\"" + std::string(asset.etag) + (gz ? "-gz" : "") + "\"";
  r.headers = {
      {"Content-Security-Policy", std::string(kWebCsp)},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"X-Frame-Options", "DENY"},
      // Revalidated on every load (a 304 costs nothing), so a rebuilt server's page is never stale.
      {"Cache-Control", "no-cache"},
      {"ETag", etag},
      {"Vary", "Accept-Encoding"},
  };
  bool match = false;
  each_item(if_none_match, [&](std::string_view tag) {
    if (tag.starts_with("W/")) tag.remove_prefix(2);  // weak comparison, as If-None-Match asks
    match = match || tag == "*" || tag == etag;
  });
  if (match) {
    r.status = 304;
    return r;
  }
  if (gz) r.headers.emplace_back("Content-Encoding", "gzip");
  r.body = gz ? asset.gzip : asset.raw;
  return r;
}

}  // namespace qnext::server
