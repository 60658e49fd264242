// Runs the qnext binary (or any command) for end-to-end tests, capturing output and exit code.
#pragma once
#include <sys/wait.h>

#include <unistd.h>

#include <array>
#include <filesystem>
#include <cstdio>
#include <string>

namespace qnext::testing {

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

inline RunResult run(const std::string& command) {
  RunResult r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline std::string qnext_bin() { return QNEXT_BIN; }

// A path in the temp directory unique to this test process.
inline std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("qnext_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace qnext::testing
