#!/usr/bin/env python3
"""UDP peer benchmark: DNS queries through Fulcrum's UDP listener against NGINX `stream` (UDP
proxy) and straight to a DNS server.

Scenarios (all on loopback; every target shares the same DNS backends, two NSD servers of one
process each, answering from one small zone):
  dns       dnsperf flat out (-c 10 source ports, -q 100 queries in flight)   (queries/s,
            proxy CPU µs per query)
  dns-paced dnsperf at a fixed sub-saturation rate (-Q, default 20,000/s): average and max
            latency at a rate every target sustains                          (ms, proxy CPU µs per
            query)

Targets are run interleaved, round after round (direct, fulcrum, nginx; the starting target
rotates each round), and each target is summarised by its median and spread. Both proxies run one
worker (--workers). `direct` sends to the first DNS server only (dnsperf takes one server): it is
the ceiling of the machine, not a like-for-like peer. The CPU time of the proxy process (utime +
stime from /proc/<pid>/stat, all threads) is read before and after each load run.

Only the Python standard library is used. Every process started here is stopped here, by its pid.
See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers_common import (  # noqa: E402  (bench/ is put on sys.path just above)
    base_meta,
    finish_report,
    missing_tools,
    run_scenarios,
    settle_round_args,
    CLK_TCK, DEFAULT_FULCRUMD, LOOPBACK, REPO, Procs, cpu_times, loadavg, log, med_range,
    raise_fd_limit, ratio, rss_kb, run_client, set_program, tail, thread_count, tool_version)

set_program("udp_peers")
TARGETS = ("direct", "fulcrum", "nginx")
SCENARIOS = ("dns", "dns-paced")
ZONE = """$ORIGIN example.test.
$TTL 60
@    IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60
@    IN NS  ns.example.test.
ns   IN A   192.0.2.53
www  IN A   192.0.2.1
api  IN A   192.0.2.2
mail IN A   192.0.2.3
"""
QUERIES = "www.example.test A\napi.example.test A\nmail.example.test A\nexample.test SOA\n"
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


# ---------------------------------------------------------------------------------------------
# Ports, backends and proxies


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (NSD listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((LOOPBACK, 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind((LOOPBACK, port))
                return port
            except OSError:
                continue
    raise RuntimeError("no port free for both UDP and TCP")


def dns_ready(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None,
              log_path: Path | None = None, what: str = "") -> None:
    """Waits until a DNS query to `port` gets an answer."""
    query = bytes.fromhex("12340100000100000000000003777777076578616d706c6504746573740000010001")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail(log_path)}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            try:
                s.sendto(query, (LOOPBACK, port))
                if s.recv(512)[:2] == query[:2]:
                    return
            except OSError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} does not answer DNS on {port} after {timeout:.0f} s"
                       + (f":\n{tail(log_path)}" if log_path else ""))


def start_nsd(procs: Procs, tmp: Path, index: int) -> tuple[int, subprocess.Popen]:
    port = free_udp_tcp_port()
    d = tmp / f"nsd{index}"
    d.mkdir()
    (d / "example.test.zone").write_text(ZONE)
    conf = d / "nsd.conf"
    # One server process, no response-rate limiting (it would throttle a benchmark from one IP),
    # no IPv6, files inside the temporary folder, foreground (-d).
    conf.write_text(f"""server:
  ip-address: {LOOPBACK}@{port}
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "{d}"
  database: ""
  pidfile: "{d}/nsd.pid"
  logfile: "{d}/nsd.log"
  zonelistfile: "{d}/zone.list"
  xfrdfile: "{d}/xfrd.state"
  xfrdir: "{d}"
  do-ip6: no
  verbosity: 0
  tcp-count: 16
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: example.test
  zonefile: example.test.zone
