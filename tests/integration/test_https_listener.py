"""HTTPS listener: TLS termination (SNI, policies, mutual TLS, resumption, renegotiation),
certificate checks at start, reload and through the API, and redirect_to_https.

Real fulcrumd and fulcrum-echo; clients are curl, `openssl s_client` and Python's ssl module, all
on loopback. Certificates are made at test time (certs.py).
"""
import contextlib
import json
import os
import re
import socket
import ssl
import subprocess
import time
import unittest
import zlib

import certs as certs_mod
import harness as h
from test_http_listener import _Prefixed, read_response


def https_yaml(certificates, listeners, backend_port, extra_lb=""):
    """certificates: [(name, cert_path, key_path or None, type)]; listeners: list of dicts of
    listener fields (protocol, port, ...) written as YAML flow mappings."""
    lines = ["loadbalancers:", "  - name: web", "    address: 127.0.0.1", "    server_groups:",
             "      - name: app", "        backends:",
             f"          - {{address: 127.0.0.1, port: {backend_port}}}", "    listeners:"]
    for l in listeners:
        fields = {"server_group": "app", "health_check": {"enabled": False}, **l}
        lines.append("      - " + json.dumps(fields))
    lines += [extra_lb] if extra_lb else []
    lines.append("certificates:")
    for name, cert, key, kind in certificates:
        c = {"name": name, "type": kind, "cert_file": str(cert)}
        if key:
            c["key_file"] = str(key)
        lines.append("  - " + json.dumps(c))
    return "\n".join(lines) + "\n"


def s_client(port, *args, stdin=b"", timeout=10):
    """Runs `openssl s_client` against the listener; returns its stdout+stderr as text."""
    proc = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                          input=stdin, capture_output=True, timeout=timeout)
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


def handshake_ok(out):
    """The handshake completed: s_client prints a cipher and no OpenSSL error (an alert the
    server sends, e.g. for a missing client certificate, is such an error)."""
    return ("Cipher is (NONE)" not in out and ("New, " in out or "Reused, " in out)
            and not re.search(r":error:[0-9A-F]{8}:", out))


def subject_cn(out):
    for line in out.splitlines():
        if line.startswith("subject="):
            return line.split("CN = ", 1)[1].strip()
    return None


