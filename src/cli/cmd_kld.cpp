// `qnext kld`: how far a quantized model's next-token distributions are from the original's, or
// (--exact) how far the fast products (int8 or bf16 activations) are from exact mode's.
#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/cpu.h"

namespace qnext::cli {

void register_kld(CLI::App& app, int& exit_code) {
  struct Opts {
    std::string model, quantized, ids_file, ids, quantize, kv_type = "f32";
    int threads = 0;
    bool json = false, exact = false, decode = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("kld", "KL divergence and top-1 agreement of a quantized model (or an f16 or q8_0 KV cache) against the original");
  cmd->add_option("--model,-m", o->model, "Full-precision model directory (or the model whose fast products --exact checks)")->required();
  auto* q = cmd->add_option("--quantized", o->quantized, "Quantized model directory");
  auto* ql = cmd->add_option("--quantize", o->quantize, "Or: quantize --model at load time (q8, q4, q4-mixed)");
  q->excludes(ql);
  cmd->add_option("--kv-type", o->kv_type, "KV cache type of the compared run: f32 (default), f16 or q8_0");
  auto* f = cmd->add_option("--ids-file", o->ids_file, "JSON list of prompt token ids");
  auto* i = cmd->add_option("--ids", o->ids, "Comma-separated prompt token ids");
  f->excludes(i);
  cmd->add_option("--threads,-t", o->threads, "Threads (default: all cores)");
  cmd->add_flag("--exact", o->exact,
                "Run the original in exact mode (float activations, QNEXT_ACTIVATIONS=f32); alone, compares --model's "
                "default products (int8 activations over Q8_0, Q4_0, K-quants, int4, and FP8 prefill on AVX-512 "
                "VNNI + VBMI; bf16 ones over FP8 decoding and over FP8 and int4 prefill elsewhere on AVX512-BF16, "
                "and over BF16 with QNEXT_ACTIVATIONS=bf16) with its exact ones");
  cmd->add_flag("--decode", o->decode,
                "Feed the ids one token at a time, as decoding does (every product takes its one-token path), "
                "instead of as one prompt");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o, &exit_code] {
    exit_code = 1;
    if (o->quantized.empty() && o->quantize.empty() && o->kv_type == "f32" && !o->exact) {
      std::fprintf(stderr, "error: give --quantized DIR, --quantize TYPE, --kv-type f16|q8_0 or --exact\n");
      return;
    }
    auto ids = !o->ids_file.empty() ? read_ids_file(o->ids_file) : parse_ids(o->ids);
    if (!ids) {
      std::fprintf(stderr, "error: %s\n", ids.error().c_str());
      return;
    }
    const bool env_exact = exact_activations();  // QNEXT_ACTIVATIONS as the environment sets it
    auto logits_of = [&](const std::string& dir, const std::string& quantize, const std::string& kv_type, bool exact,
                         std::vector<float>* logits) {
      set_exact_activations(exact);
      auto model = load_model_or_report(dir, o->threads, quantize, kv_type);
      if (!model) return 0;
      if (auto st = check_ids(ids.value(), model->config().vocab_size); !st) {
        std::fprintf(stderr, "error: %s\n", st.error().c_str());
        return 0;
      }
      SequenceState state = model->new_state();
      ForwardOptions opt;
      if (!o->decode) {
        opt.all_logits = true;
        model->forward(state, ids.value(), opt, nullptr, logits);
        return model->config().vocab_size;
      }
      std::vector<float> step;  // [V]: the logits after each token
      logits->clear();
      for (const int32_t id : ids.value()) {
        model->forward(state, std::span<const int32_t>(&id, 1), opt, nullptr, &step);
        logits->insert(logits->end(), step.begin(), step.end());
      }
      return model->config().vocab_size;
    };
    std::vector<float> base, quant;
    const int V = logits_of(o->model, "", "f32", o->exact || env_exact, &base);
    if (!V) return;
    const int Vq = logits_of(o->quantized.empty() ? o->model : o->quantized, o->quantize, o->kv_type,
                             o->exact ? false : env_exact, &quant);
    if (Vq != V) {
      if (Vq) std::fprintf(stderr, "error: vocabularies differ (%d vs %d)\n", V, Vq);
      return;
    }
    // KL(P || Q) per position, P the original's next-token distribution.
    const size_t T = ids->size();
    double sum_kl = 0, max_kl = 0;
    size_t agree = 0;
    for (size_t t = 0; t < T; ++t) {
      const float* p = base.data() + t * size_t(V);
      const float* q = quant.data() + t * size_t(V);
      auto log_z = [&](const float* l) {
        double m = l[0], s = 0;
        for (int v = 1; v < V; ++v) m = std::max(m, double(l[v]));
        for (int v = 0; v < V; ++v) s += std::exp(l[v] - m);
        return m + std::log(s);
      };
      const double zp = log_z(p), zq = log_z(q);
      double kl = 0;
      int ap = 0, aq = 0;
      for (int v = 0; v < V; ++v) {
        const double lp = p[v] - zp, lq = q[v] - zq;
        kl += std::exp(lp) * (lp - lq);
        if (p[v] > p[ap]) ap = v;
        if (q[v] > q[aq]) aq = v;
      }
      sum_kl += kl;
      max_kl = std::max(max_kl, kl);
      agree += ap == aq;
    }
    const double mean_kl = sum_kl / double(T), top1 = double(agree) / double(T);
    if (o->json)
      std::printf("{\"positions\": %zu, \"mean_kld\": %.6g, \"max_kld\": %.6g, \"top1_agreement\": %.6g}\n", T, mean_kl,
                  max_kl, top1);
    else
      std::printf("positions %zu | mean KLD %.6g | max KLD %.6g | top-1 agreement %.2f%%\n", T, mean_kl, max_kl,
                  100 * top1);
    exit_code = 0;
  });
}

}  // namespace qnext::cli
