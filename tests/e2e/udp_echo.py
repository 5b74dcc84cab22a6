#!/usr/bin/env python3
"""UDP echo server and checking client for the end-to-end runs.

  udp_echo.py serve HOST PORT
      Echo every datagram back to its sender, unchanged, until SIGTERM/SIGINT.

  udp_echo.py check HOST PORT [--count N] [--max-payload BYTES] [--timeout S] [--retries R]
      Send N datagrams (stop-and-wait), each a 4-byte sequence number followed by
      random bytes, sizes cycling through 4 .. BYTES (the edges included), and
      require every reply to be byte-identical to what was sent. A datagram whose
      reply does not arrive within S seconds is re-sent up to R times (counted and
      reported: the tunnel runs over UDP, so a rare loss is not by itself a bug).
      A reply that differs from what was sent, or a datagram never answered, fails.
      Prints one summary line; exit status 0 only when all N came back identical.

Standard library only: it runs on the bare Debian python3.
"""

import argparse
import os
import signal
import socket
import sys
import time


def serve(host: str, port: int) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"udp echo listening on {host}:{port}", flush=True)
    try:
        while True:
            data, peer = sock.recvfrom(65535)
            sock.sendto(data, peer)
    except KeyboardInterrupt:
        return 0


def sizes(count: int, max_payload: int):
    # Edges first (smallest, a typical small packet, the largest that fits the
    # tunnel MTU without IP fragmentation), then a spread in between.
    edges = [4, 64, 512, 1000, max_payload]
    for i in range(count):
        if i < len(edges):
            yield min(edges[i], max_payload)
        else:
            yield 4 + (i * 7919) % (max_payload - 3)


def check(host: str, port: int, count: int, max_payload: int, timeout: float, retries: int) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.settimeout(timeout)
    ok = resent = 0
    total_bytes = 0
    rtts = []
    for seq, size in enumerate(sizes(count, max_payload)):
        payload = seq.to_bytes(4, "big") + os.urandom(size - 4)
        for attempt in range(retries + 1):
            if attempt:
                resent += 1
            sent_at = time.monotonic()
            sock.send(payload)
            try:
                while True:
                    reply = sock.recv(65535)
                    # A late reply to an earlier (re-sent) datagram: skip it.
                    if len(reply) >= 4 and int.from_bytes(reply[:4], "big") < seq:
                        continue
                    break
            except socket.timeout:
                continue
            rtts.append(time.monotonic() - sent_at)
            if reply != payload:
                print(
                    f"udp echo FAILED: datagram {seq} ({size} bytes) came back different "
                    f"({len(reply)} bytes)",
                    file=sys.stderr,
                )
                return 1
            ok += 1
            total_bytes += size
            break
        else:
            print(
                f"udp echo FAILED: datagram {seq} ({size} bytes) unanswered after "
                f"{retries + 1} tries of {timeout}s",
                file=sys.stderr,
            )
            return 1
    rtts.sort()
    print(
        f"udp echo: {ok}/{count} datagrams identical, {total_bytes} bytes, sizes 4..{max_payload}, "
        f"re-sent {resent}, rtt median {rtts[len(rtts) // 2] * 1000:.2f} ms max {rtts[-1] * 1000:.2f} ms"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("host")
    s.add_argument("port", type=int)
    c = sub.add_parser("check")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--count", type=int, default=100)
    c.add_argument("--max-payload", type=int, default=1406)
    c.add_argument("--timeout", type=float, default=2.0)
    c.add_argument("--retries", type=int, default=2)
    args = parser.parse_args()
    if args.mode == "serve":
        return serve(args.host, args.port)
    if args.max_payload < 8:
        parser.error("--max-payload must be at least 8")
    return check(args.host, args.port, args.count, args.max_payload, args.timeout, args.retries)


if __name__ == "__main__":
    sys.exit(main())
