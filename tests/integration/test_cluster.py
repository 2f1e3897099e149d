"""Cluster mode (`--store etcd://...`) with real etcd members and real fulcrumd nodes on loopback.

Every node serves every load balancer: nodes bind the same listener address and port
(SO_REUSEPORT) and the kernel spreads connections over them, so which node answers a connection is
not ours to choose. A node's own view is read through its own API (its answers, and the
`Fulcrum-Revision` header of every API response); to prove that one node's data plane serves,
the other nodes are stopped (SIGTERM, by pid) and traffic is sent. etcd members are killed with
kill -9 and restarted on their data directories (etcd_cluster.py).
"""
import contextlib
import datetime
import http.client
import json
import pathlib
import random
import re
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import certs as certs_mod
import etcd_cluster as ec
import harness as h
from test_http_listener import Traffic, read_response, request

GROUP = "/v1/loadbalancers/web/servergroups/app"


def lb_doc(backends, listeners=(), name="web", group="app"):
    """One load balancer on 127.0.0.1: one server group of loopback `backends` (ports)."""
    return {"name": name, "address": "127.0.0.1",
            "server_groups": [{"name": group, "backends": [{"address": "127.0.0.1", "port": p}
                                                            for p in backends]}],
            "listeners": list(listeners)}


def http_listener(port, **extra):
    return {"protocol": "http", "port": port, "server_group": "app", "scheduler": "rr",
            "health_check": {"enabled": False}, **extra}


def names(port, n=6):
    """The backends that answered n fresh connections through the listener."""
    return {request(port)[2].decode().strip() for _ in range(n)}


def canonical(doc):
    """The document with its lists of named resources in name order."""
    if not isinstance(doc, dict):
        return doc
    out = dict(doc)
    for key in ("loadbalancers", "certificates", "acls"):
        if isinstance(out.get(key), list):
            out[key] = sorted(out[key], key=lambda x: x.get("name", ""))
    return out


def error_code(answer):
    return answer.get("error", {}).get("code") if isinstance(answer, dict) else None


def backend_ports(node, path=GROUP):
    status, group, _ = node.get(path)
    if status != 200:
        return None
    return [b["port"] for b in group["backends"]]


