// The vocabulary's tables (string_id_map.h) and the padded file map tokenizer.json is parsed from
// (MappedFile with MapOptions::padding).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/mapped_file.h"
#include "tokenizer/string_id_map.h"

using namespace qnext;

TEST(StringIdMap, FindsEveryKeyAcrossRehashesAndKeepsTheFirstId) {
  StringIdMap map;
  const int n = 100000;  // from 16 slots: many rehashes
  for (int i = 0; i < n; ++i) {
    auto e = map.emplace("key" + std::to_string(i), i);
    ASSERT_TRUE(e.inserted) << i;
    ASSERT_EQ(e.entry, size_t(i));
  }
  auto again = map.emplace("key77", 5);  // present: the first id stays
  EXPECT_FALSE(again.inserted);
  EXPECT_EQ(again.entry, 77u);
  EXPECT_EQ(map.size(), size_t(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ(map.find("key" + std::to_string(i)), i) << i;
  EXPECT_EQ(map.key(123), "key123");
  EXPECT_EQ(map.find("key"), -1);
  EXPECT_EQ(map.find("key100000"), -1);
  EXPECT_EQ(map.find(""), -1);
  EXPECT_TRUE(map.emplace("", 7).inserted);  // the empty string is a key like any other
  EXPECT_EQ(map.find(""), 7);
  EXPECT_EQ(map.find(std::string_view("key1\0", 5)), -1);  // bytes, not C strings
}

TEST(StringIdMap, ReserveKeepsWhatIsThere) {
  StringIdMap map;
  map.emplace("a", 1);
  map.emplace("b", 2);
  map.reserve(50000, 1 << 20);
  map.reserve(10, 10);  // smaller: nothing changes
  EXPECT_EQ(map.find("a"), 1);
  EXPECT_EQ(map.find("b"), 2);
  EXPECT_EQ(map.find("c"), -1);
}

TEST(TokenBytes, IdsInAnyOrderAndGaps) {
  TokenBytes bytes;
  bytes.set(5, "five");
  bytes.set(1, std::string_view("o\0e", 3));
  bytes.set(5, "FIVE");  // set again: the newer bytes
  ASSERT_EQ(bytes.size(), 6u);
  EXPECT_EQ(bytes[5], "FIVE");
  EXPECT_EQ(bytes[1], std::string_view("o\0e", 3));
  EXPECT_EQ(bytes[0], "");  // a gap has no bytes
  EXPECT_EQ(bytes[3], "");
}

namespace {

std::filesystem::path temp_file(const std::string& name, const std::string& text) {
  auto p = std::filesystem::temp_directory_path() / ("qnext_padded_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

}  // namespace

// The bytes after the file are readable zeros whatever the file's size against the page size
// (a size just under a page leaves less than the padding in its last page).
TEST(MappedFile, PaddingIsFileBytesThenZeros) {
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  for (size_t size : {size_t(0), size_t(1), page - 1, page - 10, page, page + 1, 3 * page - 64}) {
    std::string text(size, '\0');
    for (size_t i = 0; i < size; ++i) text[i] = char('a' + i % 26);
    auto path = temp_file(std::to_string(size), text);
    for (bool populate : {false, true}) {
      auto f = MappedFile::open(path.string(), {.padding = 64, .populate = populate});
      ASSERT_TRUE(f.ok()) << f.error();
      const char* begin = reinterpret_cast<const char*>(f.value()->data());
      ASSERT_NE(begin, nullptr) << size;  // even an empty file has its padding
      ASSERT_EQ(std::string_view(begin, f.value()->size()), text) << size;
      for (size_t i = 0; i < 64; ++i) ASSERT_EQ(begin[size + i], '\0') << size << " +" << i;
    }
    std::filesystem::remove(path);
  }
}

TEST(MappedFile, MissingFileAndDirectoryAreErrorsNamingThePath) {
  auto missing = std::filesystem::temp_directory_path() / "qnext_padded_no_such_file.json";
  auto f = MappedFile::open(missing.string(), {.padding = 64});
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().find(missing.string() + ": cannot open"), std::string::npos) << f.error();
  auto d = MappedFile::open(std::filesystem::temp_directory_path().string(), {.padding = 64});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().find("not a regular file"), std::string::npos) << d.error();
}
