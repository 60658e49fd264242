// Which SIMD instruction set the kernels use, chosen at run time from the CPU's features.
// QNEXT_ISA=scalar|avx2|avx512 forces one (clamped to what the CPU can run).
#pragma once
#include <string_view>

namespace qnext {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

Isa best_isa();              // the best this CPU supports
Isa active_isa();            // what the kernels use now
void set_active_isa(Isa isa);  // clamped to best_isa(); for tests and QNEXT_ISA
std::string_view isa_name(Isa isa);
bool cpu_has_avx512_bf16();
bool cpu_has_avx512_vbmi();  // byte permutes (vpermt2b): the Q4_0 decode stream kernel
bool cpu_has_gfni();         // byte bit permutations (vgf2p8affineqb): FP8 codes to bf16
bool cpu_has_avx512_vnni();  // int8 dot products (vpdpbusd); the VNNI kernels need it beside Isa::Avx512
// Exact mode: QNEXT_ACTIVATIONS=f32 makes every product over stored blocks (Q8_0, Q4_0, F8_E4M3, I4,
// llama.cpp's blocks) run with float activations, on every ISA (no int8 activation quantization).
// The default (QNEXT_ACTIVATIONS=int8 or unset) lets Q8_0 / Q4_0 and Q4_K / Q5_K / Q6_K quantize the
// activations to int8, I4 when decoding and, like F8_E4M3, for 4+ tokens on AVX-512 VNNI (FP8 also
// VBMI) (kernels/weight_format.h: int8_product); FP8 decoding rounds them to bf16 where the CPU has
// AVX512-BF16 and GFNI (kernels/gemm_bf16.h).
// QNEXT_ACTIVATIONS=bf16 is the default plus, on AVX-512 with AVX512-BF16, BF16 weights' products
// of kGemmMinTokens tokens and more on activations rounded to bf16, as llama.cpp runs them
// (kernels/gemm_bf16.h): faster prefill, at an accuracy `QNEXT_ACTIVATIONS=bf16 qnext kld --exact`
// measures. Exact mode wins over it.
bool exact_activations();
void set_exact_activations(bool exact);  // for tests and qnext kld
bool bf16_activations();
void set_bf16_activations(bool bf16);  // for tests
// What the settings above make of the products, for reports: "f32" (exact), "bf16" (where the CPU
// and the active ISA can run it, else "int8"), or "int8" (the default).
std::string_view activations_name();

}  // namespace qnext
