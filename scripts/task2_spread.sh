#!/usr/bin/env bash
# task2's spread on one code path: 20 runs (seeds 1-20) of the lab's recipe, each reporting
# its test accuracy with the batch-norm moving statistics (the lab's setting) and recalibrated
# (--bn-recalibrate); the weights are the same either way. Validation runs once, at the end
# (--validation-freq 110): it never changes training, and skipping the other ten saves a
# third of the time. About 30 minutes on 2 cores.
#
#   scripts/task2_spread.sh avx512   # kiln built for this (AVX-512) CPU, OpenBLAS picks its kernel
#   scripts/task2_spread.sh avx2     # kiln built for x86-64-v3 (AVX2 + FMA) in build-avx2/,
#                                    # OpenBLAS forced to its Haswell (AVX2) kernels
#
# Writes out/task2-spread/<path>/ and copies results.json and the histories to
# docs/results/task2-spread/<path>/.
set -euo pipefail
path="${1:-avx512}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
case "$path" in
  avx512)
    if ! build/apps/kiln info | grep -q '^CPU: .*(AVX-512)'; then
      echo "scripts/task2_spread.sh: this CPU has no AVX-512; its native path is the avx2 one" >&2; exit 1
    fi
    task2="build/apps/task2" ;;
  avx2)
    cmake -S . -B build-avx2 -DCMAKE_BUILD_TYPE=Release -DKILN_ARCH=x86-64-v3 -DKILN_BUILD_TESTS=OFF \
      -DKILN_BUILD_BENCH=OFF >/dev/null
    cmake --build build-avx2 --target task2 kiln_tool -j "$(nproc 2>/dev/null || echo 2)"
    task2="build-avx2/apps/task2"
    export OPENBLAS_CORETYPE=Haswell ;;
  *) echo "usage: scripts/task2_spread.sh avx512|avx2" >&2; exit 2 ;;
esac
build/apps/kiln data mnist --dir data/mnist
out="out/task2-spread/$path"
"$task2" --data-dir data/mnist --out "$out" --seed 1 --runs 20 --validation-freq 110
docs="docs/results/task2-spread/$path"
mkdir -p "$docs"
cp "$out/results.json" "$docs/"
for run in "$out"/run*/; do
  mkdir -p "$docs/$(basename "$run")"
  cp "$run/history.csv" "$docs/$(basename "$run")/"
done
echo "copied results.json and the histories to $docs"
