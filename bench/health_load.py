#!/usr/bin/env python3
"""Health-check load: fulcrumd checking N backends (default 1000) with a given interval.

Starts N listening sockets on 127.0.0.1 (this script accepts and counts every check connection),
one fulcrumd (--workers 1) with one TCP listener over them, and reports for a measuring window:
checks per second seen by the backends, and fulcrumd's CPU time per check and in total.

    python3 bench/health_load.py [--backends 1000] [--interval 2] [--seconds 10] [--type tcp|http]

Every process it starts is stopped by pid; only loopback is used; the run is bounded.
"""
import argparse
import os
import pathlib
import selectors
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FULCRUMD = ROOT / "build" / "release" / "cmd" / "fulcrumd" / "fulcrumd"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--type", choices=["tcp", "http"], default="tcp")
    args = ap.parse_args()

    sel = selectors.DefaultSelector()
    servers = []
    for _ in range(args.backends):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1024)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        servers.append(s)
    ports = [s.getsockname()[1] for s in servers]
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" if args.type == "http" else None

    tmp = tempfile.TemporaryDirectory(prefix="fulcrum-hc-bench-")
    cfg = pathlib.Path(tmp.name) / "lb.yaml"
    lines = ["loadbalancers:", "  - name: hc", "    address: 127.0.0.1", "    server_groups:",
             "      - name: many", "        backends:"]
    lines += [f"          - {{address: 127.0.0.1, port: {p}}}" for p in ports]
    listen = socket.socket()
    listen.bind(("127.0.0.1", 0))
    lport = listen.getsockname()[1]
    listen.close()
    lines += ["    listeners:", "      - protocol: tcp", f"        port: {lport}",
              "        server_group: many",
              f"        health_check: {{type: {args.type}, interval: {args.interval}, timeout: 5}}"]
    cfg.write_text("\n".join(lines) + "\n")
    log = open(pathlib.Path(tmp.name) / "log", "w+")
    proc = subprocess.Popen([str(FULCRUMD), "--config", str(cfg), "--workers", "1",
                             "--data-dir", str(pathlib.Path(tmp.name) / "data"), "--admin", "off"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        # Warm-up: one interval so every backend has been scheduled once.
        accepted = 0

        def pump(until):
            nonlocal accepted
            while time.monotonic() < until:
                for key, _ in sel.select(timeout=0.05):
                    while True:
                        try:
                            c, _ = key.fileobj.accept()
                        except BlockingIOError:
                            break
                        accepted += 1
                        if answer:
                            try:
                                c.setblocking(False)
                                c.send(answer)
                            except OSError:
                                pass
                        c.close()

        pump(time.monotonic() + args.interval * 1.5)
        accepted = 0
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        pump(t0 + args.seconds)
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        if proc.poll() is not None:
            log.seek(0)
            sys.exit(f"fulcrumd exited: {log.read()}")
        rate = accepted / (t1 - t0)
        cpu = cpu1 - cpu0
        print(f"| backends | type | interval | checks/s seen | expected | fulcrumd CPU | CPU per check |")
        print(f"|---|---|---|---|---|---|---|")
        print(f"| {args.backends} | {args.type} | {args.interval:g} s | {rate:.0f} | "
              f"{args.backends / args.interval:.0f} | {100 * cpu / (t1 - t0):.1f} % of a core | "
              f"{1e6 * cpu / max(accepted, 1):.1f} µs |")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for s in servers:
            s.close()
        log.close()
        tmp.cleanup()


if __name__ == "__main__":
    main()
