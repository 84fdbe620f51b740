// kiln_bench's main: fixes the thread count (KILN_NUM_THREADS, else all cores) for OpenMP and
// OpenBLAS before anything is timed, and records it in the benchmark context with the CPU, its
// vector ISA and the OpenBLAS kernel (a figure holds for the CPU it was measured on).
#include <benchmark/benchmark.h>

#include <string>

#include "core/runtime/cpu.h"
#include "core/runtime/parallel.h"

int main(int argc, char** argv) {
  const int threads = kiln::num_threads();
  benchmark::AddCustomContext("kiln_threads", std::to_string(threads));
  benchmark::AddCustomContext("blas_core", kiln::blas_core_name());
  benchmark::AddCustomContext("blas_config", kiln::blas_config());
  benchmark::AddCustomContext("cpu_model", kiln::cpu_model());
  benchmark::AddCustomContext("cpu_isa", std::string(kiln::cpu_vector_isa()) + "; kiln's loops built for " +
                                             kiln::compiled_vector_isa() + ", " +
                                             std::to_string(kiln::compiled_vector_bits()) + "-bit vectors");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
