"""HTTP listener: routing, keep-alive, forwarding headers, strict framing, errors, bodies.

Real fulcrumd, real fulcrum-echo HTTP backends, curl and raw sockets on loopback.
"""
import collections
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest
import zlib

import harness as h


def http_yaml(groups, port, rules=(), extra="", default="app"):
    """groups: {name: [port, ...]}; rules: [(name, domain, path, group)]."""
    lines = ["loadbalancers:", "  - name: web", "    address: 127.0.0.1", "    server_groups:"]
    for name, ports in groups.items():
        lines += [f"      - name: {name}", "        backends:"]
        lines += [f"          - {{address: 127.0.0.1, port: {p}}}" for p in ports]
    lines += ["    listeners:", "      - protocol: http", f"        port: {port}",
              f"        server_group: {default}", "        health_check: {enabled: false}"]
    if rules:
        lines.append("        rules:")
        for name, domain, path, group in rules:
            fields = [f"name: {name}"]
            if domain:
                fields.append(f"domain: '{domain}'")
            if path:
                fields.append(f"path: {path}")
            fields.append(f"server_group: {group}")
            lines.append("          - {" + ", ".join(fields) + "}")
    lines += ["        " + l for l in extra.strip("\n").splitlines() if l]
    return "\n".join(lines) + "\n"


