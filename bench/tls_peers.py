#!/usr/bin/env python3
"""HTTPS peer benchmark: Fulcrum against HAProxy terminating TLS, one thread each, the same
ECDSA P-256 certificate, the same NGINX backend.

Scenarios (loopback; TLS 1.3 with the servers' default groups, X25519 first):
  keepalive  wrk -t1 -c50 over https, keep-alive, 17-byte body        (req/s, proxy CPU µs/req)
  handshake  `openssl s_time -new` x4 in parallel: a full handshake per connection (no session
             resumption: s_time -new never offers a session), one HTTP/1.0 GET each
                                                            (connections/s, proxy CPU µs/conn)
  resumed    wrk -t1 -c50 -H 'Connection: close' over https: a new connection per request, and
             wrk resumes its TLS session with a ticket       (req/s, proxy CPU µs/req)
  h2         h2load -t1 -c10 -m10 over https with ALPN h2: 10 connections, 10 concurrent streams
             each; the proxies go to NGINX over HTTP/1.1       (req/s, proxy CPU µs/req)

Both proxies offer ALPN h2,http/1.1 (Fulcrum's default with `http2` on; HAProxy's bind says so).

Options, warm-up and rounds as in l4_peers.py and l7_peers.py: a warm-up run per target
(--warmup, 1 s, not measured), then --rounds interleaved rounds (default 5; the starting target
rotates each round; --quick: 1 round of 2 s, no warm-up). Each target is summarised by the median and range of its rounds **without errors**: a run with a socket error,
a non-2xx answer, a failed s_time client or a failed/errored h2load request is left out of the
medians and reported (count, rounds and errors under the table; every run stays in the JSON).
The ratios are fulcrum ÷ haproxy of the medians, and the median of the per-round ratios over the
rounds where both runs are clean. The proxy's CPU time (utime + stime of
the process, all threads) is read before and after each run. The load generators need CPU too
(on 2 cores the handshake figure is bounded by the client's own crypto): the CPU per connection
of the proxy is the steadier number.

Only the Python standard library is used. Every process started here is stopped here, by its pid.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers_common import (  # noqa: E402  (bench/ is put on sys.path just above)
    base_meta,
    finish_report,
    missing_tools,
    round_ratios,
    run_scenarios,
    settle_round_args,
    split_runs,
    CLK_TCK, DEFAULT_FULCRUMD, LOOPBACK, NGINX_BODY, REPO, Procs, cpu_times, free_port,
    haproxy_maxconn, loadavg, log, med_range, raise_fd_limit, run_wrk, rss_kb,
    set_program, start_nginx, tail, tool_version, wait_listening)

set_program("tls_peers")
TARGETS = ("fulcrum", "haproxy")
SCENARIOS = ("keepalive", "handshake", "resumed", "h2")
H2_CONNECTIONS = 10
H2_STREAMS = 10
S_TIME_CLIENTS = 4
TITLES = {
    "keepalive": "HTTPS keep-alive (wrk -t1 -c50, TLS 1.3, ECDSA P-256, 17-byte body)",
    "handshake": f"New TLS connections, full handshakes, resumption off (openssl s_time -new "
                 f"x{S_TIME_CLIENTS}, TLS 1.3, ECDSA P-256, one GET each)",
    "resumed": "New connection per request with TLS session resumption (wrk -t1 -c50 "
               "-H 'Connection: close')",
    "h2": f"HTTP/2 (h2load -t1 -c{H2_CONNECTIONS} -m{H2_STREAMS}, TLS 1.3, ECDSA P-256, "
          "17-byte body; HTTP/1.1 to the backend)",
}
UNITS = {"keepalive": ("req/s", "CPU µs/req"), "handshake": ("conn/s", "CPU µs/conn"),
         "resumed": ("req/s", "CPU µs/req"), "h2": ("req/s", "CPU µs/req")}


def make_certificate(d: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for both proxies."""
    key, cert = d / "bench.key", d / "bench.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=bench.example", "-addext",
                    "subjectAltName=DNS:bench.example"], check=True, capture_output=True,
                   timeout=30)
    return cert, key


