#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer + UBSan, kiln instrumented for
# coverage) into build-fuzz/ and runs each for a bounded time (KILN_FUZZ_SECONDS, default 30)
# from its seed corpus in fuzz/corpus/<target>. New inputs go to a scratch copy, so the
# committed corpus only changes by hand. A crash stops with the input's path: fix the bug,
# then add the input to fuzz/corpus/<target>/ so it stays a regression case.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${KILN_FUZZ_SECONDS:-30}"
# A fixed seed by default, so that a CI run explores what the last checked run explored;
# KILN_FUZZ_SEED=0 lets libFuzzer pick one (for longer, exploratory runs).
seed="${KILN_FUZZ_SEED:-1}"
jobs="$(nproc 2>/dev/null || echo 2)"
cmake -S "$root" -B "$root/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DKILN_FUZZ=ON -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_BENCH=OFF \
  -DKILN_BUILD_APPS=OFF -DKILN_MPI=OFF >/dev/null
cmake --build "$root/build-fuzz" -j "$jobs" --target fuzz_idx fuzz_hdf5 fuzz_keras_config fuzz_torch fuzz_onnx
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# detect_leaks=0: HDF5 keeps library-lifetime allocations. allocator_may_return_null=1: libhdf5
# asks malloc for absurd sizes read from damaged files and handles the NULL that glibc returns;
# ASan would abort instead. (operator new still throws std::bad_alloc, which the targets do not
# catch: kiln's own code must never try such an allocation.)
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
for target in idx hdf5 keras_config torch onnx; do
  mkdir -p "$scratch/$target" "$scratch/crashes"
  cp "$root/fuzz/corpus/$target/"* "$scratch/$target/"
  echo "fuzz_$target: ${seconds}s from $(ls "$root/fuzz/corpus/$target" | wc -l) seed inputs"
  extra=()
  # libhdf5 (not kiln) loops forever on some damaged files, and may crash on others; kiln's
  # apps end such reads with a deadline (cli::Deadline, tests/testdata/hostile). Here the fuzzer
  # runs its target in child processes (-fork) and goes on after a hang or a crash; afterwards
  # every report is classified by its first frame (fuzz/classify_reports.awk): one in kiln's
  # code fails the run, one inside libhdf5 is counted and kept.
  [ "$target" = hdf5 ] && extra=(-fork=1 -ignore_timeouts=1 -ignore_crashes=1 -ignore_ooms=1)
  status=0
  (cd "$scratch/crashes" && OMP_NUM_THREADS=1 "$root/build-fuzz/fuzz/fuzz_$target" "$scratch/$target" \
    "${extra[@]}" -seed="$seed" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -max_len=70000 \
    -print_final_stats=1 2>"$scratch/$target.log") || status=$?
  library=0
  if [ "$target" = hdf5 ]; then
    # In fork mode the exit status is the last job's, and the log lacks the reports' stacks:
    # replay each saved input alone and classify its report.
    status=0
    for input in "$scratch/crashes/"crash-* "$scratch/crashes/"oom-*; do
      [ -e "$input" ] || continue
      (cd "$scratch" && timeout 120 "$root/build-fuzz/fuzz/fuzz_hdf5" "$input" >"$scratch/replay.log" 2>&1) || true
      verdict="$(awk -f "$root/fuzz/classify_reports.awk" "$scratch/replay.log" | head -1)"
      if [ "$verdict" = libhdf5 ]; then
        library=$((library + 1))
        mkdir -p "$root/build-fuzz/libhdf5-crashes"
        mv "$input" "$root/build-fuzz/libhdf5-crashes/"
      elif [ -z "$verdict" ]; then
        echo "fuzz_hdf5: $(basename "$input") did not fail again when replayed alone; kept in build-fuzz/unreproduced/"
        mkdir -p "$root/build-fuzz/unreproduced"
        mv "$input" "$root/build-fuzz/unreproduced/"
      else
        echo "fuzz_hdf5: $(basename "$input"): a report in kiln's code:" >&2
        grep -E "ERROR|runtime error|#[0-9]+ " "$scratch/replay.log" | head -12 >&2 || true
        status=1
      fi
    done
    [ "$library" -gt 0 ] && echo "fuzz_hdf5: $library input(s) crash inside libhdf5 itself (kept in build-fuzz/libhdf5-crashes/)"
  fi
  if [ "$status" != 0 ] || ls "$scratch/crashes" | grep -qE '^(crash|leak|oom)-'; then
    tail -40 "$scratch/$target.log" >&2
    mkdir -p "$root/build-fuzz/crashes"
    cp "$scratch/crashes/"* "$root/build-fuzz/crashes/" 2>/dev/null || true
    echo "fuzz_$target found a failing input (exit status $status): kept in build-fuzz/crashes/" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_runs|cov:" "$scratch/$target.log" | tail -2
  hangs=$(ls "$scratch/crashes" 2>/dev/null | grep -c '^timeout-' || true)
  if [ "$hangs" -gt 0 ]; then
    mkdir -p "$root/build-fuzz/hangs"
    cp "$scratch/crashes/"timeout-* "$root/build-fuzz/hangs/"
    echo "fuzz_$target: $hangs input(s) on which libhdf5 loops (kept in build-fuzz/hangs/; the apps' read deadline ends them)"
    rm -f "$scratch/crashes/"timeout-*
  fi
done
echo "fuzzing: no failing input"
