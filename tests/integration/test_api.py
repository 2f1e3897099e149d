"""The admin REST API (docs/api.md) against the real fulcrumd: resources built through the API
serve real traffic, survive kill -9, errors name the field and change nothing, every route needs
its token, changes under load fail no request, and every acknowledged write is durable."""

import json
import pathlib
import random
import socket
import threading
import time
import unittest
import http.client

import certs as certs_mod
import harness as h
from test_http_listener import Traffic, request

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"


def lb_doc(groups, listeners=(), name="web"):
    """groups: {name: [port, ...]} on 127.0.0.1; listeners: [dict]."""
    return {
        "name": name,
        "address": "127.0.0.1",
        "server_groups": [{"name": g, "backends": [{"address": "127.0.0.1", "port": p}
                                                   for p in ports]}
                          for g, ports in groups.items()],
        "listeners": list(listeners),
    }


class ApiTest(h.ProcessCase):
    def daemon(self, yaml_text=None, workers=2):
        f = h.Fulcrumd(yaml_text, workers=workers)
        self.cleanup.append(f.stop)
        return f

    def echo(self, name, http=True):
        e = h.Echo(name, http=http)
        self.cleanup.append(e.stop)
        return e

    def ok(self, f, method, path, body=None, want=(200, 201, 204), **kw):
        status, answer, _ = f.api(method, path, body, **kw)
        self.assertIn(status, want, f"{method} {path}: {status} {answer}")
        return answer

    def names(self, port, n=8):
        return {request(port)[2].decode().strip() for _ in range(n)}

    # --- A new user --------------------------------------------------------------------------

    def test_new_user_builds_an_http_lb_that_survives_kill9(self):
        f = self.daemon()
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        self.assertEqual(self.ok(f, "GET", "/readyz", token=None)["status"], "ready")
        lb = self.ok(f, "POST", "/v1/loadbalancers", {"name": "web", "address": "127.0.0.1"})
        self.assertEqual(lb["address_type"], "intranet")  # defaults are filled in
        group = self.ok(f, "POST", "/v1/loadbalancers/web/servergroups",
                        {"name": "app", "backends": [{"address": "127.0.0.1", "port": a.port}]})
        self.assertEqual(group["backends"][0]["weight"], 100)
        self.ok(f, "POST", "/v1/loadbalancers/web/servergroups/app/backends",
                {"address": "127.0.0.1", "port": b.port})
        listener = self.ok(f, "POST", "/v1/loadbalancers/web/listeners",
                           {"protocol": "http", "port": port, "server_group": "app"})
        self.assertEqual(listener["idle_timeout"], 15)  # the HTTP default, in seconds
        self.assertEqual(self.names(port), {"a", "b"})

        before = self.ok(f, "GET", "/v1/config")
        revision = self.ok(f, "GET", "/v1/status")["revision"]
        f.kill9()
        f.start()
        self.assertEqual(self.ok(f, "GET", "/v1/config"), before)
        self.assertEqual(self.ok(f, "GET", "/v1/status")["revision"], revision)
        self.assertEqual(self.names(port), {"a", "b"})

    def test_a_2xx_means_the_new_backend_already_serves(self):
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        f = self.daemon()
        self.ok(f, "POST", "/v1/loadbalancers",
                lb_doc({"app": [a.port]}, [{"protocol": "http", "port": port,
                                            "server_group": "app", "scheduler": "rr"}]))
        self.assertEqual(self.names(port, 4), {"a"})
        self.ok(f, "POST", "/v1/loadbalancers/web/servergroups/app/backends",
                {"address": "127.0.0.1", "port": b.port})
        # No waiting: rr over two backends answers from both within a few requests.
        self.assertEqual(self.names(port, 6), {"a", "b"})
        self.ok(f, "DELETE", f"/v1/loadbalancers/web/servergroups/app/backends/127.0.0.1:{a.port}")
        self.assertEqual(self.names(port, 6), {"b"})

    # --- Errors --------------------------------------------------------------------------------

    def test_errors_name_the_field_and_change_nothing(self):
        a = self.echo("a")
        port = h.free_port()
        f = self.daemon()
        self.ok(f, "POST", "/v1/loadbalancers",
                lb_doc({"app": [a.port]}, [{"protocol": "http", "port": port,
                                            "server_group": "app"}]))
        made = certs_mod.Certs()  # certificates are checked when applied: a real one
        self.cleanup.append(made.cleanup)
        cert_path, key_path = made.server("c", ["c.example.com"])
        pem, key = cert_path.read_text(), key_path.read_text()
        cert = self.ok(f, "POST", "/v1/certificates", {"name": "c", "cert": pem, "key": key})
        self.assertNotIn("key", cert)  # write-only
        config = self.ok(f, "GET", "/v1/config")
        key_body = "".join(key.splitlines()[1:-1])
        self.assertNotIn(key_body[:40], json.dumps(config))
        revision = self.ok(f, "GET", "/v1/status")["revision"]
        backends = "/v1/loadbalancers/web/servergroups/app/backends"

        def refused(method, path, body=None, status=400, field=None, text=None, **kw):
            got, answer, _ = f.api(method, path, body, **kw)
            self.assertEqual(got, status, f"{method} {path}: {answer}")
            if status not in (413,):
                self.assertIn("error", answer)
            if field is not None:
                self.assertEqual(answer["error"].get("field"), field, answer)
            if text is not None:
                self.assertIn(text, answer["error"]["message"])
            return answer

        refused("POST", backends, {"address": "127.0.0.1", "port": 9, "weight": 500},
                field="weight", text="0–100")
        refused("POST", backends, [{"address": "127.0.0.1", "port": 9},
                                   {"address": "127.0.0.1", "port": 10, "weight": 500}],
                field="[1].weight", text="0–100")
        refused("PUT", backends, [{"address": "nowhere", "port": 9}], field="[0].address")
        refused("POST", "/v1/loadbalancers/web/listeners",
                {"protocol": "tcp", "port": h.free_port(), "server_group": "app", "bogus": 1},
                field="bogus", text="unknown field")
        refused("POST", "/v1/loadbalancers/web/listeners",
                {"protocol": "tcp", "port": "80", "server_group": "app"}, field="port")
        refused("POST", "/v1/loadbalancers", raw=b'{"name": "x",}',
                content_type="application/json", text="malformed JSON")
        refused("POST", "/v1/loadbalancers", raw=b'{"name": "x", "name": "y"}',
                content_type="application/json", field="name", text="duplicate")
        refused("POST", "/v1/loadbalancers", {"name": "bad\u0001name", "address": "127.0.0.1"},
                field="name")
        refused("POST", "/v1/loadbalancers", raw=b'name: x', content_type="text/plain",
                status=415)
        refused("POST", "/v1/loadbalancers", raw=b"[" * (17 << 20),
                content_type="application/json", status=413)
        refused("POST", "/v1/loadbalancers", {"name": "web", "address": "127.0.0.1"},
                status=409, field="name")
        refused("POST", "/v1/loadbalancers/web/servergroups/app/backends",
                {"address": "127.0.0.1", "port": a.port}, status=409)
        refused("DELETE", "/v1/loadbalancers/web/servergroups/app", status=409)
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            refused("POST", "/v1/loadbalancers/web/listeners",
                    {"protocol": "tcp", "port": busy.getsockname()[1], "server_group": "app"},
                    status=409, field="port", text="cannot listen")
        refused("POST", "/v1/loadbalancers/web/listeners",  # valid, not served by this build
                {"protocol": "http", "port": h.free_port(), "server_group": "app",
                 "bandwidth_mbps": 10}, status=422)
        refused("POST", "/v1/certificates", {"name": "d", "cert": pem, "key": "-----BEGIN "
                "PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}, field="key")
        refused("GET", "/v1/loadbalancers/nope", status=404)
        refused("DELETE", "/v1/loadbalancers/web/listeners/http:1", status=404)
        got, _, headers = f.api("PUT", "/v1/loadbalancers")
        self.assertEqual(got, 405)
        self.assertEqual(headers.get("Allow"), "GET, POST")
        refused("PATCH", "/v1/loadbalancers/web", {"name": "other"}, field="name")

        self.assertEqual(self.ok(f, "GET", "/v1/config"), config)
        self.assertEqual(self.ok(f, "GET", "/v1/status")["revision"], revision)
        self.assertEqual(self.names(port, 2), {"a"})

    def test_every_route_needs_its_token(self):
        f = self.daemon()
        spec = json.loads((DOCS / "openapi.json").read_text())
        walked = 0
        for path, ops in spec["paths"].items():
            concrete = path
            for name in ("lb", "servergroup", "listener", "backend", "rule", "certificate", "acl"):
                concrete = concrete.replace("{" + name + "}", {"listener": "http:80",
                                                              "backend": "127.0.0.1:1"}.get(
                                                                  name, "x"))
            for method, op in ops.items():
                role = op["x-fulcrum-role"]
                m = method.upper()
                if role == "none":
                    self.assertNotEqual(f.api(m, concrete, token=None)[0], 401)
                    continue
                walked += 1
                self.assertEqual(f.api(m, concrete, token=None)[0], 401, f"{m} {concrete}")
                self.assertEqual(f.api(m, concrete, token="wrong-token-0123456789")[0], 401,
                                 f"{m} {concrete}")
                if role == "admin":
                    self.assertEqual(f.api(m, concrete, token="reader")[0], 403,
                                     f"{m} {concrete}")
                else:
                    self.assertNotIn(f.api(m, concrete, token="reader")[0], (401, 403),
                                     f"{m} {concrete}")
        self.assertGreater(walked, 30)
        self.assertNotIn(f.admin_token, f.read_log())
        self.assertNotIn(f.reader_token, f.read_log())

    # --- Documents -----------------------------------------------------------------------------

    def test_apply_yaml_with_dry_run_then_for_real(self):
        a = self.echo("a", http=False)
        port = h.free_port()
        f = self.daemon()
        text = h.lb_yaml([(a.port, 100)], port)
        revision = self.ok(f, "GET", "/v1/status")["revision"]
        dry = self.ok(f, "POST", "/v1/apply?dry_run=true", raw=text.encode(),
                      content_type="application/yaml")
        self.assertTrue(dry["dry_run"])
        self.assertIn({"op": "create", "key": "/fulcrum/lb/test"}, dry["changes"])
        self.assertEqual(self.ok(f, "GET", "/v1/status")["revision"], revision)
        self.assertEqual(self.ok(f, "GET", "/v1/loadbalancers")["loadbalancers"], [])
        real = self.ok(f, "POST", "/v1/apply", raw=text.encode(),
                       content_type="application/yaml")
        self.assertEqual(real["changes"], dry["changes"])
        self.assertEqual(real["revision"], revision + 1)
        self.assertEqual(h.ask_name(port), "a")
        again = self.ok(f, "POST", "/v1/apply", raw=text.encode(),
                        content_type="application/yaml")
        self.assertEqual(again["changes"], [])
        self.assertEqual(again["revision"], revision + 1)
        bad = text.replace("weight: 100", "weight: 101")
        status, answer, _ = f.api("POST", "/v1/apply", raw=bad.encode(),
                                  content_type="application/yaml")
        self.assertEqual(status, 400)
        self.assertEqual(answer["error"]["field"],
                         "loadbalancers[0].server_groups[0].backends[0].weight")

    def test_status_health_and_explain_follow_the_live_balancer(self):
        backends = [self.echo(n, http=False) for n in ("a", "b", "c")]
        port = h.free_port()
        f = self.daemon(h.lb_yaml([(e.port, 100) for e in backends], port, scheduler="sch"))
        status = self.ok(f, "GET", "/v1/status")
        self.assertEqual(status["store"]["kind"], "sqlite")
        self.assertTrue(status["store"]["endpoints"][0].endswith("fulcrum.db"))
        self.assertIs(status["store"]["reachable"], True)
        self.assertEqual(status["config_source"], "store")
        self.assertEqual(status["workers"], 2)
        self.assertGreaterEqual(status["generation"], 1)
        health = self.ok(f, "GET", "/v1/loadbalancers/test/health")
        listener = health["listeners"][0]
        self.assertEqual(listener["listener"], f"tcp:{port}")
        self.assertEqual(len(listener["server_groups"][0]["backends"]), 3)
        by_port = {e.port: e.name for e in backends}
        for i in range(2, 12):
            source = f"127.0.0.{i}"
            answer = self.ok(f, "GET", f"/v1/loadbalancers/test/listeners/tcp:{port}/explain"
                                       f"?client={source}:40000")
            want = by_port[int(answer["backend"].rsplit(":", 1)[1])]
            self.assertEqual(h.ask_name(port, source=source), want, answer)

    def test_stop_start_listener_and_inactive_lb(self):
        a = self.echo("a", http=False)
        port = h.free_port()
        f = self.daemon(h.lb_yaml([(a.port, 100)], port))
        base = f"/v1/loadbalancers/test/listeners/tcp:{port}"
        self.assertEqual(self.ok(f, "POST", base + "/stop")["status"], "stopped")
        with self.assertRaises(ConnectionRefusedError):
            h.connect(port)
        self.assertEqual(self.ok(f, "POST", base + "/start")["status"], "running")
        self.assertEqual(h.ask_name(port), "a")
        self.ok(f, "PATCH", "/v1/loadbalancers/test", {"status": "inactive"})
        with self.assertRaises(ConnectionRefusedError):
            h.connect(port)
        self.ok(f, "PATCH", "/v1/loadbalancers/test", {"status": "active"})
        self.assertEqual(h.ask_name(port), "a")

    # --- Nothing lost ----------------------------------------------------------------------------

    def test_fifty_changes_under_load_fail_no_request(self):
        echoes = [self.echo(n) for n in ("a", "b", "c", "d", "e")]
        port, tport = h.free_port(), h.free_port()
        f = self.daemon()
        self.ok(f, "POST", "/v1/loadbalancers", lb_doc(
            {"app": [e.port for e in echoes[:3]]},
            [{"protocol": "http", "port": port, "server_group": "app", "drain_timeout": 30},
             {"protocol": "tcp", "port": tport, "server_group": "app", "drain_timeout": 30}]))
        traffic = Traffic(port, keep_alive=2, new_connection_ports=(port, tport)).start()
        group = "/v1/loadbalancers/web/servergroups/app"
        spare = [e.port for e in echoes[3:]]
        extra_port = h.free_port()
        changes = 0
        try:
            rnd = random.Random(5)
            while changes < 50:
                kind = changes % 5
                if kind == 0:
                    self.ok(f, "POST", group + "/backends",
                            {"address": "127.0.0.1", "port": spare[changes % 2]})
                elif kind == 1:
                    self.ok(f, "DELETE", group + f"/backends/127.0.0.1:{spare[(changes - 1) % 2]}")
                elif kind == 2:
                    self.ok(f, "PUT", group + "/backends",
                            [{"address": "127.0.0.1", "port": e.port,
                              "weight": rnd.randint(1, 100)} for e in echoes[:3]])
                elif kind == 3:
                    if changes % 10 == 3:
                        self.ok(f, "POST", "/v1/loadbalancers/web/listeners",
                                {"protocol": "http", "port": extra_port, "server_group": "app"})
                    else:
                        self.ok(f, "DELETE", f"/v1/loadbalancers/web/listeners/http:{extra_port}")
                else:
                    self.ok(f, "PATCH", f"/v1/loadbalancers/web/listeners/http:{port}",
                            {"request_timeout": rnd.randint(30, 90)})
                changes += 1
                time.sleep(0.02)
        finally:
            time.sleep(0.3)
            traffic.stop()
        self.assertEqual(changes, 50)
        self.assertEqual(traffic.failures, [])
        self.assertGreater(traffic.ok, 200)

    def test_kill9_during_writes_loses_no_acknowledged_write(self):
        f = self.daemon()
        self.ok(f, "POST", "/v1/loadbalancers", lb_doc({"app": []}))
        path = "/v1/loadbalancers/web/servergroups/app/backends"
        acked, refused, unknown, _ = h.writes_with_a_kill(f, path, f.kill9, stop_on_error=True,
                                                          timeout=5)
        f.start()
        stored = {b["port"] for b in self.ok(f, "GET", "/v1/loadbalancers/web/servergroups/app")
                  ["backends"]}
        self.assertTrue(set(acked) <= stored, sorted(set(acked) - stored))
        self.assertTrue(all(status == 400 for _, status, _ in refused))
        self.assertFalse({p for p, _, _ in refused} & stored)
        self.assertTrue(stored <= set(acked) | set(unknown), sorted(stored - set(acked)))

    def test_metrics_count_real_traffic_with_stable_names(self):
        tcp_echo, http_echo = self.echo("t", http=False), self.echo("w")
        udp_echo = h.Echo("u", udp=True)
        self.cleanup.append(udp_echo.stop)
        tport, wport, uport = h.free_port(), h.free_port(), h.free_port(kind=socket.SOCK_DGRAM)
        f = self.daemon()
        self.ok(f, "POST", "/v1/loadbalancers", {
            "name": "web", "address": "127.0.0.1",
            "server_groups": [
                {"name": "t", "backends": [{"address": "127.0.0.1", "port": tcp_echo.port}]},
                {"name": "w", "backends": [{"address": "127.0.0.1", "port": http_echo.port}]},
                {"name": "u", "backends": [{"address": "127.0.0.1", "port": udp_echo.port}]}],
            "listeners": [
                {"protocol": "tcp", "port": tport, "server_group": "t"},
                {"protocol": "http", "port": wport, "server_group": "w"},
                {"protocol": "udp", "port": uport, "server_group": "u",
                 "health_check": {"enabled": False}}]})
        for _ in range(5):
            self.assertEqual(h.ask_name(tport), "t")
        for _ in range(7):
            self.assertEqual(request(wport)[0], 200)
        self.assertEqual(request(wport, "/status/503")[0], 503)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(2)
            for _ in range(3):
                u.sendto(b"NAME", ("127.0.0.1", uport))
                self.assertEqual(u.recvfrom(100)[0], b"u")
        status, text, headers = f.api("GET", "/metrics", token="reader")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)

        def value(name, **labels):
            key = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
            self.assertIn(key, samples, f"{key} not in /metrics")
            return samples[key]

        t = {"lb": "web", "listener": f"tcp:{tport}"}
        w = {"lb": "web", "listener": f"http:{wport}"}
        u = {"lb": "web", "listener": f"udp:{uport}"}
        self.assertEqual(value("fulcrum_listener_connections_total", **t), 5)
        self.assertEqual(value("fulcrum_listener_active_connections", **t), 0)
        self.assertGreater(value("fulcrum_listener_bytes_in_total", **t), 0)
        self.assertEqual(value("fulcrum_http_requests_total", **w, code_class="2xx"), 7)
        self.assertEqual(value("fulcrum_http_requests_total", **w, code_class="5xx"), 1)
        self.assertEqual(value("fulcrum_http_request_duration_seconds_count", **w), 8)
        self.assertEqual(value("fulcrum_http_request_duration_seconds_bucket", **w, le="+Inf"), 8)
        self.assertEqual(value("fulcrum_listener_packets_in_total", **u), 3)
        self.assertEqual(value("fulcrum_listener_packets_out_total", **u), 3)
        self.assertEqual(value("fulcrum_udp_flow_table_full_total", **u), 0)
        backend = {"lb": "web", "listener": f"tcp:{tport}", "server_group": "t",
                   "backend": f"127.0.0.1:{tcp_echo.port}"}
        self.assertEqual(value("fulcrum_backend_connections_total", **backend), 5)
        self.assertEqual(value("fulcrum_backend_up", **backend), 1)
        generation = self.ok(f, "GET", "/v1/status")["generation"]
        self.assertEqual(samples["fulcrum_config_generation"], generation)
        self.assertEqual(samples["fulcrum_workers"], 2)

    def test_health_endpoints_need_no_token(self):
        f = self.daemon()
        self.assertEqual(f.api("GET", "/healthz", token=None)[0], 200)
        self.assertEqual(f.api("GET", "/readyz", token=None)[0], 200)


if __name__ == "__main__":
    unittest.main()
