#include "core/runtime/parallel.h"

#include <omp.h>

#include <cstdlib>

extern "C" {
// From OpenBLAS (declared here so no OpenBLAS header leaks into kiln's public headers).
void openblas_set_num_threads(int);
char* openblas_get_corename(void);
char* openblas_get_config(void);
}

namespace kiln {
namespace {

int initial_threads() {
  if (const char* env = std::getenv("KILN_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return omp_get_num_procs();
}

int& thread_setting() {
  static int n = [] {
    const int t = initial_threads();
    omp_set_num_threads(t);
    openblas_set_num_threads(t);
    return t;
  }();
  return n;
}

}  // namespace

int num_threads() { return thread_setting(); }

void set_num_threads(int n) {
  if (n < 1) n = 1;
  thread_setting() = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

const char* blas_core_name() { return openblas_get_corename(); }
const char* blas_config() { return openblas_get_config(); }

}  // namespace kiln
