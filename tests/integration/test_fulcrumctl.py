"""fulcrumctl against the real fulcrumd, used as a new operator would: a daemon started with no
configuration, fulcrumctl run from the daemon's folder (so that it finds ./fulcrum-data on its own),
fulcrum-echo HTTP/TCP backends, curl through the listener. Output formats, errors and exit codes
as docs/fulcrumctl.md describes them."""

import json
import os
import pathlib
import subprocess
import unittest

import yaml

import harness as h

CTL = h.BUILD / "cmd" / "fulcrumctl" / "fulcrumctl"


def clean_env(**extra):
    """The environment without FULCRUM_* variables (discovery must not see the test runner's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULCRUM_")}
    env.update(extra)
    return env


def curl_names(port, n=10, path="/", host=None):
    names = []
    for _ in range(n):
        args = ["curl", "-s", "--max-time", "5", f"http://127.0.0.1:{port}{path}"]
        if host:
            args += ["-H", f"Host: {host}"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=10)
        names.append(out.stdout.strip())
    return names


class FulcrumctlTest(unittest.TestCase):
    def setUp(self):
        self.cleanup = []
        self.d = h.Fulcrumd()  # no YAML: the store is the only truth, as with a bare `fulcrumd`
        self.cleanup.append(self.d.stop)
        self.home = pathlib.Path(self.d.dir.name)
        # The harness keeps the data under <tmp>/data; a default fulcrumd uses ./fulcrum-data.
        # The link makes the operator's layout: fulcrumctl run from <tmp> finds it unaided.
        (self.home / "fulcrum-data").symlink_to("data")

    def tearDown(self):
        h.run_cleanups(self.cleanup)  # every process ends even when one cleanup fails

    def echo(self, name, http=True):
        e = h.Echo(name, http=http)
        self.cleanup.append(e.stop)
        return e

    def ctl(self, *args, want=0, cwd=None, env=None, stdin=None):
        """Runs fulcrumctl; checks its exit status; returns the CompletedProcess."""
        p = subprocess.run([str(CTL), *args], cwd=cwd or self.home, env=env or clean_env(),
                           capture_output=True, text=True, timeout=60, input=stdin)
        self.assertEqual(p.returncode, want,
                         f"fulcrumctl {' '.join(args)} exited {p.returncode}\n"
                         f"stdout: {p.stdout}\nstderr: {p.stderr}")
        # Whatever happened, the token is never shown.
        for token in (self.d.admin_token, self.d.reader_token):
            self.assertNotIn(token, p.stdout + p.stderr)
        return p

    def ctl_json(self, *args):
        return json.loads(self.ctl(*args, "-o", "json").stdout)

    def build_http_lb(self, a, b, port):
        self.ctl("create", "lb", "web", "--address", "127.0.0.1")
        self.ctl("create", "servergroup", "web", "app")
        self.ctl("add-backend", "web", "app", f"127.0.0.1:{a.port}")
        self.ctl("add-backend", "web", "app", f"127.0.0.1:{b.port}", "--weight", "100",
                 "--zone", "z1", "--description", "second echo")
        self.ctl("create", "listener", "web", f"http:{port}", "--server-group", "app")

    # --- A new user --------------------------------------------------------------------------

    def test_new_user_builds_an_http_lb_and_both_backends_answer(self):
        a, b = self.echo("alpha"), self.echo("beta")
        port = h.free_port()
        status = self.ctl("status").stdout
        self.assertIn("Ready:          true", status)
        self.assertEqual(self.ctl("get", "lb").stdout.splitlines(),
                         ["NAME   ADDRESS   TYPE   STATUS   LISTENERS   GROUPS"])

        self.build_http_lb(a, b, port)
        self.assertEqual(set(curl_names(port)), {"alpha", "beta"})

        # get: tables with the resources just made.
        lbs = self.ctl("get", "lb").stdout.splitlines()
        self.assertEqual(lbs[0].split(), ["NAME", "ADDRESS", "TYPE", "STATUS", "LISTENERS",
                                          "GROUPS"])
        self.assertEqual(lbs[1].split(), ["web", "127.0.0.1", "intranet", "active",
                                          f"http:{port}", "app"])
        listeners = self.ctl("get", "listeners", "web").stdout.splitlines()
        self.assertEqual(listeners[1].split(), [f"http:{port}", "running", "app", "wrr", "0"])
        backends = self.ctl("get", "backends", "web", "app").stdout.splitlines()
        self.assertEqual(backends[0].split(), ["ADDRESS", "PORT", "WEIGHT", "ZONE",
                                               "DESCRIPTION"])
        self.assertEqual(backends[1].split(), ["127.0.0.1", str(a.port), "100", "-", "-"])
        self.assertEqual(backends[2].split(), ["127.0.0.1", str(b.port), "100", "z1", "second",
                                               "echo"])
        groups = self.ctl("get", "servergroups", "web").stdout
        self.assertIn(f"127.0.0.1:{a.port},127.0.0.1:{b.port}", groups)

        # -o json / -o yaml: the API's answer as it is.
        lb = self.ctl_json("get", "lb", "web")
        self.assertEqual(lb["name"], "web")
        self.assertEqual([x["port"] for x in lb["server_groups"][0]["backends"]],
                         [a.port, b.port])
        as_yaml = yaml.safe_load(self.ctl("get", "lbs", "-o", "yaml").stdout)
        self.assertEqual(as_yaml["loadbalancers"][0], lb)

        # health: both backends pass their HTTP checks.
        def healthy():
            out = self.ctl("health", "web").stdout
            return out.count(" healthy ") == 2 and out
        out = h.wait_until(healthy, timeout=15, interval=0.2, what="both backends healthy")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["LISTENER", "GROUP", "BACKEND", "STATUS", "WEIGHT"])
        self.assertEqual(lines[1].split(), [f"http:{port}", "app", f"127.0.0.1:{a.port}",
                                            "healthy", "100"])

        # describe: fields, listeners, groups and health in one page.
        text = self.ctl("describe", "lb", "web").stdout
        for want in ("Name:           web", "Address:        127.0.0.1", "\nListeners:\n",
                     f"  http:{port}   running", "\nServer groups:\n", "\nHealth:\n",
                     f"127.0.0.1:{b.port}   healthy"):
            self.assertIn(want, text)

        # explain: a backend of the group, and why.
        text = self.ctl("explain", "web", f"http:{port}", "--client", "10.1.2.3:40000").stdout
        self.assertIn("Server group:   app", text)
        self.assertRegex(text, rf"Backend:        127\.0\.0\.1:({a.port}|{b.port}) \(healthy\)")
        self.assertIn("Reason:", text)

    def test_rules_start_stop_and_backend_removal(self):
        a, b = self.echo("alpha"), self.echo("beta")
        port = h.free_port()
        self.build_http_lb(a, b, port)
        self.ctl("create", "servergroup", "web", "api")
        self.ctl("add-backend", "web", "api", f"127.0.0.1:{b.port}")
        self.ctl("create", "rule", "web", f"http:{port}", "v1", "--domain", "api.example.com",
                 "--path", "/v1", "--server-group", "api")
        self.ctl("create", "rule", "web", f"http:{port}", "old", "--path", "/old",
                 "--redirect", "http://example.com/new")
        rules = self.ctl("get", "rules", "web", f"http:{port}").stdout.splitlines()
        self.assertEqual(rules[1].split(), ["v1", "api.example.com", "/v1", "api"])
        self.assertEqual(rules[2].split(), ["old", "-", "/old", "redirect",
                                            "http://example.com/new"])
        self.assertEqual(set(curl_names(port, n=6, path="/v1/x", host="api.example.com")),
                         {"beta"})
        text = self.ctl("explain", "web", f"http:{port}", "--client", "10.0.0.1:1",
                        "--host", "api.example.com", "--path", "/v1/users").stdout
        self.assertIn("Rule:           v1", text)
        self.assertIn(f"Backend:        127.0.0.1:{b.port}", text)
        text = self.ctl("explain", "web", f"http:{port}", "--client", "10.0.0.1:1",
                        "--path", "/old/page").stdout
        self.assertIn("Redirect:       http://example.com/new", text)

        # stop closes the socket, start opens it again.
        self.assertIn("stopped", self.ctl("stop", "listener", "web", f"http:{port}").stdout)
        self.assertEqual(self.ctl_json("get", "listeners", "web")["listeners"][0]["status"],
                         "stopped")
        refused = subprocess.run(["curl", "-s", "--max-time", "3", f"http://127.0.0.1:{port}/"],
                                 capture_output=True, timeout=10)
        self.assertEqual(refused.returncode, 7)  # curl: failed to connect
        self.ctl("start", "listener", "web", f"http:{port}")
        self.assertIn(curl_names(port, n=1)[0], {"alpha", "beta"})

        # remove-backend: alpha gets no new requests.
        self.ctl("remove-backend", "web", "app", f"127.0.0.1:{a.port}")
        self.assertEqual(set(curl_names(port, n=6)), {"beta"})
        self.assertNotIn(str(a.port), self.ctl("get", "backends", "web", "app").stdout)

        # Deleting in dependency order; a group still in use is a conflict.
        p = self.ctl("delete", "servergroup", "web", "api", want=1)
        self.assertIn("[409 Conflict]", p.stderr)
        self.ctl("delete", "rule", "web", f"http:{port}", "v1")
        self.ctl("delete", "servergroup", "web", "api")
        self.ctl("delete", "listener", "web", f"http:{port}")
        self.ctl("delete", "lb", "web")
        self.assertEqual(len(self.ctl("get", "lb").stdout.splitlines()), 1)

    # --- Errors ------------------------------------------------------------------------------

    def test_errors_name_the_field_and_exit_1(self):
        a, b = self.echo("alpha"), self.echo("beta")
        port = h.free_port()
        self.build_http_lb(a, b, port)
        p = self.ctl("add-backend", "web", "app", "127.0.0.1:9", "--weight", "500", want=1)
        self.assertRegex(p.stderr, r"^fulcrumctl: must be 0–100 \(field: [a-z\[\]0-9.]*weight\) "
                                   r"\[400 InvalidParameter\]")
        self.assertNotIn("127.0.0.1:9 ", self.ctl("get", "backends", "web", "app").stdout)

        # A reader may read and may not change anything.
        reader = ["--token", self.d.reader_token]
        self.ctl(*reader, "get", "lb")
        p = self.ctl(*reader, "create", "lb", "other", "--address", "127.0.0.1", want=1)
        self.assertIn("[403 Forbidden]", p.stderr)
        p = self.ctl(*reader, "remove-backend", "web", "app", f"127.0.0.1:{a.port}", want=1)
        self.assertIn("403", p.stderr)
        self.assertIn(str(a.port), self.ctl("get", "backends", "web", "app").stdout)

        # Wrong token, no token: 401 with a hint, never the token.
        p = self.ctl("--token", "not-the-token", "get", "lb", want=1)
        self.assertIn("[401 Unauthorized]", p.stderr)
        self.assertIn("the token from --token was refused", p.stderr)
        p = self.ctl("--server", self.d.api_url, "get", "lb", cwd="/", want=1)
        self.assertIn("no token was given", p.stderr)

        p = self.ctl("get", "lb", "nope", want=1)
        self.assertIn("[404 NotFound]", p.stderr)
        p = self.ctl("create", "listener", "web", f"http:{port}", "--server-group", "app", want=1)
        self.assertIn("409", p.stderr)

    def test_usage_errors_exit_2(self):
        self.ctl(want=2)
        self.ctl("get", want=2)
        self.ctl("frobnicate", want=2)
        self.ctl("get", "lb", "-o", "xml", want=2)
        self.ctl("add-backend", "web", "app", "127.0.0.1:80", "--weight", "heavy", want=2)
        self.ctl("add-backend", "web", "app", "127.0.0.1", want=2)
        self.ctl("create", "listener", "web", "http8080", "--server-group", "app", want=2)
        self.ctl("create", "rule", "web", "http:80", "r", "--server-group", "a",
                 "--redirect", "http://x/", want=2)
        self.ctl("explain", "web", "http:80", want=2)  # --client is required
        self.assertIn("Usage:", self.ctl("--help").stdout)

    def test_connection_failure_names_the_server_and_discovery(self):
        free = h.free_port()
        p = self.ctl("--server", f"http://127.0.0.1:{free}", "status", want=1)
        self.assertIn(f"cannot connect to http://127.0.0.1:{free}", p.stderr)
        self.assertIn("$FULCRUM_SERVER", p.stderr)
        self.assertIn("admin.url", p.stderr)
        p = self.ctl("--server", "https://127.0.0.1:1", "status", want=1)
        self.assertIn("https is not supported", p.stderr)

    # --- Nodes and status ----------------------------------------------------------------------

    def test_status_store_and_nodes_of_a_single_node(self):
        # A SQLite node: the store object of /v1/status, and /v1/nodes lists the node itself.
        status = self.ctl("status").stdout
        self.assertIn("Store:          sqlite\n", status)
        self.assertIn("Store file:     ", status)
        self.assertIn("Reachable:      true\n", status)
        self.assertIn("Config source:  store\n", status)
        nodes = self.ctl_json("get", "nodes")["nodes"]
        self.assertEqual(len(nodes), 1, nodes)
        me = nodes[0]
        self.assertEqual(me["state"], "up")
        table = self.ctl("get", "node").stdout.splitlines()
        self.assertEqual(table[0].split(), ["NAME", "ZONE", "STATE", "REVISION", "GENERATION",
                                            "LAST-SEEN", "ADMIN"])
        self.assertEqual(table[1].split()[0], me["name"])
        self.assertIn(" up ", table[1])
        # The time (RFC 3339 UTC) and its age.
        self.assertRegex(table[1], r" \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \(\d+s ago\) ")
        self.assertEqual(yaml.safe_load(self.ctl("get", "nodes", "-o", "yaml").stdout)["nodes"][0]
                         ["name"], me["name"])
        # A node that is up is not deleted (409), an unknown one is 404; both exit 1.
        p = self.ctl("delete", "node", me["name"], want=1)
        self.assertIn("[409 Conflict]", p.stderr)
        p = self.ctl("delete", "node", "no-such-node", want=1)
        self.assertIn("[404 NotFound]", p.stderr)
        self.ctl("delete", "node", want=2)  # NAME is required
        p = self.ctl("--token", self.d.reader_token, "delete", "node", "x", want=1)
        self.assertIn("[403", p.stderr)

    # --- Discovery ---------------------------------------------------------------------------

    def test_discovery_order(self):
        # ./fulcrum-data next to the daemon (every other test relies on it), --data-dir from
        # anywhere, the environment, and flags over the environment.
        self.ctl("status")
        self.ctl("--data-dir", str(self.d.data), "status", cwd="/")
        env = clean_env(FULCRUM_SERVER=self.d.api_url, FULCRUM_TOKEN=self.d.admin_token)
        self.ctl("status", cwd="/", env=env)
        bad = clean_env(FULCRUM_SERVER="http://127.0.0.1:1", FULCRUM_TOKEN="wrong")
        self.ctl("--server", self.d.api_url, "--token", self.d.admin_token, "status", cwd="/",
                 env=bad)
        p = self.ctl("status", env=bad, want=1)  # the environment beats ./fulcrum-data
        self.assertIn("$FULCRUM_SERVER", p.stderr)

    # --- apply -------------------------------------------------------------------------------

    def test_apply_dry_run_then_for_real(self):
        tcp_a, tcp_b = self.echo("tcp-a", http=False), self.echo("tcp-b", http=False)
        port = h.free_port()
        conf = self.home / "conf"
        (conf / "certs").mkdir(parents=True)
        made = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=web.example.com", "-keyout", str(conf / "certs" / "web.key"),
             "-out", str(conf / "certs" / "web.pem")], capture_output=True, timeout=60)
        self.assertEqual(made.returncode, 0, made.stderr)
        (conf / "lb.yaml").write_text(f"""\