def read_response(s):
    """Reads one response (Content-Length or chunked or until close) from a socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a head: {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("truncated body")
            rest += chunk
        return status, headers, rest[:n], rest[n:]
    if headers.get("transfer-encoding") == "chunked":
        body = b""

        def more():
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside a chunked body")
            return chunk

        while True:
            while b"\r\n" not in rest:
                rest += more()
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += more()
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                return status, headers, body, rest
    body = rest
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return status, headers, body, b""
        body += chunk


def request(port, path="/", host="x", extra=b"", method="GET"):
    with contextlib.closing(h.connect(port)) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n".encode()
                  + extra + b"\r\n")
        status, headers, body, _ = read_response(s)
        return status, headers, body


class Traffic:
    """Clients that send requests until stop(): `keep_alive` clients each reusing one connection to
    `port`, and one client per port of `new_connection_ports` opening a connection per request.
    Every answer that is not 200 (or, with `names`, whose body is not one of them) and every error
    is a failure. `ok` counts the good answers."""

    def __init__(self, port, keep_alive=2, new_connection_ports=(), names=None):
        self.port = port
        self.names = names
        self.ok = 0
        self.failures = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._keep_alive) for _ in range(keep_alive)]
        self._threads += [threading.Thread(target=self._new_connections, args=(p,))
                          for p in new_connection_ports]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=20)

    def _count(self, what, status, body):
        with self._lock:
            if status == 200 and (self.names is None or body.strip() in self.names):
                self.ok += 1
            else:
                self.failures.append(f"{what}: {status} {body[:80]!r}")

    def _failed(self, what, e):
        with self._lock:
            self.failures.append(f"{what}: {e!r}")

    def _keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.is_set():
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                self._count("keep-alive", resp.status, resp.read())
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                self._failed("keep-alive", e)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()

    def _new_connections(self, port):
        while not self._stop.is_set():
            try:
                status, _, body = request(port)
                self._count(f"new connection {port}", status, body)
            except Exception as e:  # noqa: BLE001
                self._failed(f"new connection {port}", e)


class HttpListenerTest(h.ProcessCase):
    def test_curl_through_and_round_robin(self):
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        self.fulcrumd(http_yaml({"app": [a.port, b.port]}, port), workers=1)
        names = collections.Counter()
        for _ in range(10):
            out = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/"],
                                 capture_output=True, timeout=10)
            names[out.stdout.decode().strip()] += 1
        self.assertEqual(names, {"a": 5, "b": 5})

    def test_keep_alive_and_pipelining_answer_in_order(self):
        a = self.echo("a")
        port = h.free_port()
        self.fulcrumd(http_yaml({"app": [a.port]}, port), workers=1)
        with contextlib.closing(h.connect(port)) as s:
            reqs = b"".join(
                f"GET /echo?i={i} HTTP/1.1\r\nHost: x\r\nX-Request-Id: r{i}\r\n\r\n".encode()
                for i in range(20))
            s.sendall(reqs)
            rest = b""
            for i in range(20):
                # read_response may have read ahead: feed what is left through a small shim
                status, headers, body, rest = read_response(_Prefixed(s, rest))
                self.assertEqual(status, 200)
                self.assertEqual(headers["x-echo-request-id"], f"r{i}")
                self.assertTrue(body.startswith(f"GET /echo?i={i} HTTP/1.1\n".encode()), body)

    def test_forwarding_headers(self):
        a = self.echo("a")
        port = h.free_port()
        self.fulcrumd(http_yaml({"app": [a.port]}, port,
                                extra="x_forwarded: {proto: true, port: true, lb_id: true, "
                                      "lb_ip: true}"), workers=1)
        status, _, body = request(port, "/echo", extra=b"X-Forwarded-For: 10.1.1.1\r\n"
                                                         b"X-Forwarded-For: 10.2.2.2\r\n"
                                                         b"Connection: x-secret\r\n"
                                                         b"X-Secret: 1\r\nKeep-Alive: 5\r\n"
                                                         b"X-Forwarded-Proto: https\r\n")
        self.assertEqual(status, 200)
        lines = body.decode().split("\n")
        xff = [l for l in lines if l.lower().startswith("x-forwarded-for:")]
        self.assertEqual(xff, ["X-Forwarded-For: 10.1.1.1, 10.2.2.2, 127.0.0.1"])
        self.assertIn("X-Forwarded-Proto: http", lines)
        self.assertNotIn("X-Forwarded-Proto: https", lines)
        self.assertIn(f"X-Forwarded-Port: {port}", lines)
        self.assertIn("SLB-ID: web", lines)
        self.assertIn("SLB-IP: 127.0.0.1", lines)
        self.assertTrue(any(re.match(r"X-Request-Id: [0-9a-f]{32}$", l) for l in lines), lines)
        for hop in ("x-secret:", "keep-alive:", "connection: x-secret"):
            self.assertFalse(any(l.lower().startswith(hop) for l in lines), (hop, lines))

    def test_routing_by_domain_and_path(self):
        d, api, v1, wild, st = (self.echo(n) for n in ("default", "api", "v1", "wild", "static"))
        port = h.free_port()
        groups = {"app": [d.port], "api": [api.port], "v1": [v1.port], "wild": [wild.port],
                  "static": [st.port]}
        rules = [("api", "api.example.com", "", "api"), ("v1", "api.example.com", "/v1", "v1"),
                 ("wild", "*.example.com", "", "wild"), ("static", "", "/static", "static")]
        self.fulcrumd(http_yaml(groups, port, rules), workers=1)
        cases = [("api.example.com", "/x", "api"), ("API.example.com:80", "/v1/a", "v1"),
                 ("www.example.com", "/static/a", "wild"), ("other.org", "/static/a", "static"),
                 ("other.org", "/", "default"), ("example.com", "/", "default")]
        for host, path, want in cases:
            with self.subTest(host=host, path=path):
                self.assertEqual(request(port, path, host=host)[2].decode().strip(), want)

    def test_malformed_requests_get_400_and_close(self):
        a = self.echo("a")
        port = h.free_port()
        self.fulcrumd(http_yaml({"app": [a.port]}, port), workers=1)
        bad = [
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ]
        for raw in bad:
            with self.subTest(raw=raw):
                with contextlib.closing(h.connect(port)) as s:
                    s.sendall(raw)
                    data = h.recv_all(s)
                self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data)
        with contextlib.closing(h.connect(port)) as s:
            s.sendall(b"GET /" + b"a" * (17 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(h.recv_all(s).startswith(b"HTTP/1.1 414 "))

    def test_no_backend_is_503_and_dead_backend_is_skipped(self):
        a = self.echo("a")
        dead = h.free_port()
        port = h.free_port()
        self.fulcrumd(http_yaml({"app": [dead, a.port], "empty": [h.free_port()]}, port,
                                rules=[("gone", "", "/gone", "empty")]), workers=1)
        for _ in range(6):
            self.assertEqual(request(port, "/")[2], b"a\n")
        status, headers, body = request(port, "/gone")
        self.assertEqual(status, 502)  # its only backend refuses: nothing could be reached
        self.assertIn(b"502", body)

    def test_no_eligible_backend_is_503_at_once(self):
        a = self.echo("a")
        port = h.free_port()
        text = http_yaml({"app": [a.port]}, port).replace(f"port: {a.port}}}",
                                                          f"port: {a.port}, weight: 0}}")
        self.fulcrumd(text, workers=1)
        started = time.monotonic()
        status, _, body = request(port, "/")
        self.assertEqual(status, 503)
        self.assertLess(time.monotonic() - started, 0.1)

    def test_bad_backend_response_is_502(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        self.cleanup.append(srv.close)
        port = h.free_port()
        self.fulcrumd(http_yaml({"app": [srv.getsockname()[1]]}, port), workers=1)

        def serve():
            conn, _ = srv.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
            conn.close()

        t = threading.Thread(target=serve)
        t.start()
        status, _, _ = request(port, "/")
        t.join(timeout=10)
        self.assertEqual(status, 502)

    def test_body_until_close_with_the_fin_in_the_same_segment(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        self.cleanup.append(srv.close)
        port = h.free_port()
        self.fulcrumd(http_yaml({"app": [srv.getsockname()[1]]}, port,
                                extra="request_timeout: 10"), workers=1)

        def serve():
            conn, _ = srv.accept()
            conn.recv(65536)
            # No length: the body runs until close, and the FIN follows the bytes at once.
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close body")
            conn.shutdown(socket.SHUT_WR)
            conn.close()

        t = threading.Thread(target=serve)
        t.start()
        started = time.monotonic()
        status, headers, body = request(port, "/")
        t.join(timeout=10)
        self.assertEqual((status, body), (200, b"until-close body"))
        self.assertEqual(headers.get("transfer-encoding"), "chunked")  # re-framed for HTTP/1.1
        self.assertLess(time.monotonic() - started, 2)

    def test_request_timeout_is_504(self):
        a = self.echo("a")
        port = h.free_port()
        self.fulcrumd(http_yaml({"app": [a.port]}, port, extra="request_timeout: 1"), workers=1)
        started = time.monotonic()
        status, _, _ = request(port, "/stall")
        self.assertEqual(status, 504)
        self.assertLess(time.monotonic() - started, 3)

    def test_large_bodies_both_ways_chunked_and_length(self):
        a = self.echo("a")
        port = h.free_port()
        self.fulcrumd(http_yaml({"app": [a.port]}, port), workers=1)
        n = 32 * 1024 * 1024
        status, headers, body = request(port, f"/bytes/{n}?seed=3")
        self.assertEqual((status, len(body)), (200, n))
        with contextlib.closing(h.connect(a.port)) as s:  # the same bytes straight from the backend
            s.sendall(f"GET /bytes/{n}?seed=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      .encode())
            direct = read_response(s)[2]
        self.assertEqual(zlib.crc32(body), zlib.crc32(direct))
        # A chunked upload of 8 MiB: the backend reports count and crc of what arrived.
        payload = os.urandom(8 * 1024 * 1024)
        with contextlib.closing(h.connect(port, timeout=30)) as s:
            s.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n")
            for i in range(0, len(payload), 100000):
                piece = payload[i:i + 100000]
                s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            s.sendall(b"0\r\n\r\n")
            status, _, body, _ = read_response(s)
        self.assertEqual(status, 200)
        self.assertEqual(body.decode().strip(),
                         f"{len(payload)} {zlib.crc32(payload) & 0xFFFFFFFF:08x}")

    def test_access_log_json_lines(self):
        import json
        import tempfile
        a = self.echo("a")
        port = h.free_port()
        logdir = tempfile.TemporaryDirectory(prefix="fulcrum-access-")
        self.cleanup.append(logdir.cleanup)
        path = os.path.join(logdir.name, "access.log")
        self.fulcrumd(http_yaml({"app": [a.port]}, port, extra="access_log: true"), workers=1,
                      extra_args=["--access-log", path])
        status = request(port, "/x?y=1", host="Web.example", extra=b"X-Request-Id: r-1\r\n")[0]
        self.assertEqual(status, 200)
        self.assertEqual(request(port, "/status/404")[0], 404)
        with contextlib.closing(h.connect(port)) as s:
            s.sendall(b"POST /qqq HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                      b"Connection: close\r\n\r\nhello")
            self.assertEqual(read_response(s)[0], 200)

        def lines():
            try:
                return [json.loads(l) for l in open(path).read().splitlines()]
            except (OSError, ValueError):
                return []

        h.wait_until(lambda: len(lines()) >= 3, timeout=5, what="three access log lines")
        first, second, third = lines()[:3]
        self.assertEqual({k: first[k] for k in ("lb", "listener", "method", "host", "path",
                                                "status", "request_id")},
                         {"lb": "web", "listener": f"http:{port}", "method": "GET",
                          "host": "Web.example", "path": "/x?y=1", "status": 200,
                          "request_id": "r-1"})
        self.assertEqual(first["backend"], f"127.0.0.1:{a.port}")
        self.assertTrue(first["client"].startswith("127.0.0.1:"))
        self.assertGreater(first["bytes_in"], 40)
        self.assertGreater(first["bytes_out"], 20)
        self.assertGreaterEqual(first["duration_us"], first["upstream_us"])
        self.assertRegex(first["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(second["status"], 404)
        self.assertRegex(second["request_id"], r"^[0-9a-f]{32}$")
        self.assertEqual(third["method"], "POST")

    def test_upstream_connections_are_reused(self):
        a = self.echo("a")
        port = h.free_port()
        self.fulcrumd(http_yaml({"app": [a.port]}, port), workers=1)
        for _ in range(20):
            self.assertEqual(request(port, "/")[0], 200)
        _, _, stats = request(a.http_port if a.http_port else a.port, "/_admin/stats")
        # 20 client connections through the proxy, and one more here for the stats.
        connections = int(re.search(rb'"connections":(\d+)', stats).group(1))
        self.assertLessEqual(connections, 3, stats)


class RawBackend:
    """A backend on a plain socket that records the bytes of each request it gets and answers
    with `answer(index, request_bytes)` (bytes, or None to close without answering)."""

    def __init__(self, answer):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.requests = []
        self.connections = 0
        self.answer = answer
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self):
        while not self.stop_flag.is_set():
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        conn.settimeout(5)
        buf = b""
        with conn:
            while not self.stop_flag.is_set():
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                if b"\r\n\r\n" not in buf:
                    continue
                head = buf.split(b"\r\n\r\n", 1)[0]
                if b"chunked" in head.lower() and not buf.endswith(b"0\r\n\r\n"):
                    continue
                self.requests.append(buf)
                reply = self.answer(len(self.requests) - 1, buf)
                buf = b""
                if reply is None:
                    return
                conn.sendall(reply)
                if reply.startswith(b"HTTP/1.1 101"):
                    while True:  # the tunnel: echo what comes, upper-cased
                        data = conn.recv(65536)
                        if not data:
                            return
                        conn.sendall(data.upper())

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=5)
        self.srv.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class ProxyRulesTest(h.ProcessCase):
    """TESTING.md's rules a proxy must follow, with raw bytes on both sides."""

    def proxy(self, answer, extra=""):
        b = RawBackend(answer)
        self.cleanup.append(b.stop)
        port = h.free_port()
        f = h.Fulcrumd(http_yaml({"app": [b.port]}, port, extra=extra), workers=1)
        self.cleanup.append(f.stop)
        return b, port

    def raw(self, port, data, timeout=5):
        with contextlib.closing(h.connect(port, timeout=timeout)) as s:
            s.sendall(data)
            return h.recv_all(s)

    def test_ambiguous_or_malformed_framing_is_400_and_never_forwarded(self):
        b, port = self.proxy(lambda i, r: OK)
        cases = [
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nx",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\n\n",
        ]
        for raw in cases:
            with self.subTest(raw=raw):
                reply = self.raw(port, raw)
                self.assertTrue(reply.startswith(b"HTTP/1.1 400 ") or
                                reply.startswith(b"HTTP/1.1 501 "), reply)
        # A chunked body with a bad chunk after a good start never reaches the backend whole:
        self.assertFalse(any(b"0\r\n\r\n" in r and b"abXX" in r for r in b.requests))

    def test_chunk_extensions_are_not_forwarded(self):
        b, port = self.proxy(lambda i, r: OK)
        reply = self.raw(port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               b"Connection: close\r\n\r\n3;name=val\r\nabc\r\n0;x=y\r\n\r\n")
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 "), reply)
        self.assertEqual(len(b.requests), 1)
        body = b.requests[0].split(b"\r\n\r\n", 1)[1]
        self.assertEqual(body, b"3\r\nabc\r\n0\r\n\r\n")

    def test_absolute_uri_and_host_never_choose_the_destination(self):
        b, port = self.proxy(lambda i, r: OK)
        reply = self.raw(port, b"GET http://169.254.169.254/latest HTTP/1.1\r\nHost: evil\r\n"
                               b"Connection: close\r\n\r\n")
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 "), reply)
        self.assertTrue(b.requests[0].startswith(b"GET /latest HTTP/1.1\r\nHost: 169.254.169.254\r\n"),
                        b.requests[0])

    def test_bad_response_is_502_and_that_connection_is_not_reused(self):
        answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
                   OK, OK]
        b, port = self.proxy(lambda i, r: answers[min(i, 2)])
        with contextlib.closing(h.connect(port)) as s:
            s.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(read_response(s)[0], 502)
        self.assertEqual(request(port, "/2")[0], 200)
        self.assertEqual(request(port, "/3")[0], 200)
        # The connection that carried the bad response was dropped: /2 came on a new one, and /3
        # reused that one.
        self.assertEqual(b.connections, 2)

    def test_slow_client_head_gets_408(self):
        b, port = self.proxy(lambda i, r: OK, extra="idle_timeout: 1")
        with contextlib.closing(h.connect(port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the head never ends
            started = time.monotonic()
            reply = h.recv_all(s)
        self.assertTrue(reply.startswith(b"HTTP/1.1 408 "), reply)
        self.assertLess(time.monotonic() - started, 2.5)
        self.assertEqual(b.requests, [])

    def test_websocket_is_tunnelled_after_a_real_101(self):
        def answer(i, r):
            if b"Upgrade: websocket" in r:
                return (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                        b"Upgrade: websocket\r\n\r\n")
            return OK
        b, port = self.proxy(answer)
        with contextlib.closing(h.connect(port)) as s:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                      b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
            s.sendall(b"hello tunnel")
            got = b""
            while len(got) < 12:
                got += s.recv(4096)
            self.assertEqual(got, b"HELLO TUNNEL")
        self.assertIn(b"Upgrade: websocket", b.requests[0])

    def test_hey_through_the_listener(self):
        b, port = self.proxy(lambda i, r: OK)
        out = subprocess.run(["hey", "-n", "500", "-c", "10", f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, timeout=60)
        self.assertIn("[200]\t500 responses", out.stdout, out.stdout)


class StickySessionTest(h.ProcessCase):
    def get(self, port, path="/", cookie=None):
        extra = f"Cookie: {cookie}\r\n".encode() if cookie else b""
        return request(port, path, extra=extra)

    def test_insert_cookie_takes_its_name_and_attributes_from_the_listener(self):
        backends = [h.Echo(n, http=True) for n in "ab"]
        for e in backends:
            self.cleanup.append(e.stop)
        port = h.free_port()
        text = http_yaml({"app": [e.port for e in backends]}, port,
                         extra="sticky_session: {type: insert, cookie_timeout: 60, "
                               "cookie_name: LB, path: /app, same_site: Strict, "
                               "http_only: false}")
        f = h.Fulcrumd(text, workers=2)
        self.cleanup.append(f.stop)
        _, headers, body = self.get(port, "/app/x")
        first = body.decode().strip()
        m = re.match(r"LB=([0-9a-f]{16}); Max-Age=60; Path=/app; SameSite=Strict$",
                     headers["set-cookie"])
        self.assertTrue(m, headers["set-cookie"])
        for _ in range(8):  # the cookie under its own name keeps the client where it is
            _, headers, body = self.get(port, "/app/x", cookie=f"LB={m.group(1)}")
            self.assertEqual(body.decode().strip(), first)
            self.assertNotIn("set-cookie", headers)
        # The backend never sees it; a SERVERID the client sends is just another cookie now.
        _, _, echoed = self.get(port, "/echo", cookie=f"LB={m.group(1)}; SERVERID=x")
        self.assertIn(b"\nCookie: SERVERID=x\n", echoed)

    def test_insert_cookie_keeps_a_client_on_its_backend(self):
        backends = [h.Echo(n, http=True) for n in "abc"]
        for e in backends:
            self.cleanup.append(e.stop)
        port = h.free_port()
        text = http_yaml({"app": [e.port for e in backends]}, port,
                         extra="sticky_session: {type: insert, cookie_timeout: 600}")
        f = h.Fulcrumd(text, workers=2)
        self.cleanup.append(f.stop)
        status, headers, body = self.get(port)
        first = body.decode().strip()
        cookie = headers["set-cookie"]
        m = re.match(r"SERVERID=([0-9a-f]{16}); Max-Age=600; Path=/; HttpOnly; SameSite=Lax$",
                     cookie)
        self.assertTrue(m, cookie)
        token = m.group(1)
        self.assertNotIn(str(backends[0].port), token)
        for _ in range(12):  # rr would move it; the cookie does not (over both workers)
            status, headers, body = self.get(port, cookie=f"a=1; SERVERID={token}; b=2")
            self.assertEqual(body.decode().strip(), first)
            self.assertNotIn("set-cookie", headers)  # already where the cookie says
        # The backend sees the client's other cookies, never Fulcrum's.
        _, _, echoed = self.get(port, "/echo", cookie=f"a=1; SERVERID={token}; b=2")
        self.assertIn(b"\nCookie: a=1; b=2\n", echoed)
        self.assertNotIn(b"SERVERID", echoed)
        # An unknown token is ignored, and the client gets a fresh cookie.
        _, headers, _ = self.get(port, cookie="SERVERID=0000000000000000")
        self.assertIn("set-cookie", headers)
        # Its backend drained (weight 0): the client moves, with a new cookie.
        index = "abc".index(first)
        f.reload(text.replace(f"port: {backends[index].port}}}",
                              f"port: {backends[index].port}, weight: 0}}"))
        _, headers, body = self.get(port, cookie=f"SERVERID={token}")
        self.assertNotEqual(body.decode().strip(), first)
        self.assertNotEqual(headers["set-cookie"].split(";")[0], f"SERVERID={token}")

    def test_server_cookie_is_prefixed_and_followed(self):
        import http.server

        def backend(name):
            class Handler(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def do_GET(self):
                    got = self.headers.get("Cookie", "")
                    body = f"{name} {got}\n".encode()
                    self.send_response(200)
                    if not got:
                        self.send_header("Set-Cookie", f"JSESSIONID={name}-session; Path=/")
                    self.send_header("Set-Cookie", "other=1")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args):
                    pass

            srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            t = threading.Thread(target=srv.serve_forever, daemon=True)
            t.start()
            self.cleanup.append(lambda: (srv.shutdown(), srv.server_close()))
            return srv.server_address[1]

        ports = [backend("x"), backend("y")]
        port = h.free_port()
        f = h.Fulcrumd(http_yaml({"app": ports}, port,
                                 extra="sticky_session: {type: server, cookie: JSESSIONID}"),
                       workers=2)
        self.cleanup.append(f.stop)
        with contextlib.closing(h.connect(port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = h.recv_all(s)
        cookies = re.findall(rb"Set-Cookie: ([^\r]*)", raw)
        self.assertEqual(len(cookies), 2, raw)
        m = re.match(rb"JSESSIONID=([0-9a-f]{16})~([xy])-session; Path=/$", cookies[0])
        self.assertTrue(m, cookies)
        self.assertEqual(cookies[1], b"other=1")  # other cookies pass untouched
        token, name = m.group(1).decode(), m.group(2).decode()
        for _ in range(10):
            _, _, body = request(port, "/", extra=f"Cookie: JSESSIONID={token}~{name}-session"
                                                  f"\r\n".encode())
            # The backend gets its own value back, without the prefix.
            self.assertEqual(body.decode().strip(), f"{name} JSESSIONID={name}-session")


class GzipTest(h.ProcessCase):
    def backend(self):
        import http.server
        page = ("<html>" + "hello fulcrum " * 800 + "</html>").encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                kind = "application/octet-stream" if self.path == "/bin" else "text/html"
                self.send_response(200)
                self.send_header("Content-Type", kind + "; charset=utf-8")
                self.send_header("ETag", '"v1"')
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.cleanup.append(lambda: (srv.shutdown(), srv.server_close()))
        return srv.server_address[1], page

    def test_text_is_compressed_for_clients_that_accept_gzip(self):
        import gzip
        bport, page = self.backend()
        port = h.free_port()
        f = h.Fulcrumd(http_yaml({"app": [bport]}, port), workers=1)
        self.cleanup.append(f.stop)
        status, headers, body = request(port, "/", extra=b"Accept-Encoding: br, gzip;q=0.8\r\n")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-encoding"], "gzip")
        self.assertEqual(headers["transfer-encoding"], "chunked")
        self.assertNotIn("content-length", headers)
        self.assertEqual(headers["vary"], "Accept-Encoding")
        self.assertEqual(headers["etag"], 'W/"v1"')
        self.assertEqual(gzip.decompress(body), page)
        self.assertLess(len(body), len(page) // 5)
        # curl, as a user would.
        out = subprocess.run(["curl", "-s", "--compressed", f"http://127.0.0.1:{port}/"],
                             capture_output=True, timeout=10)
        self.assertEqual(out.stdout, page)
        # Not asked for, refused (q=0), or not text: passed through as it is.
        for extra, path in ((b"", "/"), (b"Accept-Encoding: gzip;q=0\r\n", "/"),
                            (b"Accept-Encoding: gzip\r\n", "/bin")):
            status, headers, body = request(port, path, extra=extra)
            self.assertNotIn("content-encoding", headers)
            self.assertEqual((headers["content-length"], body), (str(len(page)), page))
        # An HTTP/1.0 client gets the compressed body until close.
        with contextlib.closing(h.connect(port)) as s:
            s.sendall(b"GET / HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
            raw = h.recv_all(s)
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Encoding: gzip", head)
        self.assertEqual(gzip.decompress(body), page)

    def test_gzip_off(self):
        bport, page = self.backend()
        port = h.free_port()
        f = h.Fulcrumd(http_yaml({"app": [bport]}, port, extra="gzip: false"), workers=1)
        self.cleanup.append(f.stop)
        status, headers, body = request(port, "/", extra=b"Accept-Encoding: gzip\r\n")
        self.assertNotIn("content-encoding", headers)
        self.assertEqual(body, page)


class HttpFaultMixTest(h.ProcessCase):
    """TESTING.md invariant 1: every response belongs to its own request, whatever goes wrong."""

    def test_ten_thousand_requests_with_faults_have_no_mismatch(self):
        backends = [h.Echo(n, http=True) for n in "ab"]
        port = h.free_port()
        f = h.Fulcrumd(http_yaml({"app": [e.port for e in backends]}, port,
                                 extra="request_timeout: 1"), workers=2)
        counts = collections.Counter()
        mismatches = []
        lock = threading.Lock()
        total, clients = 10000, 4

        def client(index):
            import random
            rng = random.Random(index)
            s = None
            for n in range(total // clients):
                rid = f"c{index}-{n}"
                roll = rng.random()
                # The mix: plain and echoed requests, bodies, pipelined pairs, backend delays,
                # backend closes and resets, a few stalls (504), and client aborts.
                if roll < 0.002:
                    path, body = "/stall", b""
                elif roll < 0.02:
                    path, body = "/close", b""
                elif roll < 0.04:
                    path, body = "/reset", b""
                elif roll < 0.10:
                    path, body = f"/delay/{rng.randint(1, 20)}", b""
                elif roll < 0.30:
                    path, body = "/echo", rng.randbytes(rng.randint(1, 20000))
                else:
                    path, body = "/", b""
                abort = rng.random() < 0.02
                try:
                    if s is None:
                        s = h.connect(port, timeout=10)
                    method = "POST" if body else "GET"
                    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: {rid}\r\n"
                              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                    if abort:
                        s.close()
                        s = None
                        with lock:
                            counts["aborted"] += 1
                        continue
                    status, headers, got, rest = read_response(s)
                    if rest:
                        mismatches.append((rid, "bytes after the response", rest[:80]))
                    with lock:
                        counts[status] += 1
                    echoed = headers.get("x-echo-request-id")
                    if status < 500 and echoed != rid:
                        mismatches.append((rid, status, echoed))
                    if status >= 500 and echoed not in (None, rid):
                        mismatches.append((rid, status, echoed))
                    if path == "/echo" and status == 200 and not got.endswith(b"\n\n" + body):
                        mismatches.append((rid, "echoed body differs"))
                    if headers.get("connection") == "close":
                        s.close()
                        s = None
                except (OSError, ConnectionError, ValueError, IndexError) as e:
                    with lock:
                        counts["client-error"] += 1
                        counts[type(e).__name__] += 1
                    if s is not None:
                        s.close()
                    s = None
            if s is not None:
                s.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=240)
        finally:
            log = f.read_log()
            h.run_cleanups([e.stop for e in backends] + [f.stop])
        print(f"\n{dict(counts)}")
        self.assertEqual(mismatches[:10], [])
        self.assertGreater(counts[200], total * 0.8)
        # Fulcrum answers for every fault; a client never sees a connection die without one.
        self.assertEqual(counts["client-error"], 0, dict(counts))
        self.assertNotIn("Sanitizer", log)


class HttpDrainTest(h.ProcessCase):
    def test_sigterm_finishes_the_request_in_flight_and_closes_idle_ones(self):
        a = h.Echo("a", http=True)
        port = h.free_port()
        f = h.Fulcrumd(http_yaml({"app": [a.port]}, port), workers=1)
        try:
            idle = h.connect(port)
            idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(read_response(idle)[0], 200)  # now an idle keep-alive connection
            busy = h.connect(port)
            busy.sendall(b"GET /delay/700 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)  # the request is at the backend
            f.proc.send_signal(signal.SIGTERM)
            self.assertEqual(idle.recv(100), b"")  # closed at once, cleanly
            status, headers, body, _ = read_response(busy)
            self.assertEqual((status, body), (200, b"a\n"))
            self.assertEqual(headers.get("connection"), "close")
            self.assertEqual(f.proc.wait(timeout=10), 0)
            idle.close()
            busy.close()
        finally:
            h.run_cleanups([a.stop, f.stop])


class _Prefixed:
    """A socket-like reader that returns `prefix` before reading from `sock`."""

    def __init__(self, sock, prefix):
        self.sock, self.prefix = sock, prefix

    def recv(self, n):
        if self.prefix:
            out, self.prefix = self.prefix[:n], self.prefix[n:]
            return out
        return self.sock.recv(n)


if __name__ == "__main__":
    unittest.main()
