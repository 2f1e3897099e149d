"""drain_timeout on HTTP and HTTPS listeners: a connection whose listener was removed, or whose
request (or WebSocket tunnel) is on a backend that was removed, keeps working for drain_timeout,
then ends the HTTP way: HTTP/1.1 after the response in flight, with Connection: close (an idle
keep-alive client at once); a tunnel closes; HTTP/2 sends GOAWAY, finishes its streams and
closes.

Real fulcrumd, fulcrum-echo and raw sockets (hyperframe/hpack frames for HTTP/2) on loopback.
"""
import time
import unittest

import certs as certs_mod
import harness as h
from test_http2 import RawH2, request
from test_http_listener import RawBackend, http_yaml, read_response
from test_https_listener import https_yaml

from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def closed_within(s, timeout):
    """Seconds until the peer closes `s` (EOF or reset); fails when more bytes or nothing come
    within `timeout` seconds."""
    started = time.monotonic()
    s.settimeout(timeout)
    try:
        data = s.recv(100)
    except ConnectionResetError:
        data = b""
    if data:
        raise AssertionError(f"bytes instead of the end: {data!r}")
    return time.monotonic() - started


class HttpDrainTimeoutTest(h.ProcessCase):
    def connect(self, port):
        s = h.connect(port, timeout=10)
        self.cleanup.append(s.close)
        return s

    def test_keep_alive_client_of_a_removed_listener_works_for_drain_timeout_then_closes(self):
        a = self.echo("a")
        port, port2 = h.free_port(), h.free_port()
        f = self.fulcrumd(http_yaml({"app": [a.port]}, port, extra="drain_timeout: 2"))
        s = self.connect(port)
        s.sendall(GET)
        self.assertEqual(read_response(s)[:3:2], (200, b"a\n"))
        f.reload(http_yaml({"app": [a.port]}, port2, extra="drain_timeout: 2"))
        started = time.monotonic()
        with self.assertRaises(OSError):  # the listening socket is gone
            h.connect(port, timeout=2).close()
        # Inside drain_timeout the connection serves requests as before (keep-alive) ...
        s.sendall(GET)
        status, headers, body, _ = read_response(s)
        self.assertEqual((status, body), (200, b"a\n"))
        self.assertNotEqual(headers.get("connection"), "close")
        # ... and once it has passed, the idle connection closes.
        closed_within(s, 6)
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 4.0)

    def test_response_in_flight_at_the_deadline_completes_with_connection_close(self):
        a = self.echo("a")
        port, port2 = h.free_port(), h.free_port()
        f = self.fulcrumd(http_yaml({"app": [a.port]}, port, extra="drain_timeout: 1"))
        s = self.connect(port)
        s.sendall(GET)
        self.assertEqual(read_response(s)[0], 200)
        f.reload(http_yaml({"app": [a.port]}, port2, extra="drain_timeout: 1"))
        started = time.monotonic()
        s.sendall(b"GET /delay/2000 HTTP/1.1\r\nHost: x\r\n\r\n")  # answered after the deadline
        status, headers, body, _ = read_response(s)
        self.assertEqual((status, body), (200, b"a\n"))
        self.assertEqual(headers.get("connection"), "close")
        self.assertGreater(time.monotonic() - started, 1.8)
        closed_within(s, 3)

    def test_removed_backend_with_a_slow_response_in_flight(self):
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        f = self.fulcrumd(http_yaml({"app": [a.port]}, port, extra="drain_timeout: 1"))
        slow = self.connect(port)
        quick = self.connect(port)
        slow.sendall(b"GET /delay/2500 HTTP/1.1\r\nHost: x\r\n\r\n")
        quick.sendall(b"GET /delay/600 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)  # both requests are at a
        f.reload(http_yaml({"app": [b.port]}, port, extra="drain_timeout: 1"))  # a is removed
        started = time.monotonic()
        # A request on a that ends inside drain_timeout leaves its connection as it was.
        status, headers, body, _ = read_response(quick)
        self.assertEqual((status, body), (200, b"a\n"))
        self.assertNotEqual(headers.get("connection"), "close")
        # The slow one is answered after the deadline, with Connection: close, then it closes.
        status, headers, body, _ = read_response(slow)
        self.assertEqual((status, body), (200, b"a\n"))
        self.assertEqual(headers.get("connection"), "close")
        self.assertGreater(time.monotonic() - started, 2.0)
        closed_within(slow, 3)
        # The quick client's connection is still open well after the deadline, and goes to b.
        time.sleep(max(0.0, started + 1.5 - time.monotonic()))
        quick.sendall(GET)
        status, headers, body, _ = read_response(quick)
        self.assertEqual((status, body), (200, b"b\n"))

    def test_websocket_tunnel_on_a_removed_backend_closes_after_drain_timeout(self):
        def answer(i, r):
            return (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                    b"Upgrade: websocket\r\n\r\n")

        raw = RawBackend(answer)
        self.cleanup.append(raw.stop)
        b = self.echo("b")
        port = h.free_port()
        f = self.fulcrumd(http_yaml({"app": [raw.port]}, port, extra="drain_timeout: 1"))
        s = self.connect(port)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                  b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)

        def roundtrip(text):
            s.sendall(text)
            got = b""
            while len(got) < len(text):
                chunk = s.recv(4096)
                self.assertTrue(chunk, "the tunnel closed")
                got += chunk
            self.assertEqual(got, text.upper())

        roundtrip(b"before")
        f.reload(http_yaml({"app": [b.port]}, port, extra="drain_timeout: 1"))
        started = time.monotonic()
        roundtrip(b"inside the drain window")
        closed_within(s, 5)
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 0.7)
        self.assertLess(elapsed, 3.0)

    def test_tunnel_on_a_backend_that_comes_back_is_kept(self):
        def answer(i, r):
            return (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                    b"Upgrade: websocket\r\n\r\n")

        raw = RawBackend(answer)
        self.cleanup.append(raw.stop)
        b = self.echo("b")
        port = h.free_port()
        yaml_a = http_yaml({"app": [raw.port]}, port, extra="drain_timeout: 1")
        f = self.fulcrumd(yaml_a)
        s = self.connect(port)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        f.reload(http_yaml({"app": [b.port]}, port, extra="drain_timeout: 1"))
        f.reload(yaml_a)  # back before the deadline: no deadline any more
        time.sleep(1.5)
        s.sendall(b"still")
        got = b""
        while len(got) < 5:
            chunk = s.recv(4096)
            self.assertTrue(chunk, "the tunnel closed")
            got += chunk
        self.assertEqual(got, b"STILL")


