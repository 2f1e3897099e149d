"""Self-test of tools/fulcrum-echo, the backend the integration tests and the demo use.

Run: FULCRUM_BUILD_DIR=build/release /usr/bin/python3 -m unittest tests/integration/test_echo.py -v
Python standard library only. Every wait is bounded.
"""

import json
import os
import socket
import struct
import subprocess
import tempfile
import time
import unittest
import zlib

BUILD_DIR = os.environ.get("FULCRUM_BUILD_DIR", "build/release")
BINARY = os.path.join(BUILD_DIR, "tools", "fulcrum-echo", "fulcrum-echo")
NAME = "echo-a"
TIMEOUT = 10.0  # seconds, for any single socket operation or wait

MASK64 = (1 << 64) - 1


def source_stream(n, seed=1):
    """The deterministic stream of SOURCE / /bytes (see tools/fulcrum-echo/README.md)."""
    x = seed or 1
    words = []
    for _ in range((n + 7) // 8):
        x ^= (x << 13) & MASK64
        x ^= x >> 7
        x ^= (x << 17) & MASK64
        words.append(x)
    return struct.pack("<%dQ" % len(words), *words)[:n]


def recv_all(sock, deadline=TIMEOUT):
    """Reads until EOF (bounded by the socket timeout and an overall deadline)."""
    end = time.monotonic() + deadline
    chunks = []
    while time.monotonic() < end:
        data = sock.recv(1 << 20)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
    raise TimeoutError("no EOF within %.1f s" % deadline)


def recv_exact(sock, n):
    buf = bytearray()
    end = time.monotonic() + TIMEOUT
    while len(buf) < n:
        if time.monotonic() > end:
            raise TimeoutError("wanted %d bytes, got %d" % (n, len(buf)))
        data = sock.recv(n - len(buf))
        if not data:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += data
    return bytes(buf)


class HttpReader:
    """A minimal HTTP/1.1 response reader over a raw socket (Content-Length bodies only)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def read_response(self):
        end = time.monotonic() + TIMEOUT
        while b"\r\n\r\n" not in self.buf:
            if time.monotonic() > end:
                raise TimeoutError("no response head")
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            if time.monotonic() > end:
                raise TimeoutError("short body")
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body


class EchoServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(BINARY):
            raise RuntimeError("%s not found: build it first (cmake --build %s) or set "
                               "FULCRUM_BUILD_DIR" % (BINARY, BUILD_DIR))
        cls.tmp = tempfile.TemporaryDirectory()
        ready = os.path.join(cls.tmp.name, "ready")
        # Output goes to files, never to pipes nobody reads (a full pipe would block the server).
        cls.out = open(os.path.join(cls.tmp.name, "stdout"), "wb")
        cls.err = open(os.path.join(cls.tmp.name, "stderr"), "wb")
        cls.proc = subprocess.Popen(
            [BINARY, "--name", NAME, "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0",
             "--udp", "127.0.0.1:0", "--ready-file", ready, "--quiet"],
            stdout=cls.out, stderr=cls.err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(ready):
            if cls.proc.poll() is not None or time.monotonic() > deadline:
                cls._stop()
                raise RuntimeError("fulcrum-echo did not become ready")
            time.sleep(0.02)
        cls.addrs = {}
        with open(ready) as f:
            for line in f:
                word, proto, addr = line.split()
                assert word == "listening"
                host, port = addr.rsplit(":", 1)
                cls.addrs[proto] = (host, int(port))
        assert set(cls.addrs) == {"tcp", "http", "udp"}, cls.addrs

    @classmethod
    def _stop(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait(timeout=TIMEOUT)
        cls.out.close()
        cls.err.close()

    @classmethod
    def tearDownClass(cls):
        cls._stop()
        # A clean SIGTERM exit is part of the contract.
        assert cls.proc.returncode == 0, "fulcrum-echo exited with %s" % cls.proc.returncode
        with open(os.path.join(cls.tmp.name, "stdout")) as f:
            lines = f.read().splitlines()
        assert len(lines) == 3 and all(l.startswith("listening ") for l in lines), lines
        cls.tmp.cleanup()

    def tcp(self, proto="tcp"):
        s = socket.create_connection(self.addrs[proto], timeout=TIMEOUT)
        s.settimeout(TIMEOUT)
        self.addCleanup(s.close)
        return s

    # ---- TCP ---------------------------------------------------------------------------------

    def test_name_then_echo(self):
        s = self.tcp()
        s.sendall(b"NAME\nhello")
        self.assertEqual(recv_exact(s, len(NAME) + 6), NAME.encode() + b"\nhello")
        s.sendall(b" world")
        self.assertEqual(recv_exact(s, 6), b" world")

    def test_echo_half_close(self):
        s = self.tcp()
        payload = os.urandom(3 * 1024 * 1024)
        s.sendall(b"ECHO\n")
        # Send everything, then half-close: the echo must still arrive in full, then EOF.
        # (Read concurrently so neither direction's buffers fill up and deadlock.)
        s.setblocking(False)
        got = bytearray()
        sent = 0
        end = time.monotonic() + TIMEOUT
        shut = False
        while time.monotonic() < end:
            if sent < len(payload):
                try:
                    sent += s.send(payload[sent:sent + 65536])
                except BlockingIOError:
                    pass
            elif not shut:
                s.shutdown(socket.SHUT_WR)
                shut = True
            try:
                data = s.recv(1 << 20)
                if not data:
                    break
                got += data
            except BlockingIOError:
                time.sleep(0.001)
        self.assertTrue(shut)
        self.assertEqual(len(got), len(payload))
        self.assertEqual(bytes(got), payload)

    def test_echo_after_shutdown_small(self):
        s = self.tcp()
        s.sendall(b"ECHO\nlast words")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(s), b"last words")

    def test_sink_checksum(self):
        s = self.tcp()
        payload = os.urandom(5 * 1024 * 1024 + 17)
        s.sendall(b"SINK\n" + payload[:100])
        s.sendall(payload[100:])
        s.shutdown(socket.SHUT_WR)
        reply = recv_all(s)
        self.assertEqual(reply, b"%d %08x\n" % (len(payload), zlib.crc32(payload)))

    def test_sink_empty(self):
        s = self.tcp()
        s.sendall(b"SINK\n")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(s), b"0 00000000\n")

    def test_source(self):
        for n, seed, cmd in [(1000003, 1, b"SOURCE 1000003\n"), (77, 42, b"SOURCE 77 42\n"),
                             (0, 1, b"SOURCE 0\n")]:
            with self.subTest(n=n, seed=seed):
                s = self.tcp()
                s.sendall(cmd)
                self.assertEqual(recv_all(s), source_stream(n, seed))

    def test_source_generator_reference(self):
        # First word of seed 1: pins the generator definition in the README.
        self.assertEqual(source_stream(8), struct.pack("<Q", 0x40822041))

    def test_close(self):
        s = self.tcp()
        s.sendall(b"CLOSE\n")
        self.assertEqual(recv_all(s), b"")  # FIN, not RST

    def test_reset(self):
        s = self.tcp()
        s.sendall(b"RESET\n")
        with self.assertRaises(ConnectionResetError):
            recv_all(s)

    def test_unknown(self):
        s = self.tcp()
        s.sendall(b"BOGUS\n")
        self.assertEqual(recv_all(s), b"ERR unknown command\n")

    def test_stall(self):
        s = self.tcp()
        s.sendall(b"STALL\nanything")
        s.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            s.recv(100)

    def test_many_connections(self):
        socks = []
        try:
            for _ in range(300):
                s = socket.create_connection(self.addrs["tcp"], timeout=TIMEOUT)
                s.settimeout(TIMEOUT)
                socks.append(s)
            for i, s in enumerate(socks):
                s.sendall(b"ECHO\n%d\n" % i)
            for i, s in enumerate(socks):
                want = b"%d\n" % i
                self.assertEqual(recv_exact(s, len(want)), want)
        finally:
            for s in socks:
                s.close()

    # ---- HTTP --------------------------------------------------------------------------------

    def http(self):
        s = self.tcp("http")
        return s, HttpReader(s)

    def test_http_default_and_keepalive(self):
        s, r = self.http()
        for i in range(3):
            s.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\nX-Request-Id: id-%d\r\n\r\n" % i)
            status, headers, body = r.read_response()
            self.assertEqual(status, 200)
            self.assertEqual(body, NAME.encode() + b"\n")
            self.assertEqual(headers["x-echo-name"], NAME)
            self.assertEqual(headers["x-echo-request-id"], "id-%d" % i)
            self.assertEqual(headers["content-type"], "text/plain")

    def test_http_pipelining(self):
        s, r = self.http()
        s.sendall(b"GET /status/201 HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                  b"GET /status/503 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.read_response()[0], 201)
        status, _, body = r.read_response()
        self.assertEqual(status, 200)
        self.assertTrue(body.endswith(b"\n\nhello"), body)
        status, headers, body = r.read_response()
        self.assertEqual(status, 503)
        self.assertEqual(body, b"%s 503\n" % NAME.encode())
        self.assertEqual(headers["connection"], "close")
        self.assertEqual(recv_all(s), b"")  # closed after Connection: close

    def test_http_echo(self):
        s, r = self.http()
        s.sendall(b"POST /echo?q=1 HTTP/1.1\r\nHost: example\r\nX-Forwarded-For: 1.2.3.4\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        status, _, body = r.read_response()
        self.assertEqual(status, 200)
        self.assertEqual(body, b"POST /echo?q=1 HTTP/1.1\nHost: example\n"
                               b"X-Forwarded-For: 1.2.3.4\nTransfer-Encoding: chunked\n\nabcde")

    def test_http_status_and_bytes(self):
        s, r = self.http()
        s.sendall(b"GET /status/503 HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = r.read_response()
        self.assertEqual((status, body), (503, b"%s 503\n" % NAME.encode()))
        s.sendall(b"GET /bytes/100000?seed=7 HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = r.read_response()
        self.assertEqual((status, body), (200, source_stream(100000, 7)))

    def test_http_sink(self):
        s, r = self.http()
        payload = os.urandom(300000)
        s.sendall(b"PUT /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload))
        s.sendall(payload)
        status, _, body = r.read_response()
        self.assertEqual(body, b"%d %08x\n" % (len(payload), zlib.crc32(payload)))

    def test_http_delay_keeps_order(self):
        s, r = self.http()
        start = time.monotonic()
        s.sendall(b"GET /delay/200 HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = r.read_response()
        self.assertEqual((status, body), (200, NAME.encode() + b"\n"))
        self.assertGreaterEqual(time.monotonic() - start, 0.19)
        self.assertEqual(r.read_response()[2], b"ok\n")

    def test_http10_closes(self):
        s, r = self.http()
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        status, _, body = r.read_response()
        self.assertEqual(status, 200)
        self.assertEqual(recv_all(s), b"")

    def test_http_close_and_reset(self):
        s, _ = self.http()
        s.sendall(b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(recv_all(s), b"")
        s, _ = self.http()
        s.sendall(b"GET /reset HTTP/1.1\r\nHost: t\r\n\r\n")
        with self.assertRaises(ConnectionResetError):
            recv_all(s)

    def test_http_bad_request(self):
        s, r = self.http()
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        self.assertEqual(r.read_response()[0], 400)

    def test_http_fail_and_ok(self):
        s, r = self.http()

        def get(path):
            s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
            return r.read_response()

        self.assertEqual(get(b"/health")[:3:2], (200, b"ok\n"))
        try:
            self.assertEqual(get(b"/_admin/fail")[0], 200)
            self.assertEqual(get(b"/health")[0], 500)
            self.assertEqual(get(b"/anything")[0], 500)
            stats = json.loads(get(b"/_admin/stats")[2])
            self.assertEqual(stats["name"], NAME)
            self.assertTrue(stats["failing"])
            self.assertGreaterEqual(stats["requests"], 4)
            self.assertGreaterEqual(stats["connections"], 1)
        finally:
            self.assertEqual(get(b"/_admin/ok")[0], 200)
        self.assertEqual(get(b"/health")[:3:2], (200, b"ok\n"))

    # ---- UDP ---------------------------------------------------------------------------------

    def test_udp(self):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(u.close)
        u.settimeout(TIMEOUT)
        u.sendto(b"NAME", self.addrs["udp"])
        self.assertEqual(u.recvfrom(65535)[0], NAME.encode())
        for payload in (b"x", b"NAME ", os.urandom(1400), os.urandom(65507)):
            u.sendto(payload, self.addrs["udp"])
            self.assertEqual(u.recvfrom(65535)[0], payload)


if __name__ == "__main__":
    unittest.main()
