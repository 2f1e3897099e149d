#!/usr/bin/env bash
# Installs every Debian package Fulcrum needs to build, test and run (Debian 12, as root).
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --bench  also the peers and load generators of bench/
#   scripts/install-deps.sh --fuzz   also clang-14 for the libFuzzer targets
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build pkg-config make
  # libraries (ARCHITECTURE.md: chosen dependencies)
  libyaml-cpp-dev nlohmann-json3-dev libsqlite3-dev libfmt-dev libcli11-dev zlib1g-dev node-llhttp
  libssl-dev libnghttp2-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # integration tests: real clients, the test driver, process and network tools
  python3 python3-yaml curl netcat-openbsd iproute2 procps hey bind9-dnsutils
  # HTTPS tests: certificates and handshakes with the openssl CLI; HTTP/2 tests: hand-made frames
  # (python3-h2/-hyperframe for Debian's /usr/bin/python3), curl --http2 and h2load
  openssl python3-h2 python3-hyperframe nghttp2-client
  # cluster mode: real etcd members in the store and cluster tests (etcd, etcdctl)
  etcd-server etcd-client
)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(haproxy nginx iperf3 wrk dnsperf libnginx-mod-stream nsd
                        testssl.sh) ;;
    --fuzz) packages+=(clang-14 libclang-rt-14-dev) ;;
    *) echo "install-deps: unknown option $arg" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
