#!/usr/bin/env bash
# The README's test command (and CI's): installs what is missing, builds the release preset,
# runs every test (unit, integration with the real binaries, fuzz seed corpora, layering check).
#   scripts/test.sh             release build + whole suite
#   scripts/test.sh --sanitize  also the ASan+UBSan build and suite (slower)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

run_suite() {
  local preset=$1
  cmake --preset "$preset" >/dev/null
  cmake --build "build/$preset"
  FULCRUM_BUILD_DIR="$PWD/build/$preset" ctest --test-dir "build/$preset" \
    --output-on-failure -j "$jobs" --timeout 600
}

run_suite release
if [[ "${1:-}" == "--sanitize" ]]; then
  run_suite debug
fi
