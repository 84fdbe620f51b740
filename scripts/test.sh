#!/usr/bin/env bash
# Set up what is missing, build, and run the whole test suite through ctest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$KILN_ROOT/build"
ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)"