loadbalancers:
  - name: shop
    address: 127.0.0.1
    server_groups:
      - name: app
        backends:
          - {{address: 127.0.0.1, port: {tcp_a.port}, weight: 100}}
          - {{address: 127.0.0.1, port: {tcp_b.port}, weight: 100}}
    listeners:
      - protocol: tcp
        port: {port}
        server_group: app
        scheduler: rr
certificates:
  - {{name: web-cert, type: server, cert_file: certs/web.pem, key_file: certs/web.key}}
acls:
  - {{name: office, entries: [{{cidr: 10.0.0.0/8, comment: office}}]}}
""")
        out = self.ctl("apply", "-f", "conf/lb.yaml", "--dry-run").stdout
        self.assertIn("+ create /fulcrum/lb/shop\n", out)
        self.assertIn(f"+ create /fulcrum/lb/shop/listener/tcp:{port}\n", out)
        self.assertIn("+ create /fulcrum/certificate/web-cert\n", out)
        self.assertIn("dry run: valid, nothing was changed", out)
        self.assertEqual(len(self.ctl("get", "lb").stdout.splitlines()), 1)
        self.assertEqual(len(self.ctl("get", "certs").stdout.splitlines()), 1)

        out = self.ctl("apply", "-f", "conf/lb.yaml").stdout
        self.assertIn("+ create /fulcrum/acl/office\n", out)
        self.assertRegex(out, r"applied: revision \d+, generation \d+\n")
        self.assertEqual({h.ask_name(port) for _ in range(4)}, {"tcp-a", "tcp-b"})
        certs = self.ctl("get", "certs").stdout.splitlines()
        self.assertEqual(certs[1].split(), ["web-cert", "server", "1"])
        cert = self.ctl_json("get", "certs")["certificates"][0]
        self.assertNotIn("key", cert)  # write-only
        self.assertIn("office", self.ctl("get", "acls").stdout)

        self.assertIn("no changes", self.ctl("apply", "-f", "conf/lb.yaml").stdout)

        # A change shows as an update; JSON from stdin works the same way.
        doc = yaml.safe_load((conf / "lb.yaml").read_text())
        doc["loadbalancers"][0]["listeners"][0]["scheduler"] = "wrr"
        doc["certificates"] = []
        out = self.ctl("apply", "-f", "-", stdin=json.dumps(doc)).stdout
        self.assertIn(f"~ update /fulcrum/lb/shop/listener/tcp:{port}\n", out)
        self.assertIn("- delete /fulcrum/certificate/web-cert\n", out)

        # An invalid document changes nothing and names the field.
        doc["loadbalancers"][0]["listeners"][0]["scheduler"] = "fastest"
        (conf / "bad.json").write_text(json.dumps(doc))
        p = self.ctl("apply", "-f", "conf/bad.json", want=1)
        self.assertIn("(field: loadbalancers[0].listeners[0].scheduler)", p.stderr)
        self.assertEqual(self.ctl_json("get", "listeners", "shop")["listeners"][0]["scheduler"],
                         "wrr")

    def test_create_from_files(self):
        (self.home / "lb.yaml").write_text("name: files\naddress: 127.0.0.1\n"
                                           "tags: {team: edge}\n")
        self.ctl("create", "lb", "-f", "lb.yaml")
        self.assertEqual(self.ctl_json("get", "lb", "files")["tags"], {"team": "edge"})
        (self.home / "sg.json").write_text(json.dumps(
            {"name": "pool", "backends": [{"address": "127.0.0.1", "port": 9001, "weight": 7}]}))
        self.ctl("create", "servergroup", "files", "-f", "sg.json")
        backends = self.ctl("get", "backends", "files", "pool").stdout.splitlines()
        self.assertEqual(backends[1].split()[:3], ["127.0.0.1", "9001", "7"])
        (self.home / "acl.yaml").write_text("name: lan\nentries:\n  - {cidr: 192.168.0.0/16}\n")
        self.ctl("create", "acl", "-f", "acl.yaml")
        self.ctl("create", "acl", "wan", "--entry", "100.64.0.0/10=carrier")
        acls = self.ctl_json("get", "acls")["acls"]
        self.assertEqual([a["name"] for a in acls], ["lan", "wan"])
        self.assertEqual(acls[1]["entries"][0]["comment"], "carrier")
        self.ctl("delete", "acl", "wan")


if __name__ == "__main__":
    unittest.main()