""")
    log_path = d / "stdout.log"
    proc = procs.start(f"nsd {index}", ["nsd", "-d", "-c", str(conf)], log_path)
    dns_ready(port, proc=proc, log_path=log_path, what=f"nsd {index}")
    return port, proc


def start_fulcrum(procs: Procs, tmp: Path, fulcrumd: Path, backends: list[int],
                  workers: int) -> tuple[int, subprocess.Popen]:
    port = free_udp_tcp_port()
    d = tmp / "fulcrum"
    d.mkdir(exist_ok=True)
    conf = d / "lb.yaml"
    lines = "\n".join(f"          - {{address: {LOOPBACK}, port: {p}, weight: 100}}"
                      for p in backends)
    conf.write_text(f"""loadbalancers:
  - name: bench
    address: {LOOPBACK}
    server_groups:
      - name: dns
        backends:
{lines}
    listeners:
      - protocol: udp
        port: {port}
        server_group: dns
        scheduler: wrr
        # NGINX's upstream has no active check either: the same work on both sides.
        health_check: {{enabled: false}}
""")
    log_path = d / "fulcrumd.log"
    proc = procs.start("fulcrumd", [str(fulcrumd), "--config", str(conf), "--workers",
                                    str(workers), "--log-level", "info",
                                    "--data-dir", str(d / "data"), "--admin", "off"], log_path)
    dns_ready(port, proc=proc, log_path=log_path, what="fulcrumd")
    return port, proc


def start_nginx_stream(procs: Procs, tmp: Path, backends: list[int], workers: int,
                       responses: int | None) -> tuple[int, subprocess.Popen]:
    port = free_udp_tcp_port()
    prefix = tmp / "nginx"
    prefix.mkdir()
    servers = "".join(f"        server {LOOPBACK}:{p};\n" for p in backends)
    # proxy_responses unset: a client's session (its source address) lives until proxy_timeout
    # and keeps one upstream socket, as a Fulcrum flow does; `--nginx-responses 1` is the
    # one-session-per-query setting of NGINX's DNS examples.
    responses_line = f"        proxy_responses {responses};\n" if responses else ""
    conf = prefix / "nginx.conf"
    # One worker: `master_process off`, so the started pid is the process that proxies and the
    # CPU measured is all of NGINX's.
    conf.write_text(f"""load_module {NGINX_STREAM_MODULE};
