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

Targets run interleaved (the starting one rotates each round); each is summarised by its median
and range; the ratio is fulcrum ÷ haproxy of the medians. The proxy's CPU time (utime + stime of
the process, all threads) is read before and after each run. The load generators need CPU too
(on 2 cores the handshake figure is bounded by the client's own crypto): the CPU per connection
of the proxy is the steadier number.

Only the Python standard library is used. Every process started here is stopped here, by its pid.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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
    run_scenarios,
    CLK_TCK, DEFAULT_FULCRUMD, LOOPBACK, NGINX_BODY, REPO, Procs, cpu_times, free_port,
    haproxy_maxconn, loadavg, log, med_range, raise_fd_limit, run_client, run_wrk, rss_kb,
    set_program, start_nginx, tool_version, wait_listening)

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


def start_fulcrum(procs: Procs, d: Path, fulcrumd: Path, backend: int, cert: Path, key: Path):
    port = free_port()
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
certificates:
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
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
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


def run_scenario(scenario: str, args, tmp: Path, procs: Procs) -> dict:
    backend, _ = start_nginx(procs, tmp)
    cert, key = make_certificate(tmp)
    targets = {}
    for name in args.targets:
        d = tmp / name
        d.mkdir()
        if name == "fulcrum":
            targets[name] = start_fulcrum(procs, d, args.fulcrumd, backend, cert, key)
        else:
            targets[name] = start_haproxy(procs, d, backend, cert, key, args.haproxy_maxconn)
        probe(targets[name][0])
    samples: dict[str, list[dict]] = {t: [] for t in targets}
    order = list(targets)
    for r in range(args.rounds):
        for i in range(len(order)):
            name = order[(r + i) % len(order)]
            port, proc = targets[name]
            res = measure(scenario, port, proc.pid, args.duration)
            samples[name].append(res)
            log(f"{scenario} round {r + 1}/{args.rounds} {name}: "
                f"{res.get('value') or 0:.0f} {UNITS[scenario][0]}, "
                f"{res.get('cpu_per_unit') or 0:.1f} {UNITS[scenario][1]}, "
                f"load {loadavg()}")
            time.sleep(args.pause)
    summary = {t: {"value": med_range([s.get("value") for s in runs]),
                   "cpu_per_unit": med_range([s.get("cpu_per_unit") for s in runs]),
                   "vmrss_kb": med_range([s.get("vmrss_kb") for s in runs]),
                   "errors": sum(s.get("errors", 0) for s in runs)}
               for t, runs in samples.items()}
    return {"scenario": scenario, "summary": summary, "samples": samples}


def fmt(v: dict | None, digits: int = 0) -> str:
    if not v:
        return "—"
    return f"{v['median']:.{digits}f} ({v['min']:.{digits}f}–{v['max']:.{digits}f})"


def markdown(res: dict) -> str:
    scenario, s = res["scenario"], res["summary"]
    unit, cpu_unit = UNITS[scenario]
    lines = [f"### {TITLES[scenario]}", "",
             f"| target | {unit} median (range) | {cpu_unit} median (range) | RSS KiB | errors |",
             "|---|---|---|---|---|"]
    for t, v in s.items():
        lines.append(f"| {t} | {fmt(v['value'])} | {fmt(v['cpu_per_unit'], 1)} | "
                     f"{fmt(v['vmrss_kb'])} | {v['errors']} |")
    f, h = s.get("fulcrum"), s.get("haproxy")
    if f and h and f["value"] and h["value"]:
        lines.append("")
        lines.append(f"fulcrum / haproxy: {unit} **{f['value']['median'] / h['value']['median']:.2f}×**"
                     + (f", CPU per unit {f['cpu_per_unit']['median'] / h['cpu_per_unit']['median']:.2f}× "
                        "(lower is better)" if f["cpu_per_unit"] and h["cpu_per_unit"] else ""))
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per run")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--pause", type=float, default=1.0)
    ap.add_argument("--fulcrumd", type=Path, default=DEFAULT_FULCRUMD)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.targets = [t for t in args.targets.split(",") if t]
    for s in args.scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s}")
    for t in args.targets:
        if t not in TARGETS:
            ap.error(f"unknown target {t}")
    args.workers = 1
    args.warmup = 0
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
        print(markdown(res))
    return finish_report(meta, results, failures, interrupted, json_path,
                         print_load=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
