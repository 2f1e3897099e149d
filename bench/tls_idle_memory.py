#!/usr/bin/env python3
"""Memory of idle keep-alive HTTPS connections in fulcrumd: opens N TLS connections (TLS 1.3,
ECDSA P-256), sends one request on each, keeps them open, and reports fulcrumd's RSS growth per
connection (VmRSS after minus before, divided by N). One worker, a fulcrum-echo backend.

    bench/tls_idle_memory.py [--connections 2000] [--fulcrumd build/release/cmd/fulcrumd/fulcrumd]

Only the Python standard library (and the openssl CLI for the certificate). Every process started
here is stopped here, by its pid; traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers_common import (  # noqa: E402
    DEFAULT_FULCRUMD, LOOPBACK, Procs, free_port, raise_fd_limit, rss_kb, set_program, log,
    start_nginx, wait_listening)
from tls_peers import make_certificate, start_fulcrum  # noqa: E402

set_program("tls_idle_memory")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--fulcrumd", type=Path, default=DEFAULT_FULCRUMD)
    args = ap.parse_args(argv)
    raise_fd_limit()
    procs = Procs()
    conns = []
    try:
        with tempfile.TemporaryDirectory(prefix="fulcrum-tls-mem-") as tmp:
            tmp = Path(tmp)
            backend, _ = start_nginx(procs, tmp)
            cert, key = make_certificate(tmp)
            (tmp / "fulcrum").mkdir()
            port, proc = start_fulcrum(procs, tmp / "fulcrum", args.fulcrumd, backend, cert, key)
            wait_listening(port, proc, tmp / "fulcrum" / "fulcrumd.log", "fulcrumd")
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3

            def one():
                raw = socket.create_connection((LOOPBACK, port), timeout=10)
                s = ctx.wrap_socket(raw, server_hostname="bench.example")
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while not data.endswith(b"\n") or b"\r\n\r\n" not in data:
                    data += s.recv(4096)
                return s

            for _ in range(50):  # warm up allocator and pools
                one().close()
            time.sleep(0.5)
            before = rss_kb(proc.pid)["vmrss_kb"]
            for _ in range(args.connections):
                conns.append(one())
            time.sleep(1.0)
            after = rss_kb(proc.pid)["vmrss_kb"]
            per = (after - before) * 1024 / args.connections
            print(f"fulcrumd RSS {before} KiB -> {after} KiB with {args.connections} idle TLS "
                  f"keep-alive connections: {per:.0f} bytes per connection")
            log(f"{per:.0f} bytes per idle TLS connection")
    finally:
        for s in conns:
            s.close()
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
