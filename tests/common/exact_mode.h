// Exact mode (QNEXT_ACTIVATIONS=f32, core/cpu.h) or BF16's one-term products (QNEXT_ACTIVATIONS=bf16)
// set for a scope and restored to what they were, also when an ASSERT leaves the test early.
#pragma once
#include "core/cpu.h"

namespace qnext::testing {

template <bool (*Get)(), void (*Set)(bool)>
class ScopedActivationSwitch {
 public:
  explicit ScopedActivationSwitch(bool on) : saved_(Get()) { Set(on); }
  ~ScopedActivationSwitch() { Set(saved_); }
  ScopedActivationSwitch(const ScopedActivationSwitch&) = delete;
  ScopedActivationSwitch& operator=(const ScopedActivationSwitch&) = delete;

 private:
  bool saved_;
};

using ScopedExactActivations = ScopedActivationSwitch<exact_activations, set_exact_activations>;
using ScopedBf16Activations = ScopedActivationSwitch<bf16_activations, set_bf16_activations>;

}  // namespace qnext::testing