def start_fulcrum(procs: Procs, d: Path, fulcrumd: Path, backend: int, cert: Path, key: Path,
                  idle_timeout: int | None = None):
    """fulcrumd with one HTTPS listener; `idle_timeout` (seconds, 1–60) replaces the listener's
    default of 15 s when given (tls_idle_memory.py keeps connections idle longer)."""
    port = free_port()
    extra = f"        idle_timeout: {idle_timeout}\n" if idle_timeout is not None else ""
    conf = d / "lb.yaml"
    conf.write_text(f"""loadbalancers:
  - name: bench
    address: {LOOPBACK}
    server_groups:
      - name: app
        backends:
          - {{address: {LOOPBACK}, port: {backend}}}
    listeners:
      - protocol: https
        port: {port}
        server_group: app
        certificates: [bench]
        health_check: {{enabled: false}}
{extra}certificates:
  - {{name: bench, cert_file: {cert}, key_file: {key}}}
""")
    log_path = d / "fulcrumd.log"
    proc = procs.start("fulcrumd", [str(fulcrumd), "--config", str(conf), "--workers", "1",
                                    "--log-level", "info", "--data-dir", str(d / "data"),
                                    "--admin", "off"], log_path)
    wait_listening(port, proc, log_path, "fulcrumd", marker="fulcrumd ready")
    return port, proc


def start_haproxy(procs: Procs, d: Path, backend: int, cert: Path, key: Path, maxconn: int):
    port = free_port()
    bundle = d / "haproxy.pem"  # HAProxy wants the key with the certificate
    bundle.write_text(cert.read_text() + key.read_text())
    conf = d / "haproxy.cfg"
    # No `log` line: HAProxy logs nothing. Its defaults: TLS 1.2+, tickets on, session cache on.
    conf.write_text(f"""global
    nbthread 1
    maxconn {maxconn}
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    maxconn {maxconn}
    http-reuse always

frontend fe
    bind {LOOPBACK}:{port} ssl crt {bundle} alpn h2,http/1.1
    default_backend be

backend be
    server s1 {LOOPBACK}:{backend}
""")
    log_path = d / "haproxy.log"
    proc = procs.start("haproxy", ["haproxy", "-f", str(conf), "-db"], log_path)
    wait_listening(port, proc, log_path, "haproxy")
    return port, proc


def run_s_time(port: int, seconds: int) -> dict:
    """S_TIME_CLIENTS parallel `openssl s_time -new` runs: full handshakes, one GET each."""
    argv = ["openssl", "s_time", "-connect", f"{LOOPBACK}:{port}", "-new", "-time",
            str(seconds), "-www", "/"]
    procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for _ in range(S_TIME_CLIENTS)]
    total, rate, errors = 0, 0.0, 0
    for p in procs:
        try:
            out = p.communicate(timeout=seconds + 30)[0]
        except subprocess.TimeoutExpired:
            p.kill()
            out = p.communicate()[0]
        m = re.search(r"(\d+) connections in (\d+) real seconds", out)
        if not m or int(m.group(2)) == 0:
            errors += 1
            continue
        total += int(m.group(1))
        rate += int(m.group(1)) / int(m.group(2))  # whole seconds: s_time prints no fraction
    if errors == S_TIME_CLIENTS:
        return {"value": None, "errors": errors}
    return {"value": rate, "units_done": total, "errors": errors}


def run_h2load(port: int, seconds: int) -> dict:
    """h2load for `seconds` over TLS (ALPN h2): H2_CONNECTIONS connections, H2_STREAMS
    concurrent streams each, one client thread."""
    argv = ["h2load", "-t", "1", "-c", str(H2_CONNECTIONS), "-m", str(H2_STREAMS), "-D",
            str(seconds), f"https://{LOOPBACK}:{port}/"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    except subprocess.TimeoutExpired:
        return {"value": None, "errors": 1, "error": f"h2load timed out after {seconds + 60} s"}
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    r = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored", out)
    if not m or not r or "Application protocol: h2" not in out:
        return {"value": None, "errors": 1, "output": out[-2000:]}
    return {"value": float(m.group(2)), "units_done": int(r.group(2)),
            "errors": int(r.group(3)) + int(r.group(4))}


def measure(scenario: str, port: int, pid: int, seconds: int) -> dict:
    cpu0 = cpu_times(pid)
    t0 = time.monotonic()
    if scenario == "handshake":
        result = run_s_time(port, seconds)
    elif scenario == "h2":
        result = run_h2load(port, seconds)
    else:
        headers = ("Connection: close",) if scenario == "resumed" else ()
        result = run_wrk(port, seconds, headers=headers, scheme="https")
    wall = time.monotonic() - t0
    cpu1 = cpu_times(pid)
    cpu = (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])
    result["proxy_cpu_s"] = cpu
    result["proxy_cpu_util"] = cpu / wall if wall > 0 else None
    result.update(rss_kb(pid))
    if result.get("units_done"):
        result["cpu_per_unit"] = cpu * 1e6 / result["units_done"]
    return result


