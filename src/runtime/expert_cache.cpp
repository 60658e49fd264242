#include "runtime/expert_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "core/memory_info.h"

namespace qnext {

static constexpr size_t kAlign = DirectReader::kAlign;
static size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Each byte range an expert's matrices read: per matrix its codes, then its side scales and zero
// points when present. f(ptr, bytes) may point ptr elsewhere (the cache's copy).
static void for_each_part(MlpWeights& m, const std::function<void(const void*&, size_t)>& f) {
  for (Matrix* w : {&m.gate, &m.up, &m.down}) w->for_each_part_mutable(f);
}

// Bytes of one expert's parts laid out for direct reads: each part starts where its page starts in
// the file and is padded to whole pages (so its pointer keeps the file's alignment within a page).
static size_t slot_bytes_of(MlpWeights m) {
  size_t n = 0;
  for_each_part(m, [&](const void*& p, size_t bytes) { n += align_up(reinterpret_cast<uintptr_t>(p) % kAlign + bytes); });
  return n;
}

Result<MemoryPlan> plan_memory(const Weights& w) {
  MemoryPlan plan;
  w.for_each_matrix([&](const Matrix& m) { plan.total_bytes += m.bytes(); });
  const auto files = w.mapped_files();
  auto in_a_file = [&](const void* p) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (const MappedFile* f : files)
      if (b >= f->data() && b < f->data() + f->size()) return true;
    return false;
  };
  for (const MoeWeights* moe : w.moe_blocks()) {
    plan.layer_experts = std::max(plan.layer_experts, int(moe->experts.size()));
    plan.expert_count += int(moe->experts.size());
    for (const MlpWeights& e : moe->experts) {
      bool in_files = true;
      MlpWeights parts = e;
      for_each_part(parts, [&](const void*& p, size_t) { in_files = in_files && in_a_file(p); });
      if (!in_files)
        return err("the routed experts were converted while loading (--quantize), so they are not in a file the "
                   "expert cache could read; write the converted model with `qnext quantize` and load that");
      plan.routed_bytes += e.gate.bytes() + e.up.bytes() + e.down.bytes();
      plan.slot_bytes = std::max(plan.slot_bytes, slot_bytes_of(e));
    }
  }
  plan.dense_bytes = plan.total_bytes - plan.routed_bytes;
  return plan;
}

size_t default_memory_budget() {
  const size_t available = available_memory_bytes();
  const size_t margin = std::max<size_t>(size_t(1) << 30, available / 20);  // 1 GiB or 5%
  return available > margin ? available - margin : 0;
}

static std::string gb(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GB", double(bytes) / 1e9);
  return buf;
}

