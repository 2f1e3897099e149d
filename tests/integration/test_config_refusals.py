"""What a configuration may not ask for, through `fulcrumd --config` (with and without --check) and
the admin API: fields this build does not serve (a load balancer's bandwidth_mbps), keys that do
not apply to a protocol (a UDP listener's connect_timeout, as docs/configuration.md says), and
YAML documents too large to read: over 16 MiB, or "billion laughs" alias expansions, refused
quickly and with bounded memory (and by `fulcrumctl apply -f` before it sends them)."""

import json
import os
import pathlib
import re
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

import harness as h

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"
MIB = 1 << 20


def run_process(argv, cwd=None, env=None):
    """Runs argv until it ends by itself (bounded wait); returns (exit status, output, seconds,
    max RSS in KiB of that process)."""
    with tempfile.TemporaryFile("w+") as log:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        # wait4 reaps it and gives its own peak memory (Popen.poll would reap it first).
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > 30:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise AssertionError(f"{argv[0]} did not end by itself within 30 s")
            time.sleep(0.01)
        seconds = time.monotonic() - start
        rc = proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        return rc, log.read(), seconds, usage.ru_maxrss


def run_fulcrumd(yaml_text, *extra):
    """Runs fulcrumd on `yaml_text` as --config (refused, or --check): see run_process."""
    with tempfile.TemporaryDirectory(prefix="fulcrumd-refusal-") as d:
        path = pathlib.Path(d) / "lb.yaml"
        path.write_text(yaml_text)
        return run_process([str(h.FULCRUMD), "--config", str(path), "--workers", "1",
                            "--data-dir", str(pathlib.Path(d) / "data"), "--admin", "off",
                            *extra])


def billion_laughs():
    """10^9 backends through three levels of 1,000 aliases, in about 36 KB."""
    text = ("loadbalancers:\n"
            "  - &lb\n"
            "    name: lb\n"
            "    address: 127.0.0.1\n"
            "    server_groups:\n"
            "      - &sg\n"
            "        name: g\n"
            "        backends:\n"
            "          - &be {address: 127.0.0.1, port: 9}\n")
    text += "          - *be\n" * 999
    text += "      - *sg\n" * 999
    text += "  - *lb\n" * 999
    return text


LAUGHS_ERROR = "document too large (more than 1000000 values; an alias counts at each use)"


