// A GGUF model whose metadata or tensors are wrong: the error names the file and the key or
// tensor, and nothing crashes. The cases rewrite the tiny-k-q4_k_m fixture (tests/common/gguf_writer.h).
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "common/golden.h"
#include "common/gguf_writer.h"
#include "common/temp_dir.h"
#include "model/qwen3_next.h"

namespace qnext {
namespace {

const std::string kFixture = "gguf/tiny-k-q4_k_m";

struct Rewritten {
  testing::TempDir dir;
  std::string path;
};

// The fixture with `change` applied to its metadata and tensors, written to a temporary file.
std::unique_ptr<Rewritten> rewrite(const std::function<void(GgufMetadata&, std::vector<testing::GgufTensorOut>&)>& change) {
  auto g = GgufCheckpoint::open(testing::data_dir(kFixture));
  EXPECT_TRUE(g.ok()) << g.error();
  GgufMetadata meta = g->metadata();
  auto tensors = testing::GgufWriter::tensors_of(g.value());
  change(meta, tensors);
  auto out = std::make_unique<Rewritten>();
  out->path = out->dir.path + "/model.gguf";
  testing::GgufWriter::write(out->path, meta, tensors);
  return out;
}

std::string load_error(const std::string& path) {
  auto m = Model::load(path);
  return m.ok() ? "" : m.error();
}

#define EXPECT_CONTAINS(s, part) EXPECT_NE((s).find(part), std::string::npos) << (s)

TEST(GgufModel, RewrittenFixtureLoadsAndAgrees) {
  auto same = rewrite([](auto&, auto&) {});
  auto a = Model::load(testing::data_dir(kFixture));
  auto b = Model::load(same->path);
  ASSERT_TRUE(a.ok()) << a.error();
  ASSERT_TRUE(b.ok()) << b.error();
  EXPECT_EQ(b.value()->config().num_layers, 4);
  EXPECT_TRUE(b.value()->has_mtp());
  const std::vector<int32_t> ids = {1, 2, 3, 500, 3975};
  auto sa = a.value()->new_state(), sb = b.value()->new_state();
  std::vector<float> la, lb;
  a.value()->forward(sa, ids, {}, nullptr, &la);
  b.value()->forward(sb, ids, {}, nullptr, &lb);
  ASSERT_FALSE(la.empty());
  EXPECT_EQ(la, lb);
}

TEST(GgufModel, MissingOrWrongMetadataIsNamed) {
  auto r = rewrite([](GgufMetadata& m, auto&) { m.erase("qwen3next.expert_count"); });
  std::string e = load_error(r->path);
  EXPECT_CONTAINS(e, "metadata key 'qwen3next.expert_count' is missing");
  EXPECT_CONTAINS(e, r->path);
  r = rewrite([](GgufMetadata& m, auto&) { m["general.architecture"] = "llama"; });
  EXPECT_CONTAINS(load_error(r->path), "architecture 'llama'; qnext runs only 'qwen3next'");
  r = rewrite([](GgufMetadata& m, auto&) { m["qwen3next.ssm.time_step_rank"] = -4; });
  EXPECT_CONTAINS(load_error(r->path), "'qwen3next.ssm.time_step_rank' is -4, expected a non-negative 32-bit integer");
  r = rewrite([](GgufMetadata& m, auto&) { m["qwen3next.attention.recurrent_layers"] = {true, true}; });
  EXPECT_CONTAINS(load_error(r->path), "recurrent_layers has 2 entries for 4 layers");
  r = rewrite([](GgufMetadata& m, auto&) { m["qwen3next.ssm.inner_size"] = 250u; });
  EXPECT_CONTAINS(load_error(r->path), "ssm.inner_size 250 is not a multiple of ssm.time_step_rank 4");
  // Values config.json's checks reject come back from them, naming the file.
  r = rewrite([](GgufMetadata& m, auto&) { m["qwen3next.expert_used_count"] = 9u; });
  e = load_error(r->path);
  EXPECT_CONTAINS(e, r->path);
  EXPECT_CONTAINS(e, "num_experts_per_tok");
}

TEST(GgufModel, MissingOrWrongTensorsAreNamed) {
  using Tensors = std::vector<testing::GgufTensorOut>;
  auto drop = [](const std::string& name) {
    return [name](GgufMetadata&, Tensors& t) {
      std::erase_if(t, [&](const auto& x) { return x.name == name; });
    };
  };
  auto r = rewrite(drop("blk.1.ssm_a"));
  EXPECT_CONTAINS(load_error(r->path), "tensor 'blk.1.ssm_a' not found");
  r = rewrite(drop("blk.2.attn_gate.weight"));
  EXPECT_CONTAINS(load_error(r->path), "tensor 'blk.2.attn_gate.weight' not found");
  r = rewrite([](GgufMetadata&, Tensors& t) {
    for (auto& x : t)
      if (x.name == "blk.0.ssm_norm.weight") x.shape = {8, 8}, x.bytes.resize(64 * 4);
  });
  EXPECT_CONTAINS(load_error(r->path), "tensor 'blk.0.ssm_norm.weight' has shape [8, 8], expected [64]");
  // A type qnext has no kernels for (IQ2_XXS: 66 bytes per 256 weights).
  r = rewrite([](GgufMetadata&, Tensors& t) {
    for (auto& x : t)
      if (x.name == "blk.3.attn_k.weight") x.type = 16, x.bytes.assign(size_t(x.shape[0]) * 66, 0);
  });
  std::string e = load_error(r->path);
  EXPECT_CONTAINS(e, "tensor 'blk.3.attn_k.weight' is stored as IQ2_XXS, which qnext does not compute yet");
  // Norms must be float.
  r = rewrite([](GgufMetadata&, Tensors& t) {
    for (auto& x : t)
      if (x.name == "output_norm.weight") x.type = 8, x.bytes.assign(256 / 32 * 34, 0);
  });
  EXPECT_CONTAINS(load_error(r->path), "tensor 'output_norm.weight' is Q8_0, expected F32, F16 or BF16");
  // Without the MTP block the model loads, without MTP.
  r = rewrite([](GgufMetadata&, Tensors& t) { std::erase_if(t, [](const auto& x) { return x.name.rfind("blk.4.", 0) == 0; }); });
  auto m = Model::load(r->path);
  ASSERT_TRUE(m.ok()) << m.error();
  EXPECT_FALSE(m.value()->has_mtp());
}

TEST(GgufModel, TruncatedFileIsAnError) {
  auto g = GgufCheckpoint::open(testing::data_dir(kFixture));
  ASSERT_TRUE(g.ok());
  testing::TempDir d;
  std::ifstream in(g->path(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(d.path + "/cut.gguf", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
  EXPECT_CONTAINS(load_error(d.path + "/cut.gguf"), "runs past the end of the file: truncated?");
}

}  // namespace
}  // namespace qnext
