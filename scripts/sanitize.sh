#!/usr/bin/env bash
# Builds kiln, its apps and its tests with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ and runs the whole test suite there. Any sanitizer report fails the run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="$(nproc 2>/dev/null || echo 2)"
# Without MPI: Open MPI's own start-up allocations would drown the leak report.
cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_SANITIZE=ON \
  -DKILN_BUILD_BENCH=OFF -DKILN_MPI=OFF >/dev/null
cmake --build "$root/build-asan" -j "$jobs"
# halt_on_error: the first report fails the test that caused it. Leaks are checked too.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
cd "$root/build-asan"
ctest --output-on-failure -j "$jobs"
