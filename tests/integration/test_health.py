"""Health checks on TCP listeners: active tcp/http checks, passive ejection, all_unhealthy.

Real fulcrumd, real fulcrum-echo backends on 127.0.0.2-4 (same ports on each address, so one
listener-wide check port reaches every backend). Every time window is computed from the configured
interval, timeout and thresholds.
"""
import collections
import contextlib
import re
import socket
import threading
import time
import unittest

import harness as h

HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
JITTER = 1.1  # intervals are stretched by up to 10 % (health/monitor.cc)
SLACK = 0.75  # seconds of scheduling slack on a loaded 2-core machine


def lb_yaml(hosts, tcp_port, port, health, extra=""):
    lines = [
        "loadbalancers:",
        "  - name: hc",
        "    address: 127.0.0.1",
        "    server_groups:",
        "      - name: app",
        "        backends:",
    ]
    lines += [f"          - {{address: {host}, port: {tcp_port}}}" for host in hosts]
    lines += [
        "    listeners:",
        "      - protocol: tcp",
        f"        port: {port}",
        "        server_group: app",
        "        scheduler: rr",
        f"        health_check: {health}",
    ]
    lines += ["        " + l for l in extra.strip("\n").splitlines() if l]
    return "\n".join(lines) + "\n"


class HealthTest(h.ProcessCase):
    def backends(self, hosts=HOSTS, http=True):
        tcp_port = h.common_free_port(hosts)
        http_port = h.common_free_port(hosts) if http else None
        out = []
        for i, host in enumerate(hosts):
            e = h.Echo("abc"[i], host=host, port=tcp_port, http_port=http_port)
            self.cleanup.append(e.stop)
            out.append(e)
        return out, tcp_port, http_port

    def wait_log(self, f, pattern, timeout, after=0):
        """Waits for `pattern` in the log (from character `after`); returns the monotonic time."""
        rx = re.compile(pattern)
        h.wait_until(lambda: rx.search(f.read_log(), after), timeout=timeout, interval=0.01,
                     what=f"log line {pattern!r}")
        return time.monotonic()

    def names(self, port, n):
        return collections.Counter(h.ask_name(port) for _ in range(n))

    def test_http_check_removes_a_failing_backend_and_brings_it_back(self):
        (a, b, c), tcp_port, http_port = self.backends()
        interval, timeout, up, down = 1, 1, 2, 2
        port = h.free_port()
        f = self.fulcrumd(lb_yaml(HOSTS, tcp_port, port,
                                  f"{{type: http, port: {http_port}, uri: /health, "
                                  f"interval: {interval}, timeout: {timeout}, "
                                  f"healthy_threshold: {up}, unhealthy_threshold: {down}}}"))
        for host in HOSTS:  # first successful check: unchecked -> healthy
            self.wait_log(f, rf"backend {host}:\d+ unchecked -> healthy", timeout=interval * 3 + 2)
        self.assertEqual(set(self.names(port, 12)), {"a", "b", "c"})

        mark = len(f.read_log())
        self.assertEqual(b.http_get("/_admin/fail")[0], 200)
        failed_at = time.monotonic()
        seen = self.wait_log(f, rf"backend 127\.0\.0\.3:\d+ healthy -> unhealthy: status 500",
                             timeout=30, after=mark)
        # Within the unhealthy window: `down` failed checks, one interval apart.
        self.assertLess(seen - failed_at, down * interval * JITTER + SLACK)
        counts = self.names(port, 30)
        self.assertNotIn("b", counts)
        self.assertEqual(sum(counts.values()), 30)

        mark = len(f.read_log())
        self.assertEqual(b.http_get("/_admin/ok")[0], 200)
        ok_at = time.monotonic()
        back = self.wait_log(f, r"backend 127\.0\.0\.3:\d+ unhealthy -> healthy", timeout=30,
                             after=mark)
        self.assertLess(back - ok_at, up * interval * JITTER + SLACK)
        self.assertGreater(back - ok_at, (up - 1) * interval / JITTER - 0.05)
        h.wait_until(lambda: "b" in self.names(port, 6), timeout=5, what="b serving again")

    def test_a_check_that_is_never_answered_fails_by_timeout(self):
        (a, b), tcp_port, _ = self.backends(HOSTS[:2], http=False)
        # A third "backend" accepts connections (kernel backlog) but never answers a byte.
        silent = socket.socket()
        silent.bind((HOSTS[2], tcp_port))
        silent.listen(16)
        self.cleanup.append(silent.close)
        interval, timeout, down = 1, 1, 2
        port = h.free_port()
        f = self.fulcrumd(lb_yaml(HOSTS, tcp_port, port,
                                  f"{{type: http, uri: /, interval: {interval}, "
                                  f"timeout: {timeout}, unhealthy_threshold: {down}}}"))
        started = time.monotonic()
        seen = self.wait_log(f, r"backend 127\.0\.0\.4:\d+ unchecked -> unhealthy: timeout after "
                                r"1000 ms", timeout=30)
        # First check within one interval, then `down` checks that each wait `timeout`.
        self.assertLess(seen - started,
                        interval * JITTER + down * timeout + (down - 1) * interval * JITTER + SLACK)
        self.assertGreater(seen - started, down * timeout - 0.1)

    def test_kill_9_under_load_costs_no_failed_connection(self):
        backends, tcp_port, _ = self.backends(http=False)
        port = h.free_port()
        # A long interval: what removes the dead backend here is the traffic, not the checker.
        f = self.fulcrumd(lb_yaml(HOSTS, tcp_port, port, "{type: tcp, interval: 50}"))
        results = collections.Counter()
        failures = []  # (monotonic start of the connection, error)
        stop = threading.Event()

        def load():
            for _ in range(3000):  # bounded
                if stop.is_set():
                    return
                started = time.monotonic()
                try:
                    results[h.ask_name(port)] += 1
                except OSError as e:
                    failures.append((started, repr(e)))

        t = threading.Thread(target=load)
        t.start()
        try:
            h.wait_until(lambda: sum(results.values()) >= 100, what="load running")
            mark = len(f.read_log())
            backends[1].kill()
            killed_at = time.monotonic()
            ejected = self.wait_log(f, r"backend 127\.0\.0\.3:\d+ ejected by traffic", timeout=10,
                                    after=mark)
            before = sum(results.values())
            h.wait_until(lambda: sum(results.values()) >= before + 200, timeout=30,
                         what="load after the kill")
        finally:
            stop.set()
            t.join(timeout=60)
        # A connection already relaying to the backend when it died is reset (its bytes are gone
        # with the process); every connection started after the kill must succeed.
        self.assertLessEqual(len(failures), 1, failures)
        self.assertEqual([f for f in failures if f[0] >= killed_at], [])
        self.assertLess(ejected - killed_at, 1.0)  # at the first connection that hit it
        print(f"\npassive detection: {1000 * (ejected - killed_at):.0f} ms after kill -9")

    def test_all_unhealthy_fail_closed_resets_at_once(self):
        (a, b), tcp_port, http_port = self.backends(HOSTS[:2])
        port = h.free_port()
        f = self.fulcrumd(lb_yaml(HOSTS[:2], tcp_port, port,
                                  f"{{type: http, port: {http_port}, uri: /health, interval: 1, "
                                  f"unhealthy_threshold: 2}}"))
        for e in (a, b):
            e.http_get("/_admin/fail")
        for host in HOSTS[:2]:
            self.wait_log(f, rf"backend {host}:\d+ \w+ -> unhealthy", timeout=15)
        time.sleep(0.2)  # the publication of the last change reaches the workers
        for _ in range(5):
            started = time.monotonic()
            with self.assertRaises((ConnectionResetError, BrokenPipeError)):
                with contextlib.closing(h.connect(port)) as s:
                    s.sendall(b"NAME\n")
                    s.recv(100)
                    s.recv(100)
            self.assertLess(time.monotonic() - started, 0.1)

    def test_all_unhealthy_fail_open_uses_every_backend(self):
        (a, b), tcp_port, http_port = self.backends(HOSTS[:2])
        port = h.free_port()
        f = self.fulcrumd(lb_yaml(HOSTS[:2], tcp_port, port,
                                  f"{{type: http, port: {http_port}, uri: /health, interval: 1, "
                                  f"unhealthy_threshold: 2}}", extra="all_unhealthy: fail_open"))
        for e in (a, b):
            e.http_get("/_admin/fail")
        for host in HOSTS[:2]:
            self.wait_log(f, rf"backend {host}:\d+ \w+ -> unhealthy", timeout=15)
        time.sleep(0.2)
        self.assertEqual(set(self.names(port, 10)), {"a", "b"})

    def http_lb(self, ports, port, health, extra=""):
        lines = ["loadbalancers:", "  - name: hc", "    address: 127.0.0.1", "    server_groups:",
                 "      - name: app", "        backends:"]
        lines += [f"          - {{address: 127.0.0.1, port: {p}}}" for p in ports]
        lines += ["    listeners:", "      - protocol: http", f"        port: {port}",
                  "        server_group: app", f"        health_check: {health}"]
        lines += ["        " + l for l in extra.strip("\n").splitlines() if l]
        return "\n".join(lines) + "\n"

    def test_http_kill_9_under_load_fails_no_request(self):
        backends = [h.Echo(n, http=True) for n in "abc"]
        for e in backends:
            self.cleanup.append(e.stop)
        port = h.free_port()
        f = self.fulcrumd(self.http_lb([e.port for e in backends], port,
                                       "{type: http, uri: /health, interval: 50}"), workers=1)
        statuses = collections.Counter()
        errors = []
        stop = threading.Event()

        def load():
            for _ in range(3000):  # bounded
                if stop.is_set():
                    return
                try:
                    with contextlib.closing(h.connect(port)) as s:
                        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        data = h.recv_all(s)
                    statuses[int(data.split()[1])] += 1
                except (OSError, IndexError, ValueError) as e:
                    errors.append(repr(e))

        threads = [threading.Thread(target=load) for _ in range(4)]  # requests in flight at the kill
        for t in threads:
            t.start()
        try:
            h.wait_until(lambda: sum(statuses.values()) >= 100, what="load running")
            mark = len(f.read_log())
            backends[1].kill()
            killed_at = time.monotonic()
            ejected = self.wait_log(f, r"backend 127\.0\.0\.1:\d+ ejected by traffic",
                                    timeout=10, after=mark)
            before = sum(statuses.values())
            h.wait_until(lambda: sum(statuses.values()) >= before + 300, timeout=30,
                         what="load after the kill")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        # Requests in flight on the dead backend are GETs: sent again to another one.
        self.assertEqual(errors, [])
        self.assertEqual(set(statuses), {200}, statuses)
        self.assertLess(ejected - killed_at, 1.0)
        print(f"\nhttp passive detection: {1000 * (ejected - killed_at):.0f} ms after kill -9")

    def test_http_all_unhealthy_is_503_at_once(self):
        backends = [h.Echo(n, http=True) for n in "ab"]
        for e in backends:
            self.cleanup.append(e.stop)
        port = h.free_port()
        f = self.fulcrumd(self.http_lb([e.port for e in backends], port,
                                       "{type: http, uri: /health, interval: 1, "
                                       "unhealthy_threshold: 2}"), workers=1)
        for e in backends:
            with contextlib.closing(h.connect(e.port)) as s:
                s.sendall(b"GET /_admin/fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                h.recv_all(s)
        for e in backends:
            self.wait_log(f, rf"backend 127\.0\.0\.1:{e.port} \w+ -> unhealthy", timeout=15)
        time.sleep(0.2)  # the publication of the last change reaches the worker
        for _ in range(5):
            started = time.monotonic()
            with contextlib.closing(h.connect(port)) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = h.recv_all(s)
            self.assertTrue(data.startswith(b"HTTP/1.1 503 "), data)
            self.assertLess(time.monotonic() - started, 0.1)

    def test_flapping_backend_follows_the_thresholds(self):
        # A scripted check target: the n-th check gets SCRIPT[n], whatever the timing.
        script = [200, 500, 200, 500, 500, 200, 500, 200, 200, 200]
        served = []
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        srv.settimeout(0.2)
        stop = threading.Event()

        def serve():
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except socket.timeout:
                    continue
                with conn:
                    conn.settimeout(2)
                    try:
                        conn.recv(4096)
                    except OSError:
                        continue
                    code = script[min(len(served), len(script) - 1)]
                    served.append(code)
                    conn.sendall(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())

        t = threading.Thread(target=serve)
        t.start()
        self.cleanup.append(lambda: (stop.set(), t.join(timeout=5), srv.close()))
        a = self.echo_http("a")
        port = h.free_port()
        f = self.fulcrumd(self.http_lb([a.port, srv.getsockname()[1]], port,
                                       "{type: http, uri: /, interval: 1, healthy_threshold: 2, "
                                       "unhealthy_threshold: 2}"), workers=1)
        backend = rf"backend 127\.0\.0\.1:{srv.getsockname()[1]}"
        # 200 -> healthy at check 1; 500, 200, 500 never make two failures in a row; the 500 of
        # check 5 does: unhealthy. Then 200, 500, 200, 200: healthy again at check 9.
        self.wait_log(f, backend + r" unchecked -> healthy", timeout=10)
        self.assertEqual(len(served), 1)
        self.wait_log(f, backend + r" healthy -> unhealthy: status 500", timeout=15)
        self.assertEqual(len(served), 5)
        self.wait_log(f, backend + r" unhealthy -> healthy", timeout=15)
        self.assertEqual(len(served), 9)
        literal = f"backend 127.0.0.1:{srv.getsockname()[1]} "
        self.assertEqual(len(re.findall(re.escape(literal) + r"\w+ -> ", f.read_log())), 3)

    def echo_http(self, name):
        e = h.Echo(name, http=True)
        self.cleanup.append(e.stop)
        return e

    def test_disabled_check_never_ejects(self):
        (a, b), tcp_port, _ = self.backends(HOSTS[:2], http=False)
        port = h.free_port()
        f = self.fulcrumd(lb_yaml(HOSTS[:2], tcp_port, port, "{enabled: false}"))
        b.kill()
        counts = self.names(port, 20)  # the retry hides the dead backend
        self.assertEqual(counts, {"a": 20})
        self.assertNotIn("health:", f.read_log())


if __name__ == "__main__":
    unittest.main()
