#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Scripted DTLS 1.2 PSK peer on python-mbedtls 2.10.1 (bundles Mbed TLS 2.28.x).

Test tool for corridor's DTLS interop tests; run it with the peers venv's
interpreter (scripts/test.sh creates it and exports CORRIDOR_PEERS_VENV).

    mbedtls_peer.py server HOST PORT --psk ID:HEX --cipher NAME
    mbedtls_peer.py client HOST PORT --psk ID:HEX --cipher NAME

NAME is an Mbed TLS suite name such as TLS-PSK-WITH-AES-128-GCM-SHA256
(--cipher may be repeated; the order is the preference order).

Server: binds HOST:PORT, prints LISTENING, answers the first ClientHello with a
HelloVerifyRequest (cookie bound to the client address), completes the
handshake, prints "HANDSHAKE OK suite=...", receives one record and prints
"RECV <text>", replies "srv-hello\\n", sends close_notify and exits 0.

Client: handshakes, prints "HANDSHAKE OK suite=...", sends "cli-hello\\n",
prints "RECV <text>" for the reply, sends close_notify and exits 0.

The socket I/O is driven here (mbedtls runs sans-IO on memory buffers), so
Mbed TLS's own retransmission timer works: the handshake loop polls the socket
in short slices and re-enters the state machine, which resends a flight when
its timer expires. Everything is bounded by --timeout (default 10 s); on any
failure an "ERROR ..." line goes to stderr and the exit status is 2.
"""

import argparse
import select
import socket
import sys
import time

try:
    from mbedtls import tls
    from mbedtls.exceptions import TLSError
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"ERROR python-mbedtls is not importable ({exc}); "
          "scripts/test.sh installs it into the peers venv", file=sys.stderr, flush=True)
    sys.exit(2)

POLL_SLICE = 0.05  # seconds between retransmission-timer checks
MAX_DATAGRAM = 65535
ALERT = 21  # TLS ContentType alert


class PeerError(Exception):
    pass


def log(line):
    print(line, flush=True)


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def remaining(self):
        return self.end - time.monotonic()

    def check(self, what):
        if self.remaining() <= 0:
            raise PeerError(f"timed out during {what}")


class Link:
    """One DTLS association: an mbedtls memory buffer plus the UDP peer address."""

    def __init__(self, sock, buf, addr, deadline):
        self.sock = sock
        self.buf = buf
        self.addr = addr  # None for a connected socket
        self.deadline = deadline
        self.alert_seen = False

    def flush(self):
        # Each mbedtls "send" is whole records; several may be pending, and
        # sending them in one datagram is valid DTLS.
        while True:
            out = self.buf.peek_outgoing(MAX_DATAGRAM)
            if not out:
                return
            if self.addr is None:
                sent = self.sock.send(out)
            else:
                sent = self.sock.sendto(out, self.addr)
            self.buf.consume_outgoing(sent)

    def pump(self, wait):
        """Waits up to `wait` seconds for one datagram from the peer and feeds it
        to mbedtls; returns whether one arrived."""
        readable, _, _ = select.select([self.sock], [], [], max(0.0, wait))
        if not readable:
            return False
        data, addr = self.sock.recvfrom(MAX_DATAGRAM)
        if self.addr is not None and addr != self.addr:
            return False  # a stray datagram from someone else: ignore it
        self.note_alerts(data)
        self.buf.receive_from_network(data)
        return True

    def note_alerts(self, datagram):
        # DTLS record header: type(1) version(2) epoch(2) seq(6) length(2);
        # the content type stays readable even for encrypted records.
        offset = 0
        while offset + 13 <= len(datagram):
            if datagram[offset] == ALERT:
                self.alert_seen = True
            offset += 13 + int.from_bytes(datagram[offset + 11:offset + 13], "big")

    def handshake(self):
        # The buffer's do_handshake() advances the state machine by one step
        # (mbedtls_ssl_handshake_step); python-mbedtls's own socket wrapper
        # loops on the same private state property.
        while self.buf._handshake_state is not tls.HandshakeStep.HANDSHAKE_OVER:
            self.deadline.check("handshake")
            try:
                self.buf.do_handshake()
            except tls.WantWriteError:
                pass
            except tls.WantReadError:
                self.flush()
                self.pump(min(POLL_SLICE, self.deadline.remaining()))
                continue
            self.flush()

    def send(self, data):
        # write() encrypts the whole (small) message into one record and
        # returns the number of bytes now waiting in the outgoing buffer.
        self.buf.write(data)
        self.flush()

    def recv(self):
        while True:
            self.deadline.check("receive")
            try:
                data = self.buf.read(MAX_DATAGRAM)
            except tls.WantReadError:
                self.flush()
                self.pump(min(POLL_SLICE, self.deadline.remaining()))
                continue
            except tls.WantWriteError:
                self.flush()
                continue
            self.flush()
            if data:
                return data
            # python-mbedtls also returns b"" when no application data is
            # buffered yet (e.g. right after the handshake), so only an alert
            # from the peer (close_notify or fatal) ends the wait early.
            if self.alert_seen:
                raise PeerError("peer sent an alert (close_notify?) before any application data")
            self.pump(min(POLL_SLICE, self.deadline.remaining()))

    def close(self, linger):
        """Sends close_notify, then gives the peer `linger` seconds to send its
        own close_notify (so it does not hit a closed port)."""
        try:
            self.buf.shutdown()
            self.flush()
        except (TLSError, OSError):
            return
        end = time.monotonic() + linger
        while time.monotonic() < end:
            try:
                if not self.pump(end - time.monotonic()):
                    return
                if not self.buf.read(MAX_DATAGRAM):
                    return
            except (TLSError, OSError):
                return


def suite_name(buf):
    name = buf.cipher()
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name


def text_of(data):
    text = data.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\n") else text


def configuration(args):
    ident, sep, key_hex = args.psk.partition(":")
    if not sep or not ident:
        raise PeerError("--psk must be IDENTITY:HEXKEY")
    try:
        key = bytes.fromhex(key_hex)
    except ValueError as exc:
        raise PeerError(f"--psk key is not hex: {exc}") from exc
    kwargs = dict(
        lowest_supported_version=tls.DTLSVersion.DTLSv1_2,
        highest_supported_version=tls.DTLSVersion.DTLSv1_2,
        handshake_timeout_min=1.0,
        handshake_timeout_max=max(1.0, args.timeout),
        validate_certificates=False,
    )
    if args.cipher:
        available = set(tls.ciphers_available())
        unknown = [c for c in args.cipher if c not in available]
        if unknown:
            raise PeerError(f"unknown Mbed TLS cipher suite(s): {', '.join(unknown)}")
        kwargs["ciphers"] = args.cipher
    if args.role == "client":
        kwargs["pre_shared_key"] = (ident, key)
    else:
        kwargs["pre_shared_key_store"] = {ident: key}
    return tls.DTLSConfiguration(**kwargs)


def resolve(host, port):
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise PeerError(f"cannot resolve {host}")
    family, _, _, _, addr = infos[0]
    return family, addr


def run_client(args, conf, deadline):
    family, addr = resolve(args.host, args.port)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.connect(addr)
    link = Link(sock, tls.ClientContext(conf).wrap_buffers(None), None, deadline)
    started = time.monotonic()
    link.handshake()
    ms = (time.monotonic() - started) * 1000
    log(f"HANDSHAKE OK suite={suite_name(link.buf)} "
        f"version={link.buf.negotiated_tls_version().name} ms={ms:.1f}")
    link.send(args.message.encode())
    log(f"RECV {text_of(link.recv())}")
    link.close(linger=0.0)


def run_server(args, conf, deadline):
    family, addr = resolve(args.host, args.port)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr)
    log("LISTENING")
    context = tls.ServerContext(conf)
    client = None
    link = None
    hello_verify_sent = False
    while True:
        deadline.check("accept")
        readable, _, _ = select.select([sock], [], [], max(0.0, deadline.remaining()))
        if not readable:
            continue
        data, src = sock.recvfrom(MAX_DATAGRAM)
        if client is not None and src != client:
            continue
        client = src
        # A fresh association per cookie-less ClientHello (as after
        # mbedtls_ssl_session_reset); the cookie is bound to the client address.
        buf = context.wrap_buffers()
        buf.setcookieparam(str(src[0]).encode("ascii"))
        buf.receive_from_network(data)
        link = Link(sock, buf, src, deadline)
        try:
            link.handshake()
        except tls.HelloVerifyRequest:
            link.flush()
            if not hello_verify_sent:
                log("SENT HelloVerifyRequest")
                hello_verify_sent = True
            continue
        break
    log(f"HANDSHAKE OK suite={suite_name(link.buf)} "
        f"version={link.buf.negotiated_tls_version().name} peer={client[0]}:{client[1]}")
    log(f"RECV {text_of(link.recv())}")
    link.send(args.reply.encode())
    link.close(linger=0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("role", choices=["client", "server"])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--psk", required=True, metavar="ID:HEX")
    ap.add_argument("--cipher", action="append", metavar="NAME")
    ap.add_argument("--timeout", type=float, default=10.0, help="overall limit in seconds")
    ap.add_argument("--message", default="cli-hello\n", help="what the client sends")
    ap.add_argument("--reply", default="srv-hello\n", help="what the server answers")
    args = ap.parse_args()

    deadline = Deadline(args.timeout)
    try:
        conf = configuration(args)
        if args.role == "client":
            run_client(args, conf, deadline)
        else:
            run_server(args, conf, deadline)
    except (PeerError, TLSError, OSError, ValueError) as exc:
        print(f"ERROR {args.role}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:  # a bug here or an API surprise: still one ERROR line
        print(f"ERROR {args.role}: unexpected {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
