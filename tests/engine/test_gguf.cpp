// The GGUF reader: the fixtures' headers, metadata and tensor tables, and clear errors for
// corrupt files (built here byte by byte).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/golden.h"
#include "common/temp_dir.h"
#include "io/gguf.h"

namespace qnext {
namespace {

std::string fixture(const std::string& name) {
  return testing::data_dir("gguf/" + name) + "/" + name + ".gguf";
}

// A GGUF image written field by field, for the error cases.
struct GgufBuilder {
  std::vector<uint8_t> b;
  template <typename T>
  GgufBuilder& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  GgufBuilder& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  GgufBuilder& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b = {'G', 'G', 'U', 'F'};
    return put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
  }
  GgufBuilder& kv_u32(const std::string& key, uint32_t v) { return str(key).put<uint32_t>(4).put<uint32_t>(v); }
  GgufBuilder& kv_str(const std::string& key, const std::string& v) { return str(key).put<uint32_t>(8).str(v); }
  // A tensor entry: ne fastest first, as GGUF stores it.
  GgufBuilder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).put<uint32_t>(uint32_t(ne.size()));
    for (uint64_t d : ne) put<uint64_t>(d);
    return put<uint32_t>(type).put<uint64_t>(offset);
  }
  GgufBuilder& pad_data(size_t data_bytes) {
    while (b.size() % 32) b.push_back(0);
    b.resize(b.size() + data_bytes, 0);
    return *this;
  }
  std::string error() const {
    auto r = parse_gguf(b.data(), b.size(), "x.gguf");
    return r ? "" : r.error();
  }
};

}  // namespace

TEST(Gguf, ReadsTheQ4KMFixture) {
  auto ck = GgufCheckpoint::open(fixture("tiny-k-q4_k_m"));
  ASSERT_TRUE(ck.ok()) << ck.error();
  EXPECT_EQ(ck->tensors().size(), 93u);
  ASSERT_NE(ck->meta("general.architecture"), nullptr);
  EXPECT_EQ(ck->meta("general.architecture")->get<std::string>(), "qwen3next");
  EXPECT_EQ(ck->meta("qwen3next.block_count")->get<int>(), 5);
  EXPECT_EQ(ck->meta("tokenizer.ggml.tokens")->size(), 4000u);
  EXPECT_EQ(ck->meta("qwen3next.attention.recurrent_layers")->size(), 5u);
  const GgufTensor* e = ck->find("token_embd.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->shape, (std::vector<int64_t>{4000, 256}));
  EXPECT_EQ(e->type_name(), "Q4_K");
  EXPECT_EQ(e->nbytes, size_t(4000) * 144);
  EXPECT_EQ(dtype_of_ggml(e->type), DType::Q4_K);
  const GgufTensor* x = ck->find("blk.0.ffn_down_exps.weight");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->shape, (std::vector<int64_t>{4, 256, 256}));  // [E, H, I]
  auto bad = ck->get("output.weight", {256, 4000});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("has shape [4000, 256], expected [256, 4000]"), std::string::npos) << bad.error();
}

TEST(Gguf, ReadsTheDirectoryHoldingOneFile) {
  auto ck = GgufCheckpoint::open(testing::data_dir("gguf/tiny-real-vocab-q8_0"));
  ASSERT_TRUE(ck.ok()) << ck.error();
  EXPECT_EQ(ck->tensors().size(), 163u);
  EXPECT_EQ(ck->meta("tokenizer.ggml.merges")->size(), 151387u);
  EXPECT_TRUE(is_gguf_path(testing::data_dir("gguf/tiny-real-vocab-q8_0")));
  EXPECT_FALSE(is_gguf_path(testing::data_dir("tiny-b")));
}

TEST(Gguf, ReadsEveryTypeOfTheTypesFixture) {
  auto ck = GgufCheckpoint::open(testing::data_dir("gguf/types") + "/types.gguf");
  ASSERT_TRUE(ck.ok()) << ck.error();
  ASSERT_EQ(ck->tensors().size(), 30u);
  for (const GgufTensor& t : ck->tensors()) {
    const std::string type = t.name.substr(0, t.name.find('.'));
    EXPECT_EQ(t.type_name(), type) << t.name;
    EXPECT_TRUE(dtype_of_ggml(t.type).has_value()) << t.name;
    EXPECT_EQ(t.shape, (t.name.back() == 'a' ? std::vector<int64_t>{3, 512} : std::vector<int64_t>{2, 256}));
    EXPECT_EQ(t.nbytes, row_bytes(*dtype_of_ggml(t.type), t.shape[1]) * size_t(t.shape[0])) << t.name;
  }
}

// Found by fuzz_gguf (fuzz/corpus/gguf/alignment_string_not_utf8): a metadata value that is a
// string but not UTF-8 made the error message (json::dump) throw out of the reader.
TEST(Gguf, AlignmentStringNotUtf8) {
  GgufBuilder g;
  const std::string e = g.header(0, 1).kv_str("general.alignment", "\xa2\xff").error();
  EXPECT_NE(e.find("general.alignment is \"\xef\xbf\xbd"), std::string::npos) << e;
}

