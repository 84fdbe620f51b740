// One thread pool for everything: kiln's loops use OpenMP, and kiln links Debian's OpenMP
// build of OpenBLAS, so sgemm runs on the same OpenMP threads instead of a second pool.
#pragma once

// KILN_PARALLEL_FOR_SIMD(cond) goes before an elementwise loop: OpenMP threads share it when
// `cond` holds, and each thread runs its part in SIMD lanes. Clang's UndefinedBehaviorSanitizer
// puts a check in the loop body that keeps it scalar, and clang then warns that the `simd` it
// was asked for could not be done (-Wpass-failed); in such builds the macro asks for threads
// only. Release builds get exactly `omp parallel for simd`.
#define KILN_PRAGMA(text) _Pragma(#text)
#if defined(__has_feature)
#if __has_feature(undefined_behavior_sanitizer)
#define KILN_UBSAN_BUILD 1
#endif
#endif
#ifdef KILN_UBSAN_BUILD
#define KILN_PARALLEL_FOR_SIMD(cond) KILN_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define KILN_PARALLEL_FOR_SIMD(cond) KILN_PRAGMA(omp parallel for simd schedule(static) if (cond))
#endif

namespace kiln {

// Threads used by kiln's loops and by OpenBLAS. Default: KILN_NUM_THREADS if set, else all cores.
int num_threads();
void set_num_threads(int n);
// Name of the OpenBLAS kernel in use (e.g. "SkylakeX") and its threading model.
const char* blas_core_name();
const char* blas_config();

}  // namespace kiln
