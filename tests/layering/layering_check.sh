#!/usr/bin/env bash
# The one-way order of kiln's folders: core <- data <- layers <- optim <- apps. A file may
# include headers of its own folder and of the folders before it, never of a later one; and
# data/fetch/ (the MNIST fetcher, a network client) is for the apps, tests and benchmarks only.
# Usage: layering_check.sh ROOT. Prints every include that breaks the order and exits 1 if any.
set -euo pipefail
root="$1"
rank() {
  case "$1" in
    core) echo 0 ;; data) echo 1 ;; layers) echo 2 ;; optim) echo 3 ;; apps) echo 4 ;; *) echo -1 ;;
  esac
}
bad=0
for folder in core data layers optim; do
  [ -d "$root/$folder" ] || continue
  own="$(rank "$folder")"
  while IFS= read -r file; do
    rel="${file#"$root"/}"
    while IFS= read -r line; do
      target="$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$line")"
      top="${target%%/*}"
      r="$(rank "$top")"
      if [ "$r" -gt "$own" ]; then
        echo "$rel includes \"$target\": $folder/ may use only folders before it (core <- data <- layers <- optim <- apps)"
        bad=1
      elif [[ "$target" == data/fetch/* && "$rel" != data/fetch/* ]]; then
        echo "$rel includes \"$target\": data/fetch/ is for the apps only (it is not in kiln::kiln)"
        bad=1
      fi
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
  done < <(find "$root/$folder" -type f \( -name '*.h' -o -name '*.cpp' \) | sort)
done
if [ "$bad" -ne 0 ]; then exit 1; fi
echo "layering: every include in core/ data/ layers/ optim/ follows core <- data <- layers <- optim"