class Http2DrainTimeoutTest(h.ProcessCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = certs_mod.Certs()
        cls.ec = cls.certs.server("ec", ["a.example.com"], kind="ec")

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    def yaml(self, port, backend_port):
        listener = {"protocol": "https", "port": port, "certificates": ["ec"],
                    "drain_timeout": 1}
        return https_yaml([("ec", *self.ec, "server")], [listener], backend_port)

    def connection_of_a_removed_listener(self):
        """An HTTP/2 connection that served a stream, then its listener removed by a reload:
        (the connection, when the reload was done)."""
        e = h.Echo("a", http=True, http_port=0)
        self.cleanup.append(e.stop)
        port, port2 = h.free_port(), h.free_port()
        f = h.Fulcrumd(self.yaml(port, e.port), workers=1)
        self.cleanup.append(f.stop)
        c = RawH2(port, self.certs.ca)
        self.cleanup.append(c.close)
        c.send(c.headers(1, request(b"/")))
        self.assertEqual(c.outcome(1), ("status", 200))
        f.reload(self.yaml(port2, e.port))
        started = time.monotonic()
        return c, started

    def test_http2_connection_of_a_removed_listener_gets_goaway_after_drain_timeout(self):
        c, started = self.connection_of_a_removed_listener()
        # Inside drain_timeout a new stream is served; one still in flight at the deadline ...
        c.send(c.headers(3, request(b"/")))
        self.assertEqual(c.outcome(3), ("status", 200))
        c.send(c.headers(5, request(b"/delay/2000")))
        events = []
        c.sock.settimeout(10)
        while True:
            fr = c.read_frame()
            if fr is None:
                events.append(("closed", time.monotonic() - started))
                break
            if isinstance(fr, GoAwayFrame):
                self.assertEqual(fr.error_code, 0)
                events.append(("goaway", time.monotonic() - started))
            elif isinstance(fr, HeadersFrame) and fr.stream_id == 5:
                events.append(("status", int(dict(fr.decoded)[":status"])))
            elif isinstance(fr, DataFrame) and fr.stream_id == 5 and "END_STREAM" in fr.flags:
                events.append(("end", 5))
        # ... gets GOAWAY at the deadline, finishes, and then the connection closes.
        self.assertEqual([e[0] for e in events], ["goaway", "status", "end", "closed"], events)
        self.assertGreater(events[0][1], 0.7)
        self.assertLess(events[0][1], 1.9)
        self.assertEqual(events[1][1], 200)
        self.assertLess(events[3][1], 4.0)

    def test_idle_http2_connection_of_a_removed_listener_closes_at_the_deadline(self):
        c, started = self.connection_of_a_removed_listener()
        self.assertEqual(c.ending(timeout=5), "goaway")
        goaway = time.monotonic() - started
        self.assertGreater(goaway, 0.7)
        self.assertLess(goaway, 2.5)
        self.assertIn(c.ending(timeout=5), ("closed", "reset"))


if __name__ == "__main__":
    unittest.main()
