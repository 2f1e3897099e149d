"""Shared parts of the cluster benchmarks (cluster_apply.py): a loopback etcd cluster, fulcrumd
nodes on it (or on the default SQLite store), fulcrum-echo backends, and an admin API client that
returns the `Fulcrum-Revision` header of every answer.

Every process is started through peers_common.Procs and stopped by its pid. Everything listens
on 127.0.0.1. Python 3 standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from peers_common import LOOPBACK, REPO, Procs, free_port, log, tail

DEFAULT_FULCRUMD = REPO / "build/release/cmd/fulcrumd/fulcrumd"
DEFAULT_ECHO = REPO / "build/release/tools/fulcrum-echo/fulcrum-echo"


def free_ports(count: int, avoid: set[int] | None = None) -> list[int]:
    """`count` distinct free loopback ports (none of `avoid`)."""
    avoid = set(avoid or ())
    ports: list[int] = []
    while len(ports) < count:
        p = free_port()
        if p not in ports and p not in avoid:
            ports.append(p)
    return ports


def write_token(path: Path) -> str:
    """A token of 256 random bits (hex) in `path`, mode 0600; returns it."""
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: bytes):
        super().__init__(f"{method} {path}: {status} {body[:300]!r}")
        self.status = status


class Api:
    """The admin API of one node: one connection per request (as fulcrumctl does)."""

    def __init__(self, port: int, token: str, host: str = LOOPBACK, timeout: float = 60.0):
        self.host, self.port, self.token, self.timeout = host, port, token, timeout

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, body=None, raw: bytes | None = None,
                ctype: str = "application/json", timeout: float | None = None,
                auth: bool = True) -> tuple[int, dict, bytes]:
        """(status, headers with lower-case names, body); raises OSError when unreachable."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        try:
            data = raw if raw is not None else (
                json.dumps(body).encode() if body is not None else None)
            headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
            if data is not None:
                headers["Content-Type"] = ctype
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text
        finally:
            conn.close()

    def call(self, method: str, path: str, body=None, **kw) -> tuple[object, int | None]:
        """A 2xx answer's JSON (None when empty) and its Fulcrum-Revision; ApiError otherwise."""
        status, headers, text = self.request(method, path, body, **kw)
        if not 200 <= status < 300:
            raise ApiError(method, path, status, text)
        return (json.loads(text) if text else None), revision_of(headers)


def revision_of(headers: dict) -> int | None:
    value = headers.get("fulcrum-revision")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def etcd_version(etcd: str) -> str:
    try:
        r = subprocess.run([etcd, "--version"], capture_output=True, text=True, timeout=10)
        return r.stdout.splitlines()[0] if r.stdout else "unknown"
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def find_etcd(given: str | None) -> str | None:
    if given:
        return given if os.access(given, os.X_OK) else None
    return shutil.which("etcd")