master_process off;
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log error;
events {{ worker_connections 16384; }}
stream {{
    upstream dns {{
{servers}    }}
    server {{
        listen {LOOPBACK}:{port} udp reuseport;
        proxy_pass dns;
        proxy_timeout 10s;
{responses_line}    }}
}}
""")
    log_path = prefix / "stdout.log"
    proc = procs.start("nginx", ["nginx", "-p", str(prefix), "-c", str(conf), "-e",
                                 str(prefix / "error.log"), "-g", "daemon off;"], log_path)
    dns_ready(port, proc=proc, log_path=log_path, what="nginx")
    return port, proc


# ---------------------------------------------------------------------------------------------
# Load runs


def run_dnsperf(port: int, seconds: int, query_file: Path, rate: int | None,
                clients: int, outstanding: int) -> dict:
    argv = ["dnsperf", "-s", LOOPBACK, "-p", str(port), "-d", str(query_file), "-l", str(seconds),
            "-c", str(clients), "-q", str(outstanding), "-t", "2"]
    if rate:
        argv += ["-Q", str(rate)]
    rc, out, err = run_client(argv, timeout=seconds + 30)

    def num(pattern: str) -> float | None:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    qps = num(r"Queries per second:\s+([\d.]+)")
    completed = num(r"Queries completed:\s+(\d+)")
    sent = num(r"Queries sent:\s+(\d+)")
    lost = num(r"Queries lost:\s+(\d+)")
    avg = num(r"Average Latency \(s\):\s+([\d.]+)")
    mx = num(r"Average Latency \(s\):.*max ([\d.]+)\)")
    if rc != 0 or qps is None or not completed:
        return {"value": None, "error": (err.strip() or out.strip() or f"exit {rc}")[-500:],
                "errors": 1}
    return {"value": qps, "units_done": completed, "sent": sent, "lost": lost or 0,
            "errors": int(lost or 0), "latency_avg_ms": avg * 1e3 if avg is not None else None,
            "latency_max_ms": mx * 1e3 if mx is not None else None}


def measure(scenario: str, port: int, args, query_file: Path,
            proxy: subprocess.Popen | None, seconds: int) -> dict:
    cpu0 = cpu_times(proxy.pid) if proxy else None
    t0 = time.monotonic()
    rate = args.paced_rate if scenario == "dns-paced" else None
    result = run_dnsperf(port, seconds, query_file, rate, args.clients, args.outstanding)
    wall = time.monotonic() - t0
    if proxy:
        if proxy.poll() is not None:
            raise RuntimeError(f"proxy pid {proxy.pid} died during the run ({proxy.returncode})")
        cpu1 = cpu_times(proxy.pid)
        user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        cpu = user + system
        result["proxy_user_s"], result["proxy_sys_s"] = user, system
        result.update(rss_kb(proxy.pid))
        result["proxy_cpu_s"] = cpu
        result["proxy_cpu_util"] = cpu / wall if wall > 0 else None
        if result.get("value") is not None and result.get("units_done"):
            result["cpu_per_unit"] = cpu * 1e6 / result["units_done"]  # µs per query
    result["wall_s"] = wall
    return result


# ---------------------------------------------------------------------------------------------
# Summaries


TITLES = {
    "dns": "DNS over UDP, flat out (dnsperf -c {clients} -q {outstanding}, 2 NSD backends)",
    "dns-paced": "DNS over UDP at {rate:,} queries/s (dnsperf -Q), latency at a fixed rate",
}


def summarise(samples: dict[str, list[dict]]) -> dict:
    summary: dict = {"targets": {}, "ratios": {}}
    for target, runs in samples.items():
        summary["targets"][target] = {
            "value": med_range([r.get("value") for r in runs]),
            "cpu_per_unit": med_range([r.get("cpu_per_unit") for r in runs]),
            "cpu_util": med_range([r.get("proxy_cpu_util") for r in runs]),
            "sys_share": med_range([r["proxy_sys_s"] / r["proxy_cpu_s"] for r in runs
                                    if r.get("proxy_cpu_s")]),
            "latency_avg_ms": med_range([r.get("latency_avg_ms") for r in runs]),
            "lost": sum(r.get("lost", 0) for r in runs),
            "errors": sum(1 for r in runs if r.get("value") is None),
        }

    def per_round(a: str, b: str, key: str) -> dict | None:
        if a not in samples or b not in samples:
            return None
        return med_range([ratio(x.get(key), y.get(key)) for x, y in zip(samples[a], samples[b])])

    for peer in ("nginx", "direct"):
        if "fulcrum" in samples and peer in samples:
            summary["ratios"][f"fulcrum/{peer}"] = {
                "value_per_round": per_round("fulcrum", peer, "value"),
                "cpu_per_round": per_round("fulcrum", peer, "cpu_per_unit"),
                "latency_per_round": per_round("fulcrum", peer, "latency_avg_ms"),
            }
    return summary


def markdown(scenario: str, summary: dict, title: str, seconds: int, rounds: int,
             workers: int) -> str:
    t = summary["targets"]

    def med(target: str, key: str) -> float | None:
        s = t.get(target, {}).get(key)
        return s["median"] if s else None

    lines = [
        f"### {title}",
        "",
        f"{rounds} interleaved rounds of {seconds} s, proxies with {workers} worker(s); medians "
        "(min–max). Higher queries/s is better; lower CPU and latency are better.",
        "",
        "| target | queries/s | ÷ nginx | ÷ direct | proxy CPU µs/query | CPU ÷ nginx | "
        "avg latency ms | proxy CPU % | of it kernel | lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target, s in t.items():
        v, c, u, k, lat = (s["value"], s["cpu_per_unit"], s["cpu_util"], s["sys_share"],
                           s["latency_avg_ms"])
        cells = [target]
        cells.append(f"{v['median']:,.0f} ({v['min']:,.0f}–{v['max']:,.0f})" if v else "–")
        for peer in ("nginx", "direct"):
            r = ratio(v and v["median"], med(peer, "value"))
            cells.append(f"{r:.2f}×" if r else "–")
        cells.append(f"{c['median']:.2f} ({c['min']:.2f}–{c['max']:.2f})" if c else "–")
        r = ratio(c and c["median"], med("nginx", "cpu_per_unit"))
        cells.append(f"{r:.2f}×" if r else "–")
        cells.append(f"{lat['median']:.3f}" if lat else "–")
        cells.append(f"{u['median'] * 100:.0f} %" if u else "–")
        cells.append(f"{k['median'] * 100:.0f} %" if k else "–")
        cells.append(str(int(s["lost"])))
        lines.append("| " + " | ".join(cells) + " |")
    for peer in ("nginx", "direct"):
        r = summary["ratios"].get(f"fulcrum/{peer}")
        if not r:
            continue
        parts = []
        for key, label in (("value_per_round", "queries/s"), ("cpu_per_round", "CPU/query"),
                           ("latency_per_round", "avg latency")):
            x = r.get(key)
            if x:
                parts.append(f"{label} {x['median']:.2f}× ({x['min']:.2f}–{x['max']:.2f})")
        if parts:
            lines.append(f"\nfulcrum ÷ {peer}, median of per-round ratios: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Main


def run_scenario(scenario: str, args, tmp: Path, procs: Procs) -> dict:
    seconds = args.duration
    started: list[subprocess.Popen] = []
    try:
        query_file = tmp / "queries.txt"
        query_file.write_text(QUERIES)
        backends = []
        for i in range(2):
            port, proc = start_nsd(procs, tmp, i)
            backends.append(port)
            started.append(proc)
        ports: dict[str, int] = {}
        proxies: dict[str, subprocess.Popen | None] = {}
        for target in args.targets:
            if target == "direct":
                ports[target], proxies[target] = backends[0], None
            elif target == "fulcrum":
                ports[target], proxies[target] = start_fulcrum(procs, tmp, args.fulcrumd,
                                                               backends, args.workers)
                started.append(proxies[target])
            elif target == "nginx":
                ports[target], proxies[target] = start_nginx_stream(procs, tmp, backends,
                                                                    args.workers,
                                                                    args.nginx_responses)
                started.append(proxies[target])
        threads = {t: thread_count(p.pid) for t, p in proxies.items() if p}
        log(f"{scenario}: backends {backends}, target ports {ports}, threads {threads}")
        if args.warmup > 0:
            for target in args.targets:
                log(f"{scenario}: warm-up {target} ({args.warmup} s)")
                measure(scenario, ports[target], args, query_file, proxies[target], args.warmup)
                time.sleep(args.pause)
        samples: dict[str, list[dict]] = {t: [] for t in args.targets}
        n = len(args.targets)
        for rnd in range(args.rounds):
            order = [args.targets[(rnd + i) % n] for i in range(n)]
            for target in order:
                res = measure(scenario, ports[target], args, query_file, proxies[target], seconds)
                res["round"] = rnd + 1
                samples[target].append(res)
                cpu = res.get("cpu_per_unit")
                lat = res.get("latency_avg_ms")
                log(f"{scenario} round {rnd + 1}/{args.rounds} {target}: "
                    + (f"{res['value']:,.0f} q/s" if res.get("value") else "failed")
                    + (f", {cpu:.2f} µs/query" if cpu else "")
                    + (f", avg {lat:.3f} ms" if lat is not None else "")
                    + (f", lost {res['lost']:.0f}" if res.get("lost") else "")
                    + (f" ({res['error']})" if res.get("error") else ""))
                time.sleep(args.pause)
        title = TITLES[scenario].format(clients=args.clients, outstanding=args.outstanding,
                                        rate=args.paced_rate)
        return {"scenario": scenario, "title": title, "seconds": seconds,
                "proxy_threads": threads, "samples": samples, "summary": summarise(samples)}
    finally:
        for p in reversed(started):
            procs.stop(p)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved rounds (default 5; at least 3 unless --quick, which uses 1)")
    ap.add_argument("--workers", type=int, default=1, choices=(1,),
                    help="workers of each proxy: fulcrumd --workers, nginx worker_processes "
                    "(1 only for now: NGINX then runs without a master, one process)")
    ap.add_argument("--duration", type=int, default=None,
                    help="seconds per load run (default 5, 2 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 round of 2 s, no warm-up")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated subset of {','.join(SCENARIOS)}")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help=f"comma-separated subset of {','.join(TARGETS)}")
    ap.add_argument("--warmup", type=int, default=None,
                    help="seconds of unmeasured load per target before the rounds (default 1)")
    ap.add_argument("--pause", type=float, default=1.0,
                    help="seconds of idle between load runs (default 1)")
    ap.add_argument("--clients", type=int, default=10,
                    help="dnsperf -c: client sockets, i.e. source ports and proxy flows (10)")
    ap.add_argument("--outstanding", type=int, default=100,
                    help="dnsperf -q: queries in flight at most (100)")
    ap.add_argument("--paced-rate", type=int, default=20000,
                    help="dnsperf -Q of the dns-paced scenario, queries/s (20000)")
    ap.add_argument("--nginx-responses", type=int, default=None, metavar="N",
                    help="NGINX proxy_responses (default unset: one session per client port "
                    "until proxy_timeout; 1 = a session per query)")
    ap.add_argument("--fulcrumd", type=Path, default=DEFAULT_FULCRUMD)
    ap.add_argument("--json", type=Path, default=None,
                    help="result file (default bench/results/udp-<timestamp>.json)")
    args = ap.parse_args(argv)
    settle_round_args(ap, args, SCENARIOS, TARGETS)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    need = ["dnsperf", "nsd"] + (["nginx"] if "nginx" in args.targets else [])
    if missing_tools("udp_peers", need, args):
        return 2
    if "nginx" in args.targets and not os.path.exists(NGINX_STREAM_MODULE):
        print(f"udp_peers: missing {NGINX_STREAM_MODULE} (package libnginx-mod-stream)",
              file=sys.stderr)
        return 2
    args.fd_limit = raise_fd_limit()
    args.haproxy_maxconn = None
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.json or REPO / "bench" / "results" / f"udp-{stamp}.json"
    meta = base_meta("udp_peers", args, argv, stamp, CLK_TCK)
    meta.update({
        "clients": args.clients, "outstanding": args.outstanding, "paced_rate": args.paced_rate,
        "nginx_proxy_responses": args.nginx_responses,
        "versions": {
            "nginx": tool_version(["nginx", "-v"]),
            "nsd": tool_version(["nsd", "-v"]),
            "dnsperf": tool_version(["dnsperf", "-h"]),
        },
    })
    results, failures, interrupted = run_scenarios(args, "udp", run_scenario, meta)

    print(f"## Fulcrum UDP peers — {stamp}, git {meta['git']}, {args.workers} worker(s) per "
          f"proxy, {meta['cpus']} CPUs, kernel {meta['kernel']}\n")
    print(f"Command: `{meta['command']}`\n")
    for res in results:
        print(markdown(res["scenario"], res["summary"], res["title"], res["seconds"],
                       args.rounds, args.workers))
    return finish_report(meta, results, failures, interrupted, json_path,
                         print_load=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
