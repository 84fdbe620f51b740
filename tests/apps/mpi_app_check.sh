#!/bin/bash
# ctest's mpi_task2: `mpirun -np 2 task2 --quick` on the committed MNIST slices. Rank 0 prints
# the tables and writes the outputs, once (this run with --sync-batch-norm); rank 1's scratch
# directory is gone afterwards; ranks given different flags stop; a run killed after its first
# epoch's checkpoint resumes on 2 ranks and finishes.
# Arguments: the task2 binary, mpiexec, the test data directory.
set -euo pipefail
app="$1" mpiexec="$2" data="$3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--quick --threads 1 --epochs 4 --validation-freq 2 --data-dir "$data/mnist")

"$mpiexec" -np 2 --oversubscribe "$app" "${common[@]}" --sync-batch-norm --out "$work/out" >"$work/log" 2>&1 ||
  { cat "$work/log"; echo "mpi_task2: the 2-rank run failed"; exit 1; }
test -s "$work/out/results.json" || { echo "mpi_task2: no results.json"; exit 1; }
test -s "$work/out/run1/history.csv" || { echo "mpi_task2: no history.csv"; exit 1; }
n="$(grep -c '^Table 3: report' "$work/log" || true)"
[ "$n" = 1 ] || { cat "$work/log"; echo "mpi_task2: Table 3 printed $n times, expected once (rank 0)"; exit 1; }
if ls -A "$work/out" | grep -q '^\.rank'; then echo "mpi_task2: a rank's scratch directory was left behind"; exit 1; fi

# Ranks started with different flags (Open MPI's "A : B" form starts rank 0 with A, rank 1 with
# B) stop with an error naming the flags and rank 1, and a non-zero status.
if "$mpiexec" -np 1 --oversubscribe "$app" "${common[@]}" --out "$work/out4" : \
     -np 1 --oversubscribe "$app" "${common[@]}" --epochs 3 --out "$work/out4" >"$work/log4" 2>&1; then
  cat "$work/log4"; echo "mpi_task2: ranks with different --epochs trained"; exit 1
fi
grep -q "disagree about the command-line flags: rank(s) 1" "$work/log4" ||
  { cat "$work/log4"; echo "mpi_task2: no clear error for ranks with different flags"; exit 1; }

# Kill the job once the first checkpoint exists, then resume it on 2 ranks.
"$mpiexec" -np 2 --oversubscribe "$app" "${common[@]}" --out "$work/out2" --checkpoint-dir "$work/ckpt" \
  --checkpoint-every 1 >"$work/log2" 2>&1 &
job=$!
for _ in $(seq 600); do [ -f "$work/ckpt/run1.ckpt.h5" ] && break; sleep 0.1; done
# SIGKILL for mpirun and every rank (their command lines name the checkpoint directory).
pkill -9 -f -- "--checkpoint-dir $work/ckpt" 2>/dev/null || true
wait "$job" 2>/dev/null || true
sleep 1
test -f "$work/ckpt/run1.ckpt.h5" || { cat "$work/log2"; echo "mpi_task2: no checkpoint before the kill"; exit 1; }
"$mpiexec" -np 2 --oversubscribe "$app" --resume "$work/ckpt" >"$work/log3" 2>&1 ||
  { cat "$work/log3"; echo "mpi_task2: the resumed 2-rank run failed"; exit 1; }
grep -q "resumed from" "$work/log3" || { cat "$work/log3"; echo "mpi_task2: did not resume"; exit 1; }
test -s "$work/out2/results.json" || { echo "mpi_task2: the resumed run wrote no results.json"; exit 1; }
echo "mpi_task2: ok"