class EtcdCluster:
    """`members` etcd members on loopback ports, each with its own data folder under `tmp`."""

    def __init__(self, procs: Procs, tmp: Path, etcd: str, members: int = 3,
                 client_ports: list[int] | None = None, peer_ports: list[int] | None = None):
        ports = free_ports(2 * members)
        self.client_ports = client_ports or ports[:members]
        self.peer_ports = peer_ports or ports[members:]
        self.names = [f"e{i + 1}" for i in range(members)]
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        initial = ",".join(f"{n}=http://{LOOPBACK}:{p}"
                           for n, p in zip(self.names, self.peer_ports))
        token = f"fulcrum-bench-{os.getpid()}-{int(time.time())}"
        for name, cport, pport in zip(self.names, self.client_ports, self.peer_ports):
            data = tmp / f"etcd-{name}"
            log_path = tmp / f"etcd-{name}.log"
            argv = [etcd, "--name", name, "--data-dir", str(data),
                    "--listen-client-urls", f"http://{LOOPBACK}:{cport}",
                    "--advertise-client-urls", f"http://{LOOPBACK}:{cport}",
                    "--listen-peer-urls", f"http://{LOOPBACK}:{pport}",
                    "--initial-advertise-peer-urls", f"http://{LOOPBACK}:{pport}",
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", token, "--logger", "zap"]
            self.procs.append(procs.start(f"etcd {name}", argv, log_path))
            self.logs.append(log_path)

    @property
    def endpoints(self) -> list[str]:
        return [f"{LOOPBACK}:{p}" for p in self.client_ports]

    @property
    def store_url(self) -> str:
        return "etcd://" + ",".join(self.endpoints)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every member answers GET /health with {"health": "true"} (the cluster has a
        leader)."""
        deadline = time.monotonic() + timeout
        pending = list(range(len(self.names)))
        while pending:
            for i in list(pending):
                if self.procs[i].poll() is not None:
                    raise RuntimeError(f"etcd {self.names[i]} exited with "
                                       f"{self.procs[i].returncode}:\n{tail(self.logs[i])}")
                try:
                    conn = http.client.HTTPConnection(LOOPBACK, self.client_ports[i], timeout=2)
                    conn.request("GET", "/health")
                    resp = conn.getresponse()
                    body = resp.read()
                    conn.close()
                    if resp.status == 200 and json.loads(body).get("health") == "true":
                        pending.remove(i)
                except (OSError, ValueError, http.client.HTTPException):
                    pass
            if pending and time.monotonic() > deadline:
                names = ", ".join(self.names[i] for i in pending)
                raise RuntimeError(f"etcd {names} not healthy after {timeout:.0f} s:\n"
                                   f"{tail(self.logs[pending[0]])}")
            if pending:
                time.sleep(0.1)


class Node:
    """One fulcrumd. `store` is "sqlite" or an etcd:// URL; tokens come from the given files."""

    def __init__(self, procs: Procs, fulcrumd: Path, tmp: Path, name: str, store: str,
                 admin_token_file: Path, reader_token_file: Path, workers: int,
                 zone: str = "", admin_port: int | None = None, extra: list[str] | None = None):
        self.name = name
        self.data = tmp / name
        self.data.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_path = tmp / f"{name}.log"
        self.admin_port = admin_port or free_port()
        argv = [str(fulcrumd), "--store", store, "--node", name, "--admin",
                f"{LOOPBACK}:{self.admin_port}", "--data-dir", str(self.data),
                "--token-file", str(admin_token_file),
                "--reader-token-file", str(reader_token_file), "--workers", str(workers)]
        if zone:
            argv += ["--zone", zone]
        argv += extra or []
        self.procs = procs
        self.proc = procs.start(f"fulcrumd {name}", argv, self.log_path)
        self.api = Api(self.admin_port, admin_token_file.read_text().strip())
        self.reader = Api(self.admin_port, reader_token_file.read_text().strip())

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until GET /readyz answers 200 (the stored configuration serves)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fulcrumd {self.name} exited with {self.proc.returncode}:\n"
                                   f"{tail(self.log_path)}")
            try:
                status, _, _ = self.api.request("GET", "/readyz", timeout=2, auth=False)
                if status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"fulcrumd {self.name} not ready after {timeout:.0f} s:\n"
                                   f"{tail(self.log_path)}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.procs.stop(self.proc, timeout=15.0)


def start_echo(procs: Procs, echo: Path, tmp: Path, name: str, http_ports: int = 1,
               timeout: float = 10.0) -> tuple[subprocess.Popen, list[int]]:
    """A fulcrum-echo answering its `name` on `http_ports` loopback ports chosen by the kernel;
    returns the process and the ports (from its --ready-file)."""
    ready = tmp / f"ready-{name}"
    argv = [str(echo), "--name", name, "--ready-file", str(ready), "--quiet"]
    for _ in range(http_ports):
        argv += ["--http", f"{LOOPBACK}:0"]
    proc = procs.start(name, argv, tmp / f"{name}.log")
    deadline = time.monotonic() + timeout
    while not (ready.exists() and ready.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"fulcrum-echo {name} did not start:\n{tail(tmp / f'{name}.log')}")
        time.sleep(0.02)
    ports = [int(line.rsplit(":", 1)[1]) for line in ready.read_text().split("\n")
             if line.startswith("listening http")]
    return proc, ports


def http_get(port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes] | None:
    """One request on a new connection to 127.0.0.1:port; None when it fails."""
    try:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, body
    except (OSError, http.client.HTTPException):
        return None
