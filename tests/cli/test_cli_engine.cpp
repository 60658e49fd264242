// The qnext command end to end: info, logits (prefill, --decode, --mtp-out), generate, synth,
// and clear errors for bad input.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/run.h"
#include "core/cpu.h"
#include "io/npy.h"
#include "kernels/gemm_bf16.h"
#include "kernels/quant.h"
#include "model/qwen3_next.h"
#include "model/state.h"

namespace fs = std::filesystem;

namespace qnext {
namespace {

using testing::data_dir;
using testing::qnext_bin;
using testing::run;

std::string ids_csv(const std::vector<int32_t>& ids, size_t n) {
  std::string s;
  for (size_t i = 0; i < n && i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

TEST(CliEngine, InfoDescribesTheModel) {
  auto r = run(qnext_bin() + " info --model " + data_dir("tiny-b"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("4 (3 Gated DeltaNet, 1 gated attention)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mtp:              present"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("64 experts, top 8"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("per token of context"), std::string::npos) << r.output;
}

TEST(CliEngine, LogitsPrefillDecodeAndMtpMatchReference) {
  testing::Reference ref("tiny-b");
  const auto prompt = ref.ids("prompt_ids");
  const int T = 70, V = 2048;  // crosses one chunk boundary
  const std::string ids = ids_csv(prompt, size_t(T));
  const std::string out = testing::temp_path("prefill.npy"), dec = testing::temp_path("decode.npy"), mtp = testing::temp_path("mtp.npy");
  auto r = run(qnext_bin() + " logits -t 2 --model " + data_dir("tiny-b") + " --ids " + ids + " --out " + out +
               " --mtp-out " + mtp);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run(qnext_bin() + " logits -t 2 --decode --model " + data_dir("tiny-b") + " --ids " + ids + " --out " + dec);
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // The reference prefilled all 150 tokens; causality makes its first 70 rows ours.
  const auto want = ref.f32("prefill_logits");
  for (const auto& path : {out, dec}) {
    auto a = read_npy_f32(path);
    ASSERT_TRUE(a.ok()) << a.error();
    ASSERT_EQ(a->shape, (std::vector<int64_t>{T, V}));
    EXPECT_LE(testing::max_abs_diff(a->data.data(), want.data(), size_t(T) * V), 2e-3f) << path;
  }
  auto m = read_npy_f32(mtp);
  ASSERT_TRUE(m.ok()) << m.error();
  ASSERT_EQ(m->shape, (std::vector<int64_t>{T - 1, V}));
  EXPECT_LE(testing::max_abs_diff(m->data.data(), ref.f32("mtp_logits").data(), size_t(T - 1) * V), 2e-3f);
  for (const auto& p : {out, dec, mtp}) fs::remove(p);
}

TEST(CliEngine, GenerateIsGreedyAndMatchesReference) {
  testing::Reference ref("tiny-b");
  const auto prompt = ref.ids("prompt_ids");
  const auto gen = ref.ids("gen_ids");
  const std::string file = testing::temp_path("ids.json");
  std::ofstream(file) << nlohmann::json(prompt).dump();
  // The weights copied into memory (the default for a model that fits, and --no-mmap) or read
  // through the map (--mmap): the same tokens.
  for (const char* placement : {"", " --mmap", " --no-mmap"}) {
    auto r = run(qnext_bin() + " generate --model " + data_dir("tiny-b") + " --ids-file " + file + " -n 12 --print-ids" +
                 placement);
    ASSERT_EQ(r.exit_code, 0) << placement << ": " << r.output;
    EXPECT_NE(r.output.find(ids_csv(gen, 12) + "\n"), std::string::npos) << placement << ": " << r.output;
  }
  auto r = run(qnext_bin() + " generate --model " + data_dir("tiny-b") + " --ids-file " + file + " -n 1 --mmap --no-mmap");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--mmap excludes --no-mmap"), std::string::npos) << r.output;
  r = run(qnext_bin() + " generate --model " + data_dir("tiny-b") + " --ids-file " + file + " -n 1 --quantize q8 --no-mmap");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--no-mmap: with --quantize"), std::string::npos) << r.output;
  fs::remove(file);
}

TEST(CliEngine, BadInputGivesClearErrors) {
  auto r = run(qnext_bin() + " logits --model /nonexistent/model --ids 1,2 --out " + testing::temp_path("x.npy"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("/nonexistent/model/config.json: cannot open"), std::string::npos) << r.output;
  r = run(qnext_bin() + " logits --model " + data_dir("tiny-b") + " --ids 1,99999 --out " + testing::temp_path("x.npy"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("token id 99999 at index 1 is outside the vocabulary [0, 2048)"), std::string::npos) << r.output;
  r = run(qnext_bin() + " generate --model " + data_dir("tiny-b") + " --ids 1,x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("'x' is not an integer"), std::string::npos) << r.output;
  // Ids that used to wrap or round: 2^32 + 1 ran as token 1, 5e9 and 2.7 in a file likewise.
  r = run(qnext_bin() + " generate --model " + data_dir("tiny-b") + " --ids 4294967297");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("'4294967297' is not a token id"), std::string::npos) << r.output;
  for (const char* list : {"[1, 5e9]", "[1, 2.7]", "[1, -3]"}) {
    const std::string f = testing::temp_path("ids.json");
    std::ofstream(f) << list;
    r = run(qnext_bin() + " generate --model " + data_dir("tiny-b") + " --ids-file " + f);
    EXPECT_NE(r.exit_code, 0) << list;
    EXPECT_NE(r.output.find("element 1"), std::string::npos) << list << ": " << r.output;
  }
  r = run(qnext_bin() + " generate --model " + data_dir("tiny-b") + " --ids 1,2 -n -1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("-n"), std::string::npos) << r.output;
  // More threads than the hardware: clamped with a note, not thousands of threads or an abort.
  r = run(qnext_bin() + " generate --model " + data_dir("tiny-b") + " --ids 1,2 -n 2 -t 100000");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("more than the"), std::string::npos) << r.output;
}

// `qnext bench --json`: the fields a script reads, with numbers that make sense.
TEST(CliEngine, BenchPrintsJsonWithThroughputAndRoofline) {
  auto r = run(qnext_bin() + " bench --model " + data_dir("tiny-b") + " -p 16 -n 4 -r 2 -t 2 --depth 8 --kv-type f16 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_GT(j.at("prefill_tok_s").get<double>(), 0);
  EXPECT_GT(j.at("decode_tok_s").get<double>(), 0);
  EXPECT_LE(j.at("decode_tok_s_min").get<double>(), j.at("decode_tok_s_max").get<double>());
  EXPECT_GT(j.at("peak_rss_bytes").get<double>(), j.at("weights_bytes").get<double>() / 2);
  EXPECT_GT(j.at("roofline_fraction").get<double>(), 0);
  EXPECT_GT(j.at("bytes_per_token").get<double>(), 0);
  // The DeltaNet states read and written per token, counted here from tiny-b's config: each linear
  // layer's conv window ((K-1) x channels) and recurrent state (value heads x Dk x Dv), in floats.
  auto loaded = Model::load(data_dir("tiny-b"));
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  const Config& c = loaded.value()->config();
  double state_floats = 0;
  for (LayerType t : c.layer_types)
    if (t == LayerType::LinearAttention)
      state_floats += double(c.linear_conv_kernel - 1) * double(2 * c.linear_num_key_heads * c.linear_key_head_dim +
                                                                 c.linear_num_value_heads * c.linear_value_head_dim) +
                      double(c.linear_num_value_heads) * c.linear_key_head_dim * c.linear_value_head_dim;
  EXPECT_GT(state_floats, 0);
  EXPECT_EQ(j.at("state_bytes_per_token").get<double>(), 2.0 * 4.0 * state_floats);
  EXPECT_GT(j.at("roofline_fraction_with_state").get<double>(), j.at("roofline_fraction").get<double>());
  EXPECT_EQ(j.at("depth").get<int>(), 8);
  EXPECT_GT(j.at("decode_tok_s_depth0").get<double>(), 0);  // measured beside the depth run
  EXPECT_GT(j.at("decode_depth_ratio").get<double>(), 0);
  EXPECT_EQ(j.at("kv_type").get<std::string>(), "f16");
}

// `qnext bench -n 0` measures prefill alone: no bandwidth probe (the decode's roofline), so no
// roofline line and a zero bandwidth in the JSON.
TEST(CliEngine, BenchWithoutDecodeSkipsTheProbe) {
  auto r = run(qnext_bin() + " bench --model " + data_dir("tiny-b") + " -p 16 -n 0 -r 1 -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("pp16"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("roofline"), std::string::npos) << r.output;
  // The activation mode is reported beside the ISA (here exact mode, whatever the environment had).
  r = run("QNEXT_ACTIVATIONS=f32 " + qnext_bin() + " bench --model " + data_dir("tiny-b") + " -p 16 -n 0 -r 1 -t 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_GT(j.at("prefill_tok_s").get<double>(), 0);
  EXPECT_EQ(j.at("measured_bandwidth_gb_s").get<double>(), 0);
  EXPECT_EQ(j.at("activations").get<std::string>(), "f32");
}

// `qnext kld`: zero-ish for an f16 KV cache, clearly above zero for 4-bit weights.
TEST(CliEngine, KldComparesAgainstTheOriginal) {
  testing::Reference ref("tiny-b");
  const std::string ids = ids_csv(ref.ids("prompt_ids"), 100);
  auto kld = [&](const std::string& args) {
    auto r = run(qnext_bin() + " kld -t 2 --model " + data_dir("tiny-b") + " --ids " + ids + " --json " + args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(r.output.substr(r.output.find('{')));
  };
  const auto half = kld("--kv-type f16");
  EXPECT_EQ(half.at("positions").get<int>(), 100);
  EXPECT_LT(half.at("mean_kld").get<double>(), 1e-6);
  EXPECT_GE(half.at("top1_agreement").get<double>(), 0.99);
  const auto q8 = kld("--kv-type q8_0");  // ~2.4e-6 (test_kv_cache has the bounds' reasons)
  EXPECT_GT(q8.at("mean_kld").get<double>(), half.at("mean_kld").get<double>());
  EXPECT_LT(q8.at("mean_kld").get<double>(), 1e-4);
  EXPECT_GE(q8.at("top1_agreement").get<double>(), 0.99);
  const auto q4 = kld("--quantize q4");
  EXPECT_GT(q4.at("mean_kld").get<double>(), 0.1);  // tiny-b at 4 bits: ~1 (see test_quant)
  EXPECT_LT(q4.at("top1_agreement").get<double>(), 0.9);

  auto r = run(qnext_bin() + " kld --model " + data_dir("tiny-b") + " --ids 1,2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("give --quantized DIR, --quantize TYPE, --kv-type f16|q8_0 or --exact"), std::string::npos)
      << r.output;
  r = run(qnext_bin() + " bench --model " + data_dir("tiny-b") + " --kv-type q4 -p 4 -n 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--kv-type: 'q4' is not f32, f16 or q8_0"), std::string::npos) << r.output;
}

// `qnext kld --exact`: the default products against exact mode (float activations) on one model:
// nothing changes for float weights; the int8-activation K-quant and Q8_0 paths differ a little;
// so do BF16's prefill GEMMs with QNEXT_ACTIVATIONS=bf16 (activations rounded to bf16).
TEST(CliEngine, KldExactBoundsTheFastProducts) {
  testing::Reference ref("tiny-b");
  const std::string ids = ids_csv(ref.ids("prompt_ids"), 64);
  auto kld = [&](const std::string& model, const std::string& env = "QNEXT_ACTIVATIONS=int8 ") {
    auto r = run(env + qnext_bin() + " kld -t 2 --exact --model " + data_dir(model) + " --ids " + ids + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(r.output.substr(r.output.find('{')));
  };
  EXPECT_EQ(kld("tiny-b").at("mean_kld").get<double>(), 0.0);  // BF16: no int8 path
  const auto bf16 = kld("tiny-b", "QNEXT_ACTIVATIONS=bf16 ");
  if (active_isa() == Isa::Avx512 && cpu_has_avx512_bf16()) {
    EXPECT_GT(bf16.at("mean_kld").get<double>(), 0.0);
  } else {
    EXPECT_EQ(bf16.at("mean_kld").get<double>(), 0.0);  // no vdpbf16ps: float products
  }
  EXPECT_LT(bf16.at("mean_kld").get<double>(), 5e-3);  // ~5.7e-4 on Zen 5
  EXPECT_GE(bf16.at("top1_agreement").get<double>(), 0.95);
  const auto k = kld("gguf/tiny-k-q4_k_m");  // Q4_K / Q6_K with int8 activations
  // The 64-token prompt gives tiny-k's experts many tokens each: on VNNI they take the int8 GEMM;
  // without it prefill dequantizes the weights and multiplies in float (as exact mode does).
  if (vnni_kernels(active_isa())) {
    EXPECT_GT(k.at("mean_kld").get<double>(), 0.0);
  }
  EXPECT_LT(k.at("mean_kld").get<double>(), 0.1);
  EXPECT_GE(k.at("top1_agreement").get<double>(), 0.9);
}

// `qnext kld --exact --decode`: one token at a time every product takes its decoding path, int4's
// int8 kernels on a SIMD ISA (W4A16 and AWQ) and FP8's bf16 stream where the CPU has AVX512-BF16
// and GFNI, so the fast default moves the distributions a little; BF16 has no such path, nor
// FP8 elsewhere (its float rows are exact mode's).
TEST(CliEngine, KldDecodeBoundsTheFastDecodingProducts) {
  testing::Reference ref("tiny-b");
  const std::string ids = ids_csv(ref.ids("prompt_ids"), 24);
  auto kld = [&](const std::string& model) {
    auto r = run(qnext_bin() + " kld -t 2 --exact --decode --model " + data_dir(model) + " --ids " + ids + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(r.output.substr(r.output.find('{')));
  };
  EXPECT_EQ(kld("tiny-b").at("mean_kld").get<double>(), 0.0);
  for (const char* model : {"tiny-b-w4a16", "tiny-b-awq"}) {
    const auto k = kld(model);
    EXPECT_EQ(k.at("positions").get<int>(), 24) << model;
    if (active_isa() != Isa::Scalar) {
      EXPECT_GT(k.at("mean_kld").get<double>(), 0.0) << model;
    }
    EXPECT_LT(k.at("mean_kld").get<double>(), 0.02) << model;
    EXPECT_GE(k.at("top1_agreement").get<double>(), 0.9) << model;
  }
  // tiny-b's projections from the 128-wide hidden state stream (its narrower rows stay on float).
  const auto fp8 = kld("tiny-b-fp8");
  Bf16Terms terms;
  if (use_bf16_gemm(active_isa(), DType::F8_E4M3, 1, &terms)) {
    EXPECT_GT(fp8.at("mean_kld").get<double>(), 0.0);
    EXPECT_LT(fp8.at("mean_kld").get<double>(), 0.01);
    EXPECT_GE(fp8.at("top1_agreement").get<double>(), 0.9);
  } else {
    EXPECT_EQ(fp8.at("mean_kld").get<double>(), 0.0);
  }
}

TEST(CliEngine, SynthWritesALoadableShardedCheckpoint) {
  const std::string dir = testing::temp_path("synth");
  auto r = run(qnext_bin() + " synth --preset tiny --layers 4 --experts 8 --seed 3 --shard-gb 0.02 --out " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  // embedding and lm_head (38 MB each) get shards of their own, the layers fill the others
  EXPECT_TRUE(fs::exists(dir + "/model-00004-of-00004.safetensors"));
  r = run(qnext_bin() + " info --model " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("8 experts, top 4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mtp:              present"), std::string::npos) << r.output;
  r = run(qnext_bin() + " generate --model " + dir + " --ids 1,2,3,4,5 -n 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The same seed gives the same bytes.
  const std::string dir2 = testing::temp_path("synth2");
  r = run(qnext_bin() + " synth --preset tiny --layers 4 --experts 8 --seed 3 --shard-gb 0.02 --out " + dir2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream a(dir + "/model-00001-of-00004.safetensors", std::ios::binary), b(dir2 + "/model-00001-of-00004.safetensors", std::ios::binary);
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(a), {}, std::istreambuf_iterator<char>(b), {}));
  fs::remove_all(dir);
  fs::remove_all(dir2);
}

}  // namespace
}  // namespace qnext
