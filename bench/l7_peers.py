#!/usr/bin/env python3
"""L7 peer benchmark: Fulcrum against HAProxy (mode http), NGINX as a proxy and a direct connection.

Scenarios (all on loopback, all targets share one NGINX backend per scenario):
  keepalive  wrk -t1 -c50 --latency, HTTP/1.1 keep-alive, 17-byte body  (req/s, proxy CPU µs/req)
  close      the same with -H 'Connection: close': a new client connection per request; the
             proxies keep their backend connections (pooled)           (req/s, proxy CPU µs/req)

Targets are run interleaved, round after round (direct, fulcrum, haproxy, nginx; the starting
target rotates each round), and each target is summarised by its median and spread. Every proxy
runs with the same number of threads or worker processes (--workers). The CPU time of the proxy
(utime + stime from /proc/<pid>/stat, all threads; for NGINX its worker processes) is read before
and after each load run.

Only the Python standard library is used. Every process started here is stopped here, by its pid.
See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers_common import (  # noqa: E402  (bench/ is put on sys.path just above)
    base_meta,
    finish_report,
    missing_tools,
    nginx_http_common,
    run_scenarios,
    settle_round_args,
    CLK_TCK, DEFAULT_FULCRUMD, LOOPBACK, NGINX_BODY, REPO, Procs, cpu_times, free_port, git_rev,
    haproxy_maxconn, loadavg, log, med_range, raise_fd_limit, ratio, rss_kb, run_wrk,
    set_program, start_nginx, tail, thread_count, tool_version, wait_listening)

set_program("l7_peers")
TARGETS = ("direct", "fulcrum", "haproxy", "nginx")
PEERS = ("haproxy", "nginx")  # the other proxies; "best peer" is the better of these
SCENARIOS = ("keepalive", "close")
PERCENTILES = ("50", "75", "90", "99")
UNIT, CPU_UNIT = "req/s", "CPU µs/req"
TITLES = {
    "keepalive": f"L7 HTTP/1.1 keep-alive (wrk -t1 -c50, {len(NGINX_BODY)}-byte body, NGINX "
                 "backend)",
    "close": f"L7 new connection per request (wrk -t1 -c50 -H 'Connection: close', "
             f"{len(NGINX_BODY)}-byte body, NGINX backend)",
}


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass
class Target:
    name: str
    port: int
    proc: subprocess.Popen | None = None  # the process started (None: direct to the backend)
    cpu_pids: list[int] = field(default_factory=list)  # whose CPU time is the proxy's
    log_path: Path | None = None
    mode: str = ""  # how it runs (for the JSON)


def child_pids(pid: int) -> list[int]:
    """The children of `pid`: /proc/<pid>/task/*/children, or a scan of /proc for its ppid where
    the kernel has no children file (CONFIG_PROC_CHILDREN)."""
    kids: list[int] = []
    have_children_file = False
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids += [int(x) for x in f.read().split()]
                have_children_file = True
            except FileNotFoundError:
                pass
    except OSError:
        return []
    if have_children_file:
        return sorted(kids)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:  # field 4, ppid
            kids.append(int(entry))
    return sorted(kids)


def start_fulcrum(procs: Procs, tmp: Path, fulcrumd: Path, backend_port: int,
                  workers: int) -> Target:
    port = free_port()
    d = tmp / "fulcrum"
    d.mkdir(exist_ok=True)
    conf = d / "lb.yaml"
    conf.write_text(f"""loadbalancers:
  - name: bench
    address: {LOOPBACK}
    server_groups:
      - name: app
        backends:
          - {{address: {LOOPBACK}, port: {backend_port}}}
    listeners:
      - protocol: http
        port: {port}
        server_group: app
        # The peers' servers have no health check either: the same work on every side.
        health_check: {{enabled: false}}
""")
    log_path = d / "fulcrumd.log"
    proc = procs.start("fulcrumd", [str(fulcrumd), "--config", str(conf), "--workers",
                                    str(workers), "--log-level", "info",
                                    "--data-dir", str(d / "data"), "--admin", "off"], log_path)
    wait_listening(port, proc, log_path, "fulcrumd", marker="fulcrumd ready")
    return Target("fulcrum", port, proc, [proc.pid], log_path, f"--workers {workers}")


def start_haproxy(procs: Procs, tmp: Path, backend_port: int, workers: int,
                  maxconn: int) -> Target:
    port = free_port()
    d = tmp / "haproxy"
    d.mkdir(exist_ok=True)
    conf = d / "haproxy.cfg"
    # No `log` line anywhere: HAProxy logs nothing. Keep-alive on both sides is HAProxy's default
    # (option http-keep-alive); `http-reuse always` shares idle server connections between clients.
    conf.write_text(f"""global
    nbthread {workers}
    maxconn {maxconn}

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    maxconn {maxconn}
    http-reuse always

frontend fe
    bind {LOOPBACK}:{port}
    default_backend be

backend be
    server s1 {LOOPBACK}:{backend_port}
""")
    log_path = d / "haproxy.log"
    # -db: foreground, no master process, so the Popen pid is the process that proxies.
    proc = procs.start("haproxy", ["haproxy", "-f", str(conf), "-db"], log_path)
    wait_listening(port, proc, log_path, "haproxy")
    return Target("haproxy", port, proc, [proc.pid], log_path,
                  f"-db, nbthread {workers}, maxconn {maxconn}")


def start_nginx_proxy(procs: Procs, tmp: Path, backend_port: int, workers: int) -> Target:
    """NGINX as a reverse proxy. One worker: `master_process off`, so the started pid is the
    process that proxies. N workers: a master and N worker processes; the CPU measured is the
    workers' (the master only supervises)."""
    port = free_port()
    prefix = tmp / "nginx-proxy"
    prefix.mkdir()
    single = workers == 1
    user = "user root;\n" if os.geteuid() == 0 and not single else ""
    conf = prefix / "nginx.conf"
    # keepalive_requests: NGINX closes a keep-alive connection after 1000 requests by default
    # (client side and upstream side); HAProxy and Fulcrum have no such limit, so it is lifted.
    conf.write_text(f"""{user}master_process {'off' if single else 'on'};
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 16384; }}
http {{
{nginx_http_common(prefix)}    keepalive_requests 1000000;
    upstream b {{
        server {LOOPBACK}:{backend_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen {LOOPBACK}:{port} backlog=4096;
        location / {{
            proxy_pass http://b;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
    log_path = prefix / "stdout.log"
    proc = procs.start("nginx proxy", ["nginx", "-p", str(prefix), "-c", str(conf), "-e",
                                       str(prefix / "error.log"), "-g", "daemon off;"],
                       log_path)
    wait_listening(port, proc, log_path, "nginx proxy")
    if single:
        kids = child_pids(proc.pid)
        if kids:
            raise RuntimeError(f"nginx with master_process off has children {kids}: the started "
                               "pid is not the only process that proxies")
        return Target("nginx", port, proc, [proc.pid], prefix / "error.log",
                      "master_process off (the started pid is the worker)")
    deadline = time.monotonic() + 10.0
    kids = child_pids(proc.pid)
    while len(kids) != workers and time.monotonic() < deadline:
        time.sleep(0.05)
        kids = child_pids(proc.pid)
    if len(kids) != workers:
        raise RuntimeError(f"nginx master {proc.pid} has workers {kids}, expected {workers}:\n"
                           f"{tail(prefix / 'error.log')}")
    return Target("nginx", port, proc, kids, prefix / "error.log",
                  f"master {proc.pid} + {workers} workers {kids} (CPU: the workers)")


# ---------------------------------------------------------------------------------------------
# Load runs


def proxy_cpu(target: Target) -> tuple[float, float]:
    user = system = 0.0
    for pid in target.cpu_pids:
        u, s = cpu_times(pid)
        user, system = user + u, system + s
    return user, system


def check_alive(target: Target) -> None:
    if target.proc.poll() is not None:
        raise RuntimeError(f"{target.name} pid {target.proc.pid} died during the run "
                           f"({target.proc.returncode}):\n{tail(target.log_path)}")
    if target.cpu_pids != [target.proc.pid]:
        kids = child_pids(target.proc.pid)
        if kids != target.cpu_pids:  # a worker died and the master started another
            raise RuntimeError(f"{target.name} workers changed during the run: "
                               f"{target.cpu_pids} -> {kids}:\n{tail(target.log_path)}")


def probe(target: Target, close: bool) -> dict:
    """One request through the target before any load: a proxy that answered fast but wrongly
    would look good in wrk's figures, which count status codes only."""
    conn = http.client.HTTPConnection(LOOPBACK, target.port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Connection": "close"} if close else {})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        out = {"status": resp.status, "body_ok": body == NGINX_BODY,
               "headers": [f"{k}: {v}" for k, v in resp.getheaders()]}
    except (OSError, http.client.HTTPException) as e:
        raise RuntimeError(f"{target.name}: probe request failed: {e}") from e
    finally:
        conn.close()
    if out["status"] != 200 or not out["body_ok"]:
        raise RuntimeError(f"{target.name}: probe answered {out['status']} {body[:200]!r}, "
                           f"expected 200 {NGINX_BODY!r}")
    return out


def measure(scenario: str, target: Target, seconds: int) -> dict:
    headers = ("Connection: close",) if scenario == "close" else ()
    cpu0 = proxy_cpu(target) if target.proc else None
    t0 = time.monotonic()
    result = run_wrk(target.port, seconds, headers=headers, percentiles=PERCENTILES)
    wall = time.monotonic() - t0
    if target.proc:
        check_alive(target)
        cpu1 = proxy_cpu(target)
        user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        cpu = user + system
        result["proxy_user_s"], result["proxy_sys_s"] = user, system
        result["proxy_cpu_s"] = cpu
        result["proxy_cpu_util"] = cpu / wall if wall > 0 else None
        mem = [rss_kb(pid) for pid in target.cpu_pids]
        for key in ("vmrss_kb", "vmhwm_kb"):
            result[key] = sum(m.get(key, 0) for m in mem)
        if result.get("value") is not None and result.get("units_done"):
            result["cpu_per_unit"] = cpu * 1e6 / result["units_done"]  # µs per request
    result["wall_s"] = wall
    return result


# ---------------------------------------------------------------------------------------------
# Summaries


def summarise(samples: dict[str, list[dict]]) -> dict:
    summary: dict = {"targets": {}, "ratios": {}, "best_peer": {}}
    for target, runs in samples.items():
        summary["targets"][target] = {
            "value": med_range([r.get("value") for r in runs]),
            "cpu_per_unit": med_range([r.get("cpu_per_unit") for r in runs]),
            "cpu_util": med_range([r.get("proxy_cpu_util") for r in runs]),
            "sys_share": med_range([r["proxy_sys_s"] / r["proxy_cpu_s"] for r in runs
                                    if r.get("proxy_cpu_s")]),
            "p50_ms": med_range([r.get("latency_saturated", {}).get("p50_ms") for r in runs]),
            "p99_ms": med_range([r.get("latency_saturated", {}).get("p99_ms") for r in runs]),
            "non_2xx": sum(r.get("non_2xx", 0) for r in runs),
            "socket_errors": sum(sum(r.get("socket_errors", {}).values()) for r in runs),
            "failed_runs": sum(1 for r in runs if r.get("value") is None),
            "errors": sum(r.get("errors", 0) for r in runs),
        }
    t = summary["targets"]

    def med(target: str, key: str) -> float | None:
        s = t.get(target, {}).get(key)
        return s["median"] if s else None

    peers = [p for p in PEERS if p in samples]
    # Best peer by the medians: the highest req/s, and (maybe another one) the lowest CPU/req.
    by_value = [p for p in peers if med(p, "value") is not None]
    by_cpu = [p for p in peers if med(p, "cpu_per_unit") is not None]
    best_value = max(by_value, key=lambda p: med(p, "value")) if by_value else None
    best_cpu = min(by_cpu, key=lambda p: med(p, "cpu_per_unit")) if by_cpu else None
    summary["best_peer"] = {"value": best_value, "cpu_per_unit": best_cpu}

    def per_round(key: str, peer_runs: list[list[dict]], pick) -> dict | None:
        """Median and range of fulcrum's run ÷ the peer's (or the best peer's) of the same
        round."""
        if "fulcrum" not in samples or not peer_runs:
            return None
        out = []
        for i, f in enumerate(samples["fulcrum"]):
            vals = [runs[i].get(key) for runs in peer_runs if i < len(runs)]
            vals = [v for v in vals if v is not None]
            out.append(ratio(f.get(key), pick(vals)) if vals else None)
        return med_range(out)

    if "fulcrum" not in samples:
        return summary
    if peers:
        summary["ratios"]["fulcrum/best_peer"] = {
            "value_peer": best_value,
            "value_of_medians": ratio(med("fulcrum", "value"), med(best_value, "value"))
            if best_value else None,
            "value_per_round": per_round("value", [samples[p] for p in peers], max),
            "cpu_peer": best_cpu,
            "cpu_of_medians": ratio(med("fulcrum", "cpu_per_unit"), med(best_cpu, "cpu_per_unit"))
            if best_cpu else None,
            "cpu_per_round": per_round("cpu_per_unit", [samples[p] for p in peers], min),
        }
    for peer in (*PEERS, "direct"):
        if peer not in samples:
            continue
        r = {"value_of_medians": ratio(med("fulcrum", "value"), med(peer, "value")),
             "value_per_round": per_round("value", [samples[peer]], max)}
        if peer != "direct":
            r["cpu_of_medians"] = ratio(med("fulcrum", "cpu_per_unit"), med(peer, "cpu_per_unit"))
            r["cpu_per_round"] = per_round("cpu_per_unit", [samples[peer]], min)
        summary["ratios"][f"fulcrum/{peer}"] = r
    return summary


def fmt_value(v: float | None) -> str:
    return f"{v:,.0f}" if v is not None else "–"


def fmt_cpu(v: float | None) -> str:
    return f"{v:.1f}" if v is not None else "–"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def fmt_ratio(v: float | None) -> str:
    return f"{v:.2f}×" if v is not None else "–"


def fmt_round_ratio(r: dict | None) -> str:
    return f"{r['median']:.2f}× (rounds {r['min']:.2f}–{r['max']:.2f})" if r else "–"


def markdown(scenario: str, summary: dict, seconds: int, rounds: int, workers: int,
             notes: list[str]) -> str:
    t = summary["targets"]

    def median_of(target: str | None, key: str) -> float | None:
        s = t.get(target, {}).get(key) if target else None
        return s["median"] if s else None

    best_value = summary["best_peer"].get("value")
    best_cpu = summary["best_peer"].get("cpu_per_unit")
    lines = [
        f"### {TITLES[scenario]}",
        "",
        f"{rounds} interleaved rounds of {seconds} s, proxies with {workers} thread(s)/worker(s); "
        f"medians; higher {UNIT} is better, lower CPU and latency are better. Latency is wrk's at "
        "saturation (50 connections flat out), not at a fixed rate.",
        "",
        f"| target | {UNIT} median | min–max | ÷ best peer | ÷ haproxy | ÷ direct | "
        f"{CPU_UNIT} median | min–max | CPU ÷ best peer | CPU ÷ haproxy | proxy CPU % | "
        "of it kernel | p50 ms | p99 ms | non-2xx | socket errors |",
        "|---|" + "---:|" * 15,
    ]
    for target, s in t.items():
        v, c, u, k = s["value"], s["cpu_per_unit"], s["cpu_util"], s["sys_share"]
        cells = [target]
        if v:
            cells += [fmt_value(v["median"]), f"{fmt_value(v['min'])}–{fmt_value(v['max'])}",
                      fmt_ratio(ratio(v["median"], median_of(best_value, "value"))),
                      fmt_ratio(ratio(v["median"], median_of("haproxy", "value"))),
                      fmt_ratio(ratio(v["median"], median_of("direct", "value")))]
        else:
            cells += ["–"] * 5
        if c:
            cells += [fmt_cpu(c["median"]), f"{fmt_cpu(c['min'])}–{fmt_cpu(c['max'])}",
                      fmt_ratio(ratio(c["median"], median_of(best_cpu, "cpu_per_unit"))),
                      fmt_ratio(ratio(c["median"], median_of("haproxy", "cpu_per_unit")))]
        else:
            cells += ["–"] * 4
        cells.append(f"{u['median'] * 100:.0f} %" if u else "–")
        cells.append(f"{k['median'] * 100:.0f} %" if k else "–")
        cells += [fmt_ms(median_of(target, "p50_ms")), fmt_ms(median_of(target, "p99_ms"))]
        cells += [str(s["non_2xx"]),
                  str(s["socket_errors"]) + (f" (+{s['failed_runs']} failed runs)"
                                              if s["failed_runs"] else "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if best_value or best_cpu:
        lines.append(f"Best peer: {best_value or '–'} by {UNIT}, "
                     f"{best_cpu or '–'} by {CPU_UNIT}.")
    r = summary["ratios"]
    if r:
        if lines[-1]:
            lines.append("")
        lines.append("Median of per-round ratios (fulcrum's run ÷ the peer's run of the same "
                     "round; `best peer` = the better peer of that round):")
        lines.append("")
        for key, label in (("fulcrum/best_peer", "best peer"), ("fulcrum/haproxy", "haproxy"),
                           ("fulcrum/nginx", "nginx"), ("fulcrum/direct", "direct")):
            if key not in r:
                continue
            text = f"- fulcrum ÷ {label}: {UNIT} {fmt_round_ratio(r[key].get('value_per_round'))}"
            if "cpu_per_round" in r[key]:
                text += f"; {CPU_UNIT} {fmt_round_ratio(r[key].get('cpu_per_round'))}"
            lines.append(text)
    if notes:
        lines.append("")
        lines += [f"**Note:** {n}" for n in notes]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Fulcrum's log


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z (debug|info |warn |error) ")


def log_anomalies(path: Path | None, limit: int = 20) -> dict:
    """fulcrumd's warn and error lines, and any line that is not one of its log lines (a crash
    message, a sanitizer report)."""
    out = {"warn": 0, "error": 0, "other": 0, "lines": []}
    if not path:
        return out
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        m = _LOG_LINE.match(line)
        level = m.group(1).strip() if m else "other"
        if level in ("debug", "info"):
            continue
        out[level] += 1
        if len(out["lines"]) < limit:
            out["lines"].append(line[:300])
    return out


# ---------------------------------------------------------------------------------------------
# Main


def run_scenario(scenario: str, args, tmp: Path, procs: Procs) -> dict:
    seconds = args.duration
    started: list[subprocess.Popen] = []
    targets: dict[str, Target] = {}
    try:
        backend_port, backend = start_nginx(procs, tmp)
        started.append(backend)
        for name in args.targets:
            if name == "direct":
                targets[name] = Target("direct", backend_port, mode="to the backend")
            elif name == "fulcrum":
                targets[name] = start_fulcrum(procs, tmp, args.fulcrumd, backend_port,
                                              args.workers)
            elif name == "haproxy":
                targets[name] = start_haproxy(procs, tmp, backend_port, args.workers,
                                              args.haproxy_maxconn)
            elif name == "nginx":
                targets[name] = start_nginx_proxy(procs, tmp, backend_port, args.workers)
            if targets[name].proc:
                started.append(targets[name].proc)
        threads = {n: sum(thread_count(p) for p in t.cpu_pids) for n, t in targets.items()
                   if t.proc}
        probes = {n: probe(t, scenario == "close") for n, t in targets.items()}
        log(f"{scenario}: backend port {backend_port}, target ports "
            f"{ {n: t.port for n, t in targets.items()} }, threads {threads}")

        if args.warmup > 0:
            for name in args.targets:
                log(f"{scenario}: warm-up {name} ({args.warmup} s)")
                measure(scenario, targets[name], args.warmup)
                time.sleep(args.pause)

        samples: dict[str, list[dict]] = {t: [] for t in args.targets}
        n = len(args.targets)
        for rnd in range(args.rounds):
            order = [args.targets[(rnd + i) % n] for i in range(n)]  # rotate the first target
            for name in order:
                res = measure(scenario, targets[name], seconds)
                res["round"] = rnd + 1
                samples[name].append(res)
                cpu = res.get("cpu_per_unit")
                lat = res.get("latency_saturated", {})
                log(f"{scenario} round {rnd + 1}/{args.rounds} {name}: "
                    f"{fmt_value(res.get('value'))} {UNIT}"
                    + (f", {fmt_cpu(cpu)} {CPU_UNIT}" if cpu else "")
                    + (f", p50 {fmt_ms(lat.get('p50_ms'))} ms p99 {fmt_ms(lat.get('p99_ms'))} ms"
                       if lat else "")
                    + (f", errors {res['errors']}" if res.get("errors") else "")
                    + (f" ({res['error']})" if res.get("error") else ""))
                time.sleep(args.pause)

        # Stop the proxies here (not only in `finally`) to record how they exit.
        exits = {}
        for name, t in targets.items():
            if t.proc:
                procs.stop(t.proc)
                exits[name] = t.proc.returncode
        anomalies = log_anomalies(targets["fulcrum"].log_path) if "fulcrum" in targets else None
        notes = []
        if anomalies and (anomalies["warn"] or anomalies["error"] or anomalies["other"]):
            notes.append(f"fulcrumd logged {anomalies['error']} error, {anomalies['warn']} warn "
                         f"and {anomalies['other']} other line(s); first: "
                         f"`{anomalies['lines'][0]}` (all in the JSON)")
        if "fulcrum" in exits and exits["fulcrum"] != 0:
            notes.append(f"fulcrumd exited with status {exits['fulcrum']} on SIGTERM")
        summary = summarise(samples)
        return {"scenario": scenario, "title": TITLES[scenario], "units": [UNIT, CPU_UNIT],
                "seconds": seconds, "proxy_threads": threads,
                "modes": {n: t.mode for n, t in targets.items()}, "probes": probes,
                "exit_status": exits, "fulcrumd_log": anomalies, "notes": notes,
                "samples": samples, "summary": summary}
    finally:
        for p in reversed(started):
            procs.stop(p)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved rounds (default 5; at least 3 unless --quick, which uses 1)")
    ap.add_argument("--workers", type=int, default=1, choices=(1, 2),
                    help="threads/workers of each proxy: fulcrumd --workers, haproxy nbthread, "
                    "nginx worker_processes")
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
    ap.add_argument("--json", type=Path, default=None,
                    help="result file (default bench/results/l7-<timestamp>.json)")
    args = ap.parse_args(argv)
    settle_round_args(ap, args, SCENARIOS, TARGETS)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    need = ["wrk", "nginx"] + (["haproxy"] if "haproxy" in args.targets else [])
    if missing_tools("l7_peers", need, args):
        return 2
    args.fd_limit = raise_fd_limit()
    args.haproxy_maxconn = haproxy_maxconn(args.fd_limit)

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.json or REPO / "bench" / "results" / f"l7-{stamp}.json"
    meta = base_meta("l7_peers", args, argv, stamp, CLK_TCK)
    meta.update({
        "body_bytes": len(NGINX_BODY),
        "latency": "wrk --latency at saturation (-c50, closed loop); no fixed-rate run (wrk "
                   "cannot pace)",
        "versions": {
            "haproxy": tool_version(["haproxy", "-v"]),
            "nginx": tool_version(["nginx", "-v"]),
            "wrk": tool_version(["wrk", "-v"]),
        },
    })
    results, failures, interrupted = run_scenarios(args, "l7", run_scenario, meta)

    sha = meta.get("fulcrumd", {}).get("sha256")
    print(f"## Fulcrum L7 peers — {stamp}, git {meta['git']}"
          + (f", fulcrumd sha256 {sha}" if sha else "")
          + f", {args.workers} thread(s)/worker(s) per proxy, {meta['cpus']} CPUs, "
          f"kernel {meta['kernel']}\n")
    print(f"Command: `{meta['command']}`\n")
    for res in results:
        print(markdown(res["scenario"], res["summary"], res["seconds"], args.rounds,
                       args.workers, res["notes"]))
    return finish_report(meta, results, failures, interrupted, json_path,
                         print_load=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