class ConfigRefusalsTest(h.ProcessCase):
    def daemon(self):
        f = h.Fulcrumd(None, workers=1)
        self.cleanup.append(f.stop)
        return f

    def apply_yaml(self, f, text, dry_run=True):
        return f.api("POST", "/v1/apply" + ("?dry_run=true" if dry_run else ""),
                     content_type="application/yaml",
                     raw=text.encode() if isinstance(text, str) else text, timeout=60)

    # --- Item: a load balancer's bandwidth_mbps is refused, not silently ignored ---------------

    def test_load_balancer_bandwidth_is_refused_with_the_field(self):
        doc = ("loadbalancers:\n"
               "  - name: web\n"
               "    address: 127.0.0.1\n"
               "    bandwidth_mbps: 100\n"
               "    server_groups: [{name: app, backends: [{address: 127.0.0.1, port: 9}]}]\n"
               f"    listeners: [{{protocol: tcp, port: {h.free_port()}, server_group: app}}]\n")
        want = ("loadbalancers[0].bandwidth_mbps: bandwidth limits are not enforced by this "
                "version; use -1")
        for extra in (("--check",), ()):
            with self.subTest(extra=extra):
                rc, out, _, _ = run_fulcrumd(doc, *extra)
                self.assertEqual(rc, 2, out)
                self.assertIn(want, out)
        rc, out, _, _ = run_fulcrumd(doc.replace("bandwidth_mbps: 100", "bandwidth_mbps: -1"),
                                     "--check")
        self.assertEqual(rc, 0, out)

        f = self.daemon()
        status, answer, _ = self.apply_yaml(f, doc)
        self.assertEqual(status, 422, answer)
        self.assertEqual(answer["error"]["field"], "loadbalancers[0].bandwidth_mbps", answer)
        status, answer, _ = f.api("POST", "/v1/loadbalancers",
                                  {"name": "web", "address": "127.0.0.1", "bandwidth_mbps": 100})
        self.assertEqual(status, 422, answer)
        self.assertEqual(answer["error"]["field"], "bandwidth_mbps", answer)
        self.assertIn("not enforced", answer["error"]["message"])
        status, answer, _ = f.api("GET", "/v1/loadbalancers")
        self.assertEqual((status, answer), (200, {"loadbalancers": []}))

    def test_a_store_an_older_version_accepted_is_replaced_by_config(self):
        # Older versions stored a load balancer's bandwidth_mbps; this one refuses to run it. The
        # start says so and how out: --config replaces it (and the old keys leave the store).
        f = self.daemon()  # makes the store
        h.stop_process(f.proc)  # SIGTERM; the folder stays
        old = {"name": "old", "address": "127.0.0.1", "bandwidth_mbps": 100}
        with sqlite3.connect(f.data / "fulcrum.db") as db:
            db.execute("INSERT INTO kv(key, value, create_revision, mod_revision) "
                       "VALUES (?, ?, 1, 1)", ("/fulcrum/lb/old", json.dumps(old)))
        argv = [str(h.FULCRUMD), "--data-dir", str(f.data), "--workers", "1"]
        rc, out, _, _ = run_process(argv + ["--admin", "off"])
        self.assertEqual(rc, 2, out)
        self.assertIn("loadbalancers[0].bandwidth_mbps: the stored configuration cannot run", out)
        self.assertIn("start with --config FILE to replace it", out)

        new = f.data.parent / "new.yaml"
        new.write_text("loadbalancers:\n  - name: new\n    address: 127.0.0.1\n")
        port = h.free_port()
        with tempfile.TemporaryFile("w+") as log:
            proc = subprocess.Popen(argv + ["--admin", f"127.0.0.1:{port}", "--config", str(new)],
                                    stdout=log, stderr=subprocess.STDOUT)
            try:
                def ready():
                    log.seek(0)
                    return "fulcrumd ready" in log.read() or proc.poll() is not None
                h.wait_until(ready, timeout=15, what="fulcrumd ready")
                log.seek(0)
                text = log.read()
                self.assertIsNone(proc.poll(), text)
                self.assertIn("the stored configuration cannot run", text)
                token = (f.data / "admin.token").read_text().strip()
                status, answer, _ = h.api_call(f"http://127.0.0.1:{port}", "GET",
                                               "/v1/loadbalancers", token=token)
                self.assertEqual(status, 200, answer)
                self.assertEqual([lb["name"] for lb in answer["loadbalancers"]], ["new"])
            finally:
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(timeout=15), 0)
        with sqlite3.connect(f.data / "fulcrum.db") as db:
            keys = [k for (k,) in db.execute("SELECT key FROM kv ORDER BY key")]
        self.assertEqual(keys, ["/fulcrum/lb/new"])

    # --- Item: UDP listeners take exactly the keys the documentation lists ----------------------

    def udp_table_keys(self):
        text = (DOCS / "configuration.md").read_text()
        section = text.split("\n## UDP listener\n", 1)[1].split("\n## ", 1)[0]
        keys = []
        for row in section.splitlines():
            if row.startswith("| `"):
                keys += re.findall(r"`([a-z_0-9]+)`", row.split("|")[1])
        return section, keys

    def test_udp_listener_keys_are_the_documented_ones(self):
        section, keys = self.udp_table_keys()
        self.assertIn("idle_timeout", keys)
        f = self.daemon()

        def answer_for(key, value):
            listener = {"protocol": "udp", "port": 5353, "server_group": "app", key: value}
            doc = {"loadbalancers": [{"name": "dns", "address": "127.0.0.1",
                                      "server_groups": [{"name": "app", "backends": [
                                          {"address": "127.0.0.1", "port": 53}]}],
                                      "listeners": [listener]}]}
            return f.api("POST", "/v1/apply?dry_run=true", doc)[:2]

        for key in keys:
            if key == "protocol":
                continue
            with self.subTest(key=key):
                # A value of the wrong type: a key that applies says so; one that does not says
                # which protocols it is for.
                status, answer = answer_for(key, [])
                self.assertEqual(status, 400, answer)
                self.assertNotIn("only for", answer["error"]["message"], answer)
        # connect_timeout is documented as refused on UDP, with the message it gets.
        self.assertNotIn("connect_timeout", keys)
        status, answer = answer_for("connect_timeout", 5)
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["error"]["field"], "loadbalancers[0].listeners[0].connect_timeout")
        self.assertEqual(answer["error"]["message"], "only for tcp, http and https listeners")
        documented = " ".join(section.split())
        self.assertIn("`loadbalancers[0].listeners[0].connect_timeout: only for tcp, http and "
                      "https listeners`", documented)

    # --- Item: bounded YAML ------------------------------------------------------------------

    def test_yaml_file_over_16_mib_is_refused_before_parsing(self):
        text = "# " + "x" * (16 * MIB) + "\n"
        for extra in (("--check",), ()):
            with self.subTest(extra=extra):
                rc, out, seconds, rss_kib = run_fulcrumd(text, *extra)
                self.assertEqual(rc, 2, out)
                self.assertIn("document too large (more than 16 MiB)", out)
                self.assertLess(rss_kib, 200 * 1024)

    def test_yaml_body_over_16_mib_is_413_and_16_mib_is_read(self):
        f = self.daemon()
        status, answer, _ = self.apply_yaml(f, "# " + "x" * (16 * MIB - 3) + "\n")
        self.assertEqual(status, 400, answer)
        self.assertIn("the document is empty", answer["error"]["message"])
        try:
            status, _, _ = self.apply_yaml(f, "# " + "x" * (16 * MIB) + "\n")
        except (BrokenPipeError, ConnectionResetError):
            status = 413  # answered and closed while the body was still being sent
        self.assertEqual(status, 413)
        status, answer, _ = f.api("GET", "/v1/status")
        self.assertEqual(status, 200, answer)

    def test_billion_laughs_file_is_refused_quickly_with_bounded_memory(self):
        for extra in (("--check",), ()):
            with self.subTest(extra=extra):
                rc, out, seconds, rss_kib = run_fulcrumd(billion_laughs(), *extra)
                self.assertEqual(rc, 2, out)
                self.assertIn(LAUGHS_ERROR, out)
                self.assertLess(seconds, 10)
                self.assertLess(rss_kib, 300 * 1024)

    def test_billion_laughs_through_the_api_is_refused_quickly(self):
        f = self.daemon()
        for dry_run in (True, False):
            with self.subTest(dry_run=dry_run):
                start = time.monotonic()
                status, answer, _ = self.apply_yaml(f, billion_laughs(), dry_run=dry_run)
                self.assertEqual(status, 400, answer)
                self.assertEqual(answer["error"]["message"], LAUGHS_ERROR)
                self.assertLess(time.monotonic() - start, 10)
        # Many nodes without aliases: refused by their number before yaml-cpp builds its tree.
        status, answer, _ = self.apply_yaml(f, "acls: [" + "1," * 1_000_000 + "1]\n")
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["error"]["message"],
                         "document too large (more than 1000000 YAML nodes)")
        status, answer, _ = f.api("GET", "/v1/loadbalancers")
        self.assertEqual((status, answer), (200, {"loadbalancers": []}))

    def test_fulcrumctl_refuses_billion_laughs_before_sending(self):
        f = self.daemon()
        home = pathlib.Path(f.dir.name)
        (home / "fulcrum-data").symlink_to("data")  # found by fulcrumctl's discovery, unaided
        (home / "laughs.yaml").write_text(billion_laughs())
        env = {k: v for k, v in os.environ.items() if not k.startswith("FULCRUM_")}
        rc, out, seconds, rss_kib = run_process(
            [str(h.BUILD / "cmd" / "fulcrumctl" / "fulcrumctl"), "apply", "-f", "laughs.yaml"],
            cwd=home, env=env)
        self.assertEqual(rc, 1, out)
        self.assertIn("laughs.yaml: " + LAUGHS_ERROR, out)
        self.assertLess(seconds, 10)
        self.assertLess(rss_kib, 300 * 1024)
        status, answer, _ = f.api("GET", "/v1/loadbalancers")
        self.assertEqual((status, answer), (200, {"loadbalancers": []}))


if __name__ == "__main__":
    unittest.main()