Result<std::unique_ptr<ExpertCache>> ExpertCache::create(const Weights& w, size_t budget_bytes) {
  auto plan = plan_memory(w);
  if (!plan) return err(plan.error());
  const MemoryPlan& p = plan.value();
  if (p.expert_count == 0) return err("the model has no routed experts to cache");
  if (budget_bytes < p.min_budget())
    return err("memory budget " + gb(budget_bytes) + " is too small for this model: its dense weights need " +
               gb(p.dense_bytes) + " and the expert cache at least one layer's " + std::to_string(p.layer_experts) +
               " experts (" + gb(size_t(p.layer_experts) * p.slot_bytes) + "); the smallest budget is " +
               gb(p.min_budget()) + " (the whole model: " + gb(p.total_bytes) + ")");

  std::unique_ptr<ExpertCache> c(new ExpertCache());
  c->plan_ = p;
  std::vector<std::string> paths;
  for (const MappedFile* f : w.mapped_files()) {
    c->files_.push_back({f->data(), f->size(), int(paths.size())});
    paths.push_back(f->path());
  }
  std::sort(c->files_.begin(), c->files_.end(), [](const FileSpan& a, const FileSpan& b) { return a.base < b.base; });
  auto reader = DirectReader::open(paths);
  if (!reader) return err(reader.error());
  c->reader_ = std::move(reader.value());

  const auto blocks = w.moe_blocks();
  c->E_ = p.layer_experts;
  for (size_t b = 0; b < blocks.size(); ++b) c->block_of_[blocks[b]] = int(b);
  c->slot_of_.assign(blocks.size() * size_t(c->E_), -1);

  // Never more slots than experts: a budget above the whole model still caches each one once.
  const size_t n_slots = std::min((budget_bytes - p.dense_bytes) / p.slot_bytes, size_t(p.expert_count));
  c->memory_bytes_ = n_slots * p.slot_bytes;
  void* mem = mmap(nullptr, c->memory_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return err("expert cache: cannot reserve " + gb(c->memory_bytes_));
  // 2 MiB pages where the kernel has them: the products stream the experts, and with 4 KiB pages
  // the TLB misses cost more than the reads (the page cache's large folios get this for free).
  madvise(mem, c->memory_bytes_, MADV_HUGEPAGE);
  c->memory_ = static_cast<uint8_t*>(mem);
  c->slots_.resize(n_slots);
  for (size_t s = 0; s < n_slots; ++s) c->slots_[s].lru = c->lru_.insert(c->lru_.end(), int(s));
  return c;
}

Result<const ExpertCache*> apply_memory_budget(Model& model, size_t budget_bytes) {
  if (model.weight_bytes() <= budget_bytes) return static_cast<const ExpertCache*>(nullptr);
  auto cache = ExpertCache::create(model.weights(), budget_bytes);
  if (!cache) return err(cache.error());
  const ExpertCache* c = cache.value().get();
  model.set_expert_source(std::move(cache.value()));
  return c;
}

ExpertCache::~ExpertCache() {
  reader_.reset();
  if (memory_) munmap(memory_, memory_bytes_);
}

bool ExpertCache::direct_reads() const {
  for (size_t f = 0; f < reader_->file_count(); ++f)
    if (!reader_->direct(int(f))) return false;
  return true;
}

double ExpertCache::measure_disk_rate(size_t bytes) const {
  constexpr size_t kPiece = size_t(4) << 20, kPieces = 16;  // 64 MiB in flight per round
  void* buf = mmap(nullptr, kPiece * kPieces, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) return 0;
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&] { return state = state * 6364136223846793005ull + 1442695040888963407ull; };
  std::vector<ReadRange> ranges;
  size_t done = 0;
  double seconds = 0;
  while (done < bytes) {
    ranges.clear();
    for (size_t i = 0; i < kPieces; ++i) {
      const size_t f = size_t(next() >> 33) % files_.size();
      if (files_[f].size <= kPiece) continue;
      const uint64_t at = (next() >> 20) % (files_[f].size - kPiece) / kAlign * kAlign;
      ranges.push_back({int(f), at, kPiece, kPiece, static_cast<uint8_t*>(buf) + i * kPiece});
    }
    if (ranges.empty()) break;
    const auto t0 = std::chrono::steady_clock::now();
    if (!reader_->read(ranges)) break;
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    done += ranges.size() * kPiece;
  }
  munmap(buf, kPiece * kPieces);
  return seconds > 0 ? double(done) / seconds : 0;
}

bool ExpertCache::locate(const void* p, int* file, uint64_t* offset) const {
  const auto* b = static_cast<const uint8_t*>(p);
  // The last file starting at or before p (mappings do not overlap).
  auto after = std::upper_bound(files_.begin(), files_.end(), b, [](const uint8_t* x, const FileSpan& f) { return x < f.base; });
  if (after == files_.begin()) return false;
  const FileSpan& f = *(after - 1);
  if (b >= f.base + f.size) return false;
  *file = f.index;
  *offset = uint64_t(b - f.base);
  return true;
}

