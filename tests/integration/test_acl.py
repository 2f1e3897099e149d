"""Access control lists on every listener type: white and black lists on TCP (RST), HTTP (403) and
UDP (datagrams dropped), the empty white list (L4 refuses all, L7 allows all), reloads that change
the list (new connections at once, existing TCP/HTTP connections keep running, UDP flows of a
newly refused client end), and the dropped/ACL-denied counters in /metrics.

Real fulcrumd and fulcrum-echo backends; clients bind their source address on loopback
(127.0.0.2 is listed, 127.0.0.3 is not).
"""
import contextlib
import re
import socket
import unittest

import harness as h

LISTED = "127.0.0.2"
OTHER = "127.0.0.3"


def acl_yaml(protocol, backend_port, port, acl_type=None, entries=(), extra_acls=()):
    """One listener of `protocol` with `acl: {type: acl_type, acl: clients}` when acl_type is set;
    the ACL `clients` holds `entries` (CIDRs)."""
    lines = [
        "loadbalancers:",
        "  - name: test",
        "    address: 127.0.0.1",
        "    server_groups:",
        "      - name: app",
        "        backends:",
        f"          - {{address: 127.0.0.1, port: {backend_port}}}",
        "    listeners:",
        f"      - protocol: {protocol}",
        f"        port: {port}",
        "        server_group: app",
        "        health_check: {enabled: false}",
    ]
    if acl_type:
        lines.append(f"        acl: {{type: {acl_type}, acl: clients}}")
    lines.append("acls:")
    if entries:
        lines += ["  - name: clients", "    entries:"]
        lines += [f"      - {{cidr: '{c}', comment: test}}" for c in entries]
    else:
        lines.append("  - {name: clients, entries: []}")
    for name, cidrs in extra_acls:
        lines += [f"  - name: {name}", "    entries:"]
        lines += [f"      - {{cidr: '{c}'}}" for c in cidrs]
    return "\n".join(lines) + "\n"


# --- clients ---------------------------------------------------------------------------------


def tcp_ask(port, source):
    """NAME through a TCP listener from `source`: the backend's name, or "reset"/"closed"."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))  # the RST may already be there when connect() returns
        s.sendall(b"NAME\n")
        line = h.recv_line(s)
        return line if line else "closed"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    finally:
        s.close()


def http_connect(port, source):
    return h.connect(port, source=source, timeout=5)


def http_get(s, close=False):
    """One GET / on an open connection: (status, body). Content-Length framing only."""
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"Connection: close\r\n" if close else b"")
              + b"\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a head: {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    n = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            n = int(v)
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("truncated body")
        body += chunk
    return int(lines[0].split()[1]), head.decode(), body[:n].decode()


def http_status(port, source):
    with contextlib.closing(http_connect(port, source)) as s:
        status, _, body = http_get(s, close=True)
        return status, body


def udp_socket(source, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(timeout)
    return s


def udp_ask(s, port):
    s.sendto(b"NAME", ("127.0.0.1", port))
    try:
        return s.recvfrom(65536)[0].decode()
    except socket.timeout:
        return None


def udp_name(port, source, timeout=2.0):
    """NAME through a UDP listener from a new flow: the backend's name, or None (no reply)."""
    with contextlib.closing(udp_socket(source, timeout)) as s:
        return udp_ask(s, port)


def counter(f, family, listener):
    status, text, _ = f.api("GET", "/metrics")
    assert status == 200, (status, text)
    m = re.search(rf'^{family}{{lb="test",listener="{listener}"}} (\d+)$', text, re.M)
    return int(m.group(1)) if m else None


