// What the machine is, for every figure that depends on it: results files and benchmark
// tables name the CPU, the vector instructions it offers and the ones kiln's loops were
// compiled for (floating-point results and speed both differ between CPU kinds).
#pragma once

#include <string>

namespace kiln {

// The CPU's model name as the kernel reports it ("AMD EPYC 7B13"), or "unknown CPU".
std::string cpu_model();
// The widest x86 vector extension the CPU offers: "AVX-512", "AVX2", "AVX" or "SSE2" (or
// "not x86").
const char* cpu_vector_isa();
// The widest one kiln's own loops were compiled for (set by KILN_ARCH at configure time).
const char* compiled_vector_isa();

}  // namespace kiln
