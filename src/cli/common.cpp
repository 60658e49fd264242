#include "cli/common.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

#include "core/thread_pool.h"
#include "runtime/expert_cache.h"
#include "runtime/expert_parallel.h"

namespace qnext::cli {

Result<std::vector<int32_t>> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    const std::string item = text.substr(i, j - i);
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (item.find_first_not_of(" \t", used) != std::string::npos) throw std::invalid_argument(item);
      if (v < 0 || v > INT32_MAX) return err("--ids: '" + item + "' is not a token id (0.." + std::to_string(INT32_MAX) + ")");
      ids.push_back(int32_t(v));
    } catch (const std::exception&) {
      return err("--ids: '" + item + "' is not an integer token id");
    }
    i = j + 1;
  }
  if (ids.empty()) return err("--ids: no token ids given");
  return ids;
}

Result<std::vector<int32_t>> read_ids_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return err(path + ": cannot open");
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (!j.is_array()) return err(path + ": expected a JSON list of integer token ids");
    std::vector<int32_t> ids;
    for (size_t i = 0; i < j.size(); ++i) {  // 2.7 or 5e9 are not ids: no rounding, no wrapping
      const auto& v = j[i];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
        return err(path + ": element " + std::to_string(i) + " (" + v.dump() + ") is not a token id");
      ids.push_back(int32_t(v.get<int64_t>()));
    }
    if (ids.empty()) return err(path + ": empty list of ids");
    return ids;
  } catch (const nlohmann::json::exception& e) {
    return err(path + ": expected a JSON list of integer token ids: " + e.what());
  }
}

Status check_ids(const std::vector<int32_t>& ids, int vocab) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      return err("token id " + std::to_string(ids[i]) + " at index " + std::to_string(i) + " is outside the vocabulary [0, " +
                 std::to_string(vocab) + ")");
  return Ok{};
}

// Puts the routed experts in an expert cache when the model is larger than the budget. An explicit
// budget that cannot be met is an error; the automatic one falls back to the memory map (and the
// page cache) with a note.
// --mem-budget GB|auto|off: the expert cache when the model is larger (runtime/expert_cache.h).
// Returns the budget applied (0: off or unknown).
static Result<size_t> use_memory_budget(Model& model, const std::string& flag) {
  if (flag == "off") return size_t(0);
  const bool automatic = flag.empty() || flag == "auto";
  size_t budget = 0;
  if (automatic) {
    budget = default_memory_budget();
    if (budget == 0) return size_t(0);  // unknown: use the memory map
  } else {
    char* end = nullptr;
    const double gb = std::strtod(flag.c_str(), &end);
    if (end == flag.c_str() || *end != '\0' || !(gb > 0) || gb > 1e6)
      return err("--mem-budget: '" + flag + "' is not a number of GB, auto or off");
    budget = size_t(gb * 1e9);
  }
  const size_t need = model.weight_bytes();
  auto cache = apply_memory_budget(model, budget);
  if (!cache) {
    if (!automatic) return err("--mem-budget: " + cache.error());
    std::fprintf(stderr, "note: the model (%s) is larger than the memory available (%s) and cannot use the "
                 "expert cache (%s); running memory-mapped, the page cache decides what stays in memory\n",
                 human_bytes(double(need)).c_str(), human_bytes(double(budget)).c_str(), cache.error().c_str());
    return budget;
  }
  if (const ExpertCache* c = cache.value())
    std::fprintf(stderr,
                 "note: the model (%s) is larger than the memory budget (%s): dense weights (%s) resident, routed "
                 "experts in a cache of %d of %d (%s), read from disk %s\n",
                 human_bytes(double(need)).c_str(), human_bytes(double(budget)).c_str(),
                 human_bytes(double(c->plan().dense_bytes)).c_str(), c->capacity(), c->plan().expert_count,
                 human_bytes(double(size_t(c->capacity()) * c->plan().slot_bytes)).c_str(),
                 c->direct_reads() ? "past the page cache (O_DIRECT)" : "through the page cache (O_DIRECT refused here)");
  return budget;
}

// The kernel gives huge pages where it has free 2 MiB blocks; without them the copy decodes at the
// map's pace (seen once on a VM whose memory the page cache had fragmented): say so.
static void note_few_huge_pages(const Weights& w) {
  const size_t copied = w.file_bytes(), huge = w.huge_page_bytes();
  if (copied >= (size_t(256) << 20) && huge < copied / 2)
    std::fprintf(stderr, "note: the weights were copied into memory, but only %s of %s are on huge pages (memory "
                 "fragmented, or transparent huge pages off); decoding may be slower than it can be\n",
                 human_bytes(double(huge)).c_str(), human_bytes(double(copied)).c_str());
}