def probe(port: int) -> None:
    """One request through the proxy before any load: it must answer the backend's body."""
    out = subprocess.run(["curl", "-sk", "--http1.1", f"https://{LOOPBACK}:{port}/"],
                         capture_output=True, text=True, timeout=10).stdout
    if out != NGINX_BODY:
        raise RuntimeError(f"probe through port {port} answered {out[:200]!r}")
    out = subprocess.run(["curl", "-sk", "--http2", "-w", "%{http_version}",
                          f"https://{LOOPBACK}:{port}/"],
                         capture_output=True, text=True, timeout=10).stdout
    if out != NGINX_BODY + "2":
        raise RuntimeError(f"HTTP/2 probe through port {port} answered {out[:200]!r}")


def check_alive(name: str, proc, log_path: Path) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"{name} pid {proc.pid} died during the run ({proc.returncode}):\n"
                           f"{tail(log_path)}")


def describe(res: dict) -> str:
    """What went wrong in a run, for the log and the report."""
    parts = []
    if res.get("value") is None:
        parts.append("no result")
    if res.get("socket_errors") and sum(res["socket_errors"].values()):
        parts.append("socket errors " + ", ".join(f"{k} {v}" for k, v in
                                                   res["socket_errors"].items() if v))
    if res.get("non_2xx"):
        parts.append(f"non-2xx {res['non_2xx']}")
    if not parts and res.get("errors"):
        parts.append(f"errors {res['errors']}")
    if res.get("error"):
        parts.append(res["error"][:200])
    return "; ".join(parts)


def summarise(samples: dict[str, list[dict]]) -> dict:
    summary: dict = {}
    for t, runs in samples.items():
        kept, excluded = split_runs(runs)
        summary[t] = {"value": med_range([r.get("value") for r in kept]),
                      "cpu_per_unit": med_range([r.get("cpu_per_unit") for r in kept]),
                      "vmrss_kb": med_range([r.get("vmrss_kb") for r in kept]),
                      "rounds_kept": len(kept),
                      "excluded_rounds": [r.get("round") for r in excluded],
                      "excluded_why": [describe(r) for r in excluded],
                      "errors": sum(r.get("errors", 0) for r in runs)}
    if "fulcrum" in samples and "haproxy" in samples:
        summary["per_round"] = {
            key: round_ratios(samples["fulcrum"], samples["haproxy"], key)
            for key in ("value", "cpu_per_unit")}
    return summary


def run_scenario(scenario: str, args, tmp: Path, procs: Procs) -> dict:
    started = []
    try:
        backend, backend_proc = start_nginx(procs, tmp)
        started.append(backend_proc)
        return measure_targets(scenario, args, tmp, procs, backend, started)
    finally:  # this scenario's processes end here, before the next scenario starts its own
        for p in reversed(started):
            procs.stop(p)


def measure_targets(scenario: str, args, tmp: Path, procs: Procs, backend: int,
                    started: list) -> dict:
    cert, key = make_certificate(tmp)
    targets = {}
    for name in args.targets:
        d = tmp / name
        d.mkdir()
        if name == "fulcrum":
            port, proc = start_fulcrum(procs, d, args.fulcrumd, backend, cert, key)
            targets[name] = (port, proc, d / "fulcrumd.log")
        else:
            port, proc = start_haproxy(procs, d, backend, cert, key, args.haproxy_maxconn)
            targets[name] = (port, proc, d / "haproxy.log")
        started.append(proc)
        probe(port)
    if args.warmup > 0:
        for name, (port, proc, log_path) in targets.items():
            log(f"{scenario}: warm-up {name} ({args.warmup} s, not measured)")
            measure(scenario, port, proc.pid, args.warmup)
            check_alive(name, proc, log_path)
            time.sleep(args.pause)
    samples: dict[str, list[dict]] = {t: [] for t in targets}
    order = list(targets)
    for r in range(args.rounds):
        for i in range(len(order)):
            name = order[(r + i) % len(order)]
            port, proc, log_path = targets[name]
            res = measure(scenario, port, proc.pid, args.duration)
            check_alive(name, proc, log_path)
            res["round"] = r + 1
            samples[name].append(res)
            bad = describe(res) if (res.get("value") is None or res.get("errors")) else ""
            log(f"{scenario} round {r + 1}/{args.rounds} {name}: "
                f"{res.get('value') or 0:.0f} {UNITS[scenario][0]}, "
                f"{res.get('cpu_per_unit') or 0:.1f} {UNITS[scenario][1]}, "
                f"load {loadavg()}"
                + (f" — ERRORS, left out of the medians: {bad}" if bad else ""))
            time.sleep(args.pause)
    return {"scenario": scenario, "summary": summarise(samples), "samples": samples}


