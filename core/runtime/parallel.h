// One thread pool for everything: kiln's loops use OpenMP, and kiln links Debian's OpenMP
// build of OpenBLAS, so sgemm runs on the same OpenMP threads instead of a second pool.
#pragma once

namespace kiln {

// Threads used by kiln's loops and by OpenBLAS. Default: KILN_NUM_THREADS if set, else all cores.
int num_threads();
void set_num_threads(int n);
// Name of the OpenBLAS kernel in use (e.g. "SkylakeX") and its threading model.
const char* blas_core_name();
const char* blas_config();

}  // namespace kiln
