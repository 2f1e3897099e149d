#!/usr/bin/env python3
"""How fast a configuration change reaches traffic (issue #5's two figures).

1. **2xx → traffic**: an HTTP listener (scheduler rr, one backend) under a client that opens a
   new connection per request; the script adds a second backend with the API and measures (a) the
   API call, request sent → 2xx (validation, compile, fsync, publication to every worker), and
   (b) from the 2xx to the first response answered by the new backend. Then it removes the
   backend again; --rounds times.
2. **1,000 backends across 100 listeners**: POST /v1/apply with one load balancer of 100 TCP
   listeners, each with its own group of 10 backends (one Python process listens on the 1,000
   backend ports and answers its port number), then connects to every listener until every
   backend has answered once. Reports the apply call and the time until all 1,000 serve.

    python3 bench/api_apply.py [--rounds 20] [--workers 2]

A command, not a test: figures depend on the machine (fsync latency above all). Python standard
library only; every process started is stopped by its pid.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FULCRUMD = REPO / "build/release/cmd/fulcrumd/fulcrumd"
ECHO = REPO / "build/release/tools/fulcrum-echo/fulcrum-echo"


def log(msg: str) -> None:
    print(f"[api_apply {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, data: Path):
        self.url = (data / "admin.url").read_text().strip().removeprefix("http://")
        self.token = (data / "admin.token").read_text().strip()

    def call(self, method: str, path: str, body=None, raw: bytes | None = None,
             ctype: str = "application/json"):
        host, port = self.url.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Authorization": f"Bearer {self.token}"}
        if data is not None:
            headers["Content-Type"] = ctype
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
        conn.close()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {text[:300]!r}")
        return json.loads(text) if text else None


class Fulcrumd:
    def __init__(self, tmp: Path, workers: int):
        self.data = tmp / "data"
        self.log = open(tmp / "fulcrumd.log", "w+")
        self.proc = subprocess.Popen(
            [str(FULCRUMD), "--workers", str(workers), "--data-dir", str(self.data),
             "--admin", "127.0.0.1:0"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not (self.data / "admin.url").exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("fulcrumd did not start: " + (tmp / "fulcrumd.log").read_text())
            time.sleep(0.02)
        self.api = Api(self.data)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=20)


def http_name(port: int) -> str | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode().strip()
        conn.close()
        return body if resp.status == 200 else None
    except OSError:
        return None


def start_echo(name: str, tmp: Path) -> tuple[subprocess.Popen, int]:
    ready = tmp / f"ready-{name}"
    proc = subprocess.Popen([str(ECHO), "--name", name, "--http", "127.0.0.1:0",
                             "--ready-file", str(ready), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not (ready.exists() and ready.read_text().strip()):
        if time.time() > deadline:
            raise RuntimeError("fulcrum-echo did not start")
        time.sleep(0.02)
    return proc, int(ready.read_text().split()[-1].rsplit(":", 1)[1])


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def scenario_first_traffic(tmp: Path, args) -> dict:
    procs = []
    try:
        a_proc, a_port = start_echo("a", tmp)
        b_proc, b_port = start_echo("b", tmp)
        procs += [a_proc, b_proc]
        (tmp / "one").mkdir()
        f = Fulcrumd(tmp / "one", args.workers)
        port = free_port()
        f.api.call("POST", "/v1/loadbalancers", {
            "name": "web", "address": "127.0.0.1",
            "server_groups": [{"name": "app", "backends": [{"address": "127.0.0.1",
                                                            "port": a_port}]}],
            "listeners": [{"protocol": "http", "port": port, "server_group": "app",
                           "scheduler": "rr", "health_check": {"enabled": False}}]})
        api_ms, traffic_ms = [], []
        path = "/v1/loadbalancers/web/servergroups/app/backends"
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            f.api.call("POST", path, {"address": "127.0.0.1", "port": b_port})
            t1 = time.perf_counter()
            for _ in range(100):
                if http_name(port) == "b":
                    break
            else:
                raise RuntimeError("the new backend never answered")
            t2 = time.perf_counter()
            api_ms.append((t1 - t0) * 1000)
            traffic_ms.append((t2 - t1) * 1000)
            f.api.call("DELETE", f"{path}/127.0.0.1:{b_port}")
        f.stop()
        return {"api_ms": api_ms, "traffic_ms": traffic_ms}
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def serve_ports(ports: list[int], stop: threading.Event, ready: threading.Event):
    """One thread, 1,000 listening sockets: each accepted connection gets its port number."""
    sel = selectors.DefaultSelector()
    socks = []
    for p in ports:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p))
        s.listen(64)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, p)
        socks.append(s)
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.1):
            try:
                conn, _ = key.fileobj.accept()
            except BlockingIOError:
                continue
            try:
                conn.sendall(f"{key.data}\n".encode())
            except OSError:
                pass
            conn.close()
    for s in socks:
        s.close()


def scenario_bulk(tmp: Path, args) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    backend_ports = []
    while len(backend_ports) < args.listeners * args.per_listener:
        p = free_port()
        if p not in backend_ports:
            backend_ports.append(p)
    stop, ready = threading.Event(), threading.Event()
    server = threading.Thread(target=serve_ports, args=(backend_ports, stop, ready), daemon=True)
    server.start()
    ready.wait(10)
    (tmp / "bulk").mkdir()
    f = Fulcrumd(tmp / "bulk", args.workers)
    try:
        listener_ports = []
        while len(listener_ports) < args.listeners:
            p = free_port()
            if p not in listener_ports and p not in backend_ports:
                listener_ports.append(p)
        groups, listeners = [], []
        for i, lport in enumerate(listener_ports):
            chunk = backend_ports[i * args.per_listener:(i + 1) * args.per_listener]
            groups.append({"name": f"g{i}", "backends": [{"address": "127.0.0.1", "port": p}
                                                         for p in chunk]})
            listeners.append({"protocol": "tcp", "port": lport, "server_group": f"g{i}",
                              "scheduler": "rr", "health_check": {"enabled": False}})
        doc = {"loadbalancers": [{"name": "bulk", "address": "127.0.0.1",
                                  "server_groups": groups, "listeners": listeners}]}
        raw = json.dumps(doc).encode()
        t0 = time.perf_counter()
        answer = f.api.call("POST", "/v1/apply", raw=raw)
        t1 = time.perf_counter()
        seen = set()
        want = set(backend_ports)
        rounds = 0
        while seen != want and rounds < 50:
            rounds += 1
            for lport in listener_ports:
                for _ in range(args.per_listener):
                    try:
                        with socket.create_connection(("127.0.0.1", lport), timeout=5) as s:
                            data = s.recv(64)
                        if data:
                            seen.add(int(data.decode().strip()))
                    except OSError:
                        pass
        t2 = time.perf_counter()
        if seen != want:
            raise RuntimeError(f"only {len(seen)} of {len(want)} backends answered")
        return {"apply_ms": (t1 - t0) * 1000, "all_serving_ms": (t2 - t0) * 1000,
                "probe_ms": (t2 - t1) * 1000, "bytes": len(raw),
                "changes": len(answer["changes"]), "connections_rounds": rounds}
    finally:
        f.stop()
        stop.set()
        server.join(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--listeners", type=int, default=100)
    ap.add_argument("--per-listener", type=int, default=10)
    args = ap.parse_args()
    for binary in (FULCRUMD, ECHO):
        if not os.access(binary, os.X_OK):
            log(f"missing {binary}: build the release preset first")
            return 2
    with tempfile.TemporaryDirectory(prefix="api-apply-") as d:
        tmp = Path(d)
        one = scenario_first_traffic(tmp, args)
        bulk = scenario_bulk(tmp, args)
    print("| figure | median | p90 | max |")
    print("|---|---:|---:|---:|")
    for label, key in (("API call: request → 2xx (add one backend)", "api_ms"),
                       ("2xx → first response from the new backend", "traffic_ms")):
        v = one[key]
        print(f"| {label} | {statistics.median(v):.2f} ms | {pct(v, 90):.2f} ms | {max(v):.2f} ms |")
    print()
    print(f"apply of {args.listeners} listeners × {args.per_listener} backends "
          f"({bulk['bytes']} bytes JSON, {bulk['changes']} store keys): "
          f"API call {bulk['apply_ms']:.0f} ms; every backend answered through its listener "
          f"{bulk['all_serving_ms']:.0f} ms after the request was sent "
          f"(probing {bulk['probe_ms']:.0f} ms of it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
