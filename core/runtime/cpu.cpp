#include "core/runtime/cpu.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <strings.h>
#include <unistd.h>

namespace kiln {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    const size_t begin = line.find_first_not_of(" \t", colon + 1);
    return begin == std::string::npos ? "unknown CPU" : line.substr(begin);
  }
  return "unknown CPU";
}

const char* cpu_vector_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "AVX-512";
  if (__builtin_cpu_supports("avx2")) return "AVX2";
  if (__builtin_cpu_supports("avx")) return "AVX";
  return "SSE2";
#else
  return "not x86";
#endif
}

int64_t cpu_l2_cache_bytes() {
#ifdef _SC_LEVEL2_CACHE_SIZE
  const long bytes = sysconf(_SC_LEVEL2_CACHE_SIZE);
  return bytes > 0 ? bytes : 0;
#else
  return 0;
#endif
}

const char* compiled_vector_isa() {
#if defined(__AVX512F__)
  return "AVX-512";
#elif defined(__AVX2__)
  return "AVX2";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE2__)
  return "SSE2";
#else
  return "scalar";
#endif
}

int compiled_vector_bits() {
#if defined(__AVX512F__) && defined(KILN_VECTOR_WIDTH) && KILN_VECTOR_WIDTH == 512
  return 512;
#elif defined(__AVX__)
  return 256;
#else
  return 128;
#endif
}

const char* better_blas_kernel(const char* chosen_kernel, const char* vector_isa) {
  if (chosen_kernel == nullptr || vector_isa == nullptr) return nullptr;
  // OpenBLAS' x86 kernels from before AVX: what its detection falls back to.
  static constexpr std::array<const char*, 16> kPreAvx = {
      "Katmai", "Coppermine", "Northwood", "Prescott", "Banias",  "Core2",
      "Penryn", "Dunnington", "Nehalem",   "Atom",     "Nano",    "Opteron",
      "Opteron_SSE3", "Barcelona", "Bobcat", "Athlon"};
  const auto is_chosen = [&](const char* name) { return strcasecmp(chosen_kernel, name) == 0; };
  if (std::none_of(kPreAvx.begin(), kPreAvx.end(), is_chosen)) return nullptr;
  if (std::strcmp(vector_isa, "AVX-512") == 0) return "SkylakeX";
  if (std::strcmp(vector_isa, "AVX2") == 0) return "Haswell";
  if (std::strcmp(vector_isa, "AVX") == 0) return "Sandybridge";
  return nullptr;
}

}  // namespace kiln
