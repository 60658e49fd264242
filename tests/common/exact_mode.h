// Exact mode (QNEXT_ACTIVATIONS=f32, core/cpu.h) or BF16's one-term GEMMs (QNEXT_ACTIVATIONS=bf16)
// set for a scope and restored to what they were, also when an ASSERT leaves the test early.
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

class ScopedBf16Activations {
 public:
  explicit ScopedBf16Activations(bool bf16) : saved_(bf16_activations()) { set_bf16_activations(bf16); }
  ~ScopedBf16Activations() { set_bf16_activations(saved_); }
  ScopedBf16Activations(const ScopedBf16Activations&) = delete;
  ScopedBf16Activations& operator=(const ScopedBf16Activations&) = delete;

 private:
  bool saved_;
};

}  // namespace qnext::testing