class ClusterTest(unittest.TestCase):
    def setUp(self):
        self.cleanup = []
        self.nodes = []
        self.clusters = []
        self.tokens = ec.Tokens()
        self.cleanup.append(self.tokens.cleanup)

    def tearDown(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        failed = result is not None and any(t is self for t, _ in result.failures + result.errors)
        if failed:  # the logs of a failed test
            for n in self.nodes:
                with contextlib.suppress(Exception):
                    print(f"\n--- node {n.name} log (tail)\n{n.read_log()[-5000:]}")
            for c in self.clusters:
                with contextlib.suppress(Exception):
                    print(c.logs())
        errors = []
        for fn in reversed(self.cleanup):  # every process ends, even after one cleanup failed
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - e.g. a sanitizer report in a node's log
                errors.append(e)
        if errors:
            raise errors[0]

    # --- helpers ---------------------------------------------------------------------------------

    def etcd(self, n=1, **kw):
        c = ec.EtcdCluster(n, **kw)
        self.clusters.append(c)
        self.cleanup.append(c.close)
        return c

    def node(self, etcd, name, zone="z1", **kw):
        n = ec.Node(etcd, self.tokens, name, zone=zone, **kw)
        self.nodes.append(n)
        self.cleanup.append(n.stop)
        return n

    def echo(self, name):
        e = h.Echo(name, http=True)
        self.cleanup.append(e.stop)
        return e

    def ok(self, node, method, path, body=None, want=(200, 201, 204), timeout=15.0):
        status, answer, headers = node.api(method, path, body, timeout=timeout)
        self.assertIn(status, want, f"{node.name}: {method} {path}: {status} {answer}")
        self.assertIsNotNone(ec.revision_of(headers),
                             f"{node.name}: {method} {path}: no Fulcrum-Revision header")
        return answer

    def wait_same_config(self, nodes, timeout=5.0):
        """Waits until every node serves the same document (GET /v1/config, lists of named
        resources compared in name order: see test_every_node_serves_every_load_balancer for the
        order itself); returns (document, {node: its Fulcrum-Revision})."""
        last = {}

        def same():
            seen = [n.get("/v1/config") for n in nodes]
            last["seen"] = seen
            if all(s == 200 for s, _, _ in seen) and \
                    all(canonical(c) == canonical(seen[0][1]) for _, c, _ in seen):
                return seen[0][1], {n.name: r for n, (_, _, r) in zip(nodes, seen)}
            return None
        try:
            return h.wait_until(same, timeout=timeout, interval=0.05, what="same configuration")
        except AssertionError:
            views = {n.name: [s, c, r] for n, (s, c, r) in zip(nodes, last["seen"])}
            raise AssertionError(f"nodes disagree after {timeout}s: "
                                 f"{json.dumps(views)[:3000]}") from None

    def assert_same_revision(self, nodes, timeout=2.0):
        problem = self.revision_problem(nodes, timeout)
        self.assertIsNone(problem)

    def revision_problem(self, nodes, timeout=2.0):
        """Nodes that serve the same document report the same store revision: the
        Fulcrum-Revision header and /v1/status agree across nodes (within `timeout`). Returns
        None, or what differs (for tests that check more before they fail)."""
        last = {}

        def same():
            revs = {}
            for n in nodes:
                _, st, header = n.get("/v1/status")
                revs[n.name] = (header, st.get("revision"))
            last["revs"] = revs
            return len(set(revs.values())) == 1
        try:
            h.wait_until(same, timeout=timeout, interval=0.05, what="same revision")
            return None
        except AssertionError:
            return (f"nodes serving the same document report different revisions "
                    f"(Fulcrum-Revision, /v1/status revision): {last['revs']}")

    def order_problem(self, nodes):
        """None when GET /v1/config lists the load balancers in one order on every node."""
        orders = {n.name: [lb["name"] for lb in n.get("/v1/config")[1]["loadbalancers"]]
                  for n in nodes}
        if len({tuple(o) for o in orders.values()}) == 1:
            return None
        return f"GET /v1/config lists the load balancers in different orders: {orders}"

    def nodes_view(self, node):
        status, answer, _ = node.get("/v1/nodes")
        self.assertEqual(status, 200, answer)
        return {n["name"]: n for n in answer["nodes"]}

    # --- flags and start-up ----------------------------------------------------------------------

    def test_bad_store_flag_exits_2_naming_store(self):
        for bad in ("etcd://", "etcd://127.0.0.1", "etcd://127.0.0.1:", "etcd://127.0.0.1:http",
                    "etcd://127.0.0.1:0", "etcd://127.0.0.1:70000", "etcd://127.0.0.1:2379,",
                    "etcd://ftp://127.0.0.1:2379", "zk://127.0.0.1:2181", "127.0.0.1:2379", ""):
            rc, out, took = ec.run_fulcrumd(["--store", bad, "--node", "n1",
                                             *self.tokens.args()], timeout=20)
            self.assertEqual(rc, 2, f"--store {bad!r}: exit {rc}\n{out}")
            self.assertIn("--store", out, f"--store {bad!r}: {out}")
            self.assertLess(took, 5, f"--store {bad!r} took {took:.1f}s to be refused")

    def test_unreachable_etcd_at_first_start_exits_2_after_a_bounded_wait(self):
        refused = h.free_port()  # nothing listens there
        # A member that accepts connections and never answers (the kernel completes the
        # handshake into the backlog of a socket nobody accepts from).
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        self.cleanup.append(silent.close)
        cases = {"refused": f"etcd://127.0.0.1:{refused}",
                 "silent": f"etcd://127.0.0.1:{silent.getsockname()[1]}",
                 "both": f"etcd://127.0.0.1:{refused},http://127.0.0.1:"
                         f"{silent.getsockname()[1]}"}
        results = {}

        def run(kind, flag):
            results[kind] = ec.run_fulcrumd(["--store", flag, "--node", "n1",
                                             *self.tokens.args()], timeout=40)

        threads = [threading.Thread(target=run, args=item) for item in cases.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for kind, flag in cases.items():
            rc, out, took = results[kind]
            self.assertEqual(rc, 2, f"{kind} ({flag}): exit {rc} after {took:.1f}s\n{out}")
            self.assertIn("--store", out, f"{kind}: {out}")
            port = flag.rsplit(":", 1)[1]
            self.assertIn(f"127.0.0.1:{port}", out, f"{kind}: the endpoint is not named: {out}")
            self.assertTrue(4 <= took <= 20, f"{kind}: exited after {took:.1f}s, want ≈10s")

    # --- active-active ---------------------------------------------------------------------------

    def test_every_node_serves_every_load_balancer(self):
        etcd = self.etcd(1)
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        na = self.node(etcd, "A", "z1")
        nb = self.node(etcd, "B", "z1")
        nc = self.node(etcd, "C", "z2")
        created = self.ok(na, "POST", "/v1/loadbalancers", lb_doc([a.port], [http_listener(port)]))
        self.assertEqual(created["name"], "web")
        # A second one, created after "web" although its name sorts first.
        self.ok(na, "POST", "/v1/loadbalancers", {"name": "api", "address": "127.0.0.1"})
        config, revisions = self.wait_same_config([na, nb, nc], timeout=1.0)
        self.assertEqual(sorted(lb["name"] for lb in config["loadbalancers"]), ["api", "web"])
        order_problems = [self.order_problem([na, nb, nc])]
        self.assert_same_revision([na, nb, nc])
        for n in (na, nb, nc):
            status, lb, rev = n.get("/v1/loadbalancers/web")
            self.assertEqual(status, 200, f"{n.name}: {lb}")
            self.assertEqual(lb["listeners"][0]["port"], port)
            self.assertEqual(rev, revisions[n.name])
        self.assertEqual(names(port, 4), {"a"})

        # A 2xx from B: committed in etcd, B serves it already; A and C follow within 1 s.
        self.ok(nb, "POST", GROUP + "/backends", {"address": "127.0.0.1", "port": b.port})
        answered = time.monotonic()
        self.assertIn(b.port, backend_ports(nb))
        stored = etcd.get_prefix("/fulcrum/")
        self.assertTrue(any(f'"port":{b.port}' in v.decode().replace(" ", "")
                            for v in stored.values()), f"not in etcd: {stored}")
        for n in (na, nc):
            h.wait_until(lambda: b.port in (backend_ports(n) or []), timeout=1.0,
                         interval=0.02, what=f"{n.name} follows B's change within 1 s")
        lag = time.monotonic() - answered
        self.assertLess(lag, 1.0)
        self.wait_same_config([na, nb, nc], timeout=1.0)

        # Each node's own data plane: the other two stopped, traffic through the shared port.
        nb.terminate()
        nc.terminate()
        self.assertEqual(names(port), {"a", "b"}, "node A alone")
        nb.start()
        na.terminate()
        self.assertEqual(names(port), {"a", "b"}, "node B alone")
        nc.start()
        nb.terminate()
        self.assertEqual(names(port), {"a", "b"}, "node C alone")
        # A 2xx from C (the only node running) means C's data plane already serves it.
        self.ok(nc, "DELETE", GROUP + f"/backends/127.0.0.1:{a.port}")
        self.assertEqual(names(port), {"b"}, "C serves its own change at once")
        # The stopped nodes catch up when they start again (etcd's revision moved meanwhile
        # without a configuration change: a key that is not Fulcrum's).
        etcd.put("/elsewhere/unrelated", "x")
        na.start()
        nb.start()
        config, _ = self.wait_same_config([na, nb, nc], timeout=5.0)
        web = next(lb for lb in config["loadbalancers"] if lb["name"] == "web")
        self.assertEqual([x["port"] for x in web["server_groups"][0]["backends"]], [b.port])
        # Same document, same order, same revision: A and B read theirs again at start.
        order_problems.append(self.order_problem([na, nb, nc]))
        problems = order_problems + [self.revision_problem([na, nb, nc])]
        self.assertEqual([p for p in problems if p], [])

    def test_status_names_the_store_and_its_revision(self):
        etcd = self.etcd(3)
        na = self.node(etcd, "A", "z1")
        # Endpoints written with their scheme (http://H:P) are accepted too.
        nb = self.node(etcd, "B", "z2", store=etcd.store_flag(explicit_scheme=True))
        a = self.echo("a")
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([a.port], [http_listener(h.free_port())]))
        self.wait_same_config([na, nb], timeout=1.0)
        for n in (na, nb):
            status, st, rev = n.get("/v1/status")
            self.assertEqual(status, 200, st)
            store = st["store"]
            self.assertIsInstance(store, dict, st)
            self.assertEqual(store["kind"], "etcd")
            got = sorted(store["endpoints"])
            self.assertEqual(len(got), 3, got)
            for m in etcd.members:
                self.assertTrue(any(e.endswith(f"127.0.0.1:{m.client_port}") for e in got), got)
            self.assertIs(store["reachable"], True)
            self.assertEqual(st["config_source"], "store")
            self.assertIsInstance(store["revision"], int)
            self.assertGreater(store["revision"], 0)
            self.assertLessEqual(store["revision"], etcd.revision())
            self.assertEqual(rev, st["revision"] if "revision" in st else store["revision"])
            self.assertEqual(st["node"], n.name)
            self.assertEqual(st["zone"], {"A": "z1", "B": "z2"}[n.name])
            # /metrics says the same: the revision, the store reached, both nodes up.
            _, text, _ = n.api("GET", "/metrics", token="reader")
            text = text if isinstance(text, str) else text.decode()
            self.assertIn(f"\nfulcrum_store_revision {store['revision']}\n", text)
            self.assertIn("\nfulcrum_store_reachable 1\n", text)
            h.wait_until(lambda: '\nfulcrum_cluster_nodes{state="up"} 2\n' in
                         n.api("GET", "/metrics", token="reader")[1], timeout=5,
                         what=f"{n.name}: two nodes up in /metrics")
        # Every answer tells the revision its node serves, errors and plain text included.
        for method, path, body, token, want in (
                ("GET", "/v1/config", None, "reader", 200),
                ("GET", "/v1/nodes", None, "reader", 200),
                ("GET", "/metrics", None, "reader", 200),
                ("GET", "/healthz", None, None, 200),
                ("GET", "/readyz", None, None, 200),
                ("GET", "/v1/loadbalancers/nosuch", None, "reader", 404),
                ("POST", "/v1/loadbalancers", {"name": "x", "bogus": 1}, "admin", 400),
                ("DELETE", "/v1/loadbalancers/web", None, "reader", 403)):
            status, answer, headers = nb.api(method, path, body, token=token)
            self.assertEqual(status, want, f"{method} {path}: {answer}")
            self.assertIsNotNone(ec.revision_of(headers),
                                 f"{method} {path} ({status}): no Fulcrum-Revision header")

    def test_nodes_show_up_and_down_and_a_down_node_can_be_removed(self):
        etcd = self.etcd(1)
        na = self.node(etcd, "A", "z1")
        nb = self.node(etcd, "B", "z2")
        nc = self.node(etcd, "C", "z2")
        zones = {"A": "z1", "B": "z2", "C": "z2"}

        def all_up():
            view = self.nodes_view(na)
            return view if set(view) == {"A", "B", "C"} and \
                all(v["state"] == "up" for v in view.values()) else None

        view = h.wait_until(all_up, timeout=10, interval=0.1, what="three nodes up")
        # Each record tells the revision and generation its node serves (rewritten on change).
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([]))

        def records_current():
            view = self.nodes_view(nb)
            for n in (na, nb, nc):
                st = n.get("/v1/status")[1]
                if (view[n.name]["revision"], view[n.name]["generation"]) != \
                        (st["revision"], st["generation"]):
                    return None
            return view

        try:
            view = h.wait_until(records_current, timeout=5, interval=0.1,
                                what="node records at their nodes' revisions")
        except AssertionError:
            raise AssertionError(f"records {self.nodes_view(nb)} vs status "
                                 f"{[n.get('/v1/status')[1] for n in (na, nb, nc)]}") from None
        now_ms = time.time() * 1000
        for name, n in (("A", na), ("B", nb), ("C", nc)):
            rec = view[name]
            self.assertEqual(rec["zone"], zones[name])
            self.assertEqual(rec["admin"].rstrip("/"), n.api_url.rstrip("/"), rec)
            self.assertIsInstance(rec["revision"], int)
            self.assertIsInstance(rec["generation"], int)
            self.assertLess(abs(rec["last_seen_unix_ms"] - now_ms), 15000, rec)
            seen = datetime.datetime.fromisoformat(rec["last_seen"].replace("Z", "+00:00"))
            self.assertIsNotNone(seen.tzinfo, rec)  # RFC 3339: with an offset
            self.assertLess(abs(seen.timestamp() * 1000 - rec["last_seen_unix_ms"]), 1500, rec)
        self.assertEqual(set(self.nodes_view(nc)), {"A", "B", "C"})  # any node tells

        status, answer, _ = nb.api("DELETE", "/v1/nodes/C")
        self.assertEqual(status, 409, answer)
        self.assertEqual(error_code(answer), "Conflict")

        stopped = time.monotonic()
        nb.terminate()  # SIGTERM
        nc.kill9()      # its lease expires
        down = {}

        def both_down():
            view = self.nodes_view(na)
            for name in ("B", "C"):
                if name in view and view[name]["state"] == "down" and name not in down:
                    down[name] = time.monotonic() - stopped
            return len(down) == 2

        h.wait_until(both_down, timeout=12, interval=0.1, what="B and C shown down")
        self.assertLess(down["C"], 11.0)  # lease TTL 6 s
        self.assertLess(down["B"], 3.0)   # SIGTERM revokes the lease at once
        self.assertEqual(self.nodes_view(na)["A"]["state"], "up")

        status, answer, _ = na.api("DELETE", "/v1/nodes/B")
        self.assertEqual(status, 204, answer)
        view = self.nodes_view(na)
        self.assertNotIn("B", view)
        self.assertEqual(view["C"]["state"], "down")
        status, answer, _ = na.api("DELETE", "/v1/nodes/nosuch")
        self.assertEqual(status, 404, answer)
        status, answer, _ = na.api("DELETE", "/v1/nodes/C", token="reader")
        self.assertEqual(status, 403, answer)

        nc.start()  # registers again
        h.wait_until(lambda: self.nodes_view(na).get("C", {}).get("state") == "up", timeout=5,
                     interval=0.1, what="C up again")

    # --- no lost update --------------------------------------------------------------------------

    def test_parallel_adds_on_two_nodes_lose_no_update(self):
        etcd = self.etcd(1)
        na = self.node(etcd, "A")
        nb = self.node(etcd, "B")
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([]))
        self.wait_same_config([na, nb], timeout=1.0)
        results = {"A": [], "B": []}

        def adder(node, base):
            for i in range(100):
                status, answer, _ = node.api("POST", GROUP + "/backends",
                                             {"address": "127.0.1.1", "port": base + i},
                                             timeout=15)
                results[node.name].append((base + i, status, answer if status >= 300 else None))

        threads = [threading.Thread(target=adder, args=(na, 20000)),
                   threading.Thread(target=adder, args=(nb, 20100))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for name in ("A", "B"):
            bad = [r for r in results[name] if r[1] not in (200, 201)]
            self.assertEqual(bad, [], f"node {name}")
            self.assertEqual(len(results[name]), 100)
        want = set(range(20000, 20200))
        for n in (na, nb):
            h.wait_until(lambda: set(backend_ports(n) or []) == want, timeout=2, interval=0.05,
                         what=f"node {n.name} has all 200 backends")
        self.wait_same_config([na, nb], timeout=1.0)

        # The same backend added through both nodes at once: one wins, the other is a 409.
        for k in range(10):
            port = 21000 + k
            barrier = threading.Barrier(2)
            got = {}

            def add(node):
                barrier.wait(timeout=10)
                got[node.name] = node.api("POST", GROUP + "/backends",
                                          {"address": "127.0.1.1", "port": port}, timeout=15)

            pair = [threading.Thread(target=add, args=(n,)) for n in (na, nb)]
            for t in pair:
                t.start()
            for t in pair:
                t.join(timeout=30)
            statuses = sorted(got[n][0] for n in ("A", "B"))
            self.assertIn(statuses, ([200, 409], [201, 409]), f"port {port}: {got}")
            loser = next(got[n][1] for n in ("A", "B") if got[n][0] == 409)
            self.assertEqual(error_code(loser), "Conflict", loser)
        want |= set(range(21000, 21010))
        for n in (na, nb):
            h.wait_until(lambda: sorted(backend_ports(n) or []) == sorted(want), timeout=2,
                         interval=0.05, what=f"node {n.name}: 210 backends, no duplicates")

    # --- static stability ------------------------------------------------------------------------

    def test_nodes_keep_serving_when_every_etcd_member_dies(self):
        etcd = self.etcd(3)
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        na = self.node(etcd, "A")
        nb = self.node(etcd, "B")
        self.ok(na, "POST", "/v1/loadbalancers",
                lb_doc([a.port, b.port], [http_listener(port, drain_timeout=30)]))
        self.wait_same_config([na, nb], timeout=1.0)
        traffic = Traffic(port, keep_alive=2, new_connection_ports=(port,), names=(b"a", b"b"))
        traffic.start()
        try:
            time.sleep(0.5)
            before_kill = traffic.ok
            etcd.kill9_all()
            killed = time.monotonic()
            mutations = {}

            def mutate(node):
                t0 = time.monotonic()
                try:
                    status, answer, headers = node.api(
                        "POST", GROUP + "/backends", {"address": "127.0.0.1", "port": 9},
                        timeout=30)
                    mutations[node.name] = (status, answer, time.monotonic() - t0, headers)
                except OSError as e:
                    mutations[node.name] = (None, repr(e), time.monotonic() - t0, {})

            movers = [threading.Thread(target=mutate, args=(n,)) for n in (na, nb)]
            for t in movers:
                t.start()
            for t in movers:
                t.join(timeout=40)
            unnamed = []
            for name, (status, answer, took, headers) in sorted(mutations.items()):
                self.assertEqual(status, 503, f"node {name}: {status} {answer} after {took:.1f}s")
                self.assertEqual(error_code(answer), "StoreUnavailable", answer)
                message = answer["error"]["message"]
                missing = [m.client_url for m in etcd.members
                           if f"127.0.0.1:{m.client_port}" not in message]
                if missing:  # checked at the end, after the rest
                    unnamed.append(f"node {name}: {missing} not named in {message!r}")
                self.assertLess(took, 12.0, f"node {name}: the 503 took {took:.1f}s")
                self.assertIsNotNone(ec.revision_of(headers))
            # GETs answer from the node's copy; the mutation changed nothing.
            for n in (na, nb):
                t0 = time.monotonic()
                status, group, _ = n.get(GROUP)
                self.assertEqual(status, 200, group)
                self.assertLess(time.monotonic() - t0, 2.0)
                self.assertEqual(sorted(x["port"] for x in group["backends"]),
                                 sorted([a.port, b.port]))
                self.assertEqual(n.get("/v1/config")[0], 200)
                h.wait_until(lambda: n.get("/v1/status")[1]["store"]["reachable"] is False,
                             timeout=10, interval=0.2, what=f"{n.name}: store unreachable")
            # Traffic went on through all of it, for at least 3 s after the kill.
            remaining = 3.0 - (time.monotonic() - killed)
            if remaining > 0:
                time.sleep(remaining)
            after_kill = traffic.ok - before_kill
        finally:
            traffic.stop()
        self.assertEqual(traffic.failures, [])
        self.assertGreater(after_kill, 100, "too little traffic went through after the kill")

        # etcd returns: mutations work again, and both nodes follow.
        etcd.restart_all()

        def mutation_ok():
            status, answer, _ = na.api("POST", GROUP + "/backends",
                                       {"address": "127.0.0.1", "port": 9}, timeout=15)
            return status in (200, 201) or (status == 409)  # 409: an earlier try committed

        h.wait_until(mutation_ok, timeout=20, interval=0.5, what="mutations work again")
        h.wait_until(lambda: 9 in (backend_ports(nb) or []), timeout=5, interval=0.1,
                     what="B follows after etcd returned")
        self.assertIs(nb.get("/v1/status")[1]["store"]["reachable"], True)
        self.assertEqual(unnamed, [], "the 503's message names every endpoint")

    def test_a_node_started_without_etcd_serves_its_last_known_good_configuration(self):
        etcd = self.etcd(1)
        a, b = self.echo("a"), self.echo("b")
        port = h.free_port()
        na = self.node(etcd, "A")
        nb = self.node(etcd, "B")
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([a.port], [http_listener(port)]))
        self.wait_same_config([na, nb], timeout=1.0)
        h.wait_until(lambda: na.cache_path.exists() and "web" in na.cache_path.read_text(),
                     timeout=3, what="A's cluster-cache.json")
        json.loads(na.cache_path.read_text())  # a complete JSON document
        self.assertEqual(na.cache_path.stat().st_mode & 0o077, 0, "the cache holds secrets")
        na.terminate()
        # A change made while A is down...
        self.ok(nb, "POST", GROUP + "/backends", {"address": "127.0.0.1", "port": b.port})
        nb.terminate()
        etcd.kill9(0)
        # ... A, started while etcd is unreachable, serves its last applied configuration.
        t0 = time.monotonic()
        na.start()
        started_in = time.monotonic() - t0
        self.assertLess(started_in, 25, "A took too long to serve from its cache")
        self.assertEqual(names(port), {"a"})
        status, st, _ = na.get("/v1/status")
        self.assertEqual(status, 200, st)
        self.assertEqual(st["config_source"], "cache", st)
        self.assertIs(st["store"]["reachable"], False, st)
        self.assertRegex(na.read_log(), re.compile(r"last.known.good", re.I))
        self.assertEqual(backend_ports(na), [a.port])
        status, answer, _ = na.api("POST", GROUP + "/backends",
                                   {"address": "127.0.0.1", "port": 9}, timeout=30)
        self.assertEqual(status, 503, answer)
        self.assertEqual(error_code(answer), "StoreUnavailable")
        # etcd returns: A catches up with the change made while it was down.
        etcd.restart(0)
        h.wait_until(lambda: sorted(backend_ports(na) or []) == sorted([a.port, b.port]),
                     timeout=20, interval=0.2, what="A catches up after etcd returned")
        self.assertEqual(names(port), {"a", "b"})
        h.wait_until(lambda: na.get("/v1/status")[1].get("config_source") == "store",
                     timeout=5, interval=0.1, what="config_source store")
        self.assertIs(na.get("/v1/status")[1]["store"]["reachable"], True)

    def test_a_node_whose_revision_was_compacted_rereads_everything_hitlessly(self):
        etcd = self.etcd(1)
        a, b, c, d = (self.echo(x) for x in "abcd")
        port, old_port, new_port = h.free_port(), h.free_port(), h.free_port()
        nc = self.node(etcd, "C")
        self.ok(nc, "POST", "/v1/loadbalancers",
                lb_doc([a.port], [http_listener(port, idle_timeout=60)]))
        self.ok(nc, "POST", "/v1/loadbalancers", lb_doc([d.port], [http_listener(old_port)],
                                                        name="old"))
        # A keep-alive connection through C (the only node so far).
        kept = h.connect(port, timeout=10)
        self.cleanup.append(kept.close)

        def on_kept():
            kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body, rest = read_response(kept)
            self.assertEqual(rest, b"")
            return status, body.strip()

        self.assertEqual(on_kept(), (200, b"a"))
        na = self.node(etcd, "A")
        self.wait_same_config([na, nc], timeout=2.0)

        # C stopped (SIGSTOP), and its watch stream broken while it cannot read: etcd restarts
        # before any change is made, so that no event waits in C's socket for C to read it.
        nc.pause()
        etcd.kill9(0)
        etcd.restart(0)
        self.ok(na, "POST", GROUP + "/backends", {"address": "127.0.0.1", "port": b.port})
        self.ok(na, "POST", GROUP + "/backends", {"address": "127.0.0.1", "port": c.port})
        self.ok(na, "PATCH", f"/v1/loadbalancers/web/listeners/http:{port}",
                {"request_timeout": 90})
        self.ok(na, "DELETE", GROUP + f"/backends/127.0.0.1:{c.port}")
        self.ok(na, "DELETE", "/v1/loadbalancers/old")
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([d.port], [http_listener(new_port)],
                                                        name="new"))
        want, revisions = self.wait_same_config([na], timeout=1.0)
        want_rev = revisions["A"]
        etcd.put("/elsewhere/unrelated", "x")  # etcd moves on without a configuration change
        compacted = etcd.compact()  # the revision C resumes from is gone
        self.assertGreaterEqual(compacted, want_rev)
        log_before = len(nc.read_log())
        nc.resume()
        try:
            got, got_rev = self.wait_same_config([na, nc], timeout=20)
        except AssertionError:
            raise AssertionError(f"C did not converge after its revision was compacted\n"
                                 f"C log tail:\n{nc.read_log()[-3000:]}")
        self.assertEqual(canonical(got), canonical(want))
        self.assertGreaterEqual(got_rev["C"], want_rev)
        # C took the path under test (its watch was refused as compacted), not plain events.
        self.assertRegex(nc.read_log()[log_before:], re.compile("compact", re.I))
        revision_problem = self.revision_problem([na, nc])
        # The connection opened before survived: C applied the difference, not a restart.
        for _ in range(4):
            status, body = on_kept()
            self.assertEqual(status, 200)
            self.assertIn(body, (b"a", b"b"))
        # C's data plane runs the new document: A stopped, C alone answers.
        na.terminate()
        self.assertEqual(names(port), {"a", "b"})
        self.assertEqual(names(new_port, 2), {"d"})
        with socket.socket() as probe, self.assertRaises(ConnectionRefusedError):
            probe.settimeout(5)
            probe.connect(("127.0.0.1", old_port))
        self.assertIsNone(revision_problem)

    # --- durability ------------------------------------------------------------------------------

    def _check_writes(self, node, acked, refused, unknown):
        h.wait_until(lambda: set(acked) <= set(backend_ports(node) or []), timeout=5,
                     interval=0.1, what=f"node {node.name} has every acknowledged write")
        stored = backend_ports(node)
        self.assertEqual(len(stored), len(set(stored)), "a backend stored twice")
        stored = set(stored)
        self.assertTrue(set(acked) <= stored, sorted(set(acked) - stored))
        self.assertTrue(all(status == 400 and code == "InvalidParameter"
                            for _, status, code in refused), refused[:5])
        self.assertFalse({p for p, _, _ in refused} & stored)
        self.assertTrue(stored <= set(acked) | set(unknown), sorted(stored - set(acked)))

    def test_acknowledged_writes_survive_kill9_of_an_etcd_member(self):
        etcd = self.etcd(3)
        na = self.node(etcd, "A")
        nb = self.node(etcd, "B")
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([]))
        self.wait_same_config([na, nb], timeout=1.0)
        killed = {}

        def kill():
            leader = etcd.leader_index()
            killed["index"] = leader if leader is not None else 0
            etcd.kill9(killed["index"])

        acked, refused, unknown, before = h.writes_with_a_kill(na, GROUP + "/backends", kill,
                                                               stop_on_error=False)
        self.assertEqual(len(acked) + len(refused) + len(unknown), 500)
        self.assertEqual(len(refused), 50, refused[:5])
        # Two members of three still make a quorum: writes go on after the kill.
        self.assertGreater(len(acked) - before, 0, f"no write acknowledged after the kill "
                                                   f"({len(unknown)} unknown)")
        for n in (na, nb):
            self._check_writes(n, acked, refused, unknown)
        self.wait_same_config([na, nb], timeout=2.0)
        etcd.restart(killed["index"])

    def test_acknowledged_writes_survive_kill9_of_the_node_that_took_them(self):
        etcd = self.etcd(3)
        na = self.node(etcd, "A")
        nb = self.node(etcd, "B")
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([]))
        self.wait_same_config([na, nb], timeout=1.0)
        acked, refused, unknown, before = h.writes_with_a_kill(na, GROUP + "/backends", na.kill9,
                                                               stop_on_error=True)
        self.assertLess(len(acked) + len(refused), 500, "A was killed after the last write")
        self._check_writes(nb, acked, refused, unknown)
        etcd.put("/elsewhere/unrelated", "x")  # etcd moves on without a configuration change
        na.start()  # A comes back and agrees with B
        self.wait_same_config([na, nb], timeout=5.0)
        self._check_writes(na, acked, refused, unknown)
        self.assert_same_revision([na, nb])

    # --- shared secrets --------------------------------------------------------------------------

    def test_sticky_cookie_from_one_node_selects_the_same_backend_on_another(self):
        etcd = self.etcd(1)
        backends = [self.echo(x) for x in "abc"]
        port = h.free_port()
        na = self.node(etcd, "A")
        nb = self.node(etcd, "B")
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc(
            [e.port for e in backends],
            [http_listener(port, sticky_session={"type": "insert", "cookie_timeout": 600})]))
        self.wait_same_config([na, nb], timeout=1.0)
        nb.terminate()  # A alone issues the cookie
        status, headers, body = request(port)
        self.assertEqual(status, 200)
        first = body.decode().strip()
        m = re.match(r"SERVERID=([0-9a-f]{16});", headers.get("set-cookie", ""))
        self.assertTrue(m, headers)
        cookie = f"Cookie: SERVERID={m.group(1)}\r\n".encode()
        nb.start()
        na.terminate()  # B alone reads it
        for _ in range(9):  # rr over three backends would move a client without its cookie
            status, headers, body = request(port, extra=cookie)
            self.assertEqual(status, 200)
            self.assertEqual(body.decode().strip(), first, "B sent the cookie elsewhere")
            self.assertNotIn("set-cookie", headers, "B did not recognise A's cookie")
        self.assertGreater(len(names(port)), 1, "without the cookie rr spreads clients")

    def test_tls_session_ticket_from_one_node_resumes_on_another(self):
        from test_https_listener import s_client
        etcd = self.etcd(1)
        made = certs_mod.Certs()
        self.cleanup.append(made.cleanup)
        cert, key = made.server("web", ["a.example.com"])
        e = self.echo("a")
        port = h.free_port()
        na = self.node(etcd, "A")
        nb = self.node(etcd, "B")
        self.ok(na, "POST", "/v1/certificates", {"name": "web", "type": "server",
                                                 "cert": cert.read_text(),
                                                 "key": key.read_text()})
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([e.port], [
            {"protocol": "https", "port": port, "server_group": "app", "certificates": ["web"],
             "health_check": {"enabled": False}}]))
        self.wait_same_config([na, nb], timeout=1.0)
        nb.terminate()  # A alone issues the tickets
        sessions = {v: made.path(f"session{v}") for v in ("-tls1_2", "-tls1_3")}
        for version, sess in sessions.items():
            # TLS 1.3 tickets arrive after the handshake: keep stdin open a moment (longer on a
            # busy machine).
            for wait in (0.3, 1.0, 2.0):
                out = subprocess.run(
                    f"sleep {wait} | openssl s_client -connect 127.0.0.1:{port} {version} "
                    f"-servername a.example.com -sess_out {sess}", shell=True,
                    capture_output=True, timeout=15).stdout.decode(errors="replace")
                if sess.exists():
                    break
            self.assertIn("New, ", out, version)
            self.assertTrue(sess.exists(), f"{version}: A issued no session ticket\n{out}")
            self.assertIn("Reused, ", s_client(port, version, "-servername", "a.example.com",
                                               "-sess_in", str(sess)), f"{version} on A")
        nb.start()
        na.terminate()  # B alone resumes them
        for version, sess in sessions.items():
            out = s_client(port, version, "-servername", "a.example.com", "-sess_in", str(sess))
            self.assertIn("Reused, ", out, f"{version}: A's ticket did not resume on B\n{out}")

    def test_shared_secrets_never_appear_in_api_answers_or_logs(self):
        etcd = self.etcd(1)
        made = certs_mod.Certs()
        self.cleanup.append(made.cleanup)
        cert, key = made.server("web", ["a.example.com"])
        e = self.echo("a")
        port, tls_port = h.free_port(), h.free_port()
        na = self.node(etcd, "A", extra_args=["--log-level", "debug"])
        nb = self.node(etcd, "B", extra_args=["--log-level", "debug"])
        self.ok(na, "POST", "/v1/certificates", {"name": "web", "type": "server",
                                                 "cert": cert.read_text(),
                                                 "key": key.read_text()})
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([e.port], [
            http_listener(port, sticky_session={"type": "insert", "cookie_timeout": 600}),
            {"protocol": "https", "port": tls_port, "server_group": "app",
             "certificates": ["web"], "health_check": {"enabled": False}}]))
        self.wait_same_config([na, nb], timeout=1.0)
        self.assertEqual(request(port)[0], 200)
        subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_port}",
                        "-servername", "a.example.com"], input=b"", capture_output=True,
                       timeout=15)
        everything = etcd.get_prefix("/")
        secrets = {k: v for k, v in everything.items() if "secret" in k.lower()}
        self.assertTrue(secrets, f"no shared secret in etcd: {sorted(everything)}")
        fragments = ec.secret_fragments(secrets.values())
        self.assertTrue(fragments, secrets.keys())
        seen = []
        for n in (na, nb):
            for path in ("/v1/config", "/v1/status", "/v1/nodes", "/v1/loadbalancers",
                         "/v1/loadbalancers/web", "/v1/certificates", "/v1/certificates/web",
                         "/metrics", "/healthz", "/readyz", "/v1/loadbalancers/web/health"):
                status, answer, headers = n.api("GET", path, token="admin")
                self.assertEqual(status, 200, f"{n.name} {path}: {answer}")
                seen.append((f"{n.name} GET {path}",
                             json.dumps(answer) + json.dumps(headers)))
        for n in (na, nb):
            seen.append((f"{n.name} log", n.read_log()))
        for where, text in seen:
            leaked = [f for f in fragments if f in text]
            self.assertEqual(leaked, [], f"a shared secret appears in {where}")
            self.assertNotIn(self.tokens.admin, text, where)
            self.assertNotIn(self.tokens.reader, text, where)

    # --- etcd security ---------------------------------------------------------------------------

    def test_etcd_over_tls_with_client_certificates(self):
        tls = ec.EtcdTls()
        self.cleanup.append(tls.cleanup)
        etcd = self.etcd(1, tls=tls, client_cert_auth=True)
        # Without a client certificate the members refuse the node: it cannot start.
        no_cert = {}
        t = threading.Thread(target=lambda: no_cert.update(r=ec.run_fulcrumd(
            ["--store", etcd.store_flag(), "--etcd-cacert", str(tls.ca), "--node", "X",
             *self.tokens.args()], timeout=40)))
        t.start()
        a = self.echo("a")
        port = h.free_port()
        na = self.node(etcd, "A")
        nb = self.node(etcd, "B")
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([a.port], [http_listener(port)]))
        self.wait_same_config([na, nb], timeout=1.0)  # B follows through its watch over TLS
        self.assertEqual(names(port, 2), {"a"})
        store = na.get("/v1/status")[1]["store"]
        self.assertEqual(store["endpoints"], [etcd.members[0].client_url])
        self.assertIs(store["reachable"], True)
        self.assertIn("/fulcrum/lb/web", etcd.get_prefix("/fulcrum/"))
        t.join(timeout=60)
        rc, out, took = no_cert["r"]
        self.assertEqual(rc, 2, f"a node without a client certificate: exit {rc}\n{out}")
        self.assertIn("--store", out)

    def test_etcd_password_authentication(self):
        etcd = self.etcd(1)
        password = "pw-" + "".join(random.choice("abcdefghjkmnpqrstuvwxyz23456789")
                                   for _ in range(20))
        etcd.enable_auth(password)
        d = pathlib.Path(tempfile.mkdtemp(prefix="fulcrum-etcdpw-"))
        self.cleanup.append(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        good, wrong = d / "good", d / "wrong"
        good.write_text(password + "\n")
        wrong.write_text("not-" + password + "\n")
        for f in (good, wrong):
            f.chmod(0o600)
        refused = {}

        def refused_run(kind, extra):
            refused[kind] = ec.run_fulcrumd(["--store", etcd.store_flag(), "--node", "X",
                                             *self.tokens.args(), *extra], timeout=40)

        runs = [threading.Thread(target=refused_run, args=(
                    "wrong", ["--etcd-user", "root", "--etcd-password-file", str(wrong)])),
                threading.Thread(target=refused_run, args=("none", []))]
        for t in runs:
            t.start()
        a = self.echo("a")
        port = h.free_port()
        auth = ["--etcd-user", "root", "--etcd-password-file", str(good)]
        na = self.node(etcd, "A", extra_args=auth)
        nb = self.node(etcd, "B", extra_args=auth)
        self.ok(na, "POST", "/v1/loadbalancers", lb_doc([a.port], [http_listener(port)]))
        self.wait_same_config([na, nb], timeout=1.0)
        self.assertEqual(names(port, 2), {"a"})
        self.assertIn("/fulcrum/lb/web", etcd.get_prefix("/fulcrum/"))
        self.assertEqual({n: v["state"] for n, v in self.nodes_view(nb).items()},
                         {"A": "up", "B": "up"})
        for t in runs:
            t.join(timeout=60)
        rc, out, took = refused["wrong"]
        self.assertEqual(rc, 2, f"wrong password: exit {rc}\n{out}")
        self.assertRegex(out, re.compile(r"auth|password|credential", re.I))
        self.assertIn("--etcd-user", out)
        self.assertLess(took, 15, f"a wrong password took {took:.1f}s to be refused")
        self.assertNotIn(password, out)
        rc, out, took = refused["none"]
        self.assertEqual(rc, 2, f"no credentials: exit {rc}\n{out}")
        for n in (na, nb):
            self.assertNotIn(password, n.read_log())


if __name__ == "__main__":
    unittest.main()