// Copies the weight files into memory on huge pages (MappedFile::copy_into_memory) or leaves them
// mapped: see load_model_or_report's mmap. Automatically, a failed copy is a note and the map stays.
// budget: what use_memory_budget applied (0: off or unknown, so no automatic copy).
static Status place_weights(const Model& model, const std::string& mmap, size_t budget, bool quantized_at_load,
                            bool shared) {
  if (mmap == "on") return Ok{};
  const Weights& w = model.weights();
  if (mmap == "off") {
    if (model.expert_source()) return err("--no-mmap: the model is larger than the memory budget (its experts are in a cache)");
    if (shared) return err("--no-mmap: under mpirun each rank uses only its share of the files");
    if (quantized_at_load) return err("--no-mmap: with --quantize the float files are read once, while loading");
    if (Status st = w.copy_into_memory(); !st) return err("--no-mmap: " + st.error());
    note_few_huge_pages(w);
    return Ok{};
  }
  // Not with an expert cache or a share (only some weights are used), nor --quantize (the float files
  // are read once, at load), nor --mem-budget off (map everything).
  if (model.expert_source() || shared || quantized_at_load || budget == 0) return Ok{};
  // Anonymous memory cannot be dropped under pressure as the page cache can: a tenth of the budget
  // stays for what comes later (KV caches, a server's state cache), and an explicit --mem-budget
  // above what is free does not make room (the copy would swap or be killed; the map only slows).
  if (w.file_bytes() > std::min(budget, default_memory_budget()) / 10 * 9) return Ok{};
  if (Status st = w.copy_into_memory(); !st) {
    std::fprintf(stderr, "note: %s\n", st.error().c_str());
    return Ok{};
  }
  note_few_huge_pages(w);
  return Ok{};
}

// Under mpirun: the first model a process loads is shared by every rank (runtime/expert_parallel.h);
// a second one (kld's reference) runs on rank 0 alone. Rank 0 goes on with the shared one; the
// other ranks serve their experts until rank 0 is done, then exit.
static bool join_expert_parallel(Model& m) {
  if (auto all = parallel_check_loads(&m, ""); !all) {
    std::fprintf(stderr, "error: %s\n", all.error().c_str());
    return false;
  }
  if (parallel_world().follower()) {
    Status st = serve_expert_share(m);
    if (!st) std::fprintf(stderr, "error: %s\n", st.error().c_str());
    parallel_finalize(st ? 0 : 1);
    std::exit(st ? 0 : 1);
  }
  m.set_expert_peers(make_mpi_expert_peers(m));
  return true;
}

std::unique_ptr<Model> load_model_or_report(const std::string& dir, int threads, const std::string& quantize,
                                            const std::string& kv_type, const std::string& mem_budget,
                                            bool expert_prefetch, const std::string& mmap) {
  // More threads than the hardware has only contend (and thousands fail to start): clamped.
  const int hardware = int(std::max(1u, std::thread::hardware_concurrency()));
  if (threads > hardware) std::fprintf(stderr, "note: -t %d is more than the %d hardware threads; using %d\n", threads, hardware, hardware);
  set_num_threads(threads > 0 ? std::min(threads, hardware) : hardware);
  auto recipe = parse_recipe(quantize);
  if (!recipe) {
    std::fprintf(stderr, "error: --quantize: %s\n", recipe.error().c_str());
    return nullptr;
  }
  DType kv = DType::F32;
  if (!parse_kv_type(kv_type, &kv)) {
    std::fprintf(stderr, "error: --kv-type: '%s' is not f32, f16 or q8_0\n", kv_type.c_str());
    return nullptr;
  }
  // Under mpirun, the first model loads only this rank's share (see join_expert_parallel).
  static bool first = true;
  const WeightShare share = first ? parallel_weight_share() : WeightShare{};
  first = false;
  auto m = Model::load(dir, recipe.value(), share);
  if (share.ranks > 1 && !m.ok()) {
    // Under mpirun every rank learns every rank's outcome, so none waits on a rank that failed.
    if (auto all = parallel_check_loads(nullptr, m.error()); !all) std::fprintf(stderr, "error: %s\n", all.error().c_str());
    return nullptr;
  }
  if (!m) {
    std::fprintf(stderr, "error: %s\n", m.error().c_str());
    return nullptr;
  }
  if (!kv_type_fits(kv, m.value()->config().head_dim)) {
    std::fprintf(stderr, "error: --kv-type %s: the model's head_dim %d is not a multiple of 32 (q8_0 blocks)\n",
                 kv_type.c_str(), m.value()->config().head_dim);
    return nullptr;
  }
  m.value()->set_kv_type(kv);
  if (share.ranks > 1 && !join_expert_parallel(*m.value())) return nullptr;
  // Under mpirun the budget is not applied: each rank holds only its share (an expert cache per rank
  // is left for later).
  if (share.ranks > 1 && mem_budget != "auto" && mem_budget != "off")
    std::fprintf(stderr, "note: --mem-budget is not applied under mpirun: each rank holds only its share of the experts\n");
  auto budget = share.ranks > 1 ? Result<size_t>(size_t(0)) : use_memory_budget(*m.value(), mem_budget);
  if (!budget) {
    std::fprintf(stderr, "error: %s\n", budget.error().c_str());
    return nullptr;
  }
  if (Status st = place_weights(*m.value(), mmap, budget.value(), recipe.value() != QuantRecipe::None, share.ranks > 1); !st) {
    std::fprintf(stderr, "error: %s\n", st.error().c_str());
    return nullptr;
  }
  if (expert_prefetch && !m.value()->expert_source())
    std::fprintf(stderr, "note: --expert-prefetch does nothing here: the model fits the memory budget (no expert cache)\n");
  m.value()->set_expert_prefetch(expert_prefetch);
  return std::move(m.value());
}

