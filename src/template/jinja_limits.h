// Limits on what one template may do: every recursion is bounded, and each render has a budget of
// evaluation steps and of bytes it may create, so that a hostile template or input (a chat template
// is code from a model directory; messages and tools come from API clients) fails with an error
// naming the limit instead of overflowing the stack, running forever or exhausting memory.
// All limits live here. tests/template/test_jinja_limits.cpp measures a large real render (the
// Qwen3-Next templates, 1,000 messages of ~2 KB and 100 tools): it uses under 1/100 of the step
// budget, 1/70 of the byte budget and 1/25 of the output cap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace qnext::jinja {

// ---- parser ---------------------------------------------------------------------------------
// Blocks inside blocks, and brackets / unary operators / sub-expressions inside each other: the
// parser's recursion. jinja2 itself stops near this depth (Python rejects the code it compiles to).
constexpr int kMaxNesting = 200;
// Height of one expression's tree, which also counts chains the parser builds in a loop: 30,000
// filters (`x|f|f|...`), attribute lookups (`x.a.a...`) or `+` operators are 30,000 levels that
// everything after the parser (checker, evaluator, destructor) would recurse through. `~` chains
// are flat (as in jinja2) and do not add height; jinja2 renders chains of 300 filters.
constexpr int kMaxExprHeight = 500;

// ---- evaluator -----------------------------------------------------------------------------
// Expression and statement levels being evaluated at once, macro calls included: bounds the C++
// stack the evaluator uses (the deepest render fits in a 768 KiB thread stack; threads get 8 MiB).
constexpr int kMaxEvalDepth = 1000;
// Macro calls active at once (recursion).
constexpr int kMaxMacroDepth = 64;
// Nesting of lists and dicts that are converted from JSON input, printed, serialized by tojson,
// or compared (a namespace that contains itself is infinitely deep).
constexpr int kMaxValueDepth = 512;

// ---- per-render budgets (RenderLimits' defaults) --------------------------------------------
// Evaluation steps: one per expression node evaluated, statement run and loop iteration, one per
// item a filter, comparison or `in` visits, and more for long strings (below), so that a step is
// a small amount of work. That render takes about 90,000; a loop over range(100000) nested in
// another stops after about a second.
constexpr uint64_t kMaxSteps = 10'000'000;
// Bytes of values a render creates in total (strings, list and dict slots, output; copies are
// shared and free), checked before anything big is built, with overflow-safe arithmetic:
// `'ab' * 2**62` and `[1] * 10**8` fail before they allocate, a string doubled 40 times at 256 MiB.
constexpr uint64_t kMaxCreatedBytes = uint64_t{512} << 20;
// The rendered text (and each {% set %} / {% filter %} block and macro output).
constexpr uint64_t kMaxOutputBytes = uint64_t{64} << 20;
// String operations charge one step per about 100 ns of work: per this many bytes copied,
// compared or searched (memcpy, memcmp, find) ...
constexpr uint64_t kCopyBytesPerStep = 1024;
// ... walked code point by code point (length, strip, tojson escaping) ...
constexpr uint64_t kScanBytesPerStep = 256;
// ... or decoded into code points (case mapping, indexing, slicing, repr).
constexpr uint64_t kDecodeBytesPerStep = 64;

struct RenderLimits {
  uint64_t max_steps = kMaxSteps;
  uint64_t max_bytes = kMaxCreatedBytes;
  uint64_t max_output = kMaxOutputBytes;
};

// What a render used (for tests and measurements).
struct RenderStats {
  uint64_t steps = 0;
  uint64_t bytes = 0;
};

// The budget of one render. The evaluator installs it for the thread while it runs (BudgetScope);
// the free functions below charge the active one and do nothing outside a render (parsing, JSON
// input conversion). Each throws a JinjaError naming the limit when it is exceeded.
class Budget {
 public:
  explicit Budget(const RenderLimits& limits) : lim_(limits) {}
  void steps(uint64_t n) {
    used_.steps += n;
    if (used_.steps > lim_.max_steps) fail_steps();
  }
  void bytes(uint64_t n) {
    check_room(n);
    used_.bytes += n;
  }
  // Throws unless n more bytes fit.
  void check_room(uint64_t n) const {
    if (n > lim_.max_bytes - used_.bytes) fail_bytes();
  }
  void check_output(uint64_t size) const {
    if (size > lim_.max_output) fail_output();
  }
  const RenderStats& used() const { return used_; }
  const RenderLimits& limits() const { return lim_; }

 private:
  [[noreturn]] void fail_steps() const;
  [[noreturn]] void fail_bytes() const;
  [[noreturn]] void fail_output() const;
  RenderLimits lim_;
  RenderStats used_;
};

Budget* active_budget();

class BudgetScope {
 public:
  explicit BudgetScope(Budget* b);
  ~BudgetScope();
  BudgetScope(const BudgetScope&) = delete;
  BudgetScope& operator=(const BudgetScope&) = delete;

 private:
  Budget* saved_;
};

inline void charge_steps(uint64_t n = 1) {
  if (Budget* b = active_budget()) b->steps(n);
}
inline void charge_bytes(uint64_t n) {
  if (Budget* b = active_budget()) b->bytes(n);
}
// Throws unless a value of n bytes could still be created (call before building it).
inline void check_room(uint64_t n) {
  if (Budget* b = active_budget()) b->check_room(n);
}
inline void charge_copy(uint64_t bytes) {
  if (bytes >= kCopyBytesPerStep) charge_steps(bytes / kCopyBytesPerStep);
}
inline void charge_scan(uint64_t bytes) {
  if (bytes >= kScanBytesPerStep) charge_steps(bytes / kScanBytesPerStep);
}
inline void charge_decode(uint64_t bytes) {
  if (bytes >= kDecodeBytesPerStep) charge_steps(bytes / kDecodeBytesPerStep);
}

// Overflow-safe size arithmetic: saturates at UINT64_MAX, which no budget admits.
inline uint64_t mul_sat(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}
inline uint64_t add_sat(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

// 10000000 -> "10,000,000"; byte counts add the MiB when whole: "67,108,864 bytes (64 MiB)".
std::string with_commas(uint64_t n);
std::string bytes_text(uint64_t n);

}  // namespace qnext::jinja
