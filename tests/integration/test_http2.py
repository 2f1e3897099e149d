"""HTTP/2 on HTTPS listeners: ALPN, curl and h2load through Fulcrum, flow control with a small
client window, and the RFC 9113 §8 validation rules and connection limits with hand-made frames
(Debian's python3-h2 stack: hyperframe frames, hpack header blocks, h2 as a client).

Real fulcrumd and fulcrum-echo on loopback; certificates are made at test time (certs.py).
"""
import json
import re
import socket
import ssl
import subprocess
import time
import unittest
import zlib

import certs as certs_mod
import harness as h
from test_https_listener import https_yaml

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROTOCOL_ERROR = 0x1
ENHANCE_YOUR_CALM = 0xb


class RawH2:
    """An HTTP/2 client connection that sends whatever frames it is given (h2 refuses to send
    invalid requests; hyperframe and hpack do not)."""

    def __init__(self, port, ca, name="a.example.com"):
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname=name)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buf = b""
        self.sock.sendall(PREFACE + SettingsFrame(0).serialize())

    def close(self):
        self.sock.close()

    def send(self, *frames):
        self.sock.sendall(b"".join(f.serialize() for f in frames))

    def headers(self, stream_id, fields, end_stream=True):
        """A HEADERS frame carrying `fields` (list of (name, value) bytes) HPACK-encoded as
        they are, without validation."""
        f = HeadersFrame(stream_id)
        f.data = self.encoder.encode(fields)
        f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        return f

    def split_headers(self, stream_id, fields, piece=16384, end_stream=True):
        """HEADERS + CONTINUATION frames of at most `piece` bytes carrying `fields`."""
        block = self.encoder.encode(fields)
        frames = []
        for at in range(0, len(block), piece):
            f = HeadersFrame(stream_id) if at == 0 else ContinuationFrame(stream_id)
            f.data = block[at:at + piece]
            if at == 0 and end_stream:
                f.flags.add("END_STREAM")
            if at + piece >= len(block):
                f.flags.add("END_HEADERS")
            frames.append(f)
        return frames

    def read_frame(self):
        while len(self.buf) < 9:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
        while len(self.buf) < 9 + length:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        frame.parse_body(memoryview(self.buf[9:9 + length]))
        self.buf = self.buf[9 + length:]
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            self.send(SettingsFrame(0, flags=["ACK"]))
        if isinstance(frame, (HeadersFrame, ContinuationFrame)):
            frame.decoded = self.decoder.decode(frame.data)  # keep the HPACK state in step
        return frame

    def ending(self, timeout=10):
        """Reads until the peer ends the connection: "goaway" (a GOAWAY frame), "closed" (EOF)
        or "reset" (a reset or TLS failure); "timeout" when it is still open, silent or not,
        after `timeout` seconds. A read timeout is never an end: socket.timeout is an OSError
        too, so it is caught first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            self.sock.settimeout(left)
            try:
                f = self.read_frame()
            except socket.timeout:
                return "timeout"
            except OSError:  # ConnectionResetError, BrokenPipeError, ssl.SSLError
                return "reset"
            if f is None:
                return "closed"
            if isinstance(f, GoAwayFrame):
                return "goaway"

    def outcome(self, stream_id, timeout=10):
        """Reads until `stream_id` ends: ("reset", code), ("status", int) of its response head,
        ("goaway", code), or ("closed", None)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            f = self.read_frame()
            if f is None:
                return ("closed", None)
            if isinstance(f, GoAwayFrame):
                return ("goaway", f.error_code)
            if f.stream_id != stream_id:
                continue
            if isinstance(f, RstStreamFrame):
                return ("reset", f.error_code)
            if isinstance(f, HeadersFrame):
                return ("status", int(dict(f.decoded)[":status"]))
        return ("timeout", None)


def request(path=b"/", method=b"GET", authority=b"a.example.com"):
    return [(b":method", method), (b":scheme", b"https"), (b":authority", authority),
            (b":path", path)]


