"""TLS in /metrics: handshakes by outcome and failure reason, negotiated versions and ALPN
protocols, client certificate failures and unmatched SNI names, per HTTPS listener
(docs/metrics.md), counted over real handshakes of `openssl s_client` and raw sockets.

Every test waits until the listener has counted as many handshakes as it made (a client may exit
before the server has read its last flight), then asserts the exact values.
"""
import contextlib
import re
import subprocess
import unittest

import certs as certs_mod
import harness as h
from test_https_listener import handshake_ok, https_yaml, s_client

_SAMPLE = re.compile(r"^(fulcrum_tls_[a-z_]+)\{([^}]*)\} (\d+)$", re.M)
_LABEL = re.compile(r'([a-z_]+)="([^"]*)"')

REASONS = ("no_shared_cipher", "bad_certificate", "client_certificate", "protocol", "timeout",
           "closed", "other")


def s_client_waiting(port, *args, wait_s=0.3):
    """s_client with its stdin open `wait_s`: a TLS 1.3 client reads what the server sends after
    the handshake before it closes. The NewSessionTicket waits in the corked socket for the first
    response, which never comes: it leaves when the kernel flushes the cork (200 ms), so a
    -sess_out needs a longer wait."""
    cmd = " ".join([f"sleep {wait_s} | openssl s_client -connect", f"127.0.0.1:{port}", *args])
    proc = subprocess.run(cmd, shell=True, capture_output=True, timeout=10)
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


