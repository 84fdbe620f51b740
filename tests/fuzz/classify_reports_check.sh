#!/bin/bash
# ctest's fuzz_report_classifier: fuzz/classify_reports.awk (scripts/fuzz.sh) blames a sanitizer
# report on the first frame outside the sanitizer's interceptors. Sample reports in
# tests/testdata/fuzz_reports/ are named by the verdict they must get.
# Arguments: the classifier, the directory of sample reports.
set -euo pipefail
awk_file="$1" dir="$2"
failed=0
for report in "$dir"/*.txt; do
  want="$(basename "$report" | cut -d_ -f1)"
  got="$(awk -f "$awk_file" "$report" | head -1)"
  if [ "$got" != "$want" ]; then
    echo "fuzz_report_classifier: $(basename "$report"): got '$got', want '$want'"
    failed=1
  fi
done
[ "$failed" = 0 ] && echo "fuzz_report_classifier: ok ($(ls "$dir"/*.txt | wc -l) reports)"
exit "$failed"
