"""Cluster-mode helpers: real etcd members (/usr/bin/etcd) and real fulcrumd nodes on loopback.

`EtcdCluster(n)` starts n members, each on free loopback client and peer ports with its own data
directory (`--initial-cluster-state new`), optionally with TLS on the client URLs (https, a server
certificate for 127.0.0.1, `--client-cert-auth` with the test CA). Members are killed (`kill -9`),
stopped (SIGTERM), paused and restarted by pid, on the same data directory and ports. The
cluster's v3 JSON gateway is spoken with urllib (revision, compaction, reads of raw keys,
authentication) and etcdctl enables user/password authentication.

`Node` is a fulcrumd of a cluster (`--store etcd://...`, `--node`, `--zone`), built on
harness.Fulcrumd: the nodes of one cluster share the admin and reader token files.

Every process is ended by its pid; every wait is bounded.
"""
import base64
import json
import os
import pathlib
import re
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import certs as certs_mod
import harness as h

ETCD = os.environ.get("FULCRUM_ETCD", "/usr/bin/etcd")
ETCDCTL = os.environ.get("FULCRUM_ETCDCTL", "/usr/bin/etcdctl")


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies (a ctest timeout kills the
    test, not what it started)."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def unb64(text):
    return base64.b64decode(text or "")


def prefix_end(prefix):
    """etcd's range_end for every key that starts with `prefix`."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return bytes(raw)


class EtcdTls:
    """A CA, a server certificate for 127.0.0.1 (serverAuth and clientAuth: etcd 3.4's JSON
    gateway dials its own gRPC server with it) and a client certificate, all from one CA, made
    with openssl in a temporary folder."""

    def __init__(self):
        self.certs = certs_mod.Certs()
        self.ca = self.certs.ca
        self.server_cert, self.server_key = self._make("etcd-server", "/CN=127.0.0.1",
                                                       "IP:127.0.0.1,DNS:localhost",
                                                       "serverAuth,clientAuth")
        self.client_cert, self.client_key = self._make("etcd-client", "/CN=fulcrum-node", None,
                                                       "clientAuth")

    def _make(self, name, subject, san, eku):
        d = self.certs.dir
        certs_mod._run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                       "-out", f"{name}.key", cwd=d)
        certs_mod._run("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
                       "-subj", subject, cwd=d)
        ext = d / f"{name}.ext"
        ext.write_text((f"subjectAltName={san}\n" if san else "") +
                       f"extendedKeyUsage={eku}\n")
        certs_mod._run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                       "-CAcreateserial", "-days", "30", "-out", f"{name}.pem",
                       "-extfile", ext.name, cwd=d)
        return d / f"{name}.pem", d / f"{name}.key"

    def cleanup(self):
        self.certs.cleanup()


class EtcdMember:
    def __init__(self, name, root, client_port, peer_port, tls=None, client_cert_auth=False):
        self.name = name
        self.dir = pathlib.Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "data"
        self.log_path = self.dir / "etcd.log"
        self.client_port = client_port
        self.peer_port = peer_port
        self.tls = tls
        self.client_cert_auth = client_cert_auth
        self.proc = None
        self.log = None

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def client_url(self):
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, initial_cluster):
        """Starts the member (again, after a kill, on the same data directory and ports)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        args = [ETCD, "--name", self.name, "--data-dir", str(self.data),
                "--listen-client-urls", self.client_url,
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", "fulcrum-test",
                "--heartbeat-interval", "100", "--election-timeout", "1000",
                "--logger", "zap", "--log-outputs", "stderr"]
        if self.tls:
            args += ["--cert-file", str(self.tls.server_cert),
                     "--key-file", str(self.tls.server_key)]
            if self.client_cert_auth:
                args += ["--client-cert-auth", "--trusted-ca-file", str(self.tls.ca)]
        if self.log is None:
            self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self):
        if self.proc is not None:
            h.stop_process(self.proc, timeout=10)

    def read_log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self):
        self.terminate()
        if self.log:
            self.log.close()
            self.log = None


