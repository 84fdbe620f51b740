// What the machine is, for every figure that depends on it: results files and benchmark
// tables name the CPU, the vector instructions it offers and the ones kiln's loops were
// compiled for (floating-point results and speed both differ between CPU kinds).
#pragma once

#include <cstdint>
#include <string>

namespace kiln {

// The CPU's model name as the kernel reports it ("AMD EPYC 7B13"), or "unknown CPU".
std::string cpu_model();
// The widest x86 vector extension the CPU offers: "AVX-512", "AVX2", "AVX" or "SSE2" (or
// "not x86").
const char* cpu_vector_isa();
// The widest one kiln's own loops were compiled for (set by KILN_ARCH at configure time).
const char* compiled_vector_isa();
// The width of the vectors the compiler was asked to use in those loops, in bits: 512 with
// AVX-512 and KILN_VECTOR_WIDTH=512, 256 with AVX2 (or AVX-512 held to 256-bit vectors), 128
// below. For printing beside compiled_vector_isa().
int compiled_vector_bits();
// The size in bytes of one core's level-2 cache as the C library reports it, or 0 where it
// does not say. The Winograd forms size their blocks of tiles by it.
int64_t cpu_l2_cache_bytes();

// OpenBLAS picks its kernel from the CPU's family and model number, and a release that predates
// the CPU falls back to an old one: OpenBLAS 0.3.21 takes an Intel Xeon of family 6 model 207
// (AVX-512) for a "Prescott" (SSE3), and its sgemm then runs about 6x slower there than with
// OPENBLAS_CORETYPE=SkylakeX. Given the kernel OpenBLAS chose and cpu_vector_isa(), this returns
// the OPENBLAS_CORETYPE value that uses the CPU's vectors ("SkylakeX", "Haswell" or
// "Sandybridge"), or nullptr when the chosen kernel is not such a fallback or nothing better fits.
const char* better_blas_kernel(const char* chosen_kernel, const char* vector_isa);

}  // namespace kiln
