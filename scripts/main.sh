#!/usr/bin/env bash
# The main job: set up what is missing, fetch MNIST if needed, and run kiln.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$KILN_ROOT"
build/apps/kiln info
build/apps/kiln data mnist --dir data/mnist
build/apps/kiln demo --data-dir data/mnist