class AclTest(h.ProcessCase):
    def echo(self, **kw):
        e = h.Echo("a", **kw)
        self.cleanup.append(e.stop)
        return e

    def fulcrumd(self, text):
        f = h.Fulcrumd(text, workers=2)
        self.cleanup.append(f.stop)
        return f

    def reload(self, f, text):
        f.reload(text)
        self.assertNotIn("reload refused", f.read_log())

    # --- TCP ---------------------------------------------------------------------------------

    def test_tcp_white_list_resets_unlisted_clients(self):
        e = self.echo()
        port = h.free_port()
        f = self.fulcrumd(acl_yaml("tcp", e.port, port, "white", [LISTED]))
        for _ in range(3):
            self.assertEqual(tcp_ask(port, LISTED), "a")
            self.assertEqual(tcp_ask(port, OTHER), "reset")
        listener = f"tcp:{port}"
        self.assertEqual(counter(f, "fulcrum_listener_dropped_connections_total", listener), 3)
        self.assertEqual(counter(f, "fulcrum_listener_acl_denied_total", listener), 3)
        self.assertEqual(counter(f, "fulcrum_listener_connections_total", listener), 6)
        # Nothing of a refused client reached the backend: only the allowed ones are counted.
        status, text, _ = f.api("GET", "/metrics")
        m = re.search(rf'^fulcrum_backend_connections_total{{lb="test",listener="{listener}"'
                      r'[^}]*} (\d+)$', text, re.M)
        self.assertEqual(int(m.group(1)), 3, text)

    def test_explain_says_when_the_acl_refuses_a_client(self):
        e = self.echo()
        port = h.free_port()
        f = self.fulcrumd(acl_yaml("tcp", e.port, port, "white", [LISTED]))
        path = f"/v1/loadbalancers/test/listeners/tcp:{port}/explain?client="
        status, answer, _ = f.api("GET", path + f"{OTHER}:4000")
        self.assertEqual(status, 200, answer)
        self.assertIsNone(answer["backend"])
        self.assertEqual(answer["acl"], "clients")
        self.assertIn("access control list", answer["reason"])
        status, answer, _ = f.api("GET", path + f"{LISTED}:4000")
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["backend"], f"127.0.0.1:{e.port}")
        self.assertNotIn("acl", answer)

    def test_tcp_black_list_resets_listed_clients(self):
        e = self.echo()
        port = h.free_port()
        self.fulcrumd(acl_yaml("tcp", e.port, port, "black", [LISTED, "10.0.0.0/8"]))
        self.assertEqual(tcp_ask(port, LISTED), "reset")
        self.assertEqual(tcp_ask(port, OTHER), "a")
        self.assertEqual(tcp_ask(port, "127.0.0.1"), "a")

    def test_tcp_white_list_with_a_network(self):
        e = self.echo()
        port = h.free_port()
        self.fulcrumd(acl_yaml("tcp", e.port, port, "white", ["127.0.0.0/30"]))
        self.assertEqual(tcp_ask(port, "127.0.0.1"), "a")
        self.assertEqual(tcp_ask(port, "127.0.0.3"), "a")
        self.assertEqual(tcp_ask(port, "127.0.0.4"), "reset")

    def test_tcp_empty_white_list_refuses_everyone(self):
        e = self.echo()
        port = h.free_port()
        f = self.fulcrumd(acl_yaml("tcp", e.port, port, "white", []))
        for source in ("127.0.0.1", LISTED, OTHER):
            self.assertEqual(tcp_ask(port, source), "reset")
        self.assertEqual(counter(f, "fulcrum_listener_acl_denied_total", f"tcp:{port}"), 3)

    def test_tcp_reload_applies_to_new_connections_and_keeps_open_ones(self):
        e = self.echo()
        port = h.free_port()
        f = self.fulcrumd(acl_yaml("tcp", e.port, port, "white", [LISTED]))
        kept = h.connect(port, source=LISTED)
        self.cleanup.append(kept.close)
        kept.sendall(b"NAME\n")
        self.assertEqual(h.recv_line(kept), "a")
        self.assertEqual(tcp_ask(port, OTHER), "reset")

        self.reload(f, acl_yaml("tcp", e.port, port, "white", [OTHER]))
        self.assertEqual(tcp_ask(port, LISTED), "reset")
        self.assertEqual(tcp_ask(port, OTHER), "a")
        kept.sendall(b"still here\n")  # opened under the old list: keeps running (echo)
        self.assertEqual(h.recv_line(kept), "still here")

        self.reload(f, acl_yaml("tcp", e.port, port))  # no ACL: everyone again
        self.assertEqual(tcp_ask(port, LISTED), "a")
        self.assertEqual(tcp_ask(port, OTHER), "a")
        self.assertEqual(counter(f, "fulcrum_listener_dropped_connections_total", f"tcp:{port}"),
                         2)

    # --- HTTP --------------------------------------------------------------------------------

    def test_http_white_list_answers_403_to_unlisted_clients(self):
        e = self.echo(http=True)
        port = h.free_port()
        f = self.fulcrumd(acl_yaml("http", e.port, port, "white", [LISTED]))
        self.assertEqual(http_status(port, LISTED), (200, "a\n"))
        with contextlib.closing(http_connect(port, OTHER)) as s:
            status, head, body = http_get(s)
            self.assertEqual(status, 403)
            self.assertIn("Connection: close", head)
            self.assertTrue(body.startswith("403 Forbidden\n"), body)
            self.assertEqual(s.recv(1), b"")  # then the connection closes
        listener = f"http:{port}"
        self.assertEqual(counter(f, "fulcrum_listener_dropped_connections_total", listener), 1)
        self.assertEqual(counter(f, "fulcrum_listener_acl_denied_total", listener), 1)
        status, text, _ = f.api("GET", "/metrics")
        self.assertRegex(text, rf'fulcrum_http_requests_total{{lb="test",listener="{listener}",'
                               r'code_class="4xx"} 1\n')

    def test_http_black_list_answers_403_to_listed_clients(self):
        e = self.echo(http=True)
        port = h.free_port()
        self.fulcrumd(acl_yaml("http", e.port, port, "black", [LISTED]))
        self.assertEqual(http_status(port, LISTED)[0], 403)
        self.assertEqual(http_status(port, OTHER), (200, "a\n"))

    def test_http_empty_white_list_allows_everyone(self):
        e = self.echo(http=True)
        port = h.free_port()
        f = self.fulcrumd(acl_yaml("http", e.port, port, "white", []))
        for source in ("127.0.0.1", LISTED, OTHER):
            self.assertEqual(http_status(port, source), (200, "a\n"))
        self.assertEqual(counter(f, "fulcrum_listener_acl_denied_total", f"http:{port}"), 0)

    def test_http_reload_applies_to_new_connections_and_keeps_open_ones(self):
        e = self.echo(http=True)
        port = h.free_port()
        f = self.fulcrumd(acl_yaml("http", e.port, port, "white", [LISTED]))
        kept = http_connect(port, LISTED)
        self.cleanup.append(kept.close)
        self.assertEqual(http_get(kept)[0], 200)
        self.reload(f, acl_yaml("http", e.port, port, "black", [LISTED]))
        self.assertEqual(http_status(port, LISTED)[0], 403)
        self.assertEqual(http_status(port, OTHER)[0], 200)
        self.assertEqual(http_get(kept)[0], 200)  # keep-alive connection of the old generation

    # --- UDP ---------------------------------------------------------------------------------

    def test_udp_white_list_drops_datagrams_of_unlisted_clients(self):
        e = self.echo(udp=True)
        port = h.free_port(kind=socket.SOCK_DGRAM)
        f = self.fulcrumd(acl_yaml("udp", e.port, port, "white", [LISTED]))
        self.assertEqual(udp_name(port, LISTED), "a")
        with contextlib.closing(udp_socket(OTHER, 0.5)) as s:
            for _ in range(3):
                self.assertIsNone(udp_ask(s, port))
        self.assertEqual(udp_name(port, LISTED), "a")
        listener = f"udp:{port}"
        self.assertEqual(counter(f, "fulcrum_listener_acl_denied_total", listener), 3)
        self.assertEqual(counter(f, "fulcrum_listener_dropped_connections_total", listener), 3)
        self.assertEqual(counter(f, "fulcrum_listener_connections_total", listener), 2)

    def test_udp_black_list_drops_datagrams_of_listed_clients(self):
        e = self.echo(udp=True)
        port = h.free_port(kind=socket.SOCK_DGRAM)
        f = self.fulcrumd(acl_yaml("udp", e.port, port, "black", [LISTED]))
        self.assertIsNone(udp_name(port, LISTED, timeout=0.5))
        self.assertEqual(udp_name(port, OTHER), "a")
        # No reply alone could be a datagram lost or dropped for another reason: the ACL refused
        # exactly the listed client's datagram, and only the other one got a flow.
        listener = f"udp:{port}"
        self.assertEqual(counter(f, "fulcrum_listener_acl_denied_total", listener), 1)
        self.assertEqual(counter(f, "fulcrum_listener_dropped_connections_total", listener), 1)
        self.assertEqual(counter(f, "fulcrum_listener_connections_total", listener), 1)

    def test_udp_empty_white_list_drops_everything(self):
        e = self.echo(udp=True)
        port = h.free_port(kind=socket.SOCK_DGRAM)
        f = self.fulcrumd(acl_yaml("udp", e.port, port, "white", []))
        for source in ("127.0.0.1", LISTED, OTHER):
            self.assertIsNone(udp_name(port, source, timeout=0.5))
        self.assertEqual(counter(f, "fulcrum_listener_acl_denied_total", f"udp:{port}"), 3)

    def test_udp_reload_ends_flows_of_newly_refused_clients(self):
        e = self.echo(udp=True)
        port = h.free_port(kind=socket.SOCK_DGRAM)
        f = self.fulcrumd(acl_yaml("udp", e.port, port, "white", [LISTED, OTHER]))
        refused = udp_socket(LISTED, 2.0)
        kept = udp_socket(OTHER, 2.0)
        self.cleanup += [refused.close, kept.close]
        self.assertEqual(udp_ask(refused, port), "a")  # a flow exists for each
        self.assertEqual(udp_ask(kept, port), "a")
        self.reload(f, acl_yaml("udp", e.port, port, "white", [OTHER]))
        refused.settimeout(0.5)
        self.assertIsNone(udp_ask(refused, port))  # its flow ended with the new list
        self.assertEqual(udp_ask(kept, port), "a")  # still listed: its flow carries on
        self.assertIsNone(udp_name(port, LISTED, timeout=0.5))
        self.assertEqual(counter(f, "fulcrum_listener_acl_denied_total", f"udp:{port}"), 2)


if __name__ == "__main__":
    unittest.main()
