#!/usr/bin/env bash
# Installs the Debian packages kiln needs (only those missing) and builds kiln into build/.
# Sourced by scripts/main.sh and scripts/test.sh; safe to run again (it only does what is missing).
set -euo pipefail
KILN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# libopenblas-openmp-dev: OpenBLAS on the OpenMP runtime, so sgemm and kiln's own loops share
# one thread pool (the pthread build would add a second pool that fights it for the cores).
# libopenmpi-dev + openmpi-bin: data-parallel training (optional to kiln; the tests run it
# on 2 local ranks).
# libonnx-dev + libprotobuf-dev: ONNX model files (the C++ classes generated from onnx.proto).
KILN_PACKAGES=(cmake g++ make pkg-config libopenblas-openmp-dev libhdf5-dev libgtest-dev
               libbenchmark-dev zlib1g-dev libpng-dev nlohmann-json3-dev libopenmpi-dev openmpi-bin
               libprotobuf-dev libonnx-dev)
# The test command also builds the libFuzzer targets, which need clang and its runtimes, and
# runs the ONNX project's node tests (libonnx-testdata, 40 MB).
if [ "${KILN_WITH_FUZZ:-0}" = 1 ]; then KILN_PACKAGES+=(clang libclang-rt-dev libonnx-testdata); fi

kiln_missing_packages() {
  local missing=() p
  for p in "${KILN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

kiln_install_packages() {
  local missing
  missing="$(kiln_missing_packages)"
  [ -z "$missing" ] && return 0
  echo "kiln: installing missing Debian packages: $missing"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "kiln: these packages are missing and this is not root: $missing" >&2
      echo "kiln: install them with: apt-get install $missing" >&2
      exit 1
    fi
  fi
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
}

kiln_build() {
  local jobs
  jobs="$(nproc 2>/dev/null || echo 2)"
  cmake -S "$KILN_ROOT" -B "$KILN_ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$KILN_ROOT/build" -j "$jobs"
}

kiln_install_packages
kiln_build