class HttpsTest(h.ProcessCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = certs_mod.Certs()
        c = cls.certs
        cls.ec = c.server("ec", ["a.example.com", "*.a.example.com"], kind="ec")
        cls.rsa = c.server("rsa", ["b.example.com"], kind="rsa")
        cls.expired = c.server("expired", ["c.example.com"], days=-1)
        cls.alice = c.client("alice", "/O=Fulcrum Test/CN=alice")
        # A client certificate from a CA the listener does not trust.
        cls.mallory = c.server("mallory", ["mallory"], kind="ec")

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    def echo(self, name="a"):
        e = h.Echo(name, http=True)
        self.cleanup.append(e.stop)
        return e

    def base_certs(self):
        return [("ec", *self.ec, "server"), ("rsa", *self.rsa, "server"),
                ("clients", self.certs.client_ca, None, "ca")]

    def curl(self, port, path="/echo", name="a.example.com", extra=()):
        proc = subprocess.run(
            ["curl", "-sS", "--http1.1", "--cacert", str(self.certs.ca), "--resolve",
             f"{name}:{port}:127.0.0.1", "-w", "\n%{http_code} %{ssl_verify_result}",
             *extra, f"https://{name}:{port}{path}"],
            capture_output=True, timeout=20)
        return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode()

    def test_curl_through_https_with_forwarding_headers(self):
        e = self.echo()
        port = h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec", "rsa"],
             "x_forwarded": {"proto": True, "port": True}}], e.port))
        rc, out, err = self.curl(port, extra=("-H", "X-Client-Cert-Subject: CN=forged",
                                              "-H", "X-Forwarded-Proto: http"))
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.endswith("200 0"), out)
        self.assertIn("X-Forwarded-Proto: https\n", out)
        self.assertIn(f"X-Forwarded-Port: {port}\n", out)
        self.assertNotIn("X-Forwarded-Proto: http\n", out)
        self.assertNotIn("X-Client-Cert-Subject", out)  # no client certificate: no subject

    def test_acl_refused_clients_get_403_after_the_handshake(self):
        e = self.echo()
        port = h.free_port()
        acl = "acls:\n  - {name: office, entries: [{cidr: 127.0.0.2/32}]}"
        text = https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec"],
             "acl": {"type": "white", "acl": "office"}}], e.port)
        self.fulcrumd(text + acl + "\n")
        rc, out, err = self.curl(port, path="/", extra=("--interface", "127.0.0.2"))
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.endswith("200 0"), out)
        rc, out, err = self.curl(port, path="/", extra=("--interface", "127.0.0.3"))
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.endswith("403 0"), out)

    def test_keep_alive_pipelining_and_large_bodies_over_tls(self):
        e = self.echo()
        port = h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec"]}], e.port), workers=1)
        ctx = ssl.create_default_context(cafile=str(self.certs.ca))
        with contextlib.closing(socket.create_connection(("127.0.0.1", port), timeout=30)) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.example.com") as s:
                self.assertEqual(s.selected_alpn_protocol(), None)  # none asked
                # Three pipelined requests answered in order on one connection.
                s.sendall(b"".join(b"GET /echo?%d HTTP/1.1\r\nHost: a\r\n\r\n" % i
                                   for i in range(3)))
                rest = b""
                for i in range(3):
                    status, _, body, rest = read_response(_Prefixed(s, rest))
                    self.assertEqual(status, 200)
                    self.assertTrue(body.startswith(b"GET /echo?%d " % i), body[:40])
                # 16 MiB down (many TLS records, partial writes) and 4 MiB up.
                n = 16 * 1024 * 1024
                s.sendall(f"GET /bytes/{n}?seed=5 HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                status, _, body, rest = read_response(_Prefixed(s, rest))
                self.assertEqual((status, len(body)), (200, n))
                direct = subprocess.run(["curl", "-s", f"http://127.0.0.1:{e.port}/bytes/{n}"
                                         "?seed=5"], capture_output=True, timeout=30).stdout
                self.assertEqual(zlib.crc32(body), zlib.crc32(direct))
                payload = os.urandom(4 * 1024 * 1024)
                s.sendall(b"POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
                          % len(payload) + payload)
                status, _, body, rest = read_response(_Prefixed(s, rest))
                self.assertEqual(body.decode().strip(),
                                 f"{len(payload)} {zlib.crc32(payload) & 0xFFFFFFFF:08x}")

    def test_sni_selects_the_certificate_and_unknown_names_get_the_default(self):
        e = self.echo()
        port = h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec", "rsa"]}], e.port))
        cases = {"a.example.com": "a.example.com", "x.a.example.com": "a.example.com",
                 "B.EXAMPLE.COM": "b.example.com", "b.example.com": "b.example.com",
                 "x.y.a.example.com": "a.example.com",  # a wildcard covers one label only
                 "unknown.test": "a.example.com"}
        for name, want in cases.items():
            out = s_client(port, "-servername", name)
            self.assertEqual(subject_cn(out), want, name)
        self.assertEqual(subject_cn(s_client(port, "-noservername")), "a.example.com")
        # The RSA certificate is really RSA, and curl verifies the chain by name.
        self.assertIn("Server public key is 2048 bit",
                      s_client(port, "-servername", "b.example.com"))
        rc, out, err = self.curl(port, name="b.example.com")
        self.assertEqual((rc, out[-5:]), (0, "200 0"), err)

    def test_each_policy_offers_its_protocol_versions(self):
        e = self.echo()
        want = {  # policy -> versions accepted among tls1, tls1_1, tls1_2, tls1_3
            "tls_1_0": {"tls1", "tls1_1", "tls1_2", "tls1_3"},
            "tls_1_1": {"tls1_1", "tls1_2", "tls1_3"},
            "tls_1_2": {"tls1_2", "tls1_3"},
            "tls_1_2_strict": {"tls1_2"},
            "tls_1_2_strict_with_1_3": {"tls1_2", "tls1_3"},
        }
        ports = {p: h.free_port() for p in want}
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec"], "tls_policy": p}
            for p, port in ports.items()], e.port))
        for policy, port in ports.items():
            got = set()
            for v in ("tls1", "tls1_1", "tls1_2", "tls1_3"):
                # The client must allow the old versions too (OpenSSL 3 needs level 0 for them).
                out = s_client(port, f"-{v}", "-cipher", "DEFAULT:@SECLEVEL=0")
                if handshake_ok(out):
                    got.add(v)
            self.assertEqual(got, want[policy], policy)
        # The strict policies negotiate only ECDHE with AEAD: a CBC-only client is refused.
        out = s_client(ports["tls_1_2_strict"], "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256")
        self.assertFalse(handshake_ok(out))
        out = s_client(ports["tls_1_2"], "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256")
        self.assertTrue(handshake_ok(out))

    def test_default_policy_has_no_compression_secure_renegotiation_and_alpn(self):
        # What testssl checks, with s_client: see docs/configuration.md (HTTPS) for its report.
        e = self.echo()
        port = h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec"]}], e.port))
        out = s_client(port, "-tls1_2", "-alpn", "h2,http/1.1")
        self.assertIn("Secure Renegotiation IS supported", out)
        self.assertIn("Compression: NONE", out)
        self.assertIn("ALPN protocol: h2", out)  # http2 is on by default
        out = s_client(port, "-alpn", "http/1.1")
        self.assertIn("ALPN protocol: http/1.1", out)
        out = s_client(port, "-alpn", "spdy/3")  # nothing in common: the handshake goes on
        self.assertTrue(handshake_ok(out))
        self.assertIn("No ALPN negotiated", out)
        for old in ("-tls1", "-tls1_1"):
            self.assertFalse(handshake_ok(s_client(port, old, "-cipher", "DEFAULT:@SECLEVEL=0")))

    def test_client_renegotiation_is_refused(self):
        e = self.echo()
        port = h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec"]}], e.port))
        # s_client's "R" asks for a renegotiation; the server answers no_renegotiation.
        proc = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                                 "-tls1_2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            time.sleep(0.5)
            proc.stdin.write(b"R\n")
            proc.stdin.flush()
            out = proc.communicate(timeout=10)[0].decode(errors="replace")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertIn("RENEGOTIATING", out)
        self.assertIn("no renegotiation", out)
        self.assertEqual(out.count("Cipher is"), 1)  # no second handshake happened

    def test_session_resumption_with_tickets_across_workers(self):
        e = self.echo()
        port = h.free_port()
        other = h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec"]},
            {"protocol": "https", "port": other, "certificates": ["ec"]}], e.port), workers=2)
        sess = self.certs.path("session")
        for version in ("-tls1_2", "-tls1_3"):
            # TLS 1.3 tickets arrive after the handshake (and wait in the cork up to 200 ms while
            # no response is written): keep stdin open long enough on a loaded machine too.
            out = s_client(port, version, "-sess_out", str(sess), stdin=b"", timeout=10)
            if version == "-tls1_3":
                out = subprocess.run(
                    f"sleep 1 | openssl s_client -connect 127.0.0.1:{port} -tls1_3 "
                    f"-sess_out {sess}", shell=True, capture_output=True, timeout=10).stdout.decode()
            self.assertIn("New, ", out)
            # Ten resumptions land on both workers (the kernel spreads connections): all reuse.
            for _ in range(10):
                out = s_client(port, version, "-sess_in", str(sess))
                self.assertIn("Reused, ", out, version)
            # Another listener does not accept this listener's sessions.
            out = s_client(other, version, "-sess_in", str(sess))
            self.assertIn("New, ", out)

    def test_every_tls13_resumption_gets_a_fresh_ticket(self):
        # TLS 1.3 clients use a ticket once; a server that issues none on resumption makes every
        # second connection of a client a full handshake. Chain five connections, each resuming
        # from the ticket the previous one received.
        e = self.echo()
        port = h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec"]}], e.port), workers=1)
        prev = None
        for i in range(5):
            nxt = self.certs.path(f"chain{i}")
            sess_in = f"-sess_in {prev}" if prev else ""
            out = subprocess.run(
                f"sleep 1 | openssl s_client -connect 127.0.0.1:{port} -tls1_3 -msg "
                f"{sess_in} -sess_out {nxt}", shell=True, capture_output=True,
                timeout=10).stdout.decode(errors="replace")
            m = re.search(r"^(New|Reused), TLSv1\.3", out, re.M)
            self.assertEqual(m and m.group(1), "Reused" if prev else "New", f"connection {i}")
            self.assertTrue("NewSessionTicket" in out, f"connection {i}: no NewSessionTicket")
            prev = nxt

    def test_http10_request_without_host_gets_one_upstream(self):
        # HTTP/1.0 allows a request without Host; the HTTP/1.1 request upstream carries the
        # SNI name over HTTPS, the listener address otherwise.
        e = self.echo()
        port, plain = h.free_port(), h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec"]},
            {"protocol": "http", "port": plain}], e.port), workers=1)
        ctx = ssl.create_default_context(cafile=str(self.certs.ca))
        cases = [(port, "a.example.com", "a.example.com"), (port, None, f"127.0.0.1:{port}"),
                 (plain, None, f"127.0.0.1:{plain}")]
        for p, sni, want in cases:
            with contextlib.closing(socket.create_connection(("127.0.0.1", p), timeout=10)) as s:
                if p == port:
                    if sni is None:
                        ctx.check_hostname = False
                    s = ctx.wrap_socket(s, server_hostname=sni)
                s.sendall(b"GET /echo HTTP/1.0\r\nAccept: */*\r\n\r\n")
                status, _, body, _ = read_response(s)
                self.assertEqual(status, 200, (p, sni))
                self.assertIn(f"Host: {want}\n", body.decode(), (p, sni))
                s.close()

    def test_mutual_tls_accepts_trusted_clients_and_passes_the_subject(self):
        e = self.echo()
        port = h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec"],
             "ca_certificate": "clients"}], e.port))
        cert, key = self.alice
        rc, out, err = self.curl(port, extra=("--cert", str(cert), "--key", str(key), "-H",
                                              "X-Client-Cert-Subject: CN=forged"))
        self.assertEqual(rc, 0, err)
        self.assertIn("X-Client-Cert-Subject: CN=alice,O=Fulcrum Test\n", out)
        self.assertNotIn("forged", out)
        rc, out, err = self.curl(port)  # no client certificate
        self.assertNotEqual(rc, 0)
        cert, key = self.mallory  # signed by a CA the listener does not trust
        rc, out, err = self.curl(port, extra=("--cert", str(cert), "--key", str(key)))
        self.assertNotEqual(rc, 0)
        out = s_client(port, "-tls1_2")
        self.assertIn("Acceptable client certificate CA names", out)
        self.assertIn("Fulcrum Test Client CA", out)
        self.assertFalse(handshake_ok(out))

    def test_bad_certificates_are_refused_at_start_and_at_reload(self):
        e = self.echo()
        port = h.free_port()
        ec_cert, ec_key = self.ec
        rsa_cert, rsa_key = self.rsa
        listener = [{"protocol": "https", "port": port, "certificates": ["ec", "rsa"]}]
        mismatch = [("ec", ec_cert, ec_key, "server"), ("rsa", rsa_cert, ec_key, "server")]
        expired = [("ec", ec_cert, ec_key, "server"), ("rsa", *self.expired, "server")]
        missing = [("ec", ec_cert, ec_key, "server"), ("rsa", "/nonexistent.pem", rsa_key,
                                                        "server")]
        for certificates, field in ((mismatch, "certificates[1].key_file: does not match the "
                                               "certificate"),
                                    (expired, "certificates[1].cert_file: the certificate expired"),
                                    (missing, "certificates[1].cert_file: cannot read")):
            rc, out = h.run_fulcrumd_check(https_yaml(certificates, listener, e.port))
            self.assertEqual(rc, 2, out)
            self.assertIn(field, out)
        good = https_yaml(self.base_certs(), listener, e.port)
        f = self.fulcrumd(good)
        for certificates in (mismatch, expired):
            line = f.reload(https_yaml(certificates, listener, e.port), refused=True)
            self.assertIn("certificates[1]", line)
            rc, out, err = self.curl(port, name="b.example.com")  # the old one keeps serving
            self.assertEqual((rc, out[-5:]), (0, "200 0"), err)

    def test_certificates_through_the_api(self):
        e = self.echo()
        f = self.fulcrumd(None)
        ec_cert, ec_key = (p.read_text() for p in self.ec)
        rsa_cert, rsa_key = (p.read_text() for p in self.rsa)
        status, body, _ = f.api("POST", "/v1/certificates",
                                {"name": "bad", "cert": rsa_cert, "key": ec_key})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["code"], "InvalidParameter")
        self.assertEqual(body["error"]["field"], "key")  # the API names fields in the body
        self.assertIn("does not match the certificate", body["error"]["message"])
        status, body, _ = f.api("POST", "/v1/certificates",
                                {"name": "old", "cert": self.expired[0].read_text(),
                                 "key": self.expired[1].read_text()})
        self.assertEqual(status, 400, body)
        self.assertIn("expired", body["error"]["message"])
        status, body, _ = f.api("POST", "/v1/certificates",
                                {"name": "ec", "cert": ec_cert, "key": ec_key})
        self.assertLess(status, 300, body)
        status, body, _ = f.api("GET", "/v1/certificates/ec")
        self.assertNotIn("key", body)  # write-only
        port = h.free_port()
        status, body, _ = f.api("POST", "/v1/loadbalancers", {
            "name": "web", "address": "127.0.0.1",
            "server_groups": [{"name": "app", "backends": [{"address": "127.0.0.1",
                                                            "port": e.port}]}],
            "listeners": [{"protocol": "https", "port": port, "server_group": "app",
                           "certificates": ["ec"], "health_check": {"enabled": False}}]})
        self.assertLess(status, 300, body)
        rc, out, err = self.curl(port)
        self.assertEqual((rc, out[-5:]), (0, "200 0"), err)

    def test_redirect_to_https(self):
        e = self.echo()
        https_port, http_port = h.free_port(), h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": https_port, "certificates": ["ec"]},
            {"protocol": "http", "port": http_port, "redirect_to_https": {"port": https_port}},
        ], e.port))
        for method, status in (("GET", 301), ("HEAD", 301), ("POST", 308)):
            with contextlib.closing(h.connect(http_port)) as s:
                s.sendall(f"{method} /p/q?x=1 HTTP/1.1\r\nHost: a.example.com:{http_port}\r\n"
                          "Content-Length: 0\r\n\r\n".encode())
                got, headers, _, _ = read_response(s)
            self.assertEqual(got, status, method)
            self.assertEqual(headers["location"], f"https://a.example.com:{https_port}/p/q?x=1")
        # curl follows it to the HTTPS listener.
        proc = subprocess.run(["curl", "-sS", "-L", "--cacert", str(self.certs.ca), "--resolve",
                               f"a.example.com:{http_port}:127.0.0.1", "--resolve",
                               f"a.example.com:{https_port}:127.0.0.1",
                               f"http://a.example.com:{http_port}/echo"],
                              capture_output=True, timeout=20)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(proc.stdout.startswith(b"GET /echo HTTP/1.1"), proc.stdout[:60])

    def test_slow_handshake_is_closed_after_idle_timeout(self):
        e = self.echo()
        port = h.free_port()
        self.fulcrumd(https_yaml(self.base_certs(), [
            {"protocol": "https", "port": port, "certificates": ["ec"], "idle_timeout": 1}],
            e.port))
        with contextlib.closing(h.connect(port, timeout=5)) as s:
            s.sendall(b"\x16\x03\x01")  # the start of a record, then nothing
            start = time.monotonic()
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            self.assertEqual(data, b"")  # closed
            self.assertLess(time.monotonic() - start, 4)


if __name__ == "__main__":
    unittest.main()
