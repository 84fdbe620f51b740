#!/usr/bin/env bash
# layering_check.sh must fail, naming the file, on a tree where core/ includes from layers/ and
# where layers/ includes the fetcher; and pass on the same tree without those lines.
set -euo pipefail
check="$1"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/core/ops" "$tree/layers" "$tree/data/fetch"
printf '#include "core/tensor.h"\n' > "$tree/core/ops/fine.cpp"
printf '#include "layers/module.h"\n' > "$tree/core/ops/upward.cpp"
printf '#include "data/fetch/mnist_fetch.h"\n' > "$tree/layers/fetches.cpp"
if out="$(bash "$check" "$tree")"; then echo "layering_check.sh passed a tree that breaks the order"; exit 1; fi
grep -q 'core/ops/upward.cpp includes "layers/module.h"' <<<"$out" || { echo "not named: $out"; exit 1; }
grep -q 'layers/fetches.cpp includes "data/fetch/mnist_fetch.h"' <<<"$out" || { echo "not named: $out"; exit 1; }
grep -q 'fine.cpp' <<<"$out" && { echo "a good include was refused: $out"; exit 1; }
rm "$tree/core/ops/upward.cpp" "$tree/layers/fetches.cpp"
bash "$check" "$tree" >/dev/null
echo "layering_check.sh refuses both upward includes and passes the rest"
