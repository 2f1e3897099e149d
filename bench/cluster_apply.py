#!/usr/bin/env python3
"""How fast a change made through one node of a cluster reaches the other nodes.

Three etcd members and three fulcrumd nodes (`--store etcd://...`) on loopback share one
configuration: a load balancer with an HTTP listener in front of a fulcrum-echo backend. Then
--changes times (default 30) one change is made through node 1's API, by default a new HTTP
listener (`--kind backend`: a new backend in the group instead), and the script measures

  (a) the API call on node 1: request sent -> 2xx (validation, compile, test-bind, the etcd
      transaction, publication to node 1's workers);
  (b) for node 2 and node 3, from that 2xx until the node serves it: its admin API answers the new
      resource AND its `Fulcrum-Revision` header is >= the revision of node 1's 2xx (a node's
      answers carry the revision its workers run, so this is "the change is serving there").
      Each node is polled by its own thread every --poll-ms (default 1 ms), on a new connection
      per request; the time is taken when the first good answer has been read.

All nodes bind the same listener addresses (SO_REUSEPORT: the kernel spreads connections over the
nodes' sockets), so traffic cannot be pinned to one node; the admin API of each node is what shows
that node's state. After each change one request through the new listener (or to the group)
checks that it serves; it is not timed.

For comparison, the same changes are then made against one fulcrumd on the default SQLite store
(`--store sqlite`, nothing else running): (a) only.

    python3 bench/cluster_apply.py [--changes 30] [--kind listener|backend] [--workers 1]

A command, not a test: figures depend on the machine (fsync latency of etcd's WAL and of SQLite
above all). Needs etcd (3.4+) in PATH or --etcd. Python standard library only; every process
started is stopped by its pid; everything listens on 127.0.0.1. Prints a Markdown table and
writes a JSON file (bench/results/cluster-apply-<timestamp>.json unless --json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_common import (DEFAULT_ECHO, DEFAULT_FULCRUMD, Api, EtcdCluster, Node,  # noqa: E402
                            etcd_version, find_etcd, free_ports, http_get, revision_of,
                            start_echo, write_token)
from peers_common import REPO, Procs, git_rev, loadavg, log, set_program  # noqa: E402

LB = "bench"
GROUP = "app"
NO_CHECKS = {"enabled": False}


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (as bench/api_apply.py)."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"n": len(values), "median_ms": statistics.median(values), "p90_ms": pct(values, 90),
            "p99_ms": pct(values, 99), "max_ms": max(values), "min_ms": min(values),
            "mean_ms": statistics.fmean(values)}


# ---------------------------------------------------------------------------------------------
# The changes


class Change:
    """One change of the series: what is sent, and how a node shows that it has it."""

    def __init__(self, kind: str, port: int):
        self.kind, self.port = kind, port
        if kind == "listener":
            self.method = "POST"
            self.path = f"/v1/loadbalancers/{LB}/listeners"
            self.body = {"protocol": "http", "port": port, "server_group": GROUP,
                         "scheduler": "rr", "health_check": NO_CHECKS}
            self.check_path = f"/v1/loadbalancers/{LB}/listeners/http:{port}"
        else:
            self.method = "POST"
            self.path = f"/v1/loadbalancers/{LB}/servergroups/{GROUP}/backends"
            self.body = {"address": "127.0.0.1", "port": port}
            self.check_path = f"/v1/loadbalancers/{LB}/servergroups/{GROUP}"

    def visible(self, status: int, body: bytes) -> bool:
        if status != 200:
            return False
        if self.kind == "listener":
            return True
        try:
            group = json.loads(body)
        except ValueError:
            return False
        return any(b.get("port") == self.port for b in group.get("backends", []))


class Poller(threading.Thread):
    """Polls one node for each change until it serves it; the main thread arms it right after
    the 2xx with (change, revision, t_2xx) and collects the delay with result()."""

    def __init__(self, node: Node, poll_s: float, timeout_s: float):
        super().__init__(name=f"poll-{node.name}", daemon=True)
        self.node, self.poll_s, self.timeout_s = node, poll_s, timeout_s
        self._arm = threading.Event()
        self._done = threading.Event()
        self._stop = False
        self._job: tuple[Change, int, float] | None = None
        self._result: tuple[float | None, int, str, float | None] = (None, 0, "", None)

    def arm(self, change: Change, revision: int, t_2xx: float) -> None:
        self._done.clear()
        self._job = (change, revision, t_2xx)
        self._arm.set()

    def result(self) -> tuple[float | None, int, str, float | None]:
        """(ms from the 2xx to the first good answer, or None; polls made; last problem; ms from
        the 2xx to when that good poll was sent)."""
        self._done.wait()
        return self._result

    def stop(self) -> None:
        self._stop = True
        self._arm.set()

    def run(self) -> None:
        while True:
            self._arm.wait()
            self._arm.clear()
            if self._stop:
                return
            change, revision, t_2xx = self._job
            polls, problem, got, sent = 0, "", None, None
            deadline = t_2xx + self.timeout_s
            while time.perf_counter() < deadline:
                polls += 1
                t_send = time.perf_counter()
                try:
                    status, headers, body = self.node.reader.request("GET", change.check_path,
                                                                     timeout=5)
                    seen = revision_of(headers)
                    if seen is None:
                        problem = "no Fulcrum-Revision header"
                    elif change.visible(status, body) and seen >= revision:
                        got = (time.perf_counter() - t_2xx) * 1000
                        sent = (t_send - t_2xx) * 1000
                        break
                    else:
                        problem = f"status {status}, Fulcrum-Revision {seen} < {revision}"
                except Exception as e:  # noqa: BLE001 - any failure is a poll that failed
                    problem = f"{type(e).__name__}: {e}"
                time.sleep(self.poll_s)
            self._result = (got, polls, problem, sent)
            self._done.set()


def setup_lb(api: Api, backend_port: int, listener_port: int) -> int | None:
    """The load balancer every change goes into; returns the revision of the 2xx."""
    _, rev = api.call("POST", "/v1/loadbalancers", {
        "name": LB, "address": "127.0.0.1",
        "server_groups": [{"name": GROUP, "backends": [{"address": "127.0.0.1",
                                                        "port": backend_port}]}],
        "listeners": [{"protocol": "http", "port": listener_port, "server_group": GROUP,
                       "scheduler": "rr", "health_check": NO_CHECKS}]})
    return rev


def check_traffic(change: Change, base_listener: int) -> None:
    """The new listener answers (listener changes); the group still answers (backend changes)."""
    port = change.port if change.kind == "listener" else base_listener
    for _ in range(50):
        answer = http_get(port)
        if answer is not None and answer[0] == 200:
            return
        time.sleep(0.02)
    raise RuntimeError(f"no 200 through 127.0.0.1:{port} after the change")


def make_changes(args, extra_ports: list[int]) -> list[Change]:
    return [Change(args.kind, p) for p in extra_ports[:args.warmup + args.changes]]


# ---------------------------------------------------------------------------------------------
# Scenarios


def scenario_cluster(args, tmp: Path, procs: Procs, etcd: str) -> dict:
    cluster = EtcdCluster(procs, tmp, etcd)
    cluster.wait_healthy()
    log(f"etcd healthy: {cluster.store_url}")
    admin_tok, reader_tok = tmp / "admin.token", tmp / "reader.token"
    write_token(admin_tok)
    write_token(reader_tok)
    nodes = [Node(procs, args.fulcrumd, tmp, f"n{i + 1}", cluster.store_url, admin_tok,
                  reader_tok, args.workers, zone=("zone-a", "zone-a", "zone-b")[i])
             for i in range(3)]
    for n in nodes:
        n.wait_ready()
    log("3 nodes ready: " + ", ".join(f"{n.name} {n.api.url}" for n in nodes))
    backend_port, base_listener, extra = args.ports
    rev = setup_lb(nodes[0].api, backend_port, base_listener)
    if rev is None:
        raise RuntimeError("node 1's 2xx carries no Fulcrum-Revision header: cannot measure")
    # Wait until the followers serve the load balancer before the series starts.
    setup = Change("listener", base_listener)
    pollers = [Poller(n, args.poll_ms / 1000, args.timeout) for n in nodes[1:]]
    for p in pollers:
        p.start()
    t = time.perf_counter()
    for p in pollers:
        p.arm(setup, rev, t)
    for p, n in zip(pollers, nodes[1:]):
        got, _, problem, _ = p.result()
        if got is None:
            raise RuntimeError(f"{n.name} never served the load balancer: {problem}\n"
                               f"{n.log_path}")
    check_traffic(setup, base_listener)

    api_ms: list[float] = []
    prop: dict[str, list[float]] = {n.name: [] for n in nodes[1:]}
    polls: dict[str, list[int]] = {n.name: [] for n in nodes[1:]}
    sent: dict[str, list[float]] = {n.name: [] for n in nodes[1:]}
    revisions: list[int] = []
    try:
        for i, change in enumerate(make_changes(args, extra)):
            time.sleep(args.pause_ms / 1000)
            t0 = time.perf_counter()
            _, rev = nodes[0].api.call(change.method, change.path, change.body)
            t1 = time.perf_counter()
            if rev is None:
                raise RuntimeError(f"{change.method} {change.path}: no Fulcrum-Revision header")
            for p in pollers:
                p.arm(change, rev, t1)
            results = [p.result() for p in pollers]
            for (got, n_polls, problem, _), n in zip(results, nodes[1:]):
                if got is None:
                    raise RuntimeError(f"change {i}: {n.name} did not serve revision {rev} "
                                       f"within {args.timeout} s ({n_polls} polls; last: "
                                       f"{problem}); log {n.log_path}")
            check_traffic(change, base_listener)
            if i < args.warmup:
                continue
            api_ms.append((t1 - t0) * 1000)
            revisions.append(rev)
            for (got, n_polls, _, sent_ms), n in zip(results, nodes[1:]):
                prop[n.name].append(got)
                polls[n.name].append(n_polls)
                sent[n.name].append(sent_ms)
            if (i + 1 - args.warmup) % 10 == 0:
                log(f"cluster: {i + 1 - args.warmup}/{args.changes} changes")
        # The resolution of the figures above: one poll's round trip on an idle cluster.
        rtt: dict[str, list[float]] = {}
        for n in nodes[1:]:
            rtt[n.name] = []
            for _ in range(30):
                t = time.perf_counter()
                n.reader.request("GET", change.check_path, timeout=5)
                rtt[n.name].append((time.perf_counter() - t) * 1000)
                time.sleep(args.poll_ms / 1000)
        status = nodes[1].reader.call("GET", "/v1/status")[0]
        node_list = nodes[0].reader.call("GET", "/v1/nodes")[0]
    finally:
        for p in pollers:
            p.stop()
    return {"api_ms": api_ms, "propagation_ms": prop, "polls": polls, "revisions": revisions,
            "good_poll_sent_ms": sent, "poll_rtt_ms": rtt,
            "store_url": cluster.store_url, "status_n2": status, "nodes": node_list}


def scenario_sqlite(args, tmp: Path, procs: Procs) -> dict:
    admin_tok, reader_tok = tmp / "admin.token", tmp / "reader.token"
    write_token(admin_tok)
    write_token(reader_tok)
    node = Node(procs, args.fulcrumd, tmp, "single", "sqlite", admin_tok, reader_tok,
                args.workers)
    node.wait_ready()
    backend_port, base_listener, extra = args.ports
    setup_lb(node.api, backend_port, base_listener)
    api_ms: list[float] = []
    for i, change in enumerate(make_changes(args, extra)):
        time.sleep(args.pause_ms / 1000)
        t0 = time.perf_counter()
        node.api.call(change.method, change.path, change.body)
        t1 = time.perf_counter()
        check_traffic(change, base_listener)
        if i >= args.warmup:
            api_ms.append((t1 - t0) * 1000)
    return {"api_ms": api_ms}


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str]):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=30, help="changes measured (at least 20)")
    ap.add_argument("--kind", choices=("listener", "backend"), default="listener",
                    help="each change adds a new HTTP listener (default) or a new backend")
    ap.add_argument("--warmup", type=int, default=1, help="changes made first and not counted")
    ap.add_argument("--workers", type=int, default=1, help="worker threads of every fulcrumd")
    ap.add_argument("--poll-ms", type=float, default=1.0,
                    help="pause between two polls of a node (1-2 ms)")
    ap.add_argument("--pause-ms", type=float, default=20.0, help="pause before each change")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds a node may take to serve a change before the run fails")
    ap.add_argument("--skip-sqlite", action="store_true", help="no single-node comparison")
    ap.add_argument("--fulcrumd", type=Path, default=DEFAULT_FULCRUMD)
    ap.add_argument("--echo", type=Path, default=DEFAULT_ECHO)
    ap.add_argument("--etcd", default=None, help="etcd binary (default: etcd in PATH)")
    ap.add_argument("--json", type=Path, default=None,
                    help="result file (default bench/results/cluster-apply-<timestamp>.json)")
    args = ap.parse_args(argv)
    if not 20 <= args.changes <= 1000:
        ap.error("--changes must be between 20 and 1000")
    if not 0 <= args.warmup <= 100:
        ap.error("--warmup must be between 0 and 100")
    if not 0 < args.poll_ms <= 100:
        ap.error("--poll-ms must be in (0, 100]")
    return args


def row(label: str, values: list[float]) -> str:
    s = summary(values)
    if s is None:
        return f"| {label} | 0 | - | - | - | - |"
    return (f"| {label} | {s['n']} | {s['median_ms']:.2f} ms | {s['p90_ms']:.2f} ms | "
            f"{s['p99_ms']:.2f} ms | {s['max_ms']:.2f} ms |")


def main(argv: list[str]) -> int:
    set_program("cluster_apply")
    args = parse_args(argv)
    etcd = find_etcd(args.etcd)
    if etcd is None:
        log("etcd not found: install it (Debian: apt-get install etcd-server) or pass --etcd")
        return 2
    for binary in (args.fulcrumd, args.echo):
        if not os.access(binary, os.X_OK):
            log(f"missing {binary}: build the release preset first (or pass --fulcrumd/--echo)")
            return 2

    # SIGTERM ends the run like Ctrl-C: the finally blocks stop every process by its pid.
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.json or REPO / "bench" / "results" / f"cluster-apply-{stamp}.json"
    meta = {"benchmark": "cluster_apply", "timestamp": stamp,
            "command": " ".join([sys.argv[0]] + argv), "git": git_rev(),
            "kernel": platform.release(), "cpus": os.cpu_count(), "workers": args.workers,
            "changes": args.changes, "warmup": args.warmup, "kind": args.kind,
            "poll_ms": args.poll_ms, "pause_ms": args.pause_ms, "etcd": etcd_version(etcd),
            "fulcrumd": str(args.fulcrumd), "loadavg_start": loadavg()}
    results: dict = {}
    failures: list[dict] = []
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="cluster-apply-") as d:
        tmp = Path(d)
        scenarios = [("cluster", scenario_cluster)]
        if not args.skip_sqlite:
            scenarios.append(("sqlite", scenario_sqlite))
        for name, fn in scenarios:
            sub = tmp / name
            sub.mkdir()
            procs = Procs()
            try:
                # The backend(s): one fulcrum-echo; --kind backend adds one port per change.
                n_ports = 1 + (args.warmup + args.changes if args.kind == "backend" else 0)
                _, ports = start_echo(procs, args.echo, sub, "echo", n_ports)
                if args.kind == "backend":
                    extra = ports[1:]
                    base_listener = free_ports(1, set(ports))[0]
                else:
                    more = free_ports(1 + args.warmup + args.changes, set(ports))
                    base_listener, extra = more[0], more[1:]
                args.ports = (ports[0], base_listener, extra)
                log(f"{name}: {args.warmup} + {args.changes} changes ({args.kind})")
                if name == "cluster":
                    results[name] = scenario_cluster(args, sub, procs, etcd)
                else:
                    results[name] = scenario_sqlite(args, sub, procs)
            except KeyboardInterrupt:
                interrupted = True
                failures.append({"scenario": name, "error": "interrupted"})
            except Exception as e:  # noqa: BLE001 - reported, the other scenario still runs
                failures.append({"scenario": name, "error": str(e)})
                log(f"{name} failed: {e}")
            finally:
                procs.stop_all()
            if interrupted:
                break
    meta["loadavg_end"] = loadavg()

    what = "a new HTTP listener" if args.kind == "listener" else "a new backend"
    print(f"## Fulcrum cluster propagation — {stamp}, git {meta['git']}, {meta['cpus']} CPUs, "
          f"kernel {meta['kernel']}\n")
    print(f"3 etcd members ({meta['etcd']}) and 3 fulcrumd nodes (--workers {args.workers}) on "
          f"one host; {args.changes} changes through node 1, each {what} (after {args.warmup} "
          f"not counted); nodes polled every {args.poll_ms:g} ms. p99 of {args.changes} samples "
          f"is close to the max.\n")
    print("| figure | n | median | p90 | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|")
    c = results.get("cluster")
    if c:
        print(row("API call, cluster (node 1, etcd store): request → 2xx", c["api_ms"]))
        for n, label in (("n2", "node 2"), ("n3", "node 3")):
            print(row(f"{label}: node 1's 2xx → serves it (API shows it, Fulcrum-Revision ≥ R)",
                      c["propagation_ms"][n]))
        both = [max(a, b) for a, b in zip(c["propagation_ms"]["n2"], c["propagation_ms"]["n3"])]
        print(row("both followers: 2xx → the later of node 2 and node 3", both))
        for n, label in (("n2", "node 2"), ("n3", "node 3")):
            print(row(f"{label}: one poll's round trip, idle (the floor of its row above)",
                      c["poll_rtt_ms"][n]))
    s = results.get("sqlite")
    if s:
        print(row("API call, single node (SQLite store): request → 2xx", s["api_ms"]))
    print()
    if c:
        first = {n: sum(1 for k in c["polls"][n] if k == 1) for n in ("n2", "n3")}
        print(f"In {first['n2']} of {args.changes} changes on node 2 ({first['n3']} on node 3) "
              f"the first poll, sent at the 2xx, was already answered with the change: the "
              f"followers apply it from the same etcd watch while node 1 answers. Such a figure "
              f"is that one poll's answer time; the 'round trip' rows are its floor on an idle "
              f"node.\n")
    print(f"Load average: {meta['loadavg_start']} at start, {meta['loadavg_end']} at end.\n")
    for f in failures:
        print(f"**{f['scenario']} failed:** {f['error']}\n")
    out = {"meta": meta, "failures": failures, "results": {}}
    for name, r in results.items():
        entry = {"api": summary(r["api_ms"]), "api_ms": r["api_ms"]}
        if name == "cluster":
            entry.update({
                "propagation": {n: summary(v) for n, v in r["propagation_ms"].items()},
                "propagation_ms": r["propagation_ms"], "polls": r["polls"],
                "good_poll_sent_ms": r["good_poll_sent_ms"],
                "poll_rtt": {n: summary(v) for n, v in r["poll_rtt_ms"].items()},
                "poll_rtt_ms": r["poll_rtt_ms"],
                "revisions": r["revisions"], "store": r["store_url"],
                "status_n2": r["status_n2"], "nodes": r["nodes"]})
        out["results"][name] = entry
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"JSON: {json_path}")
    return 130 if interrupted else (1 if failures else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
