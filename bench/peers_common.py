"""Shared parts of the peer benchmarks (l4_peers.py, l7_peers.py): process handling (every process
started is stopped by its pid), /proc readers for CPU time and memory, the NGINX backend, the wrk
runner and the median/ratio helpers.

Python 3 standard library only. See bench/README.md.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FULCRUMD = REPO / "build/release/cmd/fulcrumd/fulcrumd"
LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NGINX_BODY = "hello from nginx\n"

_program = "peers"


def set_program(name: str) -> None:
    """The name that prefixes every log line (the benchmark script's)."""
    global _program
    _program = name


def log(msg: str) -> None:
    print(f"[{_program} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes: each one is registered, and stopped by its pid (terminate, wait, kill).


class Procs:
    """Every long-running process this script starts; stop() ends them by pid, newest first."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], log_path: Path, **kw) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, **kw)
        self._procs.append((name, proc))
        log(f"started {name} pid {proc.pid}: {' '.join(argv)}")
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        for name, p in self._procs:
            if p is proc:
                stop_pid(proc, timeout)
                log(f"stopped {name} pid {proc.pid} (exit {proc.returncode})")
        self._procs = [(n, p) for n, p in self._procs if p is not proc]

    def stop_all(self) -> None:
        while self._procs:
            name, proc = self._procs.pop()
            stop_pid(proc, 5.0)
            log(f"stopped {name} pid {proc.pid} (exit {proc.returncode})")


def stop_pid(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL and wait: the process is gone afterwards."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def run_client(argv: list[str], timeout: float) -> tuple[int, str, str]:
    """Runs a load generator to completion (bounded by `timeout`), returns (rc, stdout, stderr)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        return -1, "", f"timed out after {timeout:.0f} s"
    finally:
        if proc.poll() is None:
            stop_pid(proc, 3.0)
            proc.communicate()


# ---------------------------------------------------------------------------------------------
# Helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, log_path: Path, what: str,
                   timeout: float = 10.0, marker: str | None = None) -> None:
    """Waits until `port` accepts a connection (and `marker` is in the log, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail(log_path)}")
        if marker is None or marker in log_path.read_text(errors="replace"):
            try:
                with socket.create_connection((LOOPBACK, port), timeout=0.5):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not listening on {port} after {timeout:.0f} s:\n{tail(log_path)}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of the whole process (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()  # fields from 3 (state) on
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # fields 14 and 15


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return ""


def rss_kb(pid: int) -> dict:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0].lower() + "_kb"] = int(line.split()[1])
    except OSError:
        pass
    return out


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def raise_fd_limit(want: int = 262144) -> int:
    """Raises RLIMIT_NOFILE as far as allowed (children inherit it); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for new_hard in (max(hard, want), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, new_hard), new_hard))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def haproxy_maxconn(fd_limit: int) -> int:
    """100000, or what the descriptor limit allows: HAProxy refuses to start when maxconn needs
    more descriptors than it may open (2 per connection + maxconn/4 splice pipes of 2 each)."""
    return max(1000, min(100000, int((fd_limit - 1000) / 2.5)))


def tool_version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=10)
        text = (r.stdout + r.stderr).strip().splitlines()
        return text[0] if text else ""
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def git_rev() -> str:
    try:
        r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"

# ---------------------------------------------------------------------------------------------
# Backend


def nginx_http_common(prefix: Path) -> str:
    """The http-block lines every NGINX of the benchmarks shares: no access log, and temporary
    paths inside its own prefix (never the system's)."""
    return (f"    access_log off;\n"
            f"    client_body_temp_path {prefix}/client_body;\n"
            f"    proxy_temp_path {prefix}/proxy;\n"
            f"    fastcgi_temp_path {prefix}/fastcgi;\n"
            f"    uwsgi_temp_path {prefix}/uwsgi;\n"
            f"    scgi_temp_path {prefix}/scgi;\n")


