// Published FP8 / int4 checkpoints as input to qnext's own quantization: `qnext quantize` writes
// the same matrices `--quantize` makes at load (requantized from the dequantized rows), drops the
// scale tensors and the quantization_config, and `qnext info` reports each format.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/run.h"
#include "model/qwen3_next.h"

namespace qnext {
namespace {

namespace fs = std::filesystem;

std::vector<float> prefill_logits(Model& model, const std::vector<int32_t>& ids) {
  SequenceState st = model.new_state();
  ForwardOptions opt;
  opt.all_logits = true;
  std::vector<float> logits;
  model.forward(st, ids, opt, nullptr, &logits);
  return logits;
}

class Requantize : public ::testing::TestWithParam<const char*> {};

TEST_P(Requantize, FileEqualsLoadTimeQuantization) {
  const std::string src = testing::data_dir(GetParam());
  const std::string out = testing::temp_path(std::string(GetParam()) + "_q8");
  fs::remove_all(out);
  auto r = testing::run(testing::qnext_bin() + " quantize --model " + src + " --type q8 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Q8_0 / Q4_0 need rows of whole blocks of 32: tiny-b's expert down_proj (K = 16) stays as
  // stored, with its scales, and so does the quantization_config that describes them.
  auto ck = Checkpoint::open(out);
  ASSERT_TRUE(ck.ok()) << ck.error();
  size_t requantized = 0, kept = 0;
  for (const auto& f : ck->files())
    for (const auto& t : f.tensors()) {
      if (t.quant) ++requantized;
      const bool codes = t.dtype == DType::F8_E4M3 || t.name.find(".weight_packed") != std::string::npos;
      if (!codes) continue;
      ++kept;
      EXPECT_NE(t.name.find(".experts."), std::string::npos) << t.name;
      EXPECT_NE(t.name.find("down_proj"), std::string::npos) << t.name;
    }
  EXPECT_GT(requantized, 500u);
  EXPECT_GT(kept, 0u);
  {
    std::ifstream in(out + "/config.json");
    EXPECT_TRUE(nlohmann::json::parse(in).contains("quantization_config"));
  }
  auto from_file = Model::load(out);
  ASSERT_TRUE(from_file.ok()) << from_file.error();
  auto at_load = Model::load(src, QuantRecipe::Q8);
  ASSERT_TRUE(at_load.ok()) << at_load.error();
  auto original = Model::load(src);
  ASSERT_TRUE(original.ok()) << original.error();
  testing::Reference ref(GetParam());
  const auto ids = ref.ids("prompt_ids");
  const auto a = prefill_logits(*from_file.value(), ids), b = prefill_logits(*at_load.value(), ids);
  EXPECT_EQ(a, b) << "qnext quantize and --quantize differ";
  // Requantized from the stored weights, the logits move from the original's about as much as q8
  // moves tiny-b's own BF16 logits (the same weights before they were stored quantized).
  const auto c = prefill_logits(*original.value(), ids);
  const int V = original.value()->config().vocab_size;
  auto bf16 = Model::load(testing::data_dir("tiny-b")), bf16_q8 = Model::load(testing::data_dir("tiny-b"), QuantRecipe::Q8);
  ASSERT_TRUE(bf16.ok() && bf16_q8.ok());
  const float q8_shift = testing::max_abs_diff(prefill_logits(*bf16.value(), ids), prefill_logits(*bf16_q8.value(), ids));
  const float shift = testing::max_abs_diff(a, c);
  std::printf("  logits moved by %.3g (q8 of tiny-b's BF16: %.3g)\n", shift, q8_shift);
  EXPECT_LE(shift, 2 * q8_shift);
  EXPECT_EQ(testing::argmax(a.data() + a.size() - size_t(V), size_t(V)), testing::argmax(c.data() + c.size() - size_t(V), size_t(V)));
  fs::remove_all(out);
}
INSTANTIATE_TEST_SUITE_P(Fixtures, Requantize, ::testing::Values("tiny-b-fp8", "tiny-b-w4a16", "tiny-b-awq"),
                         [](const auto& info) { return std::string(info.param).substr(7); });

TEST(Info, ReportsFormatAndQuantizedMatrices) {
  struct C { const char* model; std::vector<std::string> want; };
  for (const C& c : {C{"tiny-b-fp8", {"format:           fp8 e4m3, blocks 128x128", "989 F8_E4M3"}},
                     C{"tiny-b-w4a16", {"int4, group 128, symmetric", "793 I4"}},
                     C{"tiny-b-awq", {"int4, group 32, asymmetric", "784 I4"}},
                     C{"tiny-b", {"format:           as stored", "BF16"}}}) {
    auto r = testing::run(testing::qnext_bin() + " info --model " + testing::data_dir(c.model));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const auto& w : c.want) EXPECT_NE(r.output.find(w), std::string::npos) << c.model << ": " << w << "\n" << r.output;
  }
}

}  // namespace
}  // namespace qnext
