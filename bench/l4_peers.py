#!/usr/bin/env python3
"""L4 peer benchmark: Fulcrum against HAProxy (mode tcp) and a direct connection.

Scenarios (all on loopback, all targets share one backend per scenario):
  bulk      iperf3 -c through the target, client -> server          (Gbit/s, proxy CPU s per GB)
  bulk-rev  the same with iperf3 -R, server -> client               (Gbit/s, proxy CPU s per GB)
  short     wrk -H 'Connection: close' against NGINX through the target: every request is a new
            TCP connection through the proxy                        (conn/s, proxy CPU µs per conn)

Targets are run interleaved, round after round (direct, fulcrum, haproxy; the starting target
rotates each round), and each target is summarised by its median and spread. Every proxy runs
with the same number of threads (--workers). The CPU time of the proxy process (utime + stime
from /proc/<pid>/stat, all threads) is read before and after each load run.

Only the Python standard library is used. Every process started here is stopped here, by its pid.
See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
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
    CLK_TCK, DEFAULT_FULCRUMD, LOOPBACK, REPO, Procs, cpu_times, free_port, git_rev,
    haproxy_maxconn, loadavg, log, med_range, raise_fd_limit, ratio, rss_kb, run_client,
    run_wrk as _run_wrk, set_program, start_nginx, thread_count, tool_version, wait_listening)

set_program("l4_peers")
TARGETS = ("direct", "fulcrum", "haproxy")
SCENARIOS = ("bulk", "bulk-rev", "short")


# ---------------------------------------------------------------------------------------------
# Backends and proxies


def start_iperf3_server(procs: Procs, tmp: Path) -> tuple[int, subprocess.Popen]:
    port = free_port()
    log_path = tmp / "iperf3-server.log"
    proc = procs.start("iperf3 -s", ["iperf3", "-s", "-B", LOOPBACK, "-p", str(port)], log_path)
    wait_listening(port, proc, log_path, "iperf3 server")
    time.sleep(0.2)  # the probe connection above must be gone before the first test
    return port, proc


def start_fulcrum(procs: Procs, tmp: Path, fulcrumd: Path, backend_port: int,
                  workers: int) -> tuple[int, subprocess.Popen]:
    port = free_port()
    d = tmp / "fulcrum"
    d.mkdir(exist_ok=True)
    conf = d / f"lb-{backend_port}.yaml"
    conf.write_text(f"""loadbalancers:
  - name: bench
    address: {LOOPBACK}
    server_groups:
      - name: app
        backends:
          - {{address: {LOOPBACK}, port: {backend_port}, weight: 100}}
    listeners:
      - protocol: tcp
        port: {port}
        server_group: app
        scheduler: wrr
        # HAProxy's server line has no `check` either: the same work on both sides (an iperf3
        # server would also take a check connection for a test client).
        health_check: {{enabled: false}}
""")
    log_path = d / f"fulcrumd-{backend_port}.log"
    proc = procs.start("fulcrumd", [str(fulcrumd), "--config", str(conf), "--workers",
                                    str(workers), "--log-level", "info",
                                    "--data-dir", str(d / f"data-{backend_port}"), "--admin", "off"],
                       log_path)
    wait_listening(port, proc, log_path, "fulcrumd", marker="fulcrumd ready")
    return port, proc


HAPROXY_SPLICE = {
    # HAProxy 2.6's splice-auto heuristic was seen never to splice an iperf3 stream on loopback
    # (recv/send of 16 KiB only); forcing both directions makes it splice, as fulcrumd does.
    "always": "    option splice-request\n    option splice-response\n",
    "auto": "    option splice-auto\n",
    "off": "",
}


def start_haproxy(procs: Procs, tmp: Path, backend_port: int, workers: int, splice: str,
                  maxconn: int, pipesize: int | None = None) -> tuple[int, subprocess.Popen]:
    port = free_port()
    d = tmp / "haproxy"
    d.mkdir(exist_ok=True)
    conf = d / f"haproxy-{backend_port}.cfg"
    splice_line = HAPROXY_SPLICE[splice]
    pipesize_line = f"    tune.pipesize {pipesize}\n" if pipesize else ""
    conf.write_text(f"""global
    nbthread {workers}
    maxconn {maxconn}
{pipesize_line}
defaults
    mode tcp
    timeout connect 5s
    timeout client 900s
    timeout server 900s
    maxconn {maxconn}
{splice_line}
frontend fe
    bind {LOOPBACK}:{port}
    default_backend be

