// MappedFile::copy_into_memory: the map replaced by a copy on huge pages at the same address, with the
// same bytes; files smaller than a huge page left mapped; a file changed on disk refused, the map kept.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/mapped_file.h"

namespace qnext {
namespace {

std::filesystem::path write_file(const std::string& name, const std::string& bytes) {
  auto p = std::filesystem::temp_directory_path() / ("qnext_mapped_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (auto& c : s) c = char((x = x * 1664525u + 1013904223u) >> 24);
  return s;
}

TEST(MappedFile, CopyIntoMemoryKeepsTheAddressAndTheBytes) {
  // Sizes around whole huge pages and pages: the copy's last page is partly past the file's end.
  for (size_t size : {size_t(2) << 20, (size_t(5) << 20) + 123, (size_t(6) << 20) - 4096}) {
    const std::string bytes = pattern(size);
    auto path = write_file(std::to_string(size), bytes);
    auto f = MappedFile::open(path.string());
    ASSERT_TRUE(f.ok()) << f.error();
    const uint8_t* before = f.value()->data();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(before) % (size_t(2) << 20), 0u) << "a large file is mapped 2 MiB-aligned";
    EXPECT_FALSE(f.value()->in_memory());
    Status st = f.value()->copy_into_memory();
    ASSERT_TRUE(st.ok()) << st.error();
    EXPECT_TRUE(f.value()->in_memory()) << size;
    ASSERT_EQ(f.value()->data(), before);
    // Whole huge pages within the copy (how many the kernel gives is its choice: THP may be off).
    const size_t huge = f.value()->huge_page_bytes(read_smaps());
    EXPECT_EQ(huge % (size_t(2) << 20), 0u) << huge;
    EXPECT_LE(huge, size / (size_t(2) << 20) * (size_t(2) << 20)) << huge;  // a partial one cannot be huge
    ASSERT_EQ(std::string_view(reinterpret_cast<const char*>(before), size), bytes) << size;
    st = f.value()->copy_into_memory();  // a second call changes nothing
    ASSERT_TRUE(st.ok()) << st.error();
    ASSERT_EQ(std::string_view(reinterpret_cast<const char*>(f.value()->data()), size), bytes) << size;
    f.value().reset();  // unmaps the copy
    std::filesystem::remove(path);
  }
}

// The smaps reader on a made-up text: only mappings wholly inside the range count; field names that
// start with hex letters (AnonHugePages, FilePmdMapped) are not headers; a long path is one line.
TEST(MappedFile, AnonHugePageBytesCountsOnlyMappingsInTheRange) {
  const std::string long_path(3000, 'a');
  const std::string smaps =
      "7f0000000000-7f0000400000 r--p 00000000 00:00 0 \n"
      "Size:               4096 kB\n"
      "Anonymous:          4096 kB\n"
      "AnonHugePages:      4096 kB\n"
      "FilePmdMapped:         0 kB\n"
      "7f0000400000-7f0000600000 r--p 00000000 00:00 0 \n"
      "AnonHugePages:      2048 kB\n"
      "7f0000600000-7f0000a00000 r--p 00000000 08:01 1234 /" + long_path + "\n"
      "AnonHugePages:      4096 kB\n"   // straddles the range's end: not counted
      "7f0001000000-7f0001200000 r--p 00000000 00:00 0\n"
      "AnonHugePages:      2048 kB\n";  // outside, and no newline at the end
  const uintptr_t begin = 0x7f0000000000, end = 0x7f0000800000;
  EXPECT_EQ(anon_huge_page_bytes(smaps, begin, end), size_t(6) << 20);
  EXPECT_EQ(anon_huge_page_bytes(smaps, 0x7f0001000000, 0x7f0001200000), size_t(2) << 20);
  EXPECT_EQ(anon_huge_page_bytes(smaps, 0x7f0000400000, 0x7f0000600000), size_t(2) << 20);
  EXPECT_EQ(anon_huge_page_bytes(smaps, 0x7f0000100000, 0x7f0000400000), 0u);  // a mapping partly in
  EXPECT_EQ(anon_huge_page_bytes("", begin, end), 0u);
  // The real file is there to read (Linux).
  EXPECT_FALSE(read_smaps().empty());
}

TEST(MappedFile, SmallFilesStayMapped) {
  const std::string bytes = pattern(100000);
  auto path = write_file("small", bytes);
  auto f = MappedFile::open(path.string());
  ASSERT_TRUE(f.ok()) << f.error();
  Status st = f.value()->copy_into_memory();
  ASSERT_TRUE(st.ok()) << st.error();
  EXPECT_FALSE(f.value()->in_memory());
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(f.value()->data()), bytes.size()), bytes);
  std::filesystem::remove(path);
}

TEST(MappedFile, AFileChangedOnDiskIsNotCopiedAndStaysReadable) {
  const std::string bytes = pattern((size_t(3) << 20) + 7);
  auto path = write_file("grown", bytes);
  auto f = MappedFile::open(path.string());
  ASSERT_TRUE(f.ok()) << f.error();
  std::ofstream(path, std::ios::binary | std::ios::app) << "more";
  Status st = f.value()->copy_into_memory();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().find(path.string()), std::string::npos) << st.error();
  EXPECT_NE(st.error().find("changed on disk"), std::string::npos) << st.error();
  EXPECT_FALSE(f.value()->in_memory());
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(f.value()->data()), bytes.size()), bytes);
  std::filesystem::remove(path);
}

// Renamed over by another file of the same size: the map still reads the old file (its inode), and
// the copy, which reopens the path, must not take the new one's bytes.
TEST(MappedFile, AFileReplacedOnDiskIsNotCopied) {
  const std::string bytes = pattern((size_t(3) << 20) + 7);
  auto path = write_file("replaced", bytes);
  auto f = MappedFile::open(path.string());
  ASSERT_TRUE(f.ok()) << f.error();
  std::string other = bytes;
  other[12345] ^= 1;
  auto next = write_file("replacement", other);
  std::filesystem::rename(next, path);
  Status st = f.value()->copy_into_memory();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().find("changed on disk"), std::string::npos) << st.error();
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(f.value()->data()), bytes.size()), bytes);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace qnext
