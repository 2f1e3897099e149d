"""A tiny authoritative-looking DNS responder for the UDP listener tests (Python standard library).

Answers every query for type A (or ANY) with one A record, --answer, TTL 60; other types get an
empty NOERROR answer; anything that is not a well-formed query is ignored. One thread, blocking.

    dns_responder.py --answer 192.0.2.1 [--bind 127.0.0.1] [--port 0] --ready-file PATH

Writes "listening udp HOST:PORT" to --ready-file (atomically) once bound. Ends on SIGTERM.
"""
import argparse
import os
import signal
import socket
import struct
import sys


def answer(query: bytes, address: bytes):
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:  # a response, or not exactly one question
        return None
    pos = 12
    while True:  # the question name: labels up to a zero byte (no compression in questions)
        if pos >= len(query):
            return None
        n = query[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0:
            return None
        pos += 1 + n
    if pos + 4 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[pos:pos + 4])
    question = query[12:pos + 4]
    rd = flags & 0x0100
    records = b""
    ancount = 0
    if qclass == 1 and qtype in (1, 255):
        records = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + address
        ancount = 1
    header = struct.pack("!HHHHHH", ident, 0x8400 | rd, 1, ancount, 0, 0)  # QR, AA, RD as asked
    return header + question + records


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--answer", required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file", required=True)
    args = ap.parse_args()
    address = socket.inet_aton(args.answer)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.bind, args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = s.getsockname()
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"listening udp {host}:{port}\n")
    os.rename(tmp, args.ready_file)
    while True:
        try:
            data, peer = s.recvfrom(4096)
        except ConnectionRefusedError:
            continue
        reply = answer(data, address)
        if reply is not None:
            s.sendto(reply, peer)


if __name__ == "__main__":
    sys.exit(main())
