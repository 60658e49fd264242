// `qnext info --model DIR`: what the checkpoint is and what running it costs.
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/memory_info.h"
#include "runtime/expert_cache.h"
#include "runtime/expert_parallel.h"

namespace qnext::cli {

void register_info(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "Architecture summary, parameter counts, weight and state bytes");
  auto model_dir = std::make_shared<std::string>();
  auto ranks = std::make_shared<int>(0);
  cmd->add_option("--model,-m", *model_dir, "Model directory (config.json + safetensors)")->required();
  cmd->add_option("--ranks", *ranks, "Also show each rank's weight bytes when N processes share the model "
                                     "(mpirun -np N; default: this job's ranks)")->check(CLI::Range(1, 4096));
  cmd->callback([model_dir, ranks, &exit_code] {
    auto model = load_model_or_report(*model_dir, 1, "", "f32", "off");
    if (!model) {
      exit_code = 1;
      return;
    }
    const Config& c = model->config();
    int n_attn = 0;
    for (auto t : c.layer_types) n_attn += t == LayerType::FullAttention;
    std::printf("model:            %s (qwen3_next)\n", model_dir->c_str());
    std::printf("layers:           %d (%d Gated DeltaNet, %d gated attention)\n", c.num_layers, c.num_layers - n_attn, n_attn);
    std::printf("hidden:           %d, vocab %d, tied embeddings: %s\n", c.hidden_size, c.vocab_size,
                c.tie_word_embeddings ? "yes" : "no");
    std::printf("attention:        %d q / %d kv heads, head_dim %d, rotary dims %d, rope_theta %g%s\n", c.num_q_heads,
                c.num_kv_heads, c.head_dim, c.rotary_dim, c.rope_theta, c.rope_scaling.yarn ? " (YaRN)" : "");
    if (c.rope_scaling.yarn)
      std::printf("yarn:             factor %g, original_max_position_embeddings %g\n", c.rope_scaling.factor,
                  c.rope_scaling.original_max_position);
    std::printf("deltanet:         %d key / %d value heads, Dk %d, Dv %d, conv kernel %d\n", c.linear_num_key_heads,
                c.linear_num_value_heads, c.linear_key_head_dim, c.linear_value_head_dim, c.linear_conv_kernel);
    std::printf("moe:              %d experts, top %d (norm_topk_prob %s), expert width %d, shared expert %d\n",
                c.num_experts, c.num_experts_per_tok, c.norm_topk_prob ? "true" : "false", c.moe_intermediate_size,
                c.shared_expert_intermediate_size);
    std::printf("mtp:              %s\n", model->has_mtp() ? "present (mtp.* tensors: self-speculative decoding available)"
                                                           : "absent (no mtp.* tensors: runs without MTP)");
    const double total = double(model->parameter_count(false, true));
    const double active = double(model->parameter_count(true, false));
    std::printf("parameters:       %.3fB total (incl. MTP), %.3fB active per token\n", total / 1e9, active / 1e9);
    const auto& w = model->weights();
    std::string format = w.quant.method == QuantMethod::None ? "as stored (no quantization_config)"
                                                            : w.quant.summary() + " (config.json quantization_config)";
    if (w.gguf.file_count() > 0) format = "GGUF (llama.cpp), blocks used as stored";
    std::printf("format:           %s\n", format.c_str());
    struct Tally {
      size_t matrices = 0;
      double weights = 0, bytes = 0;
    };
    std::map<DType, Tally> by_type;  // matrices by stored format
    w.for_each_matrix([&](const Matrix& m) {
      Tally& t = by_type[m.dtype];
      t.matrices += 1, t.weights += double(m.rows) * double(m.cols), t.bytes += double(m.bytes());
    });
    std::string formats;
    for (const auto& [type, t] : by_type) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s%zu %s (%.3g bytes/weight incl. scales)", formats.empty() ? "" : ", ", t.matrices,
                    std::string(dtype_name(type)).c_str(), t.bytes / t.weights);
      formats += buf;
    }
    std::printf("matrices:         %s\n", formats.c_str());
    std::printf("weights:          %s in %zu file(s)\n", human_bytes(double(model->weight_bytes())).c_str(),
                model->weights().file_count());
    if (auto plan = plan_memory(w)) {
      const MemoryPlan& p = plan.value();
      std::printf("memory:           %s to run from memory (%s available now); with less, --mem-budget keeps the dense "
                  "%s resident and the %s of routed experts in a cache (smallest budget %s: one layer's %d experts)\n",
                  human_bytes(double(p.total_bytes)).c_str(), human_bytes(double(available_memory_bytes())).c_str(),
                  human_bytes(double(p.dense_bytes)).c_str(), human_bytes(double(p.routed_bytes)).c_str(),
                  human_bytes(double(p.min_budget())).c_str(), p.layer_experts);
      // Expert parallelism: rank r holds experts e with e % N == r of every layer; rank 0 also the dense.
      const int N = *ranks > 0 ? *ranks : parallel_world().size;
      if (N > 1) {
        const int E = c.num_experts;
        auto share = [&](int r) { return double(p.routed_bytes) * double((E - r + N - 1) / N) / double(E); };
        const std::string others = N > 2 ? "ranks 1.." + std::to_string(N - 1) : "rank 1";
        const std::string each = share(N - 1) == share(1) ? human_bytes(share(1))
                                                          : human_bytes(share(N - 1)) + "-" + human_bytes(share(1));
        std::printf("ranks:            with %d (mpirun -np %d): rank 0 holds %s (dense %s + %d of %d experts per layer), "
                    "%s %s each\n", N, N, human_bytes(double(p.dense_bytes) + share(0)).c_str(),
                    human_bytes(double(p.dense_bytes)).c_str(), (E + N - 1) / N, E, others.c_str(), each.c_str());
      }
    }
    std::printf("state:            %s fixed per sequence (DeltaNet) + %s per token of context (KV, f32%s; %s with "
                "--kv-type f16, %s with q8_0)\n",
                human_bytes(double(fixed_state_bytes(c))).c_str(),
                human_bytes(double(kv_bytes_per_token(c, model->has_mtp()))).c_str(), model->has_mtp() ? ", incl. MTP" : "",
                human_bytes(double(kv_bytes_per_token(c, model->has_mtp(), DType::F16))).c_str(),
                kv_type_fits(DType::Q8_0, c.head_dim)
                    ? human_bytes(double(kv_bytes_per_token(c, model->has_mtp(), DType::Q8_0))).c_str()
                    : "n/a (head_dim not a multiple of 32)");
  });
}

}  // namespace qnext::cli