class EtcdCluster:
    """n etcd members on loopback. `tls`: an EtcdTls (https client URLs); `client_cert_auth`:
    members require a client certificate signed by the test CA."""

    def __init__(self, n=1, tls=None, client_cert_auth=False):
        self._tmp = tempfile.TemporaryDirectory(prefix="fulcrum-etcd-")
        self.root = pathlib.Path(self._tmp.name)
        self.tls = tls
        self.client_cert_auth = client_cert_auth
        self.user = None
        self.password = None
        self._token = None
        used = set()

        def port():
            for _ in range(100):
                p = h.free_port()
                if p not in used:
                    used.add(p)
                    return p
            raise AssertionError("no free port")

        self.members = [EtcdMember(f"m{i}", self.root, port(), port(), tls, client_cert_auth)
                        for i in range(n)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        try:
            for m in self.members:
                m.start(self.initial_cluster)
            self.wait_healthy()
        except BaseException:
            self.close()
            raise

    # --- Addresses -----------------------------------------------------------------------------

    @property
    def endpoints(self):
        return [m.client_url for m in self.members]

    def store_flag(self, members=None, explicit_scheme=None):
        """The fulcrumd --store value: etcd://127.0.0.1:P1,127.0.0.1:P2 (https://... with TLS,
        or with explicit_scheme=True)."""
        members = self.members if members is None else members
        if explicit_scheme is None:
            explicit_scheme = bool(self.tls)
        items = [m.client_url if explicit_scheme else f"127.0.0.1:{m.client_port}"
                 for m in members]
        return "etcd://" + ",".join(items)

    def node_args(self):
        """The fulcrumd flags that reach this cluster (TLS files included)."""
        args = ["--store", self.store_flag()]
        if self.tls:
            args += ["--etcd-cacert", str(self.tls.ca)]
            if self.client_cert_auth:
                args += ["--etcd-cert", str(self.tls.client_cert),
                         "--etcd-key", str(self.tls.client_key)]
        return args

    # --- Members -------------------------------------------------------------------------------

    def kill9(self, index):
        self.members[index].kill9()

    def kill9_all(self):
        for m in self.members:
            if m.running():
                os.kill(m.pid, signal.SIGKILL)
        for m in self.members:
            m.proc.wait(timeout=10)

    def terminate(self, index):
        self.members[index].terminate()

    def restart(self, index, wait=True):
        self.members[index].start(self.initial_cluster)
        if wait:
            self.wait_member_healthy(self.members[index])

    def restart_all(self, wait=True):
        for m in self.members:
            if not m.running():
                m.start(self.initial_cluster)
        if wait:
            self.wait_healthy()

    def close(self):
        for m in self.members:
            m.close()
        self._tmp.cleanup()

    def logs(self):
        return "\n".join(f"--- etcd {m.name}\n{m.read_log()[-3000:]}" for m in self.members)

    # --- The v3 JSON gateway -------------------------------------------------------------------

    def _ssl_context(self):
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls.ca))
        ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return ctx

    def _post(self, url, path, body, timeout, token=None):
        req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        if token:
            req.add_header("Authorization", token)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl_context()) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"error": text.decode(errors="replace")}

    def request(self, path, body, timeout=5.0, member=None):
        """POST `body` to `path` ("/v3/kv/range") on the first running member that answers;
        returns the JSON answer. Raises AssertionError when none does."""
        members = [member] if member is not None else [m for m in self.members if m.running()]
        errors = []
        for m in members:
            try:
                token = self._auth_token(m) if self.user else None
                status, answer = self._post(m.client_url, path, body, timeout, token)
                if status == 200:
                    return answer
                errors.append(f"{m.name}: {status} {answer}")
            except (OSError, ValueError) as e:
                errors.append(f"{m.name}: {e!r}")
        raise AssertionError(f"etcd {path} failed: {errors}")

    def _auth_token(self, member):
        if self._token is None:
            status, answer = self._post(member.client_url, "/v3/auth/authenticate",
                                        {"name": self.user, "password": self.password}, 5.0)
            if status != 200:
                raise AssertionError(f"etcd authenticate: {status} {answer}")
            self._token = answer["token"]
        return self._token

    def member_healthy(self, m):
        if not m.running():
            return False
        try:
            with urllib.request.urlopen(m.client_url + "/health", timeout=2,
                                        context=self._ssl_context()) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def wait_member_healthy(self, m, timeout=20.0):
        try:
            h.wait_until(lambda: self.member_healthy(m), timeout=timeout, interval=0.1,
                         what=f"etcd member {m.name} healthy")
        except AssertionError:
            raise AssertionError(f"etcd member {m.name} not healthy\n{self.logs()}") from None

    def wait_healthy(self, timeout=20.0):
        for m in self.members:
            if m.proc.poll() is not None:
                raise AssertionError(f"etcd {m.name} exited {m.proc.returncode}\n{self.logs()}")
            self.wait_member_healthy(m, timeout)

    def revision(self):
        return int(self.request("/v3/kv/range", {"key": b64("\0"), "limit": 1})
                   ["header"]["revision"])

    def compact(self, revision=None, physical=True):
        """Compacts the history up to `revision` (default: the current one); returns it."""
        revision = self.revision() if revision is None else revision
        self.request("/v3/kv/compaction", {"revision": str(revision), "physical": physical},
                     timeout=20)
        return revision

    def put(self, key, value):
        """Writes one key (not Fulcrum's: moves etcd's revision without changing the
        configuration); returns the new revision."""
        answer = self.request("/v3/kv/put", {"key": b64(key), "value": b64(value)})
        return int(answer["header"]["revision"])

    def get_prefix(self, prefix):
        """{key: value bytes} of every key under `prefix`."""
        answer = self.request("/v3/kv/range", {"key": b64(prefix),
                                               "range_end": b64(prefix_end(prefix))})
        return {unb64(kv["key"]).decode(errors="replace"): unb64(kv.get("value"))
                for kv in answer.get("kvs", [])}

    def leader_index(self):
        """The index of the member that leads now, or None."""
        for i, m in enumerate(self.members):
            if not m.running():
                continue
            try:
                st = self.request("/v3/maintenance/status", {}, timeout=2, member=m)
            except AssertionError:
                continue
            if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                return i
        return None

    def etcdctl(self, *args, check=True):
        cmd = [ETCDCTL, "--endpoints", ",".join(m.client_url for m in self.members
                                                 if m.running())]
        if self.tls:
            cmd += ["--cacert", str(self.tls.ca), "--cert", str(self.tls.client_cert),
                    "--key", str(self.tls.client_key)]
        if self.user and args[:2] != ("user", "add"):
            cmd += ["--user", f"{self.user}:{self.password}"]
        proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=30,
                              env={**os.environ, "ETCDCTL_API": "3"})
        if check and proc.returncode != 0:
            raise AssertionError(f"etcdctl {args}: {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc.stdout + proc.stderr

    def enable_auth(self, password, user="root"):
        """Adds `user` (root, with the root role) and turns authentication on."""
        self.etcdctl("user", "add", f"{user}:{password}", "--interactive=false")
        if user != "root":
            self.etcdctl("user", "grant-role", user, "root")
        out = self.etcdctl("auth", "enable")
        if "Authentication Enabled" not in out:
            raise AssertionError(f"etcdctl auth enable: {out}")
        self.user, self.password, self._token = user, password, None


# --- fulcrumd nodes ------------------------------------------------------------------------------

class Tokens:
    """The admin and reader token files every node of a test cluster shares."""

    def __init__(self):
        import secrets
        self._tmp = tempfile.TemporaryDirectory(prefix="fulcrum-tokens-")
        d = pathlib.Path(self._tmp.name)
        self.admin_file, self.reader_file = d / "admin.token", d / "reader.token"
        self.admin, self.reader = secrets.token_hex(32), secrets.token_hex(32)
        for path, value in ((self.admin_file, self.admin), (self.reader_file, self.reader)):
            path.write_text(value + "\n")
            path.chmod(0o600)

    def args(self):
        return ["--token-file", str(self.admin_file),
                "--reader-token-file", str(self.reader_file)]

    def cleanup(self):
        self._tmp.cleanup()


class Node(h.Fulcrumd):
    """One fulcrumd of a cluster: harness.Fulcrumd with the cluster flags, the shared token files
    and a longer readiness wait (a node started while etcd is unreachable waits for it a bounded
    time before it serves its last known good configuration)."""

    def __init__(self, etcd, tokens, name, zone="z1", workers=1, extra_args=(),
                 ready_timeout=30.0, store=None):
        self.name = name
        self.tokens = tokens
        self.ready_timeout = ready_timeout
        args = etcd.node_args()
        if store is not None:  # another spelling of the same --store
            args[args.index("--store") + 1] = store
        args += ["--node", name, "--zone", zone, *tokens.args(), *extra_args]
        super().__init__(None, workers=workers, extra_args=args)

    def start(self):
        args = [str(h.FULCRUMD), "--workers", str(self.workers), "--data-dir", str(self.data),
                "--admin", "127.0.0.1:0", *self.extra_args]
        url = self.data / "admin.url"
        if url.exists():
            url.unlink()
        ready_before = self.read_log().count("fulcrumd ready")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        h.wait_until(lambda: self.read_log().count("fulcrumd ready") > ready_before
                     or self.proc.poll() is not None, timeout=self.ready_timeout,
                     what=f"node {self.name} ready")
        if self.proc.poll() is not None:
            raise AssertionError(f"node {self.name} exited {self.proc.returncode}:\n"
                                 f"{self.read_log()[-4000:]}")

    @property
    def admin_token(self):
        return self.tokens.admin

    @property
    def reader_token(self):
        return self.tokens.reader

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout=15.0):
        """SIGTERM by pid, keeping the folder (start() starts it again)."""
        return h.stop_process(self.proc, timeout=timeout)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    @property
    def cache_path(self):
        return self.data / "cluster-cache.json"

    def get(self, path, token="reader", timeout=10.0):
        """(status, JSON, Fulcrum-Revision as int or None)."""
        status, answer, headers = self.api("GET", path, token=token, timeout=timeout)
        return status, answer, revision_of(headers)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.proc is not None and self.proc.poll() is None:
            try:  # a paused node does not see SIGTERM until it runs again
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        return super().stop(sig=sig, timeout=timeout)