backend be
    balance roundrobin
    server s1 {LOOPBACK}:{backend_port}
""")
    log_path = d / f"haproxy-{backend_port}.log"
    # -db: foreground, no master process, so the Popen pid is the process that proxies.
    proc = procs.start("haproxy", ["haproxy", "-f", str(conf), "-db"], log_path)
    wait_listening(port, proc, log_path, "haproxy")
    return port, proc


# ---------------------------------------------------------------------------------------------
# Load runs


def run_iperf3(port: int, seconds: int, reverse: bool) -> dict:
    argv = ["iperf3", "-c", LOOPBACK, "-p", str(port), "-t", str(seconds), "-J",
            "--connect-timeout", "5000"]
    if reverse:
        argv.append("-R")
    last_error = ""
    for attempt in range(3):  # the server may still be finishing the previous test
        rc, out, err = run_client(argv, timeout=seconds + 30)
        try:
            data = json.loads(out) if out.strip() else {}
        except json.JSONDecodeError:
            data = {}
        recv = data.get("end", {}).get("sum_received", {})
        if rc == 0 and not data.get("error") and recv.get("bytes"):
            return {"value": recv["bits_per_second"] / 1e9, "units_done": recv["bytes"] / 1e9,
                    "bytes": recv["bytes"], "seconds": recv.get("seconds"),
                    "retransmits": data.get("end", {}).get("sum_sent", {}).get("retransmits"),
                    "errors": 0, "attempt": attempt + 1}
        last_error = data.get("error") or err.strip() or f"exit {rc}"
        log(f"iperf3 attempt {attempt + 1} failed: {last_error}")
        time.sleep(1.0)
    return {"value": None, "error": last_error, "errors": 1}


def run_wrk(port: int, seconds: int) -> dict:
    return _run_wrk(port, seconds, headers=("Connection: close",))


def measure(scenario: str, port: int, seconds: int, proxy: subprocess.Popen | None) -> dict:
    cpu0 = cpu_times(proxy.pid) if proxy else None
    t0 = time.monotonic()
    if scenario == "short":
        result = run_wrk(port, seconds)
    else:
        result = run_iperf3(port, seconds, reverse=(scenario == "bulk-rev"))
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
            # short: µs per connection; bulk: CPU seconds per GB moved
            scale = 1e6 if scenario == "short" else 1.0
            result["cpu_per_unit"] = cpu * scale / result["units_done"]
    result["wall_s"] = wall
    return result


# ---------------------------------------------------------------------------------------------
# Summaries


UNITS = {
    "bulk": ("Gbit/s", "CPU s/GB"),
    "bulk-rev": ("Gbit/s", "CPU s/GB"),
    "short": ("conn/s", "CPU µs/conn"),
}
TITLES = {
    "bulk": "L4 TCP bulk, client → server (iperf3 -c)",
    "bulk-rev": "L4 TCP bulk, server → client (iperf3 -c -R)",
    "short": "L4 TCP short connections (wrk -t1 -c50, Connection: close, NGINX backend)",
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
            "errors": sum(r.get("errors", 0) for r in runs),
        }

    def med(target: str, key: str) -> float | None:
        s = summary["targets"].get(target, {}).get(key)
        return s["median"] if s else None

    def per_round(a: str, b: str, key: str) -> dict | None:
        if a not in samples or b not in samples:
            return None
        return med_range([ratio(x.get(key), y.get(key)) for x, y in zip(samples[a], samples[b])])

    for peer in ("haproxy", "direct"):
        if "fulcrum" not in samples or peer not in samples:
            continue
        summary["ratios"][f"fulcrum/{peer}"] = {
            "value_of_medians": ratio(med("fulcrum", "value"), med(peer, "value")),
            "value_per_round": per_round("fulcrum", peer, "value"),
        }
    if "fulcrum" in samples and "haproxy" in samples:
        summary["ratios"]["fulcrum/haproxy"]["cpu_of_medians"] = ratio(
            med("fulcrum", "cpu_per_unit"), med("haproxy", "cpu_per_unit"))
        summary["ratios"]["fulcrum/haproxy"]["cpu_per_round"] = per_round(
            "fulcrum", "haproxy", "cpu_per_unit")
    return summary


def fmt(v: float | None, scenario: str, cpu: bool = False) -> str:
    if v is None:
        return "–"
    if cpu:
        return f"{v:.2f}" if scenario != "short" else f"{v:.1f}"
    return f"{v:.2f}" if scenario != "short" else f"{v:,.0f}"


def fmt_ratio(v: float | None) -> str:
    return f"{v:.2f}×" if v is not None else "–"


def markdown(scenario: str, summary: dict, seconds: int, rounds: int, workers: int,
             note: str = "") -> str:
    unit, cpu_unit = UNITS[scenario]
    t = summary["targets"]
    direct = t.get("direct", {}).get("value")
    haproxy = t.get("haproxy", {}).get("value")
    haproxy_cpu = t.get("haproxy", {}).get("cpu_per_unit")
    lines = [
        f"### {TITLES[scenario]}",
        "",
        f"{rounds} interleaved rounds of {seconds} s, proxies with {workers} thread(s); "
        f"medians, higher {unit} is better, lower CPU is better.{note}",
        "",
        f"| target | {unit} median | min–max | ÷ haproxy | ÷ direct | {cpu_unit} median | "
        f"min–max | CPU ÷ haproxy | proxy CPU % | of it kernel | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target, s in t.items():
        v, c, u = s["value"], s["cpu_per_unit"], s["cpu_util"]
        cells = [target]
        if v:
            cells += [fmt(v["median"], scenario),
                      f"{fmt(v['min'], scenario)}–{fmt(v['max'], scenario)}",
                      fmt_ratio(ratio(v["median"], haproxy and haproxy["median"])),
                      fmt_ratio(ratio(v["median"], direct and direct["median"]))]
        else:
            cells += ["–"] * 4
        if c:
            cells += [fmt(c["median"], scenario, cpu=True),
                      f"{fmt(c['min'], scenario, cpu=True)}–{fmt(c['max'], scenario, cpu=True)}",
                      fmt_ratio(ratio(c["median"], haproxy_cpu and haproxy_cpu["median"]))]
        else:
            cells += ["–"] * 3
        cells.append(f"{u['median'] * 100:.0f} %" if u else "–")
        k = s["sys_share"]
        cells.append(f"{k['median'] * 100:.0f} %" if k else "–")
        cells.append(str(s["errors"]))
        lines.append("| " + " | ".join(cells) + " |")
    r = summary["ratios"].get("fulcrum/haproxy")
    if r:
        vr, cr = r.get("value_per_round"), r.get("cpu_per_round")
        parts = []
        if vr:
            parts.append(f"{unit} {vr['median']:.2f}× (rounds {vr['min']:.2f}–{vr['max']:.2f})")
        if cr:
            parts.append(f"{cpu_unit} {cr['median']:.2f}× (rounds {cr['min']:.2f}–{cr['max']:.2f})")
        if parts:
            lines += ["", "fulcrum ÷ haproxy, median of per-round ratios: " + "; ".join(parts)]
    r = summary["ratios"].get("fulcrum/direct")
    if r and r.get("value_per_round"):
        vr = r["value_per_round"]
        lines.append(f"fulcrum ÷ direct, median of per-round ratios: {unit} {vr['median']:.2f}× "
                     f"(rounds {vr['min']:.2f}–{vr['max']:.2f})")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Main


def run_scenario(scenario: str, args, tmp: Path, procs: Procs) -> dict:
    seconds = args.duration
    started: list[subprocess.Popen] = []
    try:
        if scenario == "short":
            backend_port, backend = start_nginx(procs, tmp)
        else:
            backend_port, backend = start_iperf3_server(procs, tmp)
        started.append(backend)
        ports: dict[str, int] = {}
        proxies: dict[str, subprocess.Popen | None] = {}
        for target in args.targets:
            if target == "direct":
                ports[target], proxies[target] = backend_port, None
            elif target == "fulcrum":
                ports[target], proxies[target] = start_fulcrum(procs, tmp, args.fulcrumd,
                                                               backend_port, args.workers)
                started.append(proxies[target])
            elif target == "haproxy":
                ports[target], proxies[target] = start_haproxy(procs, tmp, backend_port,
                                                               args.workers,
                                                               splice=("off" if scenario == "short"
                                                                       else args.haproxy_splice),
                                                               maxconn=args.haproxy_maxconn,
                                                               pipesize=args.haproxy_pipesize)
                started.append(proxies[target])
        threads = {t: thread_count(p.pid) for t, p in proxies.items() if p}
        log(f"{scenario}: backend port {backend_port}, target ports {ports}, threads {threads}")

        if args.warmup > 0:
            for target in args.targets:
                log(f"{scenario}: warm-up {target} ({args.warmup} s)")
                measure(scenario, ports[target], args.warmup, proxies[target])
                time.sleep(args.pause)

        samples: dict[str, list[dict]] = {t: [] for t in args.targets}
        n = len(args.targets)
        for rnd in range(args.rounds):
            order = [args.targets[(rnd + i) % n] for i in range(n)]  # rotate the first target
            for target in order:
                res = measure(scenario, ports[target], seconds, proxies[target])
                res["round"] = rnd + 1
                samples[target].append(res)
                cpu = res.get("cpu_per_unit")
                log(f"{scenario} round {rnd + 1}/{args.rounds} {target}: "
                    f"{fmt(res.get('value'), scenario)} {UNITS[scenario][0]}"
                    + (f", {fmt(cpu, scenario, cpu=True)} {UNITS[scenario][1]}" if cpu else "")
                    + (f", errors {res['errors']}" if res.get("errors") else "")
                    + (f" ({res['error']})" if res.get("error") else ""))
                time.sleep(args.pause)
        summary = summarise(samples)
        return {"scenario": scenario, "title": TITLES[scenario], "units": UNITS[scenario],
                "seconds": seconds, "proxy_threads": threads, "samples": samples,
                "summary": summary}
    finally:
        for p in reversed(started):
            procs.stop(p)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved rounds (default 5; at least 3 unless --quick, which uses 1)")
    ap.add_argument("--workers", type=int, default=1, choices=(1, 2),
                    help="threads of each proxy: fulcrumd --workers, haproxy nbthread")
    ap.add_argument("--duration", type=int, default=None,
                    help="seconds per load run (default 5, 2 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 round of 2 s, no warm-up")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated subset of {','.join(SCENARIOS)}")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help=f"comma-separated subset of {','.join(TARGETS)}")
    ap.add_argument("--warmup", type=int, default=None,
                    help="seconds of unmeasured load per target before the rounds (default 1)")
    ap.add_argument("--pause", type=float, default=1.0,
                    help="seconds of idle between load runs (default 1)")
    ap.add_argument("--fulcrumd", type=Path, default=DEFAULT_FULCRUMD)
    ap.add_argument("--haproxy-splice", choices=tuple(HAPROXY_SPLICE), default="always",
                    help="HAProxy splicing in the bulk scenarios: always = option splice-request + "
                    "splice-response (default), auto = option splice-auto, off")
    ap.add_argument("--haproxy-pipesize", type=int, default=None, metavar="BYTES",
                    help="HAProxy tune.pipesize (default: HAProxy's, the kernel's 64 KiB pipe; "
                    "fulcrumd asks for 512 KiB pipes)")
    ap.add_argument("--json", type=Path, default=None,
                    help="result file (default bench/results/l4-<timestamp>.json)")
    args = ap.parse_args(argv)
    settle_round_args(ap, args, SCENARIOS, TARGETS)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    need = ["iperf3"] if any(s != "short" for s in args.scenarios) else []
    if "short" in args.scenarios:
        need += ["nginx", "wrk"]
    if "haproxy" in args.targets:
        need.append("haproxy")
    if missing_tools("l4_peers", need, args):
        return 2
    args.fd_limit = raise_fd_limit()
    args.haproxy_maxconn = haproxy_maxconn(args.fd_limit)

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.json or REPO / "bench" / "results" / f"l4-{stamp}.json"
    meta = base_meta("l4_peers", args, argv, stamp, CLK_TCK)
    meta.update({
        "haproxy_pipesize": args.haproxy_pipesize,
        "haproxy_splice": args.haproxy_splice,
        "versions": {
            "haproxy": tool_version(["haproxy", "-v"]),
            "nginx": tool_version(["nginx", "-v"]),
            "iperf3": tool_version(["iperf3", "-v"]),
            "wrk": tool_version(["wrk", "-v"]),
        },
    })
    results, failures, interrupted = run_scenarios(args, "l4", run_scenario, meta)

    print(f"## Fulcrum L4 peers — {stamp}, git {meta['git']}, {args.workers} thread(s) per proxy, "
          f"{meta['cpus']} CPUs, kernel {meta['kernel']}\n")
    print(f"Command: `{meta['command']}`\n")
    for res in results:
        note = "" if res["scenario"] == "short" else f" HAProxy splice: {args.haproxy_splice}."
        print(markdown(res["scenario"], res["summary"], res["seconds"], args.rounds,
                       args.workers, note))
    return finish_report(meta, results, failures, interrupted, json_path,
                         print_load=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