def start_nginx(procs: Procs, tmp: Path) -> tuple[int, subprocess.Popen]:
    port = free_port()
    prefix = tmp / "nginx"
    prefix.mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(f"""{user}worker_processes 1;
worker_rlimit_nofile 65536;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 16384; }}
http {{
{nginx_http_common(prefix)}    default_type text/plain;
    server {{
        listen {LOOPBACK}:{port} backlog=4096;
        location / {{ return 200 "{NGINX_BODY.strip()}\\n"; }}
    }}
}}
""")
    log_path = prefix / "stdout.log"
    proc = procs.start("nginx", ["nginx", "-p", str(prefix), "-c", str(conf), "-e",
                                 str(prefix / "error.log"), "-g", "daemon off;"], log_path)
    wait_listening(port, proc, log_path, "nginx")
    return port, proc


# ---------------------------------------------------------------------------------------------
# wrk


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _wrk_ms(text: str) -> float | None:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _WRK_UNITS[m.group(2)] if m else None


def run_wrk(port: int, seconds: int, headers: tuple[str, ...] = (),
            percentiles: tuple[str, ...] = ("50", "99"), scheme: str = "http") -> dict:
    """wrk -t1 -c50 --latency for `seconds` against http://127.0.0.1:port/, with `headers` (e.g.
    "Connection: close"); requests/s, socket errors, non-2xx answers, saturated latency
    percentiles (of the 50, 75, 90 and 99 wrk prints) in ms. `scheme` "https" runs over TLS (wrk
    resumes its TLS sessions when it reconnects)."""
    argv = ["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    argv.append(f"{scheme}://{LOOPBACK}:{port}/")
    rc, out, err = run_client(argv, timeout=seconds + 30)
    m_rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    m_req = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if rc != 0 or not m_rps or not m_req:
        return {"value": None, "error": (err.strip() or out.strip() or f"exit {rc}")[-500:],
                "errors": 1}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = dict(zip(("connect", "read", "write", "timeout"),
                             (int(x) for x in sock.groups()))) if sock else {}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = {}
    for pct in percentiles:
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            latency[f"p{pct}_ms"] = _wrk_ms(m.group(1))
    requests = int(m_req.group(1))
    return {"value": float(m_rps.group(1)), "units_done": requests, "requests": requests,
            "socket_errors": socket_errors, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": sum(socket_errors.values()) + (int(non2xx.group(1)) if non2xx else 0),
            "latency_saturated": latency}


# ---------------------------------------------------------------------------------------------
# Summaries


def med_range(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def run_scenarios(args, name: str, run_scenario, meta: dict) -> tuple[list, list, bool]:
    """Runs every scenario of args.scenarios as run_scenario(scenario, args, dir, procs), with a
    private copy of fulcrumd (a rebuild of the tree during the run must not change the binary,
    whose hash goes into meta), and stops every process it started. SIGTERM unwinds like Ctrl-C.
    Returns (results, failures, interrupted)."""
    import hashlib
    import shutil
    import tempfile
    procs = Procs()
    results: list = []
    failures: list[dict] = []
    interrupted = False
    if "fulcrum" in args.targets:
        with open(args.fulcrumd, "rb") as f:
            meta["fulcrumd"] = {"path": str(args.fulcrumd),
                                "sha256": hashlib.sha256(f.read()).hexdigest()[:16]}
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with tempfile.TemporaryDirectory(prefix=f"fulcrum-{name}-bench-") as tmpdir:
            if "fulcrum" in args.targets:
                pinned = Path(tmpdir) / "fulcrumd"
                shutil.copy2(args.fulcrumd, pinned)
                args.fulcrumd = pinned
            try:
                for scenario in args.scenarios:
                    sub = Path(tmpdir) / scenario
                    sub.mkdir()
                    try:
                        results.append(run_scenario(scenario, args, sub, procs))
                    except (RuntimeError, OSError) as e:
                        log(f"{scenario} failed: {e}")
                        failures.append({"scenario": scenario, "error": str(e)})
            finally:
                procs.stop_all()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: reporting what was measured")
    return results, failures, interrupted


def missing_tools(program: str, need: list[str], args) -> bool:
    """Prints what is missing (tools, or an unbuilt fulcrumd) and returns True if anything is."""
    import shutil
    missing = [n for n in need if not shutil.which(n)]
    if "fulcrum" in args.targets and not os.access(args.fulcrumd, os.X_OK):
        missing.append(str(args.fulcrumd))
    if missing:
        print(f"{program}: missing {', '.join(missing)} (bench/run.sh installs and builds them)",
              file=sys.stderr)
    return bool(missing)


def base_meta(benchmark: str, args, argv: list[str], stamp: str, clk_tck: int) -> dict:
    """The run description both peer benchmarks put at the head of their JSON."""
    import platform
    return {
        "benchmark": benchmark, "timestamp": stamp, "command": " ".join([sys.argv[0]] + argv),
        "git": git_rev(), "kernel": platform.release(), "cpus": os.cpu_count(),
        "workers": args.workers, "rounds": args.rounds, "duration_s": args.duration,
        "warmup_s": args.warmup, "targets": args.targets, "clk_tck": clk_tck,
        "loadavg_start": loadavg(), "fd_limit": args.fd_limit,
        "haproxy_maxconn": args.haproxy_maxconn,
    }


def settle_round_args(ap, args, scenarios, targets) -> None:
    """The shared checks and defaults of the peer benchmarks' --quick/--rounds/--duration/--warmup
    and --scenarios/--targets options (the lists become Python lists). Errors go through ap.error."""
    if args.quick:
        args.rounds = args.rounds or 1
        args.duration = args.duration or 2
        args.warmup = 0 if args.warmup is None else args.warmup
    else:
        args.rounds = args.rounds or 5
        if args.rounds < 3:
            ap.error("--rounds must be at least 3 (use --quick for a smoke test)")
    if not 1 <= args.rounds <= 100:
        ap.error("--rounds must be between 1 and 100")
    args.duration = args.duration or 5
    if not 1 <= args.duration <= 600:
        ap.error("--duration must be between 1 and 600")
    args.warmup = 1 if args.warmup is None else args.warmup
    if not 0 <= args.warmup <= 60:
        ap.error("--warmup must be between 0 and 60")
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.targets = [t for t in args.targets.split(",") if t]
    for s in args.scenarios:
        if s not in scenarios:
            ap.error(f"unknown scenario {s}")
    for t in args.targets:
        if t not in targets:
            ap.error(f"unknown target {t}")
    if not args.scenarios or not args.targets or len(set(args.targets)) != len(args.targets):
        ap.error("--scenarios and --targets need at least one name each, without repeats")


def finish_report(meta: dict, results: list, failures: list, interrupted: bool, json_path,
                  print_load: bool) -> int:
    """The end of every peer benchmark: failed scenarios, the load average at the end (printed when
    `print_load`), the JSON result file; returns the exit status (130 interrupted, 1 a scenario
    failed, else 0)."""
    for f in failures:
        print(f"**{f['scenario']} failed:** {f['error']}\n")
    meta["loadavg_end"] = loadavg()
    if print_load:
        print(f"Load average: {meta['loadavg_start']} at start, {meta['loadavg_end']} at end.")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"meta": meta, "scenarios": results, "failures": failures},
                                    indent=2) + "\n")
    print(f"JSON: {json_path}")
    return 130 if interrupted else (1 if failures else 0)


# ---------------------------------------------------------------------------------------------
# Runs with errors (used by tls_peers.py)


def run_clean(run: dict) -> bool:
    """A run counts in the medians only if it measured a value and saw no error (no socket
    error, no non-2xx answer, no failed client)."""
    return run.get("value") is not None and not run.get("errors")


def split_runs(runs: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the clean runs, the runs with errors): the medians are taken over the first list only;
    the second is reported (count, rounds, errors) and kept in the JSON."""
    kept = [r for r in runs if run_clean(r)]
    return kept, [r for r in runs if not run_clean(r)]


def round_ratios(a_runs: list[dict], b_runs: list[dict], key: str) -> dict | None:
    """Median and range of a's run ÷ b's run of the same round (runs carry "round"), over the
    rounds where both runs are clean."""
    b_by_round = {r.get("round"): r for r in b_runs if run_clean(r)}
    out = []
    for a in a_runs:
        b = b_by_round.get(a.get("round"))
        if b is not None and run_clean(a):
            out.append(ratio(a.get(key), b.get(key)))
    return med_range(out)