class Http2Test(h.ProcessCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = certs_mod.Certs()
        cls.ec = cls.certs.server("ec", ["a.example.com"], kind="ec")

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    def start(self, http2=True, workers=1, **fields):
        e = h.Echo("a", http=True, http_port=0)
        self.cleanup.append(e.stop)
        port = h.free_port()
        listener = {"protocol": "https", "port": port, "certificates": ["ec"], **fields}
        if not http2:
            listener["http2"] = False
        f = h.Fulcrumd(https_yaml([("ec", *self.ec, "server")], [listener], e.port),
                       workers=workers)
        self.cleanup.append(f.stop)
        return e, f, port

    def curl(self, port, path="/echo", extra=()):
        proc = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", str(self.certs.ca), "--resolve",
             f"a.example.com:{port}:127.0.0.1", "-w", "\n%{http_code} %{http_version}", *extra,
             f"https://a.example.com:{port}{path}"], capture_output=True, timeout=30)
        return proc.returncode, proc.stdout, proc.stderr.decode()

    def h2_client(self, port, timeout=10, initial_window=None):
        """A TLS socket with ALPN h2 and an h2 client connection whose preface is sent."""
        ctx = ssl.create_default_context(cafile=str(self.certs.ca))
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s = ctx.wrap_socket(raw, server_hostname="a.example.com")
        self.cleanup.append(s.close)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        if initial_window is not None:
            conn.local_settings = h2.settings.Settings(
                client=True,
                initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window})
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        return s, conn

    def raw(self, port):
        c = RawH2(port, self.certs.ca)
        self.cleanup.append(c.close)
        return c

    def backend_requests(self, echo):
        status, body = echo.http_get("/_admin/stats")
        self.assertEqual(status, 200)
        stats = json.loads(body)
        return stats.get("http_requests", stats.get("requests"))

    # ---- ALPN ----

    def test_alpn_offers_h2_then_http11_and_only_http11_when_http2_is_off(self):
        for http2, want in ((True, "h2"), (False, "http/1.1")):
            e, f, port = self.start(http2=http2)
            ctx = ssl.create_default_context(cafile=str(self.certs.ca))
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.example.com") as s:
                    self.assertEqual(s.selected_alpn_protocol(), want)
            rc, out, err = self.curl(port)
            self.assertEqual(rc, 0, err)
            self.assertTrue(out.endswith(b"200 2" if http2 else b"200 1.1"), out[-40:])

    # ---- requests through ----

    def test_curl_over_http2_with_forwarding_headers_and_bodies(self):
        e, f, port = self.start(x_forwarded={"proto": True})
        rc, out, err = self.curl(port, extra=("-H", "X-Forwarded-Proto: http",
                                              "-H", "Cookie: a=1", "-H", "Cookie: b=2"))
        self.assertEqual(rc, 0, err)
        text = out.decode()
        self.assertTrue(text.endswith("200 2"), text)
        self.assertIn("GET /echo HTTP/1.1\n", text)
        self.assertRegex(text, r"(?i)\nhost: a\.example\.com:\d+\n")
        self.assertIn("X-Forwarded-Proto: https\n", text)
        self.assertIn("X-Forwarded-For: 127.0.0.1\n", text)
        self.assertRegex(text, r"X-Request-Id: [0-9a-f]{32}\n")
        self.assertRegex(text, r"(?i)\ncookie: a=1; b=2\n")  # RFC 9113 §8.2.3: one field
        # A request body up (no Content-Length from the client's side: chunked upstream) ...
        body = bytes(range(256)) * 4096  # 1 MiB
        rc, out, err = self.curl(port, "/sink", extra=("--data-binary", "@-", "-H",
                                                       "Content-Type: application/octet-stream"))
        proc = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", str(self.certs.ca), "--resolve",
             f"a.example.com:{port}:127.0.0.1", "--data-binary", "@-",
             f"https://a.example.com:{port}/sink"], input=body, capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.decode(), f"{len(body)} {zlib.crc32(body):08x}\n")
        # ... and a large response down.
        rc, out, err = self.curl(port, "/bytes/4000000")
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.endswith(b"\n200 2"))
        self.assertEqual(len(out), 4000000 + len(b"\n200 2"))
        # A backend error status passes through; an unreachable one is a 502 on the stream.
        rc, out, err = self.curl(port, "/status/404")
        self.assertTrue(out.endswith(b"404 2"), out)

    def test_a_body_without_content_length_goes_chunked_and_a_head_has_no_body(self):
        e, f, port = self.start()
        c = self.raw(port)
        c.send(c.headers(1, request(b"/echo", b"POST"), end_stream=False),
               DataFrame(1, b"hello "), DataFrame(1, b"world", flags=["END_STREAM"]))
        self.assertEqual(c.outcome(1), ("status", 200))
        body = b""
        while True:
            fr = c.read_frame()
            if isinstance(fr, DataFrame) and fr.stream_id == 1:
                body += fr.data
                if "END_STREAM" in fr.flags:
                    break
        text = body.decode()
        self.assertIn("POST /echo HTTP/1.1\n", text)
        self.assertRegex(text, r"(?i)\ntransfer-encoding: chunked\n")
        self.assertTrue(text.endswith("\n\nhello world"), text)
        c.send(c.headers(3, request(b"/bytes/1000", b"HEAD")))
        fr = c.read_frame()
        while not (isinstance(fr, HeadersFrame) and fr.stream_id == 3):
            fr = c.read_frame()
        self.assertEqual(dict(fr.decoded)[":status"], "200")
        self.assertEqual(dict(fr.decoded)["content-length"], "1000")
        self.assertIn("END_STREAM", fr.flags)

    def test_unreachable_backend_is_a_502_on_the_stream(self):
        e, f, port = self.start()
        e.kill()
        rc, out, err = self.curl(port, "/")
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.endswith(b"502 2"), out)

    def test_sticky_sessions_and_acl_over_http2(self):
        a = h.Echo("a", http=True)
        self.cleanup.append(a.stop)
        b = h.Echo("b", http=True)
        self.cleanup.append(b.stop)
        port = h.free_port()
        text = https_yaml([("ec", *self.ec, "server")], [
            {"protocol": "https", "port": port, "certificates": ["ec"],
             "sticky_session": {"type": "insert", "cookie_timeout": 600}}], a.port)
        text = text.replace(f"          - {{address: 127.0.0.1, port: {a.port}}}",
                            f"          - {{address: 127.0.0.1, port: {a.port}}}\n"
                            f"          - {{address: 127.0.0.1, port: {b.port}}}")
        f = h.Fulcrumd(text)
        self.cleanup.append(f.stop)
        rc, out, err = self.curl(port, "/", extra=("-D", "-"))
        self.assertEqual(rc, 0, err)
        text_out = out.decode()
        # On HTTPS the cookie is Secure by default.
        m = re.search(r"(?im)^set-cookie: SERVERID=([0-9a-f]+); Max-Age=600; Path=/; HttpOnly; "
                      r"Secure; SameSite=Lax\r?$", text_out)
        self.assertIsNotNone(m, text_out)
        first = text_out.strip().splitlines()[-3]  # the backend's name ("a\n"), then "\n200 2"
        self.assertIn(first, ("a", "b"))
        for _ in range(6):
            rc, out, err = self.curl(port, "/", extra=("-H", f"Cookie: SERVERID={m.group(1)}"))
            self.assertEqual(out.decode().strip().splitlines(), [first, "", "200 2"])
        # The listener's ACL refuses the client: its streams get 403, nothing reaches a backend.
        acl = "acls:\n  - {name: office, entries: [{cidr: 127.0.0.2/32}]}\n"
        port = h.free_port()
        text = https_yaml([("ec", *self.ec, "server")], [
            {"protocol": "https", "port": port, "certificates": ["ec"],
             "acl": {"type": "white", "acl": "office"}}], a.port)
        f = h.Fulcrumd(text + acl)
        self.cleanup.append(f.stop)
        rc, out, err = self.curl(port, "/", extra=("--interface", "127.0.0.3"))
        self.assertTrue(out.endswith(b"403 2"), out)
        rc, out, err = self.curl(port, "/", extra=("--interface", "127.0.0.2"))
        self.assertTrue(out.endswith(b"200 2"), out)

    def test_h2load_many_concurrent_streams_on_one_connection(self):
        e, f, port = self.start()
        before = self.backend_requests(e)
        proc = subprocess.run(["h2load", "-n", "1000", "-c", "1", "-m", "50",
                               f"https://127.0.0.1:{port}/"], capture_output=True, timeout=60)
        out = proc.stdout.decode()
        self.assertIn("1000 succeeded, 0 failed, 0 errored", out, out)
        self.assertIn("Application protocol: h2", out)
        self.assertGreaterEqual(self.backend_requests(e) - before, 1000)

    def test_streams_reusing_state_carry_nothing_of_earlier_streams(self):
        """Fulcrum reuses a finished stream's state for the connection's next streams: 60
        streams in rounds of 12 on one connection, mixing GET and chunked POST, long headers,
        a large response, a backend reset, and client resets in the middle of an exchange;
        each request reaches the backend with exactly its own fields and body."""
        e, f, port = self.start()
        s, conn = self.h2_client(port, timeout=15)
        ids = set()
        for round_ in range(5):
            kinds = {}
            for k in range(12):
                sid = conn.get_next_available_stream_id()
                kind = k % 6
                kinds[sid] = kind
                path = {3: "/bytes/300000", 4: "/reset", 5: "/delay/2000"}.get(kind, "/echo")
                fields = [(":method", "POST" if kind == 1 else "GET"), (":scheme", "https"),
                          (":authority", "a.example.com"), (":path", path),
                          ("x-stream", str(sid))]
                if kind == 0:
                    fields.append(("x-request-id", f"client-{sid}"))
                if kind == 2:
                    fields.append(("x-long", "v" * (sid * 60)))
                conn.send_headers(sid, fields, end_stream=kind != 1)
                if kind == 1:
                    conn.send_data(sid, f"body-{sid}".encode(), end_stream=True)
            s.sendall(conn.data_to_send())
            time.sleep(0.1)
            for sid, kind in kinds.items():
                if kind == 5:
                    conn.reset_stream(sid)  # in the middle of its exchange
            s.sendall(conn.data_to_send())
            status, body, ended = {}, {}, set()
            waiting = {sid for sid, kind in kinds.items() if kind != 5}
            deadline = time.time() + 20
            while waiting - ended and time.time() < deadline:
                data = s.recv(65536)
                self.assertTrue(data, "connection closed early")
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status[ev.stream_id] = int(dict(ev.headers)[b":status"])
                    elif isinstance(ev, h2.events.DataReceived):
                        body[ev.stream_id] = body.get(ev.stream_id, b"") + ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                        ended.add(ev.stream_id)
                s.sendall(conn.data_to_send())
            self.assertFalse(waiting - ended, f"round {round_}: streams not ended")
            for sid in waiting:
                kind = kinds[sid]
                got = body.get(sid, b"")
                if kind == 3:
                    self.assertEqual((status[sid], len(got)), (200, 300000))
                    continue
                if kind == 4:
                    self.assertEqual(status[sid], 502)
                    continue
                self.assertEqual(status[sid], 200, got[:200])
                text = got.decode()
                head, _, req_body = text.partition("\n\n")
                method = "POST" if kind == 1 else "GET"
                self.assertTrue(head.startswith(f"{method} /echo HTTP/1.1\n"), head[:80])
                self.assertEqual(re.findall(r"(?im)^x-stream: (.*)$", head), [str(sid)])
                self.assertEqual(len(re.findall(r"(?im)^x-long: ", head)), 1 if kind == 2 else 0)
                if kind == 2:
                    self.assertIn("v" * (sid * 60) + "\n", head)
                self.assertEqual(len(re.findall(r"(?im)^transfer-encoding: chunked$", head)),
                                 1 if kind == 1 else 0)
                self.assertEqual(req_body, f"body-{sid}" if kind == 1 else "")
                rid = re.findall(r"(?im)^x-request-id: (.*)$", head)
                if kind == 0:
                    self.assertEqual(rid, [f"client-{sid}"])
                else:
                    self.assertEqual(len(rid), 1)
                    self.assertRegex(rid[0], r"^[0-9a-f]{32}$")
                    self.assertNotIn(rid[0], ids)
                    ids.add(rid[0])
        self.assertEqual(len(ids), 5 * 4)  # kinds 1 and 2, twice a round

    def test_8mib_down_through_a_16kib_client_window(self):
        e, f, port = self.start()
        s, conn = self.h2_client(port, initial_window=16384)
        conn.send_headers(1, [(":method", "GET"), (":scheme", "https"),
                              (":authority", "a.example.com"), (":path", "/bytes/8388608")],
                          end_stream=True)
        s.sendall(conn.data_to_send())
        got = bytearray()
        status = None
        done = False
        max_frame = 0
        while not done:
            data = s.recv(65536)
            self.assertTrue(data, "connection closed early")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = dict(ev.headers)[b":status"]
                elif isinstance(ev, h2.events.DataReceived):
                    got += ev.data
                    max_frame = max(max_frame, len(ev.data))
                    # Read slowly: the window opens only as we consume.
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    done = True
            s.sendall(conn.data_to_send())
        self.assertEqual(status, b"200")
        self.assertEqual(len(got), 8388608)
        self.assertLessEqual(max_frame, 16384)
        direct = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{e.port}/bytes/8388608"],
                                capture_output=True, timeout=30).stdout
        self.assertEqual(zlib.crc32(got), zlib.crc32(direct))

    def test_timeouts_access_log_and_a_post_with_content_length(self):
        import os
        import tempfile
        logdir = tempfile.TemporaryDirectory(prefix="fulcrum-access-")
        self.cleanup.append(logdir.cleanup)
        path = os.path.join(logdir.name, "access.log")
        e = h.Echo("a", http=True, http_port=0)
        self.cleanup.append(e.stop)
        port = h.free_port()
        listener = {"protocol": "https", "port": port, "certificates": ["ec"],
                    "request_timeout": 1, "idle_timeout": 2, "access_log": True}
        f = h.Fulcrumd(https_yaml([("ec", *self.ec, "server")], [listener], e.port), workers=1,
                       extra_args=["--access-log", path])
        self.cleanup.append(f.stop)
        c = self.raw(port)
        # request_timeout: no response head in time is a 504 on that stream only.
        c.send(c.headers(1, request(b"/stall")))
        c.send(c.headers(3, request(b"/echo", b"POST") + [(b"content-length", b"5"),
                                                           (b"x-request-id", b"r-2")],
                            end_stream=False),
               DataFrame(3, b"hello", flags=["END_STREAM"]))
        self.assertEqual(c.outcome(3), ("status", 200))
        t0 = time.time()
        self.assertEqual(c.outcome(1), ("status", 504))
        self.assertLess(time.time() - t0, 3)
        # idle_timeout: an HTTP/2 connection without streams ends with GOAWAY NO_ERROR.
        t0 = time.time()
        while True:
            fr = c.read_frame()
            if fr is None or isinstance(fr, GoAwayFrame):
                break
        self.assertIsNotNone(fr)
        self.assertEqual(fr.error_code, 0)
        # The idle time counts from the client's last frame, about request_timeout (1 s) before
        # t0: the GOAWAY comes about idle_timeout - 1 s = 1 s after t0, never at once.
        self.assertGreater(time.time() - t0, 0.5)

        def lines():
            try:
                return [json.loads(l) for l in open(path).read().splitlines()]
            except (OSError, ValueError):
                return []

        h.wait_until(lambda: len(lines()) >= 2, timeout=5, what="two access log lines")
        by_status = {l["status"]: l for l in lines()}
        post = by_status[200]
        self.assertEqual((post["method"], post["path"], post["host"], post["request_id"],
                          post["bytes_in"]), ("POST", "/echo", "a.example.com", "r-2", 5))
        self.assertEqual(post["backend"], f"127.0.0.1:{e.port}")
        self.assertEqual(by_status[504]["path"], "/stall")

    def test_a_client_that_never_opens_its_window_is_closed_after_idle_timeout(self):
        e, f, port = self.start(idle_timeout=2)
        c = self.raw(port)
        window = (4).to_bytes(2, "big") + (0).to_bytes(4, "big")  # INITIAL_WINDOW_SIZE = 0
        c.sock.sendall(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + window)
        # All of it is read from the backend (under the 256 KiB held per stream): the stream waits
        # only for the client's window.
        c.send(c.headers(1, request(b"/bytes/100000")))
        self.assertEqual(c.outcome(1), ("status", 200))
        t0 = time.time()
        ended = None
        while time.time() - t0 < 10:
            try:
                fr = c.read_frame()
            except (ConnectionResetError, ssl.SSLError):
                fr = None
            if fr is None:
                ended = time.time() - t0
                break
            self.assertNotIsInstance(fr, DataFrame)  # the window is closed
        self.assertIsNotNone(ended)
        self.assertGreater(ended, 1)

    # ---- RFC 9113 §8 validation with hand-made frames ----

    def assert_stream_error(self, c, stream_id, fields, data=None):
        c.send(c.headers(stream_id, fields, end_stream=data is None))
        if data is not None:
            c.send(DataFrame(stream_id, data, flags=["END_STREAM"]))
        self.assertEqual(c.outcome(stream_id), ("reset", PROTOCOL_ERROR), fields)

    def test_malformed_requests_are_stream_errors_and_the_connection_goes_on(self):
        e, f, port = self.start()
        c = self.raw(port)
        cases = [
            request() + [(b"connection", b"keep-alive")],           # connection-specific
            request() + [(b"transfer-encoding", b"chunked")],
            request() + [(b"upgrade", b"websocket")],
            request() + [(b"keep-alive", b"timeout=5")],
            request() + [(b"te", b"gzip")],                          # TE other than trailers
            request() + [(b"X-Upper", b"1")],                        # uppercase name
            [f for f in request() if f[0] != b":path"],              # missing :path
            [f for f in request() if f[0] != b":method"],            # missing :method
            request() + [(b":path", b"/again")],                     # repeated pseudo-header
            request(path=b""),                                       # empty :path
            [(b"x-a", b"1")] + request(),                            # regular before pseudo
            request() + [(b":status", b"200")],                      # response pseudo-header
            request() + [(b"host", b"b.example.com")],               # Host vs :authority
            request() + [(b"x-v", b"a\r\nInjected: 1")],             # CR/LF in a value
            request() + [(b"x-v", b"a\nb")],
            request() + [(b"x-v", b"a\x00b")],                       # NUL in a value
            request() + [(b"x-v" * 20, b"v" * 4000)] * 20,           # header list over 64 KiB
        ]
        stream_id = 1
        for fields in cases:
            self.assert_stream_error(c, stream_id, fields)
            stream_id += 2
        # Content-Length must match the DATA payloads (fewer and more bytes).
        self.assert_stream_error(c, stream_id, request(b"/sink", b"POST") +
                                 [(b"content-length", b"10")], data=b"12345")
        stream_id += 2
        self.assert_stream_error(c, stream_id, request(b"/sink", b"POST") +
                                 [(b"content-length", b"2")], data=b"12345")
        stream_id += 2
        # Host equal to :authority, and a valid request: answered on the same connection.
        c.send(c.headers(stream_id, request() + [(b"host", b"A.example.com")]))
        self.assertEqual(c.outcome(stream_id), ("status", 200))

    def test_header_block_limits_across_continuation_frames(self):
        e, f, port = self.start()
        c = self.raw(port)
        # Over 64 KiB of fields (distinct names: HPACK cannot index them away), in several frames.
        big = request() + [(f"x-{i}".encode(), b"v" * 1000) for i in range(70)]
        frames = c.split_headers(1, big)
        self.assertGreater(len(frames), 1)  # Huffman shrinks the block; decoded it is 72 KiB
        c.send(*frames)
        self.assertEqual(c.outcome(1), ("reset", PROTOCOL_ERROR))
        # Just under the cap, over CONTINUATION frames too: served.
        fine = request() + [(f"y-{i}".encode(), b"v" * 1000) for i in range(50)]
        c.send(*c.split_headers(3, fine))
        self.assertEqual(c.outcome(3), ("status", 200))
        # A flood of tiny CONTINUATION frames (more than 8) ends the connection.
        c.send(*c.split_headers(5, request() + [(b"x-z", b"z" * 200)], piece=16))
        self.assertIn(c.outcome(5), (("goaway", PROTOCOL_ERROR), ("goaway", ENHANCE_YOUR_CALM),
                                     ("closed", None)))

    def test_more_than_100_concurrent_streams_are_refused(self):
        e, f, port = self.start()
        c = self.raw(port)
        # Read the server's SETTINGS (and ACK it) so that its 100-stream limit is in force.
        while not isinstance(c.read_frame(), SettingsFrame):
            pass
        c.send(*[c.headers(1 + 2 * i, request(b"/delay/1000")) for i in range(101)])
        outcome = c.outcome(201)
        self.assertIn(outcome, (("goaway", PROTOCOL_ERROR), ("reset", 0x7)), outcome)

    def test_rapid_reset_ends_the_connection_with_enhance_your_calm(self):
        e, f, port = self.start()
        c = self.raw(port)
        frames = []
        for i in range(300):
            sid = 1 + 2 * i
            frames.append(c.headers(sid, request(b"/delay/1000")))
            frames.append(RstStreamFrame(sid, error_code=0x8))
        c.send(*frames)
        deadline = time.time() + 10
        code = None
        while time.time() < deadline:
            fr = c.read_frame()
            if fr is None:
                break
            if isinstance(fr, GoAwayFrame):
                code = fr.error_code
                break
        self.assertEqual(code, ENHANCE_YOUR_CALM)

    def test_a_ping_flood_from_a_client_that_reads_nothing_ends_the_connection(self):
        e, f, port = self.start()
        c = self.raw(port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ping = PingFrame(0, opaque_data=b"12345678").serialize()
        sent = 0
        c.sock.settimeout(0.5)
        try:
            for _ in range(400):  # up to 400 x 1000 PINGs; the ACKs pile up unread
                c.sock.sendall(ping * 1000)
                sent += 1000
        except (BrokenPipeError, ConnectionResetError, socket.timeout, ssl.SSLError, OSError):
            pass
        # Fulcrum gave up on this client: the connection ends (after a GOAWAY, if it got out).
        # A connection that stays open, answering or silent, fails.
        self.assertIn(c.ending(timeout=10), ("goaway", "closed", "reset"),
                      f"still open after {sent} PINGs")

    def test_drain_sends_goaway_and_finishes_the_stream_in_flight(self):
        e, f, port = self.start()
        c = self.raw(port)
        c.send(c.headers(1, request(b"/delay/800")))
        time.sleep(0.2)
        f.proc.send_signal(15)  # SIGTERM: drain
        got_goaway = False
        status = None
        deadline = time.time() + 10
        while time.time() < deadline and status is None:
            fr = c.read_frame()
            if fr is None:
                break
            if isinstance(fr, GoAwayFrame):
                got_goaway = True
                self.assertEqual(fr.error_code, 0)
            elif isinstance(fr, HeadersFrame) and fr.stream_id == 1:
                status = int(dict(fr.decoded)[":status"])
        self.assertTrue(got_goaway)
        self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
