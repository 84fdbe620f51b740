#!/usr/bin/env bash
# Set up what is missing, build, and run the whole test suite through ctest; then the same
# suite under AddressSanitizer + UBSan (scripts/sanitize.sh, build-asan/), then each libFuzzer
# target for a bounded time (scripts/fuzz.sh, build-fuzz/). About 25 minutes on 2 cores from
# scratch, most of it building; set KILN_TEST_STAGES=ctest to run only the first stage.
set -euo pipefail
KILN_WITH_FUZZ=1
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
stages="${KILN_TEST_STAGES:-ctest sanitize fuzz}"
for stage in $stages; do
  case "$stage" in
    ctest) echo "== tests"; (cd "$KILN_ROOT/build" && ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)") ;;
    sanitize) echo "== tests under AddressSanitizer + UBSan"; bash "$KILN_ROOT/scripts/sanitize.sh" ;;
    fuzz) echo "== fuzzing"; bash "$KILN_ROOT/scripts/fuzz.sh" ;;
    *) echo "scripts/test.sh: unknown stage '$stage' in KILN_TEST_STAGES (known: ctest sanitize fuzz)" >&2; exit 2 ;;
  esac
done
