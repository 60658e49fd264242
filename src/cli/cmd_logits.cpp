// `qnext logits`: raw logits of the model for given token ids, as .npy.
// `qnext generate`: greedy continuation of given token ids.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "runtime/speculative.h"
#include "runtime/sampling.h"
#include "io/npy.h"

namespace qnext::cli {

namespace {

struct IdsInput {
  std::string ids, ids_file;
  void add_to(CLI::App* cmd) {
    auto* a = cmd->add_option("--ids", ids, "Comma-separated token ids");
    auto* b = cmd->add_option("--ids-file", ids_file, "File with a JSON list of token ids");
    a->excludes(b);
  }
  Result<std::vector<int32_t>> get(int vocab) const {
    auto r = !ids_file.empty() ? read_ids_file(ids_file) : parse_ids(ids);
    if (!r) return r;
    if (auto st = check_ids(r.value(), vocab); !st) return err(st.error());
    return r;
  }
};

int argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

}  // namespace

void register_logits(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    std::string out, mtp_out;
    IdsInput ids;
    bool decode = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("logits", "Write float32 logits [T, vocab] for token ids to a .npy file");
  o->model.add_to(cmd);
  o->ids.add_to(cmd);
  cmd->add_option("--out,-o", o->out, "Output .npy file")->required();
  cmd->add_flag("--decode", o->decode, "Feed the tokens one at a time (recurrent delta rule) instead of one prefill");
  cmd->add_option("--mtp-out", o->mtp_out, "Also write MTP logits [T-1, vocab] (slot t sees ids[t+1])");
  cmd->callback([o, &exit_code] {
    exit_code = 1;
    auto model = o->model.load_or_report();
    if (!model) return;
    const Config& c = model->config();
    auto ids = o->ids.get(c.vocab_size);
    if (!ids) {
      std::fprintf(stderr, "error: %s\n", ids.error().c_str());
      return;
    }
    const int T = int(ids->size()), V = c.vocab_size;
    if (!o->mtp_out.empty() && !model->has_mtp()) {
      std::fprintf(stderr, "error: --mtp-out: %s has no mtp.* tensors\n", o->model.dir.c_str());
      return;
    }
    SequenceState state = model->new_state();
    std::vector<float> logits, hidden;
    ForwardOptions opt;
    opt.all_logits = true;
    if (o->decode) {
      std::vector<float> step_logits, step_hidden;
      for (int t = 0; t < T; ++t) {
        model->forward(state, std::span<const int32_t>(ids->data() + t, 1), opt, &step_hidden, &step_logits);
        logits.insert(logits.end(), step_logits.begin(), step_logits.end());
        hidden.insert(hidden.end(), step_hidden.begin(), step_hidden.end());
      }
    } else {
      model->forward(state, *ids, opt, &hidden, &logits);
    }
    if (auto st = write_npy_f32(o->out, logits.data(), {T, V}); !st) {
      std::fprintf(stderr, "error: %s\n", st.error().c_str());
      return;
    }
    if (!o->mtp_out.empty()) {
      std::vector<float> mtp_logits;
      if (T > 1)
        model->mtp_forward(state, std::span<const int32_t>(ids->data() + 1, size_t(T - 1)), hidden.data(), nullptr,
                           &mtp_logits);
      if (auto st = write_npy_f32(o->mtp_out, mtp_logits.data(), {T - 1, V}); !st) {
        std::fprintf(stderr, "error: %s\n", st.error().c_str());
        return;
      }
    }
    exit_code = 0;
  });
}

void register_generate(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    IdsInput ids;
    int n = 16;
    bool print_ids = false;
    MtpFlags mtp;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("generate", "Greedy continuation of token ids");
  o->model.add_to(cmd);
  o->ids.add_to(cmd);
  cmd->add_option("-n,--n-tokens", o->n, "Tokens to generate")->check(CLI::Range(0, 1 << 30));
  cmd->add_flag("--print-ids", o->print_ids, "Print the generated ids, comma-separated (the default)");
  o->mtp.add_to(cmd);
  cmd->callback([o, &exit_code] {
    exit_code = 1;
    auto model = o->model.load_or_report();
    if (!model) return;
    const Config& c = model->config();
    auto ids = o->ids.get(c.vocab_size);
    if (!ids) {
      std::fprintf(stderr, "error: %s\n", ids.error().c_str());
      return;
    }
    using clock = std::chrono::steady_clock;
    SequenceState state = model->new_state();
    std::vector<float> logits;
    ForwardOptions opt;
    auto t0 = clock::now();
    std::unique_ptr<SpeculativeDecoder> spec;
    if (o->mtp.on()) {
      if (!model->has_mtp()) {
        std::fprintf(stderr, "error: the model has no MTP weights (mtp.*): --mtp needs them\n");
        return;
      }
      spec = std::make_unique<SpeculativeDecoder>(*model, o->mtp.options());
    }
    std::vector<float> hidden;
    model->forward(state, *ids, opt, spec ? &hidden : nullptr, &logits);
    if (spec) spec->fed(hidden);
    auto t1 = clock::now();
    std::vector<int32_t> out;
    if (spec) {  // speculative: the same greedy tokens, fewer main-model steps
      SamplingParams greedy;
      greedy.temperature = 0;
      Sampler sampler(greedy);
      std::vector<int32_t> fed(*ids), step_out;
      int32_t next = argmax(logits.data(), c.vocab_size);
      out.push_back(next);
      while (int(out.size()) < o->n) {
        spec->step(state, fed, next, sampler, {}, step_out);
        fed.push_back(next);
        const size_t take = std::min(step_out.size(), size_t(o->n) - out.size());
        spec->keep(state, int(take));
        fed.insert(fed.end(), step_out.begin(), step_out.begin() + ptrdiff_t(take) - 1);
        out.insert(out.end(), step_out.begin(), step_out.begin() + ptrdiff_t(take));
        next = out.back();
      }
    } else {
      for (int i = 0; i < o->n; ++i) {
        const int32_t next = argmax(logits.data(), c.vocab_size);
        out.push_back(next);
        if (i + 1 < o->n) model->forward(state, std::span<const int32_t>(&next, 1), opt, nullptr, &logits);
      }
    }
    auto t2 = clock::now();
    // generate is ids in, ids out (`qnext run` is its text counterpart), so the ids are always printed.
    for (size_t i = 0; i < out.size(); ++i) std::printf("%s%d", i ? "," : "", out[i]);
    std::printf("\n");
    const double pre = std::chrono::duration<double>(t1 - t0).count();
    const double dec = std::chrono::duration<double>(t2 - t1).count();
    std::fprintf(stderr, "prefill: %zu tokens in %.3f s (%.2f tok/s); decode: %d tokens in %.3f s (%.2f tok/s)\n",
                 ids->size(), pre, double(ids->size()) / pre, o->n - 1, dec, o->n > 1 ? (o->n - 1) / dec : 0.0);
    if (spec && o->mtp.verbose) std::fprintf(stderr, "%s\n", spec->stats().summary().c_str());
    exit_code = 0;
  });
}

}  // namespace qnext::cli
