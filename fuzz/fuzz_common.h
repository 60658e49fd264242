// Shared by the libFuzzer targets (see fuzz/README.md): a property check that stops the fuzzer
// with a message, and where the repository's assets are (QNEXT_ASSETS_DIR, set by fuzz/CMakeLists.txt).
// Targets read only those assets, never write files, and never need the network or data outside the repository.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#ifndef QNEXT_ASSETS_DIR
#error "QNEXT_ASSETS_DIR must name the repository's assets/ folder"
#endif

namespace qnext::fuzz {

// A broken property is a bug like a crash: report it and abort, so libFuzzer saves the input.
[[noreturn]] inline void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz property violated: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
  std::abort();
}
#define FUZZ_CHECK(cond, ...)                                                        \
  do {                                                                               \
    if (!(cond)) ::qnext::fuzz::fail(#cond __VA_OPT__(, ) __VA_ARGS__);              \
  } while (0)

inline std::string assets(const char* rel) { return std::string(QNEXT_ASSETS_DIR) + "/" + rel; }

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace qnext::fuzz
