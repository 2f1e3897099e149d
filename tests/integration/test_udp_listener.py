"""UDP listener: DNS through it, datagram boundaries and flow stickiness under load, idle expiry,
dead backends (ICMP unreachable, failed request/expect), schedulers, persistence, PROXY v2, drain
on reload, replies from the address the client used.

Real fulcrumd, real fulcrum-echo UDP backends (and a small Python DNS responder), real sockets on
loopback.
"""
import collections
import contextlib
import json
import pathlib
import random
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness as h

HERE = pathlib.Path(__file__).resolve().parent


def udp_yaml(backends, port, scheduler="wrr", extra="", address="127.0.0.1", health=None):
    """A one-listener UDP load balancer. `backends` is a list of (port, weight); `health` is the
    health_check mapping as YAML flow text (default: disabled, so that check datagrams do not
    count as traffic)."""
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
        "      - protocol: udp",
        f"        port: {port}",
        "        server_group: app",
        f"        scheduler: {scheduler}",
        f"        health_check: {health or '{enabled: false}'}",
    ]
    for line in extra.strip("\n").splitlines():
        lines.append("        " + line)
    return "\n".join(lines) + "\n"


def udp_socket(source="127.0.0.1", timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(timeout)
    return s


def ask(s, port, host="127.0.0.1", payload=b"NAME"):
    """Sends one datagram through the listener and returns the reply (None on timeout)."""
    s.sendto(payload, (host, port))
    try:
        data, _ = s.recvfrom(65536)
        return data
    except socket.timeout:
        return None


def ask_name(port, source="127.0.0.1", timeout=2.0):
    """A new flow (a new source port): the name of the backend that answered, or None."""
    with contextlib.closing(udp_socket(source, timeout)) as s:
        reply = ask(s, port)
        return reply.decode() if reply is not None else None


def closed_udp_port():
    """A UDP port nothing listens on (bound, then closed): datagrams to it get ICMP unreachable."""
    return h.free_port(kind=socket.SOCK_DGRAM)


class DnsResponder:
    """tests/integration/dns_responder.py answering A queries with `answer`."""

    def __init__(self, answer):
        self.dir = tempfile.TemporaryDirectory(prefix="fulcrum-dns-")
        ready = pathlib.Path(self.dir.name) / "ready"
        self.proc = subprocess.Popen([sys.executable, str(HERE / "dns_responder.py"), "--answer",
                                      answer, "--ready-file", str(ready)],
                                     stdout=subprocess.DEVNULL)
        text = h.wait_until(lambda: ready.exists() and ready.read_text(), what="dns responder")
        self.port = int(text.split()[-1].rsplit(":", 1)[1])

    def stop(self):
        h.stop_process(self.proc)
        self.dir.cleanup()


class ProxyV2Backend:
    """A UDP backend (a thread of the test) that parses the PROXY v2 header of every datagram and
    answers "src=IP:PORT dst=IP:PORT|payload", or "BAD <reason>"."""

    def __init__(self):
        self.sock = udp_socket(timeout=0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @staticmethod
    def parse(data):
        sig = b"\r\n\r\n\x00\r\nQUIT\n"
        if len(data) < 16 or data[:12] != sig:
            return b"BAD signature"
        if data[12] != 0x21:
            return b"BAD version/command"
        if data[13] != 0x12:
            return b"BAD family/transport %d" % data[13]
        length = struct.unpack("!H", data[14:16])[0]
        if length != 12 or len(data) < 28:
            return b"BAD length"
        src, dst = socket.inet_ntoa(data[16:20]), socket.inet_ntoa(data[20:24])
        sport, dport = struct.unpack("!HH", data[24:28])
        return f"src={src}:{sport} dst={dst}:{dport}|".encode() + data[28:]

    def run(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(65536)
            except (socket.timeout, ConnectionRefusedError):
                continue
            except OSError:
                return
            self.sock.sendto(self.parse(data), peer)

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


class UdpListenerTest(h.ProcessCase):
    def echo(self, name, **kw):
        e = h.Echo(name, udp=True, **kw)
        self.cleanup.append(e.stop)
        return e

    def fulcrumd(self, yaml_text, **kw):
        f = h.Fulcrumd(yaml_text, **kw)
        self.cleanup.append(f.stop)
        return f

    def udp_port(self):
        return h.free_port(kind=socket.SOCK_DGRAM)

    # ---- DNS ----

    def test_dig_through_the_listener_in_front_of_two_dns_servers(self):
        servers = [DnsResponder("192.0.2.1"), DnsResponder("192.0.2.2")]
        for s in servers:
            self.cleanup.append(s.stop)
        port = self.udp_port()
        self.fulcrumd(udp_yaml([(s.port, 100) for s in servers], port), workers=1)
        answers = []
        for _ in range(6):  # every dig is a new source port: a new flow, wrr alternates
            out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+tries=1",
                                  "+time=2", "www.example.test", "A"],
                                 capture_output=True, text=True, timeout=20)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            answers.append(out.stdout.strip())
        self.assertEqual(collections.Counter(answers), {"192.0.2.1": 3, "192.0.2.2": 3}, answers)
        # The full answer section, as a resolver sees it.
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=2",
                              "api.example.test", "A"], capture_output=True, text=True, timeout=20)
        self.assertIn("status: NOERROR", out.stdout)
        self.assertRegex(out.stdout, r"api\.example\.test\.\s+60\s+IN\s+A\s+192\.0\.2\.[12]")

    # ---- boundaries and stickiness under load ----

    def test_100k_datagrams_keep_their_boundaries_and_their_backend(self):
        backends = [self.echo(n, http_port=0) for n in ("a", "b")]
        port = self.udp_port()
        self.fulcrumd(udp_yaml([(e.port, 100) for e in backends], port), workers=2)
        ports = 50
        total = 100_000
        socks = [udp_socket(timeout=2.0) for _ in range(ports)]
        for s in socks:
            self.cleanup.append(s.close)
        # Each source port is one flow: its backend, asked before and after the load.
        first = [ask(s, port).decode() for s in socks]
        self.assertEqual(set(first), {"a", "b"}, first)
        rng = random.Random(6)
        sel = selectors.DefaultSelector()
        for i, s in enumerate(socks):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
        outstanding = [collections.Counter() for _ in range(ports)]  # payload -> count
        sent_at = [collections.deque() for _ in range(ports)]  # (time, payload), oldest first
        per_port_sent = [0] * ports
        in_flight = 0
        window = 64  # datagrams in flight at most: a paced, sub-saturation load
        max_rate = 25_000  # datagrams per second at most
        sent = received = mismatched = lost = 0
        start = time.monotonic()
        deadline = start + 120

        def expire_old(now):
            nonlocal in_flight, lost
            for p in range(ports):
                q = sent_at[p]
                while q and now - q[0][0] > 1.0:  # 1 s without an answer: lost
                    _, payload = q.popleft()
                    if outstanding[p][payload] > 0:
                        outstanding[p][payload] -= 1
                        in_flight -= 1
                        lost += 1

        while (sent < total or in_flight > 0) and time.monotonic() < deadline:
            now = time.monotonic()
            while sent < total and in_flight < window and sent < (now - start) * max_rate + window:
                p = rng.randrange(ports)
                size = rng.randint(1, 1472)
                payload = rng.randbytes(size)
                if payload == b"NAME":
                    continue
                try:
                    socks[p].sendto(payload, ("127.0.0.1", port))
                except BlockingIOError:
                    break
                outstanding[p][payload] += 1
                sent_at[p].append((now, payload))
                per_port_sent[p] += 1
                sent += 1
                in_flight += 1
            for key, _ in sel.select(timeout=0.01):
                p = key.data
                while True:
                    try:
                        data = socks[p].recv(65536)
                    except BlockingIOError:
                        break
                    if outstanding[p][data] > 0:
                        outstanding[p][data] -= 1
                        in_flight -= 1
                        received += 1
                    else:
                        mismatched += 1  # merged, split, altered or another port's datagram
            expire_old(time.monotonic())
        elapsed = time.monotonic() - start
        sel.close()
        for s in socks:
            s.setblocking(True)
        self.assertEqual(sent, total)
        self.assertEqual(mismatched, 0)
        self.assertLessEqual(lost, total // 1000, f"lost {lost} of {total}")  # <= 0.1 %
        self.assertEqual(received + lost, total)
        last = [ask(s, port).decode() for s in socks]
        self.assertEqual(first, last)  # every flow kept its backend
        # Every datagram of a port reached that port's backend: each backend counted exactly the
        # datagrams of its ports (plus the two NAME probes each), less what was lost on the way.
        for e in backends:
            status, body = e.http_get("/_admin/stats")
            self.assertEqual(status, 200)
            counted = json.loads(body)["udp_datagrams"]
            expected = sum(per_port_sent[p] + 2 for p in range(ports) if first[p] == e.name)
            self.assertLessEqual(counted, expected, e.name)
            self.assertGreaterEqual(counted, expected - lost, e.name)
        print(f"\n100k datagrams in {elapsed:.1f} s ({total / elapsed:,.0f}/s), lost {lost}",
              file=sys.stderr)

    # ---- idle expiry ----

    def test_the_flow_table_empties_after_the_idle_timeout(self):
        a = self.echo("a")
        port = self.udp_port()
        idle_s = 10  # the smallest idle_timeout a UDP listener takes (PRODUCT.md: 10–900 s)
        f = self.fulcrumd(udp_yaml([(a.port, 100)], port, extra=f"idle_timeout: {idle_s}"),
                          workers=1, extra_args=("--log-level", "debug"))
        s = udp_socket()
        self.cleanup.append(s.close)
        client = f"127.0.0.1:{s.getsockname()[1]}"
        self.assertEqual(ask(s, port), b"a")
        t0 = time.monotonic()
        self.assertIn(f"flow {client} -> 127.0.0.1:{a.port} (1 flows)", f.read_log())
        h.wait_until(lambda: "idle flows expired, 0 left" in f.read_log(), timeout=idle_s + 5,
                     interval=0.05, what="idle expiry")
        elapsed = time.monotonic() - t0
        # Not before the configured idle time; at most one sweep (0.5 s) plus slack after it.
        self.assertGreaterEqual(elapsed, idle_s - 0.1)
        self.assertLessEqual(elapsed, idle_s + 1.5)
        # The same client again: a new flow.
        self.assertEqual(ask(s, port), b"a")
        h.wait_until(lambda: f.read_log().count(f"flow {client} -> ") == 2, timeout=2,
                     what="a new flow for the same client")

    # ---- dead backends ----

    def test_a_backend_answering_icmp_unreachable_stops_getting_new_flows(self):
        a = self.echo("a")
        dead = closed_udp_port()
        port = self.udp_port()
        # A long interval: the ejection seen here comes from the ICMP errors of real traffic.
        f = self.fulcrumd(udp_yaml([(a.port, 100), (dead, 100)], port,
                                   health="{interval: 50, timeout: 10}"), workers=2)
        names = [ask_name(port, timeout=0.5) for _ in range(40)]
        # Ejected by the traffic's ICMP errors (or, rarely, by a first check that came early).
        self.assertRegex(f.read_log(), f"backend 127.0.0.1:{dead} (ejected by traffic|"
                         "unchecked -> unhealthy)")
        self.assertLessEqual(names.count(None), 3, names)  # the datagrams that found out
        self.assertEqual(names[-30:], ["a"] * 30, names)

    def test_a_backend_failing_request_expect_stops_getting_new_flows(self):
        good, bad = self.echo("alive-a"), self.echo("dead-b")
        port = self.udp_port()
        health = ("{request: NAME, expect: alive, interval: 1, timeout: 1, "
                  "unhealthy_threshold: 2, healthy_threshold: 2}")
        f = self.fulcrumd(udp_yaml([(good.port, 100), (bad.port, 100)], port, scheduler="rr",
                                   health=health), workers=1)
        held = udp_socket()
        self.cleanup.append(held.close)
        before = [ask_name(port) for _ in range(2)] + [ask(held, port).decode()]
        self.assertIn("dead-b", before)  # both take flows while unchecked
        h.wait_until(lambda: f"backend 127.0.0.1:{bad.port} unchecked -> unhealthy" in
                     f.read_log(), timeout=10, what="dead-b unhealthy")
        self.assertIn(f"backend 127.0.0.1:{good.port} unchecked -> healthy", f.read_log())
        names = [ask_name(port) for _ in range(20)]
        self.assertEqual(names, ["alive-a"] * 20)
        # A flow that was on the unhealthy backend moves at its next datagram.
        h.wait_until(lambda: ask(held, port) == b"alive-a", timeout=3, what="held flow moved")

    # ---- schedulers ----

    def test_wrr_weights_split_new_flows_1_to_3(self):
        a, b = self.echo("a"), self.echo("b")
        port = self.udp_port()
        self.fulcrumd(udp_yaml([(a.port, 25), (b.port, 75)], port), workers=2)
        counts = collections.Counter(ask_name(port) for _ in range(400))
        self.assertEqual(sum(counts.values()), 400)
        self.assertAlmostEqual(counts["a"], 100, delta=12, msg=counts)
        self.assertAlmostEqual(counts["b"], 300, delta=12, msg=counts)

    def test_rr_wlc_and_tch_use_every_backend(self):
        backends = [self.echo(n) for n in "abc"]
        for scheduler in ("rr", "wlc", "tch"):
            with self.subTest(scheduler=scheduler):
                port = self.udp_port()
                f = h.Fulcrumd(udp_yaml([(e.port, 100) for e in backends], port, scheduler),
                               workers=1)
                try:
                    counts = collections.Counter(ask_name(port) for _ in range(90))
                finally:
                    f.stop()
                self.assertEqual(set(counts), {"a", "b", "c"}, counts)
                if scheduler != "tch":
                    # Rotation and least-flows: even with one worker, within one flow either way
                    # (a busy machine can make a datagram of an earlier flow arrive late).
                    for name in "abc":
                        self.assertLessEqual(abs(counts[name] - 30), 1, counts)

    def test_sch_keeps_one_source_ip_on_one_backend(self):
        backends = [self.echo(n) for n in "abc"]
        port = self.udp_port()
        self.fulcrumd(udp_yaml([(e.port, 100) for e in backends], port, "sch"), workers=2)
        by_ip = {}
        for i in range(2, 14):
            source = f"127.0.0.{i}"
            names = {ask_name(port, source=source) for _ in range(5)}
            self.assertEqual(len(names), 1, (source, names))
            by_ip[source] = names.pop()
        self.assertGreater(len(set(by_ip.values())), 1, by_ip)

    def test_persistence_keeps_a_client_ip_on_its_backend(self):
        backends = [self.echo(n) for n in "abc"]
        port = self.udp_port()
        self.fulcrumd(udp_yaml([(e.port, 100) for e in backends], port, "rr",
                               extra="persistence_timeout: 60"), workers=2)
        by_ip = {}
        for i in range(2, 10):
            source = f"127.0.0.{i}"
            names = {ask_name(port, source=source) for _ in range(6)}  # 6 ports, one backend
            self.assertEqual(len(names), 1, (source, names))
            by_ip[source] = names.pop()
        self.assertGreater(len(set(by_ip.values())), 1, by_ip)

    # ---- PROXY protocol ----

    def test_proxy_v2_header_on_every_datagram(self):
        backend = ProxyV2Backend()
        self.cleanup.append(backend.stop)
        port = self.udp_port()
        self.fulcrumd(udp_yaml([(backend.port, 100)], port, extra="proxy_protocol: v2"),
                      workers=1)
        s = udp_socket(source="127.0.0.5")
        self.cleanup.append(s.close)
        me = f"127.0.0.5:{s.getsockname()[1]}"
        for payload in (b"first", b"", b"x" * 1400):
            reply = ask(s, port, payload=payload)
            self.assertEqual(reply, f"src={me} dst=127.0.0.1:{port}|".encode() + payload)

    # ---- reload ----

    def test_a_removed_backend_drains_its_flows_for_drain_timeout(self):
        a, b = self.echo("a"), self.echo("b")
        port = self.udp_port()
        extra = "drain_timeout: 2"
        f = self.fulcrumd(udp_yaml([(a.port, 100), (b.port, 100)], port, "rr", extra=extra),
                          workers=1)
        on_b = udp_socket()
        self.cleanup.append(on_b.close)
        while ask(on_b, port) != b"b":  # rr: at most two tries to land a flow on b
            on_b.close()
            on_b = udp_socket()
            self.cleanup.append(on_b.close)
        f.reload(udp_yaml([(a.port, 100)], port, "rr", extra=extra))
        reloaded = time.monotonic()
        self.assertEqual(ask(on_b, port), b"b")  # the flow goes on while it drains
        self.assertEqual([ask_name(port) for _ in range(5)], ["a"] * 5)  # no new flow to b
        h.wait_until(lambda: ask(on_b, port) == b"a", timeout=5, interval=0.1,
                     what="drained flow ended")
        self.assertGreaterEqual(time.monotonic() - reloaded, 1.5)  # not long before 2 s

    # ---- addresses ----

    def test_replies_leave_from_the_address_the_client_used(self):
        a = self.echo("a")
        port = h.free_port("0.0.0.0", kind=socket.SOCK_DGRAM)
        self.fulcrumd(udp_yaml([(a.port, 100)], port, address="0.0.0.0"), workers=1)
        for target in ("127.0.0.1", "127.0.0.3"):
            s = udp_socket()
            self.cleanup.append(s.close)
            s.sendto(b"NAME", (target, port))
            data, source = s.recvfrom(100)
            self.assertEqual((data, source), (b"a", (target, port)))


if __name__ == "__main__":
    unittest.main()