class TlsMetricsTest(h.ProcessCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = certs_mod.Certs()
        c = cls.certs
        cls.ec = c.server("ec", ["a.example.com", "*.a.example.com"], kind="ec")
        cls.rsa = c.server("rsa", ["b.example.com"], kind="rsa")
        cls.alice = c.client("alice", "/O=Fulcrum Test/CN=alice")
        cls.mallory = c.server("mallory", ["mallory"], kind="ec")  # not from the client CA

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    def start(self, listener, workers=2):
        """fulcrumd with one HTTPS listener (fields added to `listener`); returns (f, port)."""
        e = h.Echo("a", http=True)
        self.cleanup.append(e.stop)
        port = h.free_port()
        certificates = [("ec", *self.ec, "server"), ("rsa", *self.rsa, "server"),
                        ("clients", self.certs.client_ca, None, "ca")]
        text = https_yaml(certificates, [
            {"protocol": "https", "port": port, "certificates": ["ec"], **listener}], e.port)
        f = h.Fulcrumd(text, workers=workers)
        self.cleanup.append(f.stop)
        return f, port

    def tls_metrics(self, f, port):
        """{family: {label value or "": value}} of the TLS families of the listener on `port`."""
        status, text, _ = f.api("GET", "/metrics", token="reader")
        self.assertEqual(status, 200, text)
        out = {}
        for family, labels, value in _SAMPLE.findall(text):
            labels = dict(_LABEL.findall(labels))
            if labels.get("lb") != "web" or not labels["listener"].endswith(f":{port}"):
                continue
            extra = [v for k, v in labels.items() if k not in ("lb", "listener")]
            out.setdefault(family, {})[extra[0] if extra else ""] = int(value)
        return out

    def settled(self, f, port, handshakes):
        """The TLS metrics once the listener has counted `handshakes` (any outcome)."""
        def counted():
            m = self.tls_metrics(f, port)
            return sum(m.get("fulcrum_tls_handshakes_total", {}).values()) >= handshakes

        h.wait_until(counted, timeout=10, what=f"{handshakes} handshakes counted")
        return self.tls_metrics(f, port)

    def assert_counts(self, m, full=0, resumed=0, failures=None, versions=None, alpn=None,
                      client_cert=0, sni_unmatched=0):
        failures = failures or {}
        failed = sum(failures.values())
        self.assertEqual(m["fulcrum_tls_handshakes_total"],
                         {"full": full, "resumed": resumed, "failed": failed}, m)
        self.assertEqual(m["fulcrum_tls_handshake_failures_total"],
                         {r: failures.get(r, 0) for r in REASONS}, m)
        versions = versions or {}
        self.assertEqual(m["fulcrum_tls_versions_total"],
                         {v: versions.get(v, 0) for v in ("TLSv1", "TLSv1.1", "TLSv1.2",
                                                          "TLSv1.3")}, m)
        alpn = alpn or {}
        self.assertEqual(m["fulcrum_tls_alpn_total"],
                         {p: alpn.get(p, 0) for p in ("h2", "http/1.1", "none")}, m)
        self.assertEqual(m["fulcrum_tls_client_cert_failures_total"], {"": client_cert}, m)
        self.assertEqual(m["fulcrum_tls_sni_unmatched_total"], {"": sni_unmatched}, m)

    def test_every_series_is_there_at_zero_before_any_handshake(self):
        f, port = self.start({})
        self.assert_counts(self.tls_metrics(f, port))

    def test_full_and_resumed_handshakes_with_tls12_and_tls13_tickets(self):
        f, port = self.start({})
        sess12, sess13 = self.certs.path("m-sess12"), self.certs.path("m-sess13")
        out = s_client(port, "-tls1_2", "-sess_out", str(sess12))
        self.assertIn("New, TLSv1.2", out)
        for _ in range(2):
            self.assertIn("Reused, TLSv1.2", s_client(port, "-tls1_2", "-sess_in", str(sess12)))
        out = s_client_waiting(port, "-tls1_3", "-sess_out", str(sess13), wait_s=1.5)
        self.assertIn("New, TLSv1.3", out)
        out = s_client_waiting(port, "-tls1_3", "-sess_in", str(sess13))
        self.assertIn("Reused, TLSv1.3", out)
        self.assert_counts(self.settled(f, port, 5), full=2, resumed=3,
                           versions={"TLSv1.2": 3, "TLSv1.3": 2}, alpn={"none": 5})

    def test_alpn_h2_http11_and_none(self):
        f, port = self.start({})
        self.assertIn("ALPN protocol: h2", s_client(port, "-alpn", "h2,http/1.1"))
        self.assertIn("ALPN protocol: http/1.1", s_client(port, "-alpn", "http/1.1"))
        self.assertIn("No ALPN negotiated", s_client(port, "-alpn", "spdy/3"))
        self.assertIn("No ALPN negotiated", s_client(port))
        m = self.settled(f, port, 4)
        self.assert_counts(m, full=4, versions={"TLSv1.3": 4},
                           alpn={"h2": 1, "http/1.1": 1, "none": 2})
        f2, port2 = self.start({"http2": False})  # h2 is not offered: the client gets http/1.1
        self.assertIn("ALPN protocol: http/1.1", s_client(port2, "-alpn", "h2,http/1.1"))
        self.assertIn("No ALPN negotiated", s_client(port2, "-alpn", "h2"))
        self.assert_counts(self.settled(f2, port2, 2), full=2, versions={"TLSv1.3": 2},
                           alpn={"http/1.1": 1, "none": 1})

    def test_no_shared_cipher_and_no_shared_version(self):
        f, port = self.start({"tls_policy": "tls_1_2_strict_with_1_3"})
        # CBC is not in the strict list; CCM is not among the TLS 1.3 suites served.
        for args in (("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"),
                     ("-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256"),
                     ("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")):
            self.assertFalse(handshake_ok(s_client(port, *args)), args)
        self.assertTrue(handshake_ok(s_client(port, "-tls1_2")))
        self.assert_counts(self.settled(f, port, 4), full=1,
                           failures={"no_shared_cipher": 2, "protocol": 1},
                           versions={"TLSv1.2": 1}, alpn={"none": 1})

    def test_client_certificate_failures_on_a_mutual_tls_listener(self):
        f, port = self.start({"ca_certificate": "clients"})
        cert, key = self.alice
        self.assertTrue(handshake_ok(s_client(port, "-tls1_2", "-cert", str(cert), "-key",
                                              str(key))))
        cert, key = self.mallory  # a CA the listener does not trust
        out = s_client_waiting(port, "-tls1_2", "-cert", str(cert), "-key", str(key))
        self.assertFalse(handshake_ok(out))
        # TLS 1.3: the client's handshake is over when it sends its certificate; the server's
        # refusal (an alert) may reach it after it has printed its report, so only the server's
        # count tells.
        s_client_waiting(port, "-tls1_3", "-cert", str(cert), "-key", str(key))
        self.assertFalse(handshake_ok(s_client(port, "-tls1_2")))  # no certificate at all
        self.assert_counts(self.settled(f, port, 4), full=1,
                           failures={"client_certificate": 3}, client_cert=3,
                           versions={"TLSv1.2": 1}, alpn={"none": 1})

    def test_a_client_refusing_the_server_certificate_is_bad_certificate(self):
        f, port = self.start({})
        # The client trusts only the client CA: Fulcrum's certificate fails its verification.
        for version in ("-tls1_2", "-tls1_3"):
            out = s_client(port, version, "-CAfile", str(self.certs.client_ca),
                           "-verify_return_error")
            self.assertFalse(handshake_ok(out), version)
        self.assert_counts(self.settled(f, port, 2), failures={"bad_certificate": 2})

    def test_unknown_sni_names_are_counted_and_get_the_default_certificate(self):
        f, port = self.start({"certificates": ["ec", "rsa"]})
        for args in (("-servername", "nowhere.example.org"), ("-servername", "b.example.com"),
                     ("-servername", "x.a.example.com"), ("-noservername",),
                     ("-servername", "a.b.example.com")):
            self.assertTrue(handshake_ok(s_client(port, *args)), args)
        self.assert_counts(self.settled(f, port, 5), full=5, versions={"TLSv1.3": 5},
                           alpn={"none": 5}, sni_unmatched=2)

    def test_idle_closed_and_garbage_clients(self):
        f, port = self.start({"idle_timeout": 1}, workers=1)
        with contextlib.closing(h.connect(port, timeout=5)) as s:  # never sends a ClientHello
            try:
                self.assertEqual(s.recv(100), b"")  # closed by the timeout
            except ConnectionResetError:
                pass
        with contextlib.closing(h.connect(port, timeout=5)) as s:
            s.sendall(b"\x16\x03\x01")  # the start of a record, then the client goes
        with contextlib.closing(h.connect(port, timeout=5)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to the TLS port
            try:
                s.recv(100)
            except ConnectionResetError:
                pass
        self.assert_counts(self.settled(f, port, 3),
                           failures={"timeout": 1, "closed": 1, "protocol": 1})


if __name__ == "__main__":
    unittest.main()
