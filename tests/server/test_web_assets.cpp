// The chat page as embedded in the binary (web/ -> cmake/embed_web.cmake -> web_assets.cpp): every
// file present with its type, the gzip copies decode to the files, the size budget, the headers a
// page file is sent with, and static checks of the page's code for the ways markup could be built
// from text. Plus GET /props (props_json) over the real templates.
#include <gtest/gtest.h>
#include <zlib.h>

#include <set>

#include "openai_fixtures.h"
#include "server/props.h"
#include "server/web_assets.h"

namespace qnext::server {
namespace {

using testing::ctx;
using testing::kTokDir;
using testing::read;

std::string gunzip(std::string_view gz) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);  // 16: gzip framing
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = uInt(gz.size());
  std::string out;
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

// The quoted values after each `prefix` in text (up to the closing `quote`). Plain string search:
// GCC 12 warns falsely inside <regex> in sanitizer builds.
std::vector<std::string> values_after(std::string_view text, std::string_view prefix, char quote) {
  std::vector<std::string> out;
  for (size_t at = text.find(prefix); at != std::string_view::npos; at = text.find(prefix, at + 1)) {
    const size_t start = at + prefix.size(), end = text.find(quote, start);
    if (end != std::string_view::npos) out.emplace_back(text.substr(start, end - start));
  }
  return out;
}

bool is_ident(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }

std::string header(const WebReply& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

TEST(WebAssets, IndexAtRootAndEveryFileTyped) {
  const WebAsset* root = find_web_asset("/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root, find_web_asset("/index.html"));
  EXPECT_EQ(root->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(find_web_asset("/nope.js"), nullptr);
  EXPECT_EQ(find_web_asset("index.html"), nullptr);
  EXPECT_EQ(find_web_asset("/../index.html"), nullptr);
  std::set<std::string_view> seen;
  for (const WebAsset& a : web_assets()) {
    EXPECT_TRUE(seen.insert(a.path).second) << a.path;
    EXPECT_TRUE(a.path.starts_with("/")) << a.path;
    EXPECT_FALSE(a.raw.empty()) << a.path;
    if (a.path.ends_with(".mjs")) {
      EXPECT_EQ(a.content_type, "text/javascript; charset=utf-8") << a.path;
    } else if (a.path.ends_with(".css")) {
      EXPECT_EQ(a.content_type, "text/css; charset=utf-8") << a.path;
    } else if (a.path.ends_with(".svg")) {
      EXPECT_EQ(a.content_type, "image/svg+xml") << a.path;
    }
  }
  for (const char* p : {"/app.mjs", "/markdown.mjs", "/style.css", "/favicon.svg"})
    EXPECT_NE(find_web_asset(p), nullptr) << p;
}

TEST(WebAssets, GzipCopiesDecodeToTheFiles) {
  for (const WebAsset& a : web_assets()) {
    ASSERT_GE(a.gzip.size(), 18u) << a.path;
    EXPECT_EQ(a.gzip.substr(0, 2), "\x1f\x8b") << a.path;
    EXPECT_EQ(a.gzip.substr(4, 4), std::string(4, '\0')) << a.path << ": gzip -n leaves the time stamp 0";
    EXPECT_EQ(gunzip(a.gzip), a.raw) << a.path;
  }
}

// The issue's budget: the whole page at most 250 KB before compression.
TEST(WebAssets, TotalUnder250KB) {
  size_t raw = 0, gz = 0;
  for (const WebAsset& a : web_assets()) {
    raw += a.raw.size();
    gz += a.gzip.size();
  }
  EXPECT_LE(raw, 250u * 1000) << "web/ is " << raw << " bytes";
  EXPECT_LT(gz, raw / 2);
}

// What the page loads is all there: the files index.html names and every module an import names.
TEST(WebAssets, EveryReferencedFileIsEmbedded) {
  const std::string_view html = find_web_asset("/")->raw;
  int refs = 0, imports = 0;
  for (const char* attr : {" src=\"", " href=\""}) {
    for (const std::string& target : values_after(html, attr, '"')) {
      if (target.starts_with("#")) continue;
      EXPECT_NE(find_web_asset("/" + target), nullptr) << "index.html names " << target;
      ++refs;
    }
  }
  EXPECT_GE(refs, 3);
  for (const WebAsset& a : web_assets()) {
    if (!a.path.ends_with(".mjs")) continue;
    for (const std::string& module : values_after(a.raw, "from './", '\'')) {
      EXPECT_NE(find_web_asset("/" + module), nullptr) << a.path << " imports " << module;
      ++imports;
    }
  }
  EXPECT_GE(imports, 5);
}

// The page's safety rests on never parsing text as markup and on the CSP admitting no inline code:
// the sinks that turn a string into HTML or code appear nowhere, and index.html has no inline
// script, style or event handler.
TEST(WebAssets, NoMarkupOrCodeFromStrings) {
  const char* sinks[] = {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function(",
                         "createContextualFragment", "DOMParser", "srcdoc", "setAttribute('on", "setAttribute(\"on"};
  int scripts = 0;
  for (const WebAsset& a : web_assets()) {
    if (!a.path.ends_with(".mjs")) continue;
    for (std::string_view sink : sinks) {
      for (size_t at = a.raw.find(sink); at != std::string_view::npos; at = a.raw.find(sink, at + 1)) {
        // A whole name ("retrieval(" is not "eval(").
        if (at > 0 && is_ident(a.raw[at - 1]) && std::isalpha(static_cast<unsigned char>(sink[0]))) continue;
        ADD_FAILURE() << a.path << " uses " << sink;
      }
    }
    ++scripts;
  }
  EXPECT_GE(scripts, 5);
  const std::string_view html = find_web_asset("/")->raw;
  EXPECT_EQ(html.find("<style"), std::string::npos);
  EXPECT_EQ(html.find(" style="), std::string::npos);
  for (size_t at = html.find(" on"); at != std::string_view::npos; at = html.find(" on", at + 1)) {
    size_t k = at + 3;
    while (k < html.size() && std::islower(static_cast<unsigned char>(html[k]))) ++k;
    EXPECT_FALSE(k > at + 3 && k < html.size() && html[k] == '=') << "an event handler attribute: " << html.substr(at, k - at + 1);
  }
  int script_tags = 0;
  for (size_t at = html.find("<script"); at != std::string_view::npos; at = html.find("<script", at + 1), ++script_tags) {
    const std::string_view tag = html.substr(at, html.find('>', at) - at);
    EXPECT_NE(tag.find(" src="), std::string_view::npos) << "inline script: " << tag;
  }
  EXPECT_EQ(script_tags, 1);
  EXPECT_EQ(html.find("http://"), std::string::npos) << "nothing from the network";
  EXPECT_EQ(html.find("https://"), std::string::npos) << "nothing from the network";
}

TEST(WebAssets, AcceptsGzip) {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"gzip", true},          {"gzip, deflate, br", true}, {"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
      {"GZIP", true},          {"x-gzip", true},            {"deflate , gzip ; q=1.0", true},
      {"*", true},             {"", false},                 {"br", false},
      {"identity", false},     {"gzip;q=0", false},         {"gzip; q=0.000", false},
      {"*;q=0", false},        {"gzip;q=0, *", false},      {"*, gzip;q=0", false},
      {"gzip;q=abc", false},   {"gzip;q=2", false},         {"gzipx", false},
      {"gzip;q=0.5", true},    {",,gzip,,", true},
  };
  for (const auto& [header_value, want] : cases) EXPECT_EQ(accepts_gzip(header_value), want) << "'" << header_value << "'";
}

TEST(WebAssets, ReplyHeadersEncodingAndRevalidation) {
  const WebAsset& index = *find_web_asset("/");
  const WebReply plain = web_reply(index, "", "");
  EXPECT_EQ(plain.status, 200);
  EXPECT_EQ(plain.body, index.raw);
  EXPECT_EQ(header(plain, "Content-Encoding"), "");
  const std::string csp = header(plain, "Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'self'"), std::string::npos);
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos);
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
  EXPECT_EQ(header(plain, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(header(plain, "Vary"), "Accept-Encoding");
  EXPECT_EQ(header(plain, "Cache-Control"), "no-cache");

  const WebReply gz = web_reply(index, "gzip, deflate, br", "");
  EXPECT_EQ(gz.status, 200);
  EXPECT_EQ(gz.body, index.gzip);
  EXPECT_EQ(header(gz, "Content-Encoding"), "gzip");
  EXPECT_EQ(header(gz, "Content-Security-Policy"), csp);
  const std::string tag = header(plain, "ETag"), gz_tag = header(gz, "ETag");
  EXPECT_TRUE(tag.starts_with("\"") && tag.ends_with("\"")) << tag;
  EXPECT_NE(tag, gz_tag) << "each encoding has its own tag";

  EXPECT_EQ(web_reply(index, "", tag).status, 304);
  EXPECT_TRUE(web_reply(index, "", tag).body.empty());
  EXPECT_EQ(web_reply(index, "gzip", gz_tag).status, 304);
  EXPECT_EQ(web_reply(index, "gzip", "\"other\", W/" + gz_tag).status, 304);
  EXPECT_EQ(web_reply(index, "gzip", "*").status, 304);
  EXPECT_EQ(web_reply(index, "gzip", tag).status, 200) << "the identity tag does not validate the gzip body";
  EXPECT_EQ(web_reply(index, "", "\"other\"").status, 200);
  EXPECT_EQ(header(web_reply(index, "", tag), "ETag"), tag);
}

// ---------------------------------------------------------------------------------------------
// GET /props

ApiContext with_template(const std::string& file) {
  ApiContext c = ctx();
  auto tpl = ChatTemplate::from_source(read(kTokDir + "/" + file));
  EXPECT_TRUE(tpl.ok()) << tpl.error();
  c.tpl = tpl.value();
  return c;
}

TEST(Props, ModelContextDefaultsAndKey) {
  const auto p = props_json(ctx(), false);
  EXPECT_EQ(p["model"], "test-model");
  EXPECT_EQ(p["context_size"], 4096);
  EXPECT_EQ(p["api_key_required"], false);
  EXPECT_EQ(p["chat_template"], true);
  const auto& d = p["default_sampling"];
  EXPECT_EQ(d["temperature"].get<double>(), 0.7) << "printed as the config wrote it, not as a float's expansion";
  EXPECT_EQ(d["top_p"].get<double>(), 0.8);
  EXPECT_EQ(d["top_k"], 20);
  EXPECT_EQ(d["min_p"].get<double>(), 0.0);
  EXPECT_EQ(d["presence_penalty"].get<double>(), 0.0);
  EXPECT_EQ(d["repetition_penalty"].get<double>(), 1.0);
  EXPECT_EQ(props_json(ctx(), true)["api_key_required"], true);
}

TEST(Props, ThinkingSupportByTemplate) {
  // Instruct: no reasoning, no switch.
  auto p = props_json(ctx(), false);
  EXPECT_EQ(p["thinking"]["switchable"], false);
  EXPECT_EQ(p["thinking"]["on_by_default"], false);
  // Thinking-2507: always reasons (the prompt opens <think>), no switch.
  p = props_json(with_template("qwen3-next-thinking.jinja"), false);
  EXPECT_EQ(p["thinking"]["switchable"], false);
  EXPECT_EQ(p["thinking"]["on_by_default"], true);
  // Qwen3 hybrid: enable_thinking switches it, on unless told otherwise.
  p = props_json(with_template("qwen3-hybrid.jinja"), false);
  EXPECT_EQ(p["thinking"]["switchable"], true);
  EXPECT_EQ(p["thinking"]["on_by_default"], true);
}

TEST(Props, NoTemplate) {
  ApiContext c = ctx();
  c.tpl.reset();
  const auto p = props_json(c, false);
  EXPECT_EQ(p["chat_template"], false);
  EXPECT_EQ(p["thinking"]["switchable"], false);
  EXPECT_EQ(p["thinking"]["on_by_default"], false);
}

}  // namespace
}  // namespace qnext::server