const MlpWeights* ExpertCache::load(const MoeWeights& moe, int block, int e) {
  const int s = lru_.back();
  lru_.splice(lru_.begin(), lru_, slots_[size_t(s)].lru);
  Slot& slot = slots_[size_t(s)];
  if (slot.key >= 0) slot_of_[size_t(slot.key)] = -1;
  slot.key = block * E_ + e;
  slot_of_[size_t(slot.key)] = s;
  if (recording_) trace_.push_back(slot.key);
  slot.w = moe.experts[size_t(e)];
  uint8_t* cursor = memory_ + size_t(s) * plan_.slot_bytes;
  if (!slot.touched) {  // a direct read into untouched memory would fault it in as 4 KiB pages
    for (size_t at = 0; at < plan_.slot_bytes; at += kAlign) cursor[at] = 0;
    slot.touched = true;
  }
  for_each_part(slot.w, [&](const void*& p, size_t bytes) {
    int file = 0;
    uint64_t offset = 0;
    locate(p, &file, &offset);  // plan_memory checked every expert is in a file
    const uint64_t start = offset / kAlign * kAlign;
    const size_t lead = size_t(offset - start), span = align_up(lead + bytes);
    reads_.push_back({file, start, span, lead + bytes, cursor});
    p = cursor + lead;
    cursor += span;
    stats_.bytes_read += span;
  });
  return &slot.w;
}

void ExpertCache::prefetch(const MoeWeights& moe, std::span<const int> ids) {
  if (ids.size() > slots_.size()) return;
  wait();
  const int block = block_of_.at(&moe);
  predicted_block_ = block;
  predicted_.assign(ids.begin(), ids.end());
  std::sort(predicted_.begin(), predicted_.end());
  stats_.predicted += ids.size();
  // The predicted experts already resident go to the front first (as a fetch's hits do), so the
  // slots the missing ones take from the back are never predicted ones. Loaded ones go to the
  // front too: the layer's own misses, taken from the back, cannot evict them before they are used.
  const bool recording = recording_;
  recording_ = false;  // the trace holds what the layers asked for
  for (int e : predicted_)
    if (const int s = slot_of_[size_t(block * E_ + e)]; s >= 0) lru_.splice(lru_.begin(), lru_, slots_[size_t(s)].lru);
  reads_.clear();
  for (int e : predicted_)
    if (slot_of_[size_t(block * E_ + e)] < 0) {
      load(moe, block, e);
      ++stats_.prefetched;
    }
  recording_ = recording;
  if (reads_.empty()) return;
  reader_->start(reads_);
  reading_ = true;
}

void ExpertCache::fetch(const MoeWeights& moe, std::span<const int> ids, std::span<const MlpWeights*> out,
                        std::span<uint8_t> ready) {
  wait();  // the slots of the last fetch may be evicted now
  const int block = block_of_.at(&moe);
  stats_.lookups += ids.size();
  if (block == predicted_block_) {
    stats_.lookups_predicted += ids.size();
    for (int e : ids) stats_.predicted_used += std::binary_search(predicted_.begin(), predicted_.end(), e);
  }
  predicted_block_ = -1;
  // Hits first, moved to the front; then each miss takes the least recently used slot from the
  // back, which is never one this fetch uses (ids.size() <= capacity()).
  misses_.clear();
  for (size_t i = 0; i < ids.size(); ++i) {
    const int s = slot_of_[size_t(block * E_ + ids[i])];
    if (s < 0) {
      misses_.push_back(int(i));
      continue;
    }
    ++stats_.hits;
    if (recording_) trace_.push_back(block * E_ + ids[i]);
    lru_.splice(lru_.begin(), lru_, slots_[size_t(s)].lru);
    out[i] = &slots_[size_t(s)].w;
    ready[i] = 1;
  }
  if (misses_.empty()) return;

  reads_.clear();
  for (int i : misses_) {
    out[size_t(i)] = load(moe, block, ids[size_t(i)]);
    ready[size_t(i)] = 0;
  }
  reader_->start(reads_);
  reading_ = true;
}

void ExpertCache::wait() {
  if (!reading_) return;
  reading_ = false;
  const auto t0 = std::chrono::steady_clock::now();
  Status st = reader_->wait();
  stats_.read_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!st) {
    // The files were checked when the model loaded; this is a disk error or a file changed under
    // us. The forward pass cannot go on without these weights (as a memory map would fault).
    std::fprintf(stderr, "qnext: expert cache: %s\n", st.error().c_str());
    std::fflush(stderr);
    std::_Exit(1);
  }
}

}  // namespace qnext
