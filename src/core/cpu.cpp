#include "core/cpu.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace qnext {

Isa best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
  return Isa::Scalar;
}

bool cpu_has_avx512_bf16() {  // asked once per product (kernels/gemm_bf16.h): read the CPU once
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
  }();
  return has;
}

bool cpu_has_avx512_vnni() {  // asked once per product: read the CPU once
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") != 0;
  }();
  return has;
}

bool cpu_has_avx512_vbmi() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi") != 0;
  }();
  return has;
}

bool cpu_has_gfni() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("gfni") != 0;
  }();
  return has;
}

static Isa initial_isa() {
  Isa isa = best_isa();
  if (const char* env = std::getenv("QNEXT_ISA")) {
    std::string s = env;
    Isa want = isa;
    if (s == "scalar") want = Isa::Scalar;
    else if (s == "avx2") want = Isa::Avx2;
    else if (s == "avx512") want = Isa::Avx512;
    else std::fprintf(stderr, "qnext: ignoring QNEXT_ISA=%s (expected scalar, avx2 or avx512)\n", env);
    if (want > isa)
      std::fprintf(stderr, "qnext: QNEXT_ISA=%s is not supported by this CPU; using %s\n", env,
                   std::string(isa_name(isa)).c_str());
    else
      isa = want;
  }
  return isa;
}

// What QNEXT_ISA and the CPU chose, before any set_active_isa (tests and bench_kernels switch).
static Isa environment_isa() {
  static const Isa isa = initial_isa();
  return isa;
}

static Isa& isa_slot() {
  static Isa isa = environment_isa();
  return isa;
}

Isa active_isa() { return isa_slot(); }

void set_active_isa(Isa isa) { isa_slot() = isa > best_isa() ? best_isa() : isa; }

// QNEXT_ACTIVATIONS: f32 (exact), int8 or unset (the default), bf16; read once.
static const std::string& initial_activations() {
  static const std::string mode = [] {
    const char* env = std::getenv("QNEXT_ACTIVATIONS");
    const std::string s = env ? env : "";
    if (s != "f32" && s != "int8" && s != "bf16" && !s.empty())
      std::fprintf(stderr, "qnext: ignoring QNEXT_ACTIVATIONS=%s (expected f32, int8 or bf16)\n", env);
    if (s == "bf16" && (!cpu_has_avx512_bf16() || environment_isa() != Isa::Avx512))
      std::fprintf(stderr, "qnext: QNEXT_ACTIVATIONS=bf16 has no effect here: it needs AVX-512 with AVX512-BF16 (%s)\n",
                   cpu_has_avx512_bf16() ? "QNEXT_ISA chose a narrower ISA" : "this CPU lacks AVX512-BF16");
    return s;
  }();
  return mode;
}

static bool& exact_slot() {
  static bool exact = initial_activations() == "f32";
  return exact;
}

static bool& bf16_slot() {
  static bool bf16 = initial_activations() == "bf16";
  return bf16;
}

bool exact_activations() { return exact_slot(); }
void set_exact_activations(bool exact) { exact_slot() = exact; }
bool bf16_activations() { return bf16_slot(); }
void set_bf16_activations(bool bf16) { bf16_slot() = bf16; }

std::string_view activations_name() {
  if (exact_activations()) return "f32";
  if (bf16_activations() && active_isa() == Isa::Avx512 && cpu_has_avx512_bf16()) return "bf16";
  return "int8";
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

}  // namespace qnext
