// Runs body(begin, end) over [0, n) in one contiguous chunk per OpenMP thread, or on the caller
// alone when n is small. For elementwise loops: the body's plain loop over restrict pointers is
// what GCC vectorises; the same loop written under `omp parallel for simd` inside a capturing
// closure was left scalar, with a branch per element.
#pragma once

#include <omp.h>

#include <cstdint>

namespace kiln {

// Below this many elements, threads cost more than they save (also the bound of the element
// loops in core/ops that run under OpenMP directly).
constexpr int64_t kChunkedParallelMin = int64_t{1} << 15;

template <class Body>
void chunked(int64_t n, Body body) {
  if (n <= kChunkedParallelMin) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    body(n * t / threads, n * (t + 1) / threads);
  }
}

}  // namespace kiln
