"""TCP listener: balancing, retries, relaying, timeouts, PROXY protocol, reload and drain.

Real fulcrumd, real fulcrum-echo backends, real sockets on loopback.
"""
import collections
import contextlib
import os
import signal
import socket
import threading
import time
import unittest

import harness as h


class TcpListenerTest(h.ProcessCase):
    def echo(self, name, **kw):
        e = h.Echo(name, **kw)
        self.cleanup.append(e.stop)
        return e

    def fulcrumd(self, yaml_text, **kw):
        f = h.Fulcrumd(yaml_text, **kw)
        self.cleanup.append(f.stop)
        return f

    # ---- balancing ----

    def test_weights_split_1_to_3_within_10_percent(self):
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(a.port, 25), (b.port, 75)], port))
        counts = collections.Counter(h.ask_name(port) for _ in range(400))
        self.assertEqual(sum(counts.values()), 400)
        self.assertAlmostEqual(counts["a"], 100, delta=10, msg=counts)
        self.assertAlmostEqual(counts["b"], 300, delta=30, msg=counts)

    def test_rr_and_wlc_use_every_backend(self):
        backends = [self.echo(n) for n in "abc"]
        for scheduler in ("rr", "wlc"):
            with self.subTest(scheduler=scheduler):
                port = h.free_port()
                f = h.Fulcrumd(h.lb_yaml([(e.port, 100) for e in backends], port, scheduler))
                try:
                    counts = collections.Counter(h.ask_name(port) for _ in range(90))
                finally:
                    f.stop()
                self.assertEqual(set(counts), {"a", "b", "c"}, counts)
                for n in "abc":
                    self.assertAlmostEqual(counts[n], 30, delta=6, msg=counts)

    def test_wlc_prefers_the_backend_with_fewer_connections(self):
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(a.port, 100), (b.port, 100)], port, "wlc"), workers=1)
        # Hold 5 connections open; they spread over a and b. Then hold more on whichever
        # backend: new connections must go to the backend with fewer active ones.
        held = []
        try:
            for _ in range(6):
                s = h.connect(port)
                s.sendall(b"NAME\n")
                held.append((s, h.recv_line(s)))
            names = collections.Counter(n for _, n in held)
            self.assertEqual(names["a"], 3, names)
            # Close the 3 connections on a: new connections must then go to a until it holds
            # as many as b (the proxy sees the closes asynchronously, hence the bounded wait).
            for s, n in held:
                if n == "a":
                    s.close()
            held = [(s, n) for s, n in held if n == "b"]
            h.wait_until(lambda: h.ask_name(port) == "a", what="a back to 0 connections")
            for _ in range(2):
                s = h.connect(port)
                s.sendall(b"NAME\n")
                held.append((s, h.recv_line(s)))
            self.assertEqual([n for _, n in held[3:]], ["a", "a"])
        finally:
            for s, _ in held:
                s.close()

    def test_wlc_counts_stay_true_across_a_reload(self):
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        f = self.fulcrumd(h.lb_yaml([(a.port, 100), (b.port, 0)], port, "wlc"), workers=1)
        held = []
        try:
            for _ in range(4):  # all on a: b takes no new connections
                s = h.connect(port)
                s.sendall(b"NAME\n")
                self.assertEqual(h.recv_line(s), "a")
                held.append(s)
            f.reload(h.lb_yaml([(a.port, 100), (b.port, 100)], port, "wlc"))
            for s in held:  # end them under the new generation
                s.close()
            held = []
            # Bounded wait until the proxy has seen the four closes: a and b both at 0, so two
            # held connections land one on each.
            def balanced():
                probe = []
                try:
                    for _ in range(2):
                        s = h.connect(port)
                        s.sendall(b"NAME\n")
                        probe.append((s, h.recv_line(s)))
                    return sorted(n for _, n in probe) == ["a", "b"]
                finally:
                    for s, _ in probe:
                        s.close()
            h.wait_until(balanced, what="a's old connections released")
            time.sleep(0.2)  # let the probes' closes land too
            for _ in range(6):
                s = h.connect(port)
                s.sendall(b"NAME\n")
                held.append((s, h.recv_line(s)))
            names = collections.Counter(n for _, n in held)
            # Stale counts (a still charged with the 4 closed connections) would give b 5 of 6.
            self.assertEqual(names, {"a": 3, "b": 3})
        finally:
            for item in held:
                (item[0] if isinstance(item, tuple) else item).close()

    def test_persistence_survives_a_reload(self):
        backends = [self.echo(n) for n in "abc"]
        port = h.free_port()
        extra = "persistence_timeout: 60"
        f = self.fulcrumd(h.lb_yaml([(e.port, 100) for e in backends[:2]], port, "rr",
                                    extra=extra), workers=2)
        before = {f"127.0.0.{i}": h.ask_name(port, source=f"127.0.0.{i}") for i in range(2, 12)}
        f.reload(h.lb_yaml([(e.port, 100) for e in backends], port, "rr", extra=extra))
        for source, name in before.items():
            names = {h.ask_name(port, source=source) for _ in range(4)}
            self.assertEqual(names, {name}, f"{source} moved after the reload")

    def test_weight_zero_gets_no_new_connections(self):
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(a.port, 0), (b.port, 100)], port))
        counts = collections.Counter(h.ask_name(port) for _ in range(50))
        self.assertEqual(counts, {"b": 50})

    def test_sch_keeps_each_client_on_one_backend(self):
        backends = [self.echo(n) for n in "abcd"]
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(e.port, 100) for e in backends], port, "sch"))
        seen = {}
        for i in range(2, 42):
            source = f"127.0.0.{i}"
            names = {h.ask_name(port, source=source) for _ in range(5)}
            self.assertEqual(len(names), 1, f"{source} moved between {names}")
            seen[source] = names.pop()
        # 40 clients over 4 backends: every backend gets some.
        self.assertEqual(set(seen.values()), set("abcd"), collections.Counter(seen.values()))

    def test_tch_spreads_one_client_over_backends(self):
        backends = [self.echo(n) for n in "abc"]
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(e.port, 100) for e in backends], port, "tch"))
        names = collections.Counter(h.ask_name(port) for _ in range(60))
        self.assertEqual(set(names), {"a", "b", "c"}, names)

    def test_persistence_timeout_keeps_a_client_across_workers(self):
        backends = [self.echo(n) for n in "abc"]
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(e.port, 100) for e in backends], port, "rr",
                                extra="persistence_timeout: 60"), workers=2)
        for i in range(2, 12):
            source = f"127.0.0.{i}"
            names = {h.ask_name(port, source=source) for _ in range(8)}
            self.assertEqual(len(names), 1, f"{source} saw {names}")

    # ---- failures ----

    def test_dead_backend_costs_no_failed_connection(self):
        a, b = self.echo("a"), self.echo("b")
        dead = h.free_port()  # nothing listens here: connection refused
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(a.port, 100), (dead, 100), (b.port, 100)], port))
        counts = collections.Counter(h.ask_name(port) for _ in range(200))
        self.assertEqual(sum(counts.values()), 200)
        self.assertEqual(set(counts), {"a", "b"}, counts)

    def test_all_backends_down_resets_at_once(self):
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(h.free_port(), 100), (h.free_port(), 100)], port))
        started = time.monotonic()
        # The reset may already be there when connect() looks at the socket, or come on send/recv;
        # a clean EOF would be wrong (the client must see the failure).
        with self.assertRaises((ConnectionResetError, BrokenPipeError)):
            with contextlib.closing(h.connect(port)) as s:
                s.sendall(b"NAME\n")
                s.recv(100)
                s.recv(100)
        self.assertLess(time.monotonic() - started, 1.0)

    def test_backend_reset_is_propagated(self):
        a = self.echo("a")
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(a.port, 100)], port))
        with contextlib.closing(h.connect(port)) as s:
            s.sendall(b"RESET\n")
            with self.assertRaises(ConnectionResetError):
                while s.recv(100):
                    pass

    # ---- relaying ----

    def test_half_close_delivers_everything_both_ways(self):
        a = self.echo("a")
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(a.port, 100)], port))
        payload = os.urandom(3 * 1024 * 1024 + 7)
        with contextlib.closing(h.connect(port, timeout=30)) as s:
            s.sendall(b"ECHO\n")
            sender = threading.Thread(target=lambda: (s.sendall(payload),
                                                      s.shutdown(socket.SHUT_WR)))
            sender.start()
            got = h.recv_all(s)  # the backend's FIN arrives only after all of our bytes
            sender.join(timeout=30)
        self.assertEqual(len(got), len(payload))
        self.assertEqual(h.crc32(got), h.crc32(payload))

    def test_large_upload_arrives_intact(self):
        a = self.echo("a")
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(a.port, 100)], port))
        block = os.urandom(1 << 20)
        total, crc = 0, 0
        with contextlib.closing(h.connect(port, timeout=60)) as s:
            s.sendall(b"SINK\n")
            for i in range(256):  # 256 MiB
                chunk = block[i:] + block[:i]
                s.sendall(chunk)
                total += len(chunk)
                crc = h.zlib.crc32(chunk, crc)
            s.shutdown(socket.SHUT_WR)
            reply = h.recv_line(s)
        self.assertEqual(reply, f"{total} {crc & 0xFFFFFFFF:08x}")

    def test_large_download_arrives_intact(self):
        a = self.echo("a")
        port = h.free_port()
        self.fulcrumd(h.lb_yaml([(a.port, 100)], port))
        n = 256 * 1024 * 1024
        with contextlib.closing(h.connect(port, timeout=60)) as s:
            s.sendall(f"SOURCE {n} 7\n".encode())
            total, crc = h.recv_crc(s)
        self.assertEqual(total, n)
        self.assertEqual((total, crc), h.source_crc(a.port, n, 7))

    def test_idle_timeout_closes_idle_pairs(self):
        a = self.echo("a")
        port = h.free_port()
        idle = 10  # the smallest idle_timeout a TCP listener accepts
        self.fulcrumd(h.lb_yaml([(a.port, 100)], port, extra=f"idle_timeout: {idle}"))
        with contextlib.closing(h.connect(port, timeout=idle + 10)) as busy, \
                contextlib.closing(h.connect(port, timeout=idle + 10)) as quiet:
            quiet.sendall(b"STALL\n")
            busy.sendall(b"ECHO\n")
            started = time.monotonic()
            # Keep `busy` active past the idle timeout: it must survive.
            while time.monotonic() - started < idle * 0.6:
                busy.sendall(b"x")
                self.assertEqual(busy.recv(1), b"x")
                time.sleep(0.5)
            self.assertEqual(quiet.recv(1), b"")  # blocks until the proxy closes it
            closed_after = time.monotonic() - started
            self.assertGreaterEqual(closed_after, idle - 0.1)
            self.assertLess(closed_after, idle + 2.0)
            busy.sendall(b"y")
            self.assertEqual(busy.recv(1), b"y")

    def test_proxy_protocol_v1_and_v2_headers(self):
        for version, expect_prefix in (("v1", b"PROXY TCP4 127.0.0.5 127.0.0.1 "),
                                       ("v2", b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")):
            with self.subTest(version=version):
                srv = socket.socket()
                srv.bind(("127.0.0.1", 0))
                srv.listen(8)
                srv.settimeout(10)
                port = h.free_port()
                f = h.Fulcrumd(h.lb_yaml([(srv.getsockname()[1], 100)], port,
                                         extra=f"proxy_protocol: {version}\nhealth_check: {{enabled: false}}"))
                try:
                    with contextlib.closing(h.connect(port, source="127.0.0.5")) as c:
                        c.sendall(b"hello")
                        conn, _ = srv.accept()
                        with contextlib.closing(conn):
                            conn.settimeout(10)
                            data = b""
                            while not data.endswith(b"hello"):
                                chunk = conn.recv(4096)
                                if not chunk:
                                    break
                                data += chunk
                finally:
                    h.run_cleanups([srv.close, f.stop])
                self.assertTrue(data.startswith(expect_prefix), data)
                self.assertTrue(data.endswith(b"hello"))
                if version == "v1":
                    self.assertTrue(data.startswith(f"PROXY TCP4 127.0.0.5 127.0.0.1 ".encode()))
                    self.assertIn(f" {port}\r\n".encode(), data)

    # ---- configuration, reload, drain ----

    def test_invalid_configuration_is_refused_with_the_field(self):
        port = h.free_port()
        rc, out = h.run_fulcrumd_check(h.lb_yaml([(9001, 100), (9002, 101)], port))
        self.assertNotEqual(rc, 0)
        self.assertIn("loadbalancers[0].server_groups[0].backends[1].weight", out)
        self.assertIn("must be 0–100", out)

    def test_what_this_version_cannot_serve_is_refused_with_the_field(self):
        for extra, field in (("access_log: true", "listeners[0].access_log"),
                             ("bandwidth_mbps: 10", "listeners[0].bandwidth_mbps")):
            with self.subTest(extra=extra):
                rc, out = h.run_fulcrumd_check(h.lb_yaml([(9001, 100)], h.free_port(), extra=extra))
                self.assertEqual(rc, 2, out)
                self.assertIn(f"loadbalancers[0].{field}", out)

    def test_port_in_use_is_refused_with_the_field(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        try:
            rc, out = h.run_fulcrumd_check(h.lb_yaml([(9001, 100)], blocker.getsockname()[1]))
        finally:
            blocker.close()
        self.assertNotEqual(rc, 0)
        self.assertIn("loadbalancers[0].listeners[0].port", out)

    def test_sighup_reload_changes_weights_and_keeps_connections(self):
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        f = self.fulcrumd(h.lb_yaml([(a.port, 100), (b.port, 0)], port))
        with contextlib.closing(h.connect(port)) as held:
            held.sendall(b"NAME\n")
            self.assertEqual(h.recv_line(held), "a")
            f.reload(h.lb_yaml([(a.port, 0), (b.port, 100)], port))
            counts = collections.Counter(h.ask_name(port) for _ in range(20))
            self.assertEqual(counts, {"b": 20})
            held.sendall(b"still here")
            self.assertEqual(held.recv(100), b"still here")
        # An invalid reload changes nothing.
        bad = "loadbalancers: [{name: x}]\n"
        self.assertIn("reload refused, generation", f.reload(bad, refused=True))
        self.assertEqual(h.ask_name(port), "b")
        # The helper tells a refused reload from an applied one, both ways: a refusal fails a test
        # that did not expect one (the refusal line also holds "generation ") ...
        with self.assertRaisesRegex(AssertionError, "reload refused"):
            f.reload(bad)
        # ... and so does an applied reload (here one that changes nothing) expected refused.
        with self.assertRaisesRegex(AssertionError, "went through"):
            f.reload(h.lb_yaml([(a.port, 0), (b.port, 100)], port), refused=True)
        self.assertEqual(h.ask_name(port), "b")

    def test_removed_backend_keeps_connections_for_drain_timeout(self):
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        extra = "drain_timeout: 2"
        f = self.fulcrumd(h.lb_yaml([(a.port, 100), (b.port, 0)], port, extra=extra))
        on_a = h.connect(port, timeout=10)
        self.cleanup.append(on_a.close)
        on_a.sendall(b"NAME\n")
        self.assertEqual(h.recv_line(on_a), "a")
        f.reload(h.lb_yaml([(b.port, 100)], port, extra=extra))  # a is removed
        started = time.monotonic()
        on_b = h.connect(port, timeout=10)
        self.cleanup.append(on_b.close)
        on_b.sendall(b"NAME\n")
        self.assertEqual(h.recv_line(on_b), "b")
        # Inside the drain window the old connection still relays ...
        on_a.sendall(b"ping")  # after NAME, fulcrum-echo echoes
        self.assertEqual(on_a.recv(4), b"ping")
        # ... and it ends (FIN, not reset) once drain_timeout has passed since the change.
        self.assertEqual(on_a.recv(100), b"")
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 4.0)
        # The connection to the backend that stayed is untouched.
        on_b.sendall(b"pong")
        self.assertEqual(on_b.recv(4), b"pong")

    def test_sigterm_drains_then_exits_zero(self):
        a = self.echo("a")
        port = h.free_port()
        f = h.Fulcrumd(h.lb_yaml([(a.port, 100)], port, extra="drain_timeout: 30"))
        held = h.connect(port)
        held.sendall(b"NAME\n")
        self.assertEqual(h.recv_line(held), "a")
        f.proc.send_signal(signal.SIGTERM)
        # New connections are refused once the listener closed.
        h.wait_until(lambda: _refused(port), what="listener closed")
        # The established connection still works while draining.
        held.sendall(b"ok")
        self.assertEqual(held.recv(10), b"ok")
        self.assertIsNone(f.proc.poll())
        held.close()
        self.assertEqual(f.proc.wait(timeout=10), 0)
        f.stop()

    def test_stop_fails_a_crash_or_a_hang_at_shutdown(self):
        # What every test relies on through Fulcrumd.stop(): 0 after SIGTERM, or the test fails.
        port = h.free_port()
        crashed = h.Fulcrumd(h.lb_yaml([(9, 100)], port), workers=1)
        os.kill(crashed.proc.pid, signal.SIGSEGV)
        crashed.proc.wait(timeout=10)
        with self.assertRaisesRegex(AssertionError, "exited with signal SIGSEGV"):
            crashed.stop()
        hung = h.Fulcrumd(h.lb_yaml([(9, 100)], port), workers=1)
        os.kill(hung.proc.pid, signal.SIGSTOP)  # it never sees the SIGTERM: a drain that hangs
        with self.assertRaisesRegex(AssertionError, "did not exit within 1.0s of SIGTERM"):
            hung.stop(timeout=1.0)
        # kill9() is on purpose; the fulcrumd started after it is checked as any other.
        killed = h.Fulcrumd(h.lb_yaml([(9, 100)], port), workers=1)
        killed.kill9()
        killed.start()
        self.assertEqual(killed.stop(), 0)


def _refused(port):
    try:
        s = h.connect(port, timeout=1)
    except OSError:
        return True
    s.close()
    return False


if __name__ == "__main__":
    unittest.main()
