// Render budgets (see jinja_limits.h).
#include "template/jinja_limits.h"

#include "template/jinja_value.h"

namespace qnext::jinja {
namespace {

thread_local Budget* g_budget = nullptr;

}  // namespace

std::string with_commas(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string bytes_text(uint64_t n) {
  std::string s = with_commas(n) + " bytes";
  if (n >= (uint64_t{1} << 20) && n % (uint64_t{1} << 20) == 0) s += " (" + with_commas(n >> 20) + " MiB)";
  return s;
}

void Budget::fail_steps() const {
  throw JinjaError("render exceeded the limit of " + with_commas(lim_.max_steps) + " evaluation steps");
}

void Budget::fail_bytes() const {
  throw JinjaError("render exceeded the limit of " + bytes_text(lim_.max_bytes) + " of created values");
}

void Budget::fail_output() const {
  throw JinjaError("rendered output exceeded the limit of " + bytes_text(lim_.max_output));
}

Budget* active_budget() { return g_budget; }

BudgetScope::BudgetScope(Budget* b) : saved_(g_budget) { g_budget = b; }
BudgetScope::~BudgetScope() { g_budget = saved_; }

}  // namespace qnext::jinja
