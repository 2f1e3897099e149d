#!/usr/bin/env bash
# Cluster mode on one machine: three etcd members, three fulcrumd nodes sharing one configuration
# through them, two fulcrum-echo backends. The load balancer is created through node 1 only; the
# other nodes follow through their etcd watch. All three nodes bind the same listener
# (127.0.0.1:8090) with SO_REUSEPORT, so the kernel spreads connections over them; stopping the
# nodes one by one shows the listener still answering from those that are left.
#
#   bash scripts/cluster-demo.sh            # builds what is missing (build/release), runs, stops
#   bash scripts/cluster-demo.sh --wait     # ... and waits for Ctrl-C before stopping the nodes
#   bash scripts/cluster-demo.sh --keep     # keep the temporary folder (logs, etcd data)
#   bash scripts/cluster-demo.sh --port-offset 1000   # every port below + 1000 (if they are taken)
#
# Ports: etcd clients 23791-23793 (peers 23801-23803), admin APIs 9911-9913, backends 9121-9122,
# listeners 8090 and 8091. Environment: FULCRUM_BUILD_DIR (default build/release), ETCD (default:
# etcd in PATH).
# Everything listens on 127.0.0.1. Ctrl-C or the end of the script stops every process it
# started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."

keep=0
hold=0
offset=0
while (($#)); do
  case "$1" in
    --keep) keep=1 ;;
    --wait) hold=1 ;;
    --port-offset)
      if ! [[ ${2:-} =~ ^[0-9]+$ && $2 -le 30000 ]]; then
        echo "cluster-demo: --port-offset N (0-30000)" >&2
        exit 2
      fi
      offset=$2
      shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster-demo: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

build=${FULCRUM_BUILD_DIR:-build/release}
fulcrumd=$build/cmd/fulcrumd/fulcrumd
fulcrumctl=$build/cmd/fulcrumctl/fulcrumctl
echo_bin=$build/tools/fulcrum-echo/fulcrum-echo
etcd_bin=${ETCD:-$(command -v etcd || true)}

p() { echo $(($1 + offset)); }
etcd_clients=("$(p 23791)" "$(p 23792)" "$(p 23793)")
etcd_peers=("$(p 23801)" "$(p 23802)" "$(p 23803)")
nodes=(n1 n2 n3)
zones=(zone-a zone-a zone-b)
admin_ports=("$(p 9911)" "$(p 9912)" "$(p 9913)")
backend_ports=("$(p 9121)" "$(p 9122)")
lb_port=$(p 8090)
extra_port=$(p 8091)
store="etcd://127.0.0.1:${etcd_clients[0]},127.0.0.1:${etcd_clients[1]}"
store+=",127.0.0.1:${etcd_clients[2]}"

# --- output and process bookkeeping -------------------------------------------------------------

