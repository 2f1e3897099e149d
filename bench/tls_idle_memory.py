#!/usr/bin/env python3
"""Memory of idle keep-alive HTTPS connections in fulcrumd: opens N TLS connections (TLS 1.3,
ECDSA P-256), sends one request on each, keeps them open, and reports fulcrumd's RSS growth per
connection (VmRSS after minus before, divided by N). One worker, an NGINX backend (the one
peers_common.start_nginx starts for the peer benchmarks).

    bench/tls_idle_memory.py [--connections 2000] [--idle-timeout 60] [--hold 1]
                             [--fulcrumd build/release/cmd/fulcrumd/fulcrumd]

The listener's idle_timeout (15 s by default for HTTPS) is raised to --idle-timeout (at most 60)
so the connections outlive the time it takes to open them; opening must also finish well inside
it, or the run fails. Right after RSS is read, every connection is checked: poll() must show no
hang-up and no readable EOF (a non-blocking read of anything pending must not return end of
stream), and then each connection must answer one more request with the backend's body. If any
connection was closed, or the opening took longer than the idle timeout allows, the script says
so on stderr and exits 1 without a figure.

Only the Python standard library (and the openssl CLI for the certificate). Every process started
here is stopped here, by its pid; traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import select
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers_common import (  # noqa: E402
    DEFAULT_FULCRUMD, LOOPBACK, NGINX_BODY, Procs, git_rev, loadavg, raise_fd_limit, rss_kb,
    set_program, log, start_nginx, wait_listening)
from tls_peers import make_certificate, start_fulcrum  # noqa: E402

set_program("tls_idle_memory")
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
# Opening must end this many seconds before the idle timeout could close the first connection.
MARGIN_S = 10.0


def read_response(s: ssl.SSLSocket) -> bytes:
    """One response to REQUEST (NGINX's fixed body with Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(NGINX_BODY.encode()):
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError(f"end of stream after {len(data)} bytes")
        data += chunk
        if len(data) > 65536:
            raise ConnectionError("response too long")
    if not data.startswith(b"HTTP/1.1 200 "):
        raise ConnectionError(f"answered {data[:80]!r}")
    return data


def still_open(s: ssl.SSLSocket) -> str:
    """'' if the connection shows no sign of being closed, else what was seen. Does not block:
    poll() with timeout 0; if anything is readable, a non-blocking read tells a TLS record that is
    not application data (a session ticket: still open) from end of stream."""
    p = select.poll()
    p.register(s.fileno(), select.POLLIN | select.POLLRDHUP | select.POLLERR | select.POLLHUP)
    events = p.poll(0)
    if not events:
        return ""
    ev = events[0][1]
    if ev & (select.POLLHUP | select.POLLERR | select.POLLRDHUP):
        return f"poll events {ev:#x} (hang-up)"
    timeout = s.gettimeout()
    s.setblocking(False)
    try:
        data = s.recv(4096)
        return "end of stream" if not data else f"unexpected {len(data)} bytes {data[:40]!r}"
    except (ssl.SSLWantReadError, BlockingIOError):
        return ""  # a TLS record that carried no application data
    except (ssl.SSLError, OSError) as e:
        return f"read error {e}"
    finally:
        s.settimeout(timeout)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--idle-timeout", type=int, default=60,
                    help="the HTTPS listener's idle_timeout for the run, seconds (1-60, "
                    "default 60; fulcrumd's default is 15)")
    ap.add_argument("--hold", type=float, default=1.0,
                    help="seconds between the last connection opened and the RSS reading "
                    "(default 1)")
    ap.add_argument("--fulcrumd", type=Path, default=DEFAULT_FULCRUMD)
    args = ap.parse_args(argv)
    if not 1 <= args.connections <= 100000:
        ap.error("--connections must be between 1 and 100000")
    if not 0 <= args.hold <= 600:
        ap.error("--hold must be between 0 and 600")
    if not MARGIN_S < args.idle_timeout <= 60:
        ap.error(f"--idle-timeout must be more than {MARGIN_S:.0f} and at most 60")
    raise_fd_limit()
    procs = Procs()
    conns: list[ssl.SSLSocket] = []
    try:
        with tempfile.TemporaryDirectory(prefix="fulcrum-tls-mem-") as tmp:
            tmp = Path(tmp)
            backend, _ = start_nginx(procs, tmp)
            cert, key = make_certificate(tmp)
            (tmp / "fulcrum").mkdir()
            port, proc = start_fulcrum(procs, tmp / "fulcrum", args.fulcrumd, backend, cert, key,
                                       idle_timeout=args.idle_timeout)
            wait_listening(port, proc, tmp / "fulcrum" / "fulcrumd.log", "fulcrumd")
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3

            def one():
                raw = socket.create_connection((LOOPBACK, port), timeout=10)
                # As curl, wrk and browsers do. Without it the request waits behind the client's
                # unacknowledged Finished (Nagle) until the server's delayed ACK, 40 ms per
                # connection: 2,000 connections took over 50 s, past the default idle_timeout.
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s = ctx.wrap_socket(raw, server_hostname="bench.example")
                s.sendall(REQUEST)
                read_response(s)
                return s

            for _ in range(50):  # warm up allocator and pools
                one().close()
            time.sleep(0.5)
            before = rss_kb(proc.pid)["vmrss_kb"]
            t0 = time.monotonic()
            budget = args.idle_timeout - MARGIN_S
            for i in range(args.connections):
                conns.append(one())
                if time.monotonic() - t0 > budget:
                    raise RuntimeError(
                        f"opening took more than {budget:.0f} s ({i + 1} of {args.connections} "
                        f"connections open): the first ones would reach idle_timeout "
                        f"{args.idle_timeout} s before the measurement; use fewer connections")
            opened_s = time.monotonic() - t0
            time.sleep(args.hold)
            after = rss_kb(proc.pid)["vmrss_kb"]
            read_at = time.monotonic() - t0
            # Closing is for good: every connection open now was open when RSS was read.
            closed = [(i, why) for i, s in enumerate(conns) if (why := still_open(s))]
            if closed:
                raise RuntimeError(f"{len(closed)} of {args.connections} connections were closed "
                                   f"when RSS was read ({read_at:.1f} s after the first opened), "
                                   f"e.g. #{closed[0][0]}: {closed[0][1]}")
            for i, s in enumerate(conns):  # and each one still serves a request
                try:
                    s.sendall(REQUEST)
                    read_response(s)
                except (OSError, ConnectionError) as e:
                    raise RuntimeError(f"connection #{i} did not answer a request after the "
                                       f"measurement: {e}") from e
            per = (after - before) * 1024 / args.connections
            print(f"fulcrumd RSS {before} KiB -> {after} KiB with {args.connections} idle TLS "
                  f"keep-alive connections: {per:.0f} bytes per connection (all {len(conns)} "
                  f"checked open at the reading, opened in {opened_s:.1f} s, RSS read "
                  f"{read_at:.1f} s after the first, idle_timeout {args.idle_timeout} s; git "
                  f"{git_rev()}, load average {loadavg()})")
            log(f"{per:.0f} bytes per idle TLS connection")
    except RuntimeError as e:
        print(f"tls_idle_memory: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        for s in conns:
            s.close()
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
