#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, starts two demo backends and
# fulcrumd with examples/quickstart.yaml in the foreground. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build build/release --target fulcrumd fulcrumctl fulcrum-echo

echo_bin=build/release/tools/fulcrum-echo/fulcrum-echo
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
"$echo_bin" --name backend-1 --tcp 127.0.0.1:9001 --http 127.0.0.1:9101 --quiet & pids+=($!)
"$echo_bin" --name backend-2 --tcp 127.0.0.1:9002 --http 127.0.0.1:9102 --quiet & pids+=($!)

cat <<'MSG'

Fulcrum quickstart: load balancer "quickstart" listens on 127.0.0.1:8000 (TCP, wrr) and
127.0.0.1:8080 (HTTP) in front of two fulcrum-echo backends, backend-1 and backend-2.

Send traffic through it from another terminal; each line names the backend that answered:

  for i in 1 2 3 4; do echo NAME | nc -q1 127.0.0.1 8000; done
  echo 'hello through fulcrum' | (echo ECHO; cat) | nc -q1 127.0.0.1 8000
  for i in 1 2 3 4; do curl -s http://127.0.0.1:8080/; done
  curl -s http://127.0.0.1:8080/one/x       # a forwarding rule: always backend-1
  curl -s http://127.0.0.1:8080/echo        # the request as the backend saw it (X-Forwarded-For...)

Change it live with fulcrumctl or the admin API on 127.0.0.1:9901 (state in ./fulcrum-data):

  build/release/cmd/fulcrumctl/fulcrumctl health quickstart
  build/release/cmd/fulcrumctl/fulcrumctl add-backend quickstart web-1 127.0.0.1:9102

  TOKEN=$(cat fulcrum-data/admin.token)
  curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9901/v1/loadbalancers/quickstart/health
  curl -s -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
       -d '[{"address": "127.0.0.1", "port": 9101}, {"address": "127.0.0.1", "port": 9102, "weight": 25}]' \
       http://127.0.0.1:9901/v1/loadbalancers/quickstart/servergroups/web/backends
  curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9901/metrics | grep ^fulcrum_listener

Or edit examples/quickstart.yaml and `kill -HUP <fulcrumd pid>` to apply the file again (the file
wins at start and on SIGHUP). Ctrl-C here stops fulcrumd and the backends.

MSG
build/release/cmd/fulcrumd/fulcrumd --config examples/quickstart.yaml & pids+=($!)
wait "${pids[-1]}"