step_no=0
step() {
  step_no=$((step_no + 1))
  printf '\n\033[1m==> %d. %s\033[0m\n' "$step_no" "$*"
}
info() { printf '    %s\n' "$*"; }
run() {  # shows a command (the program without its folder), then runs it, output indented
  local shown=("$@")
  shown[0]=${shown[0]##*/}
  printf '    $ %s\n' "${shown[*]}"
  "$@" 2>&1 | sed 's/^/      /'
  return "${PIPESTATUS[0]}"
}
die() {
  printf '\ncluster-demo: %s\n' "$*" >&2
  exit 1
}

tmp=""
pids=()        # every process started, in start order
declare -A name_of=()  # pid -> what it is (for messages)

# True while `pid` runs (a zombie counts as ended: it is our child, not yet reaped).
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

# Sends `signal` to `pid`, waits up to `timeout` seconds for it to end, then SIGKILL; reaps it.
stop_pid() {
  local pid=$1 signal=${2:-TERM} timeout=${3:-15} i
  if alive "$pid"; then
    kill "-$signal" "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      echo "cluster-demo: ${name_of[$pid]:-pid $pid} did not stop in ${timeout}s: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleaned=0
cleanup() {
  local status=$?
  ((cleaned)) && return
  cleaned=1
  trap - INT TERM
  if ((${#pids[@]})); then
    printf '\n==> stopping everything this script started\n'
    # The nodes first (they leave the cluster while etcd still runs), then backends, then etcd.
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      if [[ ${name_of[${pids[i]}]} == fulcrumd* ]]; then stop_pid "${pids[i]}" TERM 15; fi
    done
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      if [[ ${name_of[${pids[i]}]} != fulcrumd* ]]; then stop_pid "${pids[i]}" TERM 10; fi
    done
  fi
  if [[ -n $tmp && -d $tmp ]]; then
    # Kept when asked for or when something failed; an interrupted run (Ctrl-C) cleans up.
    if ((keep || (status != 0 && status != 130 && status != 143))); then
      echo "logs and data kept in $tmp"
    else
      rm -rf "$tmp"
    fi
  fi
}
trap cleanup EXIT
trap 'echo "cluster-demo: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts "$@" in the background with output to $tmp/<log>.log; remembers its pid in $last_pid.
start() {
  local label=$1 log=$2
  shift 2
  "$@" >"$tmp/$log.log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
  name_of[$last_pid]=$label
}

# wait_until SECONDS WHAT PID COMMAND...: runs COMMAND every 0.1 s until it succeeds; fails
# (with the tail of the process's log) when PID ends or SECONDS pass.
wait_until() {
  local seconds=$1 what=$2 pid=$3 log=$4 i
  shift 4
  for ((i = 0; i < seconds * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -n $pid ]] && ! alive "$pid"; then
      tail -n 20 "$tmp/$log.log" >&2 || true
      die "$what: the process ended (log above: $tmp/$log.log)"
    fi
    sleep 0.1
  done
  if [[ -n $log ]]; then tail -n 20 "$tmp/$log.log" >&2 || true; fi
  die "$what: not ready after ${seconds}s"
}

port_free() {  # nothing accepts connections on 127.0.0.1:$1
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# --- 1. preflight --------------------------------------------------------------------------------

step "Checking the tools, the build and the loopback ports"
[[ -n $etcd_bin && -x $etcd_bin ]] ||
  die "etcd not found (Debian: apt-get install etcd-server; or set ETCD=/path/to/etcd)"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"
info "etcd: $etcd_bin ($("$etcd_bin" --version | head -1))"
if [[ ! -x $fulcrumd || ! -x $fulcrumctl || ! -x $echo_bin ]]; then
  info "building fulcrumd, fulcrumctl and fulcrum-echo in $build"
  if [[ $build == build/release ]]; then
    cmake --preset release >/dev/null
  elif [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$build" --target fulcrumd fulcrumctl fulcrum-echo
fi
"$fulcrumd" --help 2>&1 | grep -q 'etcd://' ||
  die "$fulcrumd has no cluster mode (--store etcd://...): rebuild it from a newer tree"
info "binaries: $fulcrumd, $fulcrumctl, $echo_bin"
for port in "${etcd_clients[@]}" "${etcd_peers[@]}" "${admin_ports[@]}" "${backend_ports[@]}" \
  "$lb_port" "$extra_port"; do
  port_free "$port" || die "127.0.0.1:$port is in use; stop what listens there and try again"
done
info "ports free: etcd ${etcd_clients[*]} (peers ${etcd_peers[*]}), admin ${admin_ports[*]}," \
  "backends ${backend_ports[*]}, listeners $lb_port $extra_port"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-cluster-demo.XXXXXX")
chmod 700 "$tmp"
info "working folder: $tmp"

# --- 2. etcd -------------------------------------------------------------------------------------

step "Starting a three-member etcd cluster on 127.0.0.1"
initial_cluster=""
for i in 0 1 2; do
  initial_cluster+="${initial_cluster:+,}e$((i + 1))=http://127.0.0.1:${etcd_peers[i]}"
done
for i in 0 1 2; do
  name=e$((i + 1))
  start "etcd $name" "etcd-$name" "$etcd_bin" --name "$name" --data-dir "$tmp/etcd-$name" \
    --listen-client-urls "http://127.0.0.1:${etcd_clients[i]}" \
    --advertise-client-urls "http://127.0.0.1:${etcd_clients[i]}" \
    --listen-peer-urls "http://127.0.0.1:${etcd_peers[i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${etcd_peers[i]}" \
    --initial-cluster "$initial_cluster" --initial-cluster-state new \
    --initial-cluster-token "fulcrum-demo-$$" --logger zap
  info "$name: pid $last_pid, client http://127.0.0.1:${etcd_clients[i]}," \
    "peer http://127.0.0.1:${etcd_peers[i]}"
done
etcd_healthy() { curl -sf --max-time 2 "http://127.0.0.1:$1/health" | grep -q '"health":"true"'; }
for i in 0 1 2; do
  wait_until 30 "etcd e$((i + 1))" "${pids[i]}" "etcd-e$((i + 1))" etcd_healthy "${etcd_clients[i]}"
done
info "all three members healthy (GET /health answers {\"health\":\"true\"})"

# --- 3. tokens -----------------------------------------------------------------------------------

step "Creating the shared admin and reader tokens (256 random bits each, mode 0600)"
new_token() {
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$1")
  chmod 600 "$1"
}
new_token "$tmp/admin.token"
new_token "$tmp/reader.token"
info "$tmp/admin.token and $tmp/reader.token: every node is started with both files"
export FULCRUM_TOKEN
FULCRUM_TOKEN=$(<"$tmp/admin.token")  # fulcrumctl reads it from the environment, not argv
reader=$(<"$tmp/reader.token")

# --- 4. nodes ------------------------------------------------------------------------------------

step "Starting three fulcrumd nodes on the etcd cluster"
info "--store $store"
node_pids=()
for i in 0 1 2; do
  n=${nodes[i]}
  mkdir -m 700 "$tmp/$n"
  start "fulcrumd $n" "$n" "$fulcrumd" --store "$store" --node "$n" --zone "${zones[i]}" \
    --admin "127.0.0.1:${admin_ports[i]}" --data-dir "$tmp/$n" \
    --token-file "$tmp/admin.token" --reader-token-file "$tmp/reader.token" --workers 1
  node_pids+=("$last_pid")
  info "$n (${zones[i]}): pid $last_pid, admin API http://127.0.0.1:${admin_ports[i]}," \
    "log $tmp/$n.log"
done
for i in 0 1 2; do
  wait_until 30 "fulcrumd ${nodes[i]}" "${node_pids[i]}" "${nodes[i]}" \
    curl -sf --max-time 2 "http://127.0.0.1:${admin_ports[i]}/readyz"
done
info "every node answers /readyz"

api() { echo "http://127.0.0.1:${admin_ports[$1]}"; }
ctl() {  # ctl NODE-INDEX ARGS...: fulcrumctl against that node
  local i=$1
  shift
  run "$fulcrumctl" --server "$(api "$i")" "$@"
}

# The Fulcrum-Revision header of a GET /v1/config on node $1 (reader token).
revision_of() {
  curl -s --max-time 5 -o /dev/null -D - -H "Authorization: Bearer $reader" \
    "$(api "$1")/v1/config" |
    tr -d '\r' | awk -F': *' 'tolower($1) == "fulcrum-revision" {print $2}'
}
show_revisions() {
  local i
  for i in "$@"; do
    info "${nodes[i]}: GET /v1/config -> Fulcrum-Revision: $(revision_of "$i")"
  done
}

# Node records are written once a node has registered: wait until node 2 sees all three up.
nodes_up() {
  curl -sf --max-time 2 -H "Authorization: Bearer $reader" "$(api "$1")/v1/nodes" |
    python3 -c 'import json, sys
nodes = json.load(sys.stdin)["nodes"]
sys.exit(sum(n.get("state") == "up" for n in nodes) < int(sys.argv[1]))' "$2"
}
wait_until 20 "n2 seeing three nodes up" "${node_pids[1]}" n2 nodes_up 1 3
ctl 1 get nodes
ctl 2 status

# --- 5. backends ---------------------------------------------------------------------------------

step "Starting two fulcrum-echo backends"
for i in 0 1; do
  b=backend-$((i + 1))
  start "$b" "$b" "$echo_bin" --name "$b" --http "127.0.0.1:${backend_ports[i]}" \
    --ready-file "$tmp/$b.ready" --quiet
  wait_until 10 "$b" "$last_pid" "$b" test -s "$tmp/$b.ready"
  info "$b: pid $last_pid, http://127.0.0.1:${backend_ports[i]}"
done

# --- 6. configuration through node 1 -------------------------------------------------------------

step "Creating load balancer 'demo' through node 1 only (http://127.0.0.1:${admin_ports[0]})"
ctl 0 create lb demo --address 127.0.0.1
ctl 0 create servergroup demo app
ctl 0 add-backend demo app "127.0.0.1:${backend_ports[0]}"
ctl 0 add-backend demo app "127.0.0.1:${backend_ports[1]}"
ctl 0 create listener demo "http:$lb_port" --server-group app --scheduler rr
want=$(revision_of 0)
info "node 1 answered every change 2xx: committed in etcd and serving on node 1 (revision $want)"

# The other nodes follow through their watch: wait until they serve that revision.
caught_up() { local r; r=$(revision_of "$1"); [[ -n $r && $r -ge $want ]]; }
for i in 1 2; do
  wait_until 20 "${nodes[i]} following revision $want" "${node_pids[i]}" "${nodes[i]}" \
    caught_up "$i"
done
show_revisions 0 1 2

step "Every node serves the same configuration"
ctl 2 get lb
ctl 1 get listeners demo
ctl 2 health demo
ctl 0 get nodes

# --- 7. traffic ----------------------------------------------------------------------------------

# Per node, the connections its listener accepted (fulcrum_listener_connections_total).
accepted() {
  curl -s --max-time 5 -H "Authorization: Bearer $reader" "$(api "$1")/metrics" |
    awk -v l="listener=\"http:$2\"" '/^fulcrum_listener_connections_total/ && index($0, l) {
      s += $NF } END { print s + 0 }'
}
# Sends $1 requests to 127.0.0.1:$2, one connection each; prints the answers counted by backend.
traffic() {
  local n=$1 port=$2 i out failed=0
  declare -A seen=()
  for ((i = 0; i < n; i++)); do
    if out=$(curl -sf --max-time 5 "http://127.0.0.1:$port/"); then
      out=${out%%$'\n'*}
      seen[$out]=$((${seen[$out]:-0} + 1))
    else
      failed=$((failed + 1))
    fi
  done
  local line="" k
  while IFS= read -r k; do
    [[ -n $k ]] && line+="$k: ${seen[$k]}  "
  done < <(printf '%s\n' "${!seen[@]}" | sort)
  info "$n requests to http://127.0.0.1:$port/ -> ${line}failed: $failed"
  ((failed == 0))
}

step "Traffic through the shared listener 127.0.0.1:$lb_port (one connection per request)"
info "all three nodes listen on it (SO_REUSEPORT); the kernel picks a node per connection"
run curl -s "http://127.0.0.1:$lb_port/"
traffic 30 "$lb_port" || die "requests failed with every node up"
for i in 0 1 2; do
  info "${nodes[i]} accepted $(accepted "$i" "$lb_port") connections on http:$lb_port"
done

step "A change through node 3 reaches every node: listener http:$extra_port"
ctl 2 create listener demo "http:$extra_port" --server-group app
want=$(revision_of 2)
for i in 0 1; do
  wait_until 20 "${nodes[i]} following revision $want" "${node_pids[i]}" "${nodes[i]}" \
    caught_up "$i"
done
show_revisions 0 1 2
traffic 12 "$extra_port" || die "requests to the new listener failed"

# --- 8. nodes stop one by one --------------------------------------------------------------------

for i in 0 1; do
  n=${nodes[i]}
  step "Stopping $n (SIGTERM to pid ${node_pids[i]}): the listener keeps answering"
  stop_pid "${node_pids[i]}" TERM 30
  info "$n exited"
  traffic 20 "$lb_port" || die "requests failed after stopping $n"
  ctl $((i + 1)) get nodes
  show_revisions $(seq $((i + 1)) 2)
done

step "Forgetting the stopped node n1 (through n3)"
ctl 2 delete node n1
ctl 2 get nodes
info "a node that is up cannot be deleted:"
run "$fulcrumctl" --server "$(api 2)" delete node n3 || info "(refused, as it should be)"

step "Done"
info "n3 alone serves http://127.0.0.1:$lb_port/ and http://127.0.0.1:$extra_port/"
if ((hold)); then
  info "try: curl http://127.0.0.1:$lb_port/ ; FULCRUM_TOKEN=\$(cat $tmp/admin.token)" \
    "$fulcrumctl --server $(api 2) get nodes"
  info "Ctrl-C stops everything"
  while alive "${node_pids[2]}"; do sleep 1; done
fi
