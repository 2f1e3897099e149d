#!/usr/bin/env bash
# Runs the L4 peer benchmark: installs the peers and load generators, builds fulcrumd (release
# preset), then runs bench/l4_peers.py with the arguments given (see bench/README.md).
#   bench/run.sh --rounds 3
#   bench/run.sh --quick
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh --bench
if [[ ! -f build/release/build.ninja ]]; then
  cmake --preset release
fi
ninja -C build/release cmd/fulcrumd/fulcrumd  # a no-op when fulcrumd is up to date
exec python3 bench/l4_peers.py "$@"