def revision_of(headers):
    for k, v in headers.items():
        if k.lower() == "fulcrum-revision":
            return int(v)
    return None


def run_fulcrumd(args, timeout=40.0):
    """Runs fulcrumd with `args` in a fresh data directory, expecting it to exit; returns
    (returncode, stdout+stderr, seconds it ran). A fulcrumd still running after `timeout` is
    killed and reported with returncode None."""
    with tempfile.TemporaryDirectory(prefix="fulcrumd-exit-") as d:
        cmd = [str(h.FULCRUMD), "--workers", "1", "--data-dir", str(pathlib.Path(d) / "data"),
               "--admin", "127.0.0.1:0", *args]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_die_with_parent)
        try:
            out, err = proc.communicate(timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=10)
            rc = None
        return rc, out.decode(errors="replace") + err.decode(errors="replace"), \
            time.monotonic() - start


def secret_fragments(values):
    """Strings that would betray a secret stored in etcd: every run of 16+ base64/hex/word
    characters of the stored values, and the hex and base64 forms of what such runs decode to."""
    out = set()
    for raw in values:
        texts = [raw.decode("latin-1")]
        for t in list(texts):
            for run in re.findall(r"[A-Za-z0-9+/_=-]{16,}", t):
                out.add(run.rstrip("="))
                try:
                    decoded = base64.b64decode(run + "=" * (-len(run) % 4), validate=False)
                except ValueError:
                    decoded = b""
                if len(decoded) >= 8:
                    out.add(decoded.hex())
                    out.add(base64.b64encode(decoded).decode().rstrip("="))
        if len(raw) >= 8 and not raw.isascii():
            out.add(raw.hex())
            out.add(base64.b64encode(raw).decode().rstrip("="))
    # Only long fragments: short ones would match by chance.
    return {f for f in out if len(f) >= 16 and not re.fullmatch(r"[a-z_-]+", f)}