TEST(Gguf, SplitSetIsReadAcrossFiles) {
  // Two parts made from the Q8_0 fixture's bytes are too big to build here; the builder's two
  // small files check naming, ordering and the tensor union.
  testing::TempDir d;
  for (int part = 1; part <= 2; ++part) {
    GgufBuilder g;
    g.header(1, 1).kv_u32("split.no", uint32_t(part - 1));
    g.tensor("t" + std::to_string(part), {32}, 0, 0).pad_data(128);
    std::ofstream(d.path + "/m-0000" + std::to_string(part) + "-of-00002.gguf", std::ios::binary)
        .write(reinterpret_cast<const char*>(g.b.data()), std::streamsize(g.b.size()));
  }
  auto ck = GgufCheckpoint::open(d.path);
  ASSERT_TRUE(ck.ok()) << ck.error();
  ASSERT_NE(ck->find("t1"), nullptr);
  ASSERT_NE(ck->find("t2"), nullptr);
  EXPECT_NE(ck->find("t2")->file->find("-00002-of-00002.gguf"), std::string::npos);
  auto second = GgufCheckpoint::open(d.path + "/m-00002-of-00002.gguf");
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().find("pass the first part"), std::string::npos) << second.error();
  std::filesystem::remove(d.path + "/m-00002-of-00002.gguf");
  auto missing = GgufCheckpoint::open(d.path + "/m-00001-of-00002.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("missing part 2"), std::string::npos) << missing.error();
}

TEST(Gguf, CorruptFilesGetClearErrors) {
  GgufBuilder g;
  EXPECT_EQ(g.header(0, 0).error(), "");  // an empty model parses: that is the loader's business
  g.b = {'G', 'G', 'U', 'X'};
  EXPECT_NE(g.error().find("no 'GGUF' magic"), std::string::npos);
  EXPECT_NE(g.header(0, 0, 1).error().find("GGUF version 1 is not supported"), std::string::npos);
  EXPECT_NE(g.header(0, 0, 0x03000000).error().find("big-endian"), std::string::npos);
  EXPECT_NE(g.header(0, 1).str("general.name").error().find("truncated"), std::string::npos);
  EXPECT_NE(g.header(1u << 30, 0).error().find("tensor count 1073741824 exceeds the file"), std::string::npos);
  EXPECT_NE(g.header(0, 1).str("k").put<uint32_t>(99).put<uint32_t>(0).error().find("key 'k': unknown value type 99"),
            std::string::npos);
  // An array claiming more elements than the file holds fails before allocating them.
  EXPECT_NE(g.header(0, 1).str("a").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(uint64_t(1) << 60).error().find(
                "key 'a' claims 1152921504606846976 elements"),
            std::string::npos);
  EXPECT_NE(g.header(0, 2).kv_u32("k", 1).kv_u32("k", 2).error().find("'k' appears twice"), std::string::npos);
  EXPECT_NE(g.header(0, 1).kv_u32("general.alignment", 24).error().find("general.alignment is 24"), std::string::npos);
  // Tensor table.
  EXPECT_NE(g.header(1, 0).tensor("w", {32, 2}, 77, 0).pad_data(64).error().find("tensor 'w' has unknown ggml type 77"),
            std::string::npos);
  EXPECT_NE(g.header(1, 0).tensor("w", {100, 2}, 12, 0).pad_data(1024).error().find(
                "tensor 'w' (Q4_K) has rows of 100 elements, not a multiple of its block of 256"),
            std::string::npos);
  EXPECT_NE(g.header(1, 0).tensor("w", {32}, 0, 8).pad_data(512).error().find("data offset 8 is not a multiple"),
            std::string::npos);
  EXPECT_NE(g.header(1, 0).tensor("w", {32, 4}, 0, 0).pad_data(100).error().find(
                "tensor 'w' (F32 [4, 32], 512 bytes at data offset 0) runs past the end of the file"),
            std::string::npos);
  EXPECT_NE(g.header(2, 0).tensor("a", {32}, 0, 0).tensor("b", {32}, 0, 96).pad_data(256).error().find(
                "tensors 'a' and 'b' overlap"),
            std::string::npos);
  EXPECT_NE(g.header(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad_data(64).error().find("'a' appears twice"),
            std::string::npos);
  EXPECT_NE(g.header(1, 0).tensor("w", {0}, 0, 0).pad_data(64).error().find("has a dimension of 0"), std::string::npos);
  EXPECT_NE(g.header(1, 0).tensor("w", {8, 1, 1, 1, 1}, 0, 0).pad_data(64).error().find("5 dimensions"),
            std::string::npos);
  // Every truncation of a valid file is an error, never a crash.
  g.header(2, 2).kv_str("general.architecture", "qwen3next").kv_u32("x", 7);
  g.tensor("a", {64}, 0, 0).tensor("b", {32, 2}, 8, 256).pad_data(256 + 68);
  ASSERT_EQ(g.error(), "");
  const std::vector<uint8_t> whole = g.b;
  for (size_t n = 0; n < whole.size(); ++n) {
    g.b.assign(whole.begin(), whole.begin() + std::ptrdiff_t(n));
    EXPECT_NE(g.error(), "") << "cut at " << n;
  }
}

}  // namespace qnext
