// Exact mode (QNEXT_ACTIVATIONS=f32, core/cpu.h) set for a scope and restored to what it was, also
// when an ASSERT leaves the test early.
#pragma once
#include "core/cpu.h"

namespace qnext::testing {

class ScopedExactActivations {
 public:
  explicit ScopedExactActivations(bool exact) : saved_(exact_activations()) { set_exact_activations(exact); }
  ~ScopedExactActivations() { set_exact_activations(saved_); }
  ScopedExactActivations(const ScopedExactActivations&) = delete;
  ScopedExactActivations& operator=(const ScopedExactActivations&) = delete;

 private:
  bool saved_;
};

}  // namespace qnext::testing
