// A fresh directory under the system's temp dir, removed with everything in it at scope exit.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

namespace qnext::testing {

struct TempDir {
  TempDir() {
    static int counter = 0;
    path = (std::filesystem::temp_directory_path() /
            ("qnext_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)))
               .string();
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path;
};

}  // namespace qnext::testing
