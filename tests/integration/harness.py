"""Shared helpers for integration tests: real fulcrumd and fulcrum-echo processes on loopback.

Every process a test starts is ended by the test, by its pid (terminate, then kill after a bounded
wait). Every wait is bounded. Ports are picked by binding port 0. A fulcrumd must end cleanly
(exit 0 after SIGTERM): Fulcrumd.stop() fails the test otherwise, and a SIGHUP reload fails
when it is refused unless the test expects the refusal (Fulcrumd.reload).
"""
import contextlib
import os
import pathlib
import re
import signal
import socket
import subprocess
import random
import tempfile
import threading
import time
import unittest
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
BUILD = pathlib.Path(os.environ.get("FULCRUM_BUILD_DIR", ROOT / "build" / "release"))
FULCRUMD = BUILD / "cmd" / "fulcrumd" / "fulcrumd"
ECHO = BUILD / "tools" / "fulcrum-echo" / "fulcrum-echo"


def free_port(host="127.0.0.1", kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop_process(proc, timeout=10.0, sig=signal.SIGTERM):
    """Sends `sig`, waits up to `timeout` seconds, then SIGKILLs; returns the exit status. A
    process that needed the SIGKILL is marked (`proc.hung`): Fulcrumd.stop() reports it."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.hung = (sig, timeout)
        proc.kill()
        return proc.wait(timeout=5)


def run_cleanups(fns):
    """Runs every cleanup function, last added first, even after one of them failed (a fulcrumd
    that exits badly must not leave the other processes of its test running); then raises the
    first failure."""
    errors = []
    for fn in reversed(fns):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - reported below, after every process ended
            errors.append(e)
    if errors:
        raise errors[0]


def writes_with_a_kill(node, path, kill, stop_on_error, timeout=20):
    """The "nothing lost" run: 500 POSTs of one backend each (127.0.1.1:10000+i) to `path` through
    `node` (a Fulcrumd), every tenth invalid (weight 999); `kill()` runs once between 120 and 300
    acknowledged writes, while the writer goes on (or stops at its first unanswered request when
    `stop_on_error`). Returns (acked ports, refused [(port, status, error code)], ports whose fate
    is unknown (no answer, or 5xx), how many were acknowledged before the kill)."""
    acked, refused, unknown = [], [], []
    done = threading.Event()

    def writer():
        for i in range(500):
            port = 10000 + i
            body = {"address": "127.0.1.1", "port": port, "weight": 999 if i % 10 == 7 else 50}
            try:
                status, answer, _ = node.api("POST", path, body, timeout=timeout)
            except OSError:
                unknown.append(port)
                if stop_on_error:
                    break
                continue
            if 200 <= status < 300:
                acked.append(port)
            elif 400 <= status < 500:
                code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
                refused.append((port, status, code))
            else:
                unknown.append(port)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    kill_at = random.Random().randint(120, 300)
    wait_until(lambda: len(acked) >= kill_at or done.is_set(), timeout=150,
               what="writes acknowledged")
    before = len(acked)
    kill()
    t.join(timeout=300)
    if t.is_alive():
        raise AssertionError("the writer did not finish")
    if done.is_set() and before < kill_at:
        raise AssertionError("the writer finished before the kill")
    return acked, refused, unknown, before


class ProcessCase(unittest.TestCase):
    """A test case that ends what it starts: `self.cleanup` (functions) all run at tearDown, last
    added first, even after one fails; echo() and fulcrumd() start a backend or a daemon and add
    its stop."""

    def setUp(self):
        self.cleanup = []

    def tearDown(self):
        run_cleanups(self.cleanup)

    def echo(self, name, http=True, **kw):
        e = Echo(name, http=http, **kw)
        self.cleanup.append(e.stop)
        return e

    def fulcrumd(self, text, **kw):
        f = Fulcrumd(text, **kw)
        self.cleanup.append(f.stop)
        return f


class Echo:
    """A fulcrum-echo backend with one TCP listener (HTTP with http=True, UDP with udp=True), and
    optionally an extra HTTP listener on `http_port` of the same host."""

    def __init__(self, name, host="127.0.0.1", port=0, http=False, http_port=None, udp=False):
        self.name = name
        self.host = host
        self.dir = tempfile.TemporaryDirectory(prefix="fulcrum-echo-")
        ready = pathlib.Path(self.dir.name) / "ready"

        def addr(p):
            return f"[{host}]:{p}" if ":" in host else f"{host}:{p}"

        kind = "udp" if udp else "http" if http else "tcp"
        args = [str(ECHO), "--name", name, f"--{kind}", addr(port)]
        if http_port is not None:
            args += ["--http", addr(http_port)]
        args += ["--ready-file", str(ready), "--quiet"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        want = 1 if http_port is None else 2
        text = wait_until(lambda: ready.exists() and len(ready.read_text().splitlines()) >= want
                          and ready.read_text(), what=f"echo {name}")
        ports = {}
        for line in text.splitlines():  # "listening tcp 127.0.0.1:PORT"
            _, kind, where = line.split()
            ports.setdefault(kind, int(where.rsplit(":", 1)[1]))
        self.port = ports[kind]
        self.http_port = ports["http"] if http_port is not None else None

    def http_get(self, path, timeout=5.0):
        """GET on the extra HTTP listener; returns (status, body)."""
        with contextlib.closing(connect(self.http_port, host=self.host, timeout=timeout)) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = recv_all(s)
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=5)

    def stop(self):
        stop_process(self.proc)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.dir.cleanup()


def common_free_port(hosts):
    """A TCP port free on every address of `hosts` (loopback addresses)."""
    for _ in range(50):
        port = free_port(hosts[0])
        try:
            for h in hosts[1:]:
                with socket.socket() as s:
                    s.bind((h, port))
            return port
        except OSError:
            continue
    raise AssertionError(f"no common free port on {hosts}")


class Fulcrumd:
    """fulcrumd in a temporary folder: its data directory (store, tokens), its log, and the YAML
    configuration when one is given. The admin API listens on a free loopback port.

    Every fulcrumd it ran must have ended cleanly: stop() fails the test when one exited with
    anything but `expected_exit` (0: SIGTERM drains, then exits 0), crashed, or did not end
    within the stop timeout after SIGTERM. A process ended on purpose with kill9() (or
    stop(sig=SIGKILL)) is exempt; a test that expects another exit sets `expected_exit` (None:
    any)."""

    def __init__(self, yaml_text=None, workers=2, extra_args=(), wait_port=None):
        self.procs = []  # every fulcrumd process started on this folder, checked by stop()
        self.expected_exit = 0
        self.dir = tempfile.TemporaryDirectory(prefix="fulcrumd-")
        self.data = pathlib.Path(self.dir.name) / "data"
        self.config = pathlib.Path(self.dir.name) / "lb.yaml"
        if yaml_text is not None:
            self.config.write_text(yaml_text)
        self.yaml = yaml_text is not None
        self.workers = workers
        self.extra_args = list(extra_args)
        self.log = open(pathlib.Path(self.dir.name) / "fulcrumd.log", "w+")
        self.proc = None
        self.start()

    def start(self):
        """Starts (or restarts, after kill) fulcrumd on the same folder and waits until ready."""
        args = [str(FULCRUMD), "--workers", str(self.workers), "--data-dir", str(self.data),
                "--admin", "127.0.0.1:0", *self.extra_args]
        if self.yaml:
            args += ["--config", str(self.config)]
        url = self.data / "admin.url"
        if url.exists():
            url.unlink()
        ready_before = self.read_log().count("fulcrumd ready")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.read_log().count("fulcrumd ready") > ready_before
                   or self.proc.poll() is not None, what="fulcrumd ready")
        if self.proc.poll() is not None:
            raise AssertionError(f"fulcrumd exited {self.proc.returncode}:\n{self.read_log()}")

    @property
    def proc(self):
        return self._proc

    @proc.setter
    def proc(self, proc):  # also when a subclass starts the process itself
        self._proc = proc
        if proc is not None:
            self.procs.append(proc)

    def kill9(self):
        self.proc.killed = True  # on purpose: its exit status is not checked
        self.proc.kill()
        self.proc.wait(timeout=10)

    def read_log(self):
        self.log.flush()
        return (pathlib.Path(self.dir.name) / "fulcrumd.log").read_text()

    @property
    def api_url(self):
        return (self.data / "admin.url").read_text().strip()

    @property
    def admin_token(self):
        return (self.data / "admin.token").read_text().strip()

    @property
    def reader_token(self):
        return (self.data / "reader.token").read_text().strip()

    def api(self, method, path, body=None, token="admin", content_type=None, raw=None,
            timeout=10.0):
        """One admin API call; returns (status, parsed JSON or text, headers)."""
        return api_call(self.api_url, method, path, body=body,
                        token={"admin": self.admin_token, "reader": self.reader_token}.get(
                            token, token),
                        content_type=content_type, raw=raw, timeout=timeout)

    def reload(self, yaml_text, refused=False, timeout=10.0):
        """Writes `yaml_text` as the configuration, sends SIGHUP and waits for the outcome of
        that reload: the new generation active, or its refusal. A refusal fails unless
        `refused` is true, and then a reload that went through fails; returns the refusal
        line (None for an applied reload)."""
        marker = "SIGHUP: reloading"
        before = self.read_log().count(marker)
        self.config.write_text(yaml_text)
        self.proc.send_signal(signal.SIGHUP)

        def outcome():
            log = self.read_log()
            sighups = [m.start() for m in re.finditer(re.escape(marker), log)]
            if len(sighups) <= before:
                return None
            # The first outcome after this SIGHUP's line is this reload's: the reload runs at
            # once (queued behind a change in progress, if any), and backend health is not
            # published while a change is being written.
            return RELOAD_OUTCOME.search(log, sighups[before])

        m = wait_until(lambda: outcome() or (self.proc.poll() is not None and "exited"),
                       timeout=timeout, what="the outcome of the reload")
        if m == "exited":
            raise AssertionError(f"fulcrumd exited {self.proc.returncode} during a reload:\n"
                                 f"{self.read_log()[-4000:]}")
        line = m.group(0)
        if m.group("refused") and not refused:
            raise AssertionError(f"reload refused: {line}")
        if not m.group("refused") and refused:
            raise AssertionError(f"reload expected to be refused went through: {line}")
        return line if refused else None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Ends fulcrumd (SIGTERM: a graceful drain) and removes its folder; fails when any
        fulcrumd run on this folder ended badly (see the class)."""
        rc = None
        if self.proc is not None:
            if sig == signal.SIGKILL:
                self.proc.killed = True
            rc = stop_process(self.proc, timeout=timeout, sig=sig)
        log = self.read_log()
        self.log.close()
        self.dir.cleanup()
        # Under the sanitizer presets a report is a failure even when the test saw nothing wrong.
        for marker in ("Sanitizer", "runtime error:"):
            if marker in log:
                raise AssertionError(f"fulcrumd reported a sanitizer error:\n{log[-4000:]}")
        bad = []
        for proc in self.procs:
            if getattr(proc, "hung", None):
                hung_sig, waited = proc.hung
                bad.append(f"fulcrumd pid {proc.pid} did not exit within {waited}s of "
                           f"{signal.Signals(hung_sig).name} (then SIGKILLed)")
            elif getattr(proc, "killed", False) or self.expected_exit is None:
                continue
            elif proc.returncode != self.expected_exit:
                how = (f"signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                       else f"status {proc.returncode}")
                bad.append(f"fulcrumd pid {proc.pid} exited with {how}, "
                           f"not {self.expected_exit}")
        if bad:
            raise AssertionError("; ".join(bad) + f"\n--- fulcrumd log (tail)\n{log[-4000:]}")
        return rc


# The outcome of a SIGHUP reload in fulcrumd's log: "generation N active on W workers: ..." or
# "reload refused, generation N keeps running: ..." (also for a file that does not parse), or a
# store that refused the write.
RELOAD_OUTCOME = re.compile(r"^.*(?:generation \d+ active on \d+ workers"
                            r"|(?P<refused>reload refused, generation \d+ keeps running"
                            r"|store write refused)).*$", re.M)


def api_call(base_url, method, path, body=None, token=None, content_type=None, raw=None,
             timeout=10.0):
    """An HTTP request to the admin API with http.client; returns (status, body, headers). The
    body is parsed as JSON when the answer says so. `raw` sends bytes as they are."""
    import http.client
    import json as _json
    import urllib.parse
    u = urllib.parse.urlparse(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = raw
    if body is not None and raw is None:
        data = _json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if content_type:
        headers["Content-Type"] = content_type
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        ctype = resp.getheader("Content-Type", "")
        parsed = _json.loads(text) if ctype.startswith("application/json") and text else text
        return resp.status, parsed, dict(resp.getheaders())
    finally:
        conn.close()


def run_fulcrumd_check(yaml_text):
    """Runs `fulcrumd --config` on a file expected to be refused; returns (rc, output)."""
    with tempfile.TemporaryDirectory(prefix="fulcrumd-bad-") as d:
        path = pathlib.Path(d) / "bad.yaml"
        path.write_text(yaml_text)
        proc = subprocess.run([str(FULCRUMD), "--config", str(path), "--workers", "1",
                               "--data-dir", str(pathlib.Path(d) / "data"), "--admin", "off"],
                              capture_output=True, text=True, timeout=20)
        return proc.returncode, proc.stdout + proc.stderr


def connect(port, host="127.0.0.1", source=None, timeout=5.0):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    return s


def recv_line(s, limit=4096):
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = s.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def recv_all(s):
    chunks = []
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def ask_name(port, host="127.0.0.1", source=None):
    """Connects through the listener and returns the name of the backend that answered."""
    with contextlib.closing(connect(port, host, source)) as s:
        s.sendall(b"NAME\n")
        return recv_line(s)


def recv_crc(s, chunk=1 << 20):
    """Reads until EOF; returns (byte count, crc32) without keeping the bytes."""
    total, crc = 0, 0
    while True:
        data = s.recv(chunk)
        if not data:
            return total, crc & 0xFFFFFFFF
        total += len(data)
        crc = zlib.crc32(data, crc)


def source_crc(echo_port, n, seed=1):
    """(count, crc32) of `SOURCE n seed` read straight from a fulcrum-echo backend, no proxy.

    test_echo.py pins that stream to its documented generator; this is the reference a proxied
    download is compared with (computing 256 MiB of xorshift in Python would take a minute).
    """
    with contextlib.closing(connect(echo_port, timeout=60)) as s:
        s.sendall(f"SOURCE {n} {seed}\n".encode())
        return recv_crc(s)


def crc32(data):
    return zlib.crc32(data) & 0xFFFFFFFF


def lb_yaml(backends, port, scheduler="wrr", extra="", address="127.0.0.1"):
    """A one-listener TCP load balancer. `backends` is a list of (port, weight)."""
    lines = [
        "loadbalancers:",
        "  - name: test",
        f"    address: {address}",
        "    server_groups:",
        "      - name: app",
        "        backends:",
    ]
    for bport, weight in backends:
        lines.append(f"          - {{address: 127.0.0.1, port: {bport}, weight: {weight}}}")
    lines += [
        "    listeners:",
        "      - protocol: tcp",
        f"        port: {port}",
        "        server_group: app",
        f"        scheduler: {scheduler}",
    ]
    for l in extra.strip("\n").splitlines():
        lines.append("        " + l)
    return "\n".join(lines) + "\n"
