#!/usr/bin/env bash
# Runs a peer benchmark: installs the peers and load generators, builds fulcrumd (release
# preset), then runs bench/l4_peers.py (or, with `l7` or `udp` first, bench/l7_peers.py or
# bench/udp_peers.py) with the arguments given (see bench/README.md).
#   bench/run.sh --rounds 3
#   bench/run.sh --quick
#   bench/run.sh l7 --rounds 3
#   bench/run.sh udp --rounds 3
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh --bench
if [[ ! -f build/release/build.ninja ]]; then
  cmake --preset release
fi
ninja -C build/release cmd/fulcrumd/fulcrumd  # a no-op when fulcrumd is up to date
script=bench/l4_peers.py
case "${1:-}" in
  l4) shift ;;
  l7) script=bench/l7_peers.py; shift ;;
  udp) script=bench/udp_peers.py; shift ;;
esac
exec python3 "$script" "$@"