void ProgressBar::update(size_t done, size_t total) {
  const int pct = int(100.0 * double(done) / double(std::max<size_t>(total, 1)));
  const bool tty = isatty(STDERR_FILENO);
  if (pct == last_pct_ || (!tty && pct / 10 == last_pct_ / 10 && last_pct_ >= 0)) return;
  last_pct_ = pct;
  const int width = 40, filled = pct * width / 100;
  std::fprintf(stderr, "%s[%.*s%*s] %3d%% %s / %s%s", tty ? "\r" : "", filled, "########################################",
               width - filled, "", pct, human_bytes(double(done)).c_str(), human_bytes(double(total)).c_str(),
               tty ? "" : "\n");
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\n");
}

void ModelFlags::add_to(CLI::App* cmd, const std::string& model_help) {
  cmd->add_option("--model,-m", dir, model_help)->required();
  cmd->add_option("--threads,-t", threads,
                  threads > 0 ? "Threads (default: " + std::to_string(threads) + ")" : "Threads (default: all cores)");
  cmd->add_option("--quantize", quantize, "Quantize float weights while loading: q8, q4 or q4-mixed");
  cmd->add_option("--mem-budget", mem_budget,
                  "Memory for the weights in GB, auto (default: what is available now, less a margin) or off (map "
                  "everything). A larger model keeps its dense weights resident and streams routed experts from "
                  "disk through a cache");
  cmd->add_flag("--expert-prefetch", expert_prefetch,
               "With an expert cache: after each layer, predict the next layer's experts with its router and "
               "start reading them while its token mixer runs");
  auto* map_flag = cmd->add_flag("--mmap", mmap,
                                 "Read the weights through the memory map (page cache) even when they fit in memory");
  cmd->add_flag("--no-mmap", no_mmap,
                "Copy the weights into memory on huge pages (default when they fit the memory budget: decoding "
                "streams them faster than through the page cache's 4 KiB pages)")
      ->excludes(map_flag);
  cmd->add_option("--kv-type", kv_type,
                  "KV cache element type: f32 (exact, default), f16 (half the memory of the attention layers' cache) "
                  "or q8_0 (int8 blocks of 32 with an f16 scale, as llama.cpp's: 0.53x f16's memory)");
}

void MtpFlags::add_to(CLI::App* cmd) {
  cmd->add_option("--mtp", mtp,
                  "MTP speculative decoding: K drafts per step (1-4), or auto (K chosen per step from the "
                  "acceptance rate and the measured verify cost); same output as without it")
      ->check(CLI::IsMember({"auto", "1", "2", "3", "4"}));
  cmd->add_flag("--verbose,-v", verbose, "Print MTP statistics at the end");
}

SpecOptions MtpFlags::options() const {
  SpecOptions o;
  o.k = mtp == "auto" || mtp.empty() ? 0 : std::stoi(mtp);
  return o;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %s", b, units[u]);
  return buf;
}

}  // namespace qnext::cli