def fmt(v: dict | None, digits: int = 0) -> str:
    if not v:
        return "—"
    return f"{v['median']:,.{digits}f} ({v['min']:,.{digits}f}–{v['max']:,.{digits}f})"


def markdown(res: dict, rounds: int, seconds: int) -> str:
    scenario, s = res["scenario"], res["summary"]
    unit, cpu_unit = UNITS[scenario]
    lines = [f"### {TITLES[scenario]}", "",
             f"{rounds} interleaved round(s) of {seconds} s; medians (range) over the rounds "
             "without errors.", "",
             f"| target | {unit} median (range) | {cpu_unit} median (range) | RSS KiB | "
             "rounds kept | errors |",
             "|---|---|---|---|---|---|"]
    targets = {t: v for t, v in s.items() if t != "per_round"}
    for t, v in targets.items():
        lines.append(f"| {t} | {fmt(v['value'])} | {fmt(v['cpu_per_unit'], 1)} | "
                     f"{fmt(v['vmrss_kb'])} | {v['rounds_kept']}/{rounds} | {v['errors']} |")
    f, h = targets.get("fulcrum"), targets.get("haproxy")
    if f and h and f["value"] and h["value"]:
        lines.append("")
        lines.append(f"fulcrum / haproxy: {unit} **{f['value']['median'] / h['value']['median']:.2f}×**"
                     + (f", CPU per unit {f['cpu_per_unit']['median'] / h['cpu_per_unit']['median']:.2f}× "
                        "(lower is better)" if f["cpu_per_unit"] and h["cpu_per_unit"] else ""))
        pr = s.get("per_round") or {}
        if pr.get("value"):
            text = (f"Median of per-round ratios ({pr['value']['n']} clean round(s)): {unit} "
                    f"{pr['value']['median']:.2f}× (rounds {pr['value']['min']:.2f}–"
                    f"{pr['value']['max']:.2f})")
            if pr.get("cpu_per_unit"):
                c = pr["cpu_per_unit"]
                text += (f", {cpu_unit} {c['median']:.2f}× (rounds {c['min']:.2f}–"
                         f"{c['max']:.2f})")
            lines.append("")
            lines.append(text + ".")
    for t, v in targets.items():
        if v["excluded_rounds"]:
            lines.append("")
            lines.append(f"**{t}: {len(v['excluded_rounds'])} round(s) with errors left out of "
                         f"the medians** (round {', '.join(map(str, v['excluded_rounds']))}): "
                         + " | ".join(v["excluded_why"]))
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved rounds (default 5; at least 3 unless --quick, which uses 1)")
    ap.add_argument("--duration", type=int, default=None,
                    help="seconds per load run (default 5, 2 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 round of 2 s, no warm-up")
    ap.add_argument("--warmup", type=int, default=None,
                    help="seconds of unmeasured load per target before the rounds (default 1)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated subset of {','.join(SCENARIOS)}")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help=f"comma-separated subset of {','.join(TARGETS)}")
    ap.add_argument("--pause", type=float, default=1.0,
                    help="seconds of idle between load runs (default 1)")
    ap.add_argument("--fulcrumd", type=Path, default=DEFAULT_FULCRUMD)
    ap.add_argument("--json", type=Path, default=None,
                    help="result file (default bench/results/tls-<timestamp>.json)")
    args = ap.parse_args(argv)
    settle_round_args(ap, args, SCENARIOS, TARGETS)
    args.workers = 1
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    need = ["wrk", "nginx", "openssl", "curl"] + (["h2load"] if "h2" in args.scenarios else []) + (["haproxy"] if "haproxy" in args.targets
                                                  else [])
    if missing_tools("tls_peers", need, args):
        return 2
    args.fd_limit = raise_fd_limit()
    args.haproxy_maxconn = haproxy_maxconn(args.fd_limit)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.json or REPO / "bench" / "results" / f"tls-{stamp}.json"
    meta = base_meta("tls_peers", args, argv, stamp, CLK_TCK)
    meta["versions"] = {"haproxy": tool_version(["haproxy", "-v"]),
                        "openssl": tool_version(["openssl", "version"]),
                        "wrk": tool_version(["wrk", "-v"]),
                        "h2load": tool_version(["h2load", "--version"])}
    results, failures, interrupted = run_scenarios(args, "tls", run_scenario, meta)
    print(f"## Fulcrum TLS peers — {stamp}, git {meta['git']}, one thread per proxy, "
          f"{meta['cpus']} CPUs\n")
    print(f"Command: `{meta['command']}`\n")
    for res in results:
        print(markdown(res, args.rounds, args.duration))
    return finish_report(meta, results, failures, interrupted, json_path,
                         print_load=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
