#!/usr/bin/env bash
# Longer fuzzing runs (not part of the test command): builds the clang-14 libFuzzer preset and
# runs every fuzz target for SECONDS each (default 300), new inputs kept in build/fuzz/corpus/.
#   scripts/fuzz.sh [SECONDS]
# A crash leaves crash-* next to the current directory; add it to tests/fuzz/corpus/<target>/
# once fixed so the replay test keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
bash scripts/install-deps.sh --fuzz
cmake --preset fuzz >/dev/null
cmake --build build/fuzz
for corpus in tests/fuzz/corpus/*/; do
  name=$(basename "$corpus")
  bin=build/fuzz/tests/fuzz/${name}_fuzz
  scratch=build/fuzz/corpus/$name
  mkdir -p "$scratch"
  dict=()
  [[ -f tests/fuzz/$name.dict ]] && dict=(-dict="tests/fuzz/$name.dict")
  echo "fuzzing $name for ${seconds}s"
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 "${dict[@]}" "$scratch" "$corpus"
done
