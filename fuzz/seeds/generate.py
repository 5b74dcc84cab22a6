#!/usr/bin/env python3
"""Writes the fuzz seed corpora, fuzz/seeds/<target>/<name>.

The HTTP requests, auth documents and CONNECT answers are the captured
exchanges of protocol reference Appendix A, read from the constants of
proto/tests/exchanges.rs (so the seeds are those bytes, not a copy to keep
in step); the CSTP streams are the A.3/A.5/A.6 frames of the same tests;
the rest is built here in each target's input format (see the target's
doc comment). scripts/fuzz.sh copies the seeds into fuzz/corpus/<target>/
before a run. Rerun after changing a target's input format:

    python3 fuzz/seeds/generate.py
"""
import hashlib
import re
import shutil
import ssl
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "fuzz" / "seeds"


def rust_constants(path):
    """`const NAME: &str = concat!("..", ..);`, `= ".."` and `&[&str] = &[..]`."""
    text = path.read_text()
    out = {}
    for m in re.finditer(r'^const (\w+): &(?:str|\[&str\]) = (.*?);$', text, re.S | re.M):
        parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
        out[m.group(1)] = [unescape(p) for p in parts]
    return out


def unescape(s):
    return re.sub(r'\\(.)', lambda m: {"r": "\r", "n": "\n", "t": "\t", '"': '"', "\\": "\\"}[m.group(1)], s)


def body(request):
    return request.split("\r\n\r\n", 1)[1]


def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data.encode() if isinstance(data, str) else data)


def cstp(kind, payload):
    return b"STF\x01" + struct.pack(">H", len(payload)) + bytes([kind, 0]) + payload


def ping(n):
    p = bytearray(n)
    p[0] = 0x45
    p[2:4] = struct.pack(">H", n)
    p[9] = 1
    return bytes(p)


def client_hello(server_name):
    """A real TLS ClientHello from Python's ssl, as a device would open."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def main():
    for d in SEEDS.iterdir():
        if d.is_dir():
            shutil.rmtree(d)
    c = {k: "".join(v) for k, v in rust_constants(ROOT / "proto/tests/exchanges.rs").items()}
    lines = {k: v for k, v in rust_constants(ROOT / "proto/tests/exchanges.rs").items()}

    requests = ["A1_INIT", "A1_USERNAME_REPLY", "A1_PASSWORD_REPLY", "A1_CONNECT", "A3_CONNECT", "A4_INIT"]
    for r in requests:
        write("http_request", r.lower(), c[r])
    write("http_request", "a1_pipelined", "".join(c[r] for r in requests[:4]))
    for r in ["A1_CONNECT", "A3_CONNECT"]:
        write("connect_request", r.lower(), c[r])
    for r in ["A1_INIT", "A1_USERNAME_REPLY", "A1_PASSWORD_REPLY", "A4_INIT"]:
        write("gateway_auth", r.lower(), body(c[r]))
    write("gateway_auth", "logout", '<?xml version="1.0" encoding="UTF-8"?>\n<config-auth client="vpn" '
          'type="logout"><opaque is-for="sg"><x a="1">y</x></opaque><auth><username>a&amp;b</username>'
          '<password><![CDATA[p<w>]]></password><otp>123</otp></auth></config-auth>\n')
    for r in ["A1_USERNAME_FORM", "A1_SUCCESS"]:
        write("client_auth", r.lower(), c[r])
    for r in ["A1_RESPONSE", "A3_RESPONSE"]:
        write("connect_response", r.lower(), "\r\n".join(lines[r]) + "\r\n\r\n")

    # cstp_deframer: headroom(1) ‖ cuts(1) ‖ cuts × u16 ‖ stream.
    a3 = cstp(0, ping(84)) * 2 + cstp(0, ping(1378)) + cstp(5, b"\xb0Aborted by caller")
    a6 = cstp(4, b"") + cstp(7, b"") * 2
    write("cstp_deframer", "a3_whole", b"\x00\x00" + a3)
    write("cstp_deframer", "a3_cut", b"\x0c\x03" + struct.pack(">HHH", 3, 92, 100) + a3)
    write("cstp_deframer", "a6_byte_reads", b"\x00\x08" + struct.pack(">8H", *range(1, 9)) + a6)
    write("cstp_deframer", "bad_reserved", b"\x40\x00" + cstp(0, b"") [:7] + b"\x01")

    # cluster_cookie: even = claims to mint and an edit; odd = a cookie as is.
    # address, issued, expires, nonce
    claims = bytes([10, 9, 0, 2]) + struct.pack(">QQ", 1_700_000_000, 1_700_086_400) + bytes(range(16))
    write("cluster_cookie", "mint_alice", b"\x00" + claims + b"alice\xffstaff" + b"\x00\x05\x41")
    write("cluster_cookie", "mint_hex_case", b"\x00" + claims + b"bob\xffstaff" + b"\x00\x20\x2b")
    write("cluster_cookie", "forged", b"\x01c2." + b"00" * 54 + b"." + b"ab" * 32)

    salt = bytes(range(16))
    h = hashlib.pbkdf2_hmac("sha256", b"s3cret", salt, 1000).hex()
    write("passwd_file", "two_users", f"# corridor password file\nalice:pbkdf2-sha256:1000:{salt.hex()}:{h}:staff\n"
          f"bob:pbkdf2-sha256:600000:{salt.hex()}:{h}\n\n")
    write("passwd_file", "bad_line", f"carol:md5:1:00:{h}\n")

    write("admin_request", "metrics", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n\r\n")
    write("admin_request", "sessions", "GET /sessions HTTP/1.0\r\n\r\n")
    # keeper_request: kind ‖ id(8) ‖ fields, each len(4) ‖ bytes.
    def field(b):
        return struct.pack(">I", len(b)) + b
    tls13 = b" " * 64 + b"TLS 1.3, server CertificateVerify\0" + bytes(range(32))
    write("keeper_request", "sign_tls13", bytes([1]) + struct.pack(">Q", 1) + field(b"\x04\x03") + field(tls13))
    tls12 = bytes(64) + bytes([3, 0, 0x1d, 32]) + bytes(range(32))
    write("keeper_request", "sign_tls12", bytes([1]) + struct.pack(">Q", 2) + field(b"\x08\x04") + field(tls12))
    write("keeper_request", "verify", bytes([2]) + struct.pack(">Q", 3) + field(b"alice") + field(b"correct horse"))
    write("admin_request", "kill", "POST /sessions/s7/kill HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    write("admin_request", "healthz", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:9443\r\n\r\n")

    # ctl_request: what a ctl client sends, one JSON object on one line.
    write("ctl_request", "status", '{"command":"status"}\n')
    write("ctl_request", "kill_reason", '{"command":"kill","session":"s3","reason":"lost laptop"}\n')
    write("ctl_request", "kill_user", '{"command":"kill_user","user":"alice"}\n')
    write("ctl_request", "show", '{"command":"show","target":"s12"}\n')
    write("ctl_request", "unban_v6", '{"command":"unban","address":"2001:db8:1:2::1"}\n')
    write("ctl_request", "unknown_field", '{"command":"kill","session":"s1","resaon":"x"}\n')
    write("ctl_request", "no_newline", '{"command":"bans"}')

    for name in ["vpn.test", "relay.example.org"]:
        write("sni", name.replace(".", "_"), client_hello(name))
    write("sni", "no_sni", client_hello(None))

    # relay: a run of link frames, type(1) ‖ length(2) ‖ body (proto/src/relay.rs).
    def frame(kind, b):
        return bytes([kind]) + struct.pack(">H", len(b)) + b
    name = b"vpn.test"
    hello = frame(0x01, b"\x01" + struct.pack(">I", 0x01020304) + bytes([len(name)]) + name)
    revoke = frame(0x40, bytes(range(16)) + struct.pack(">Q", 1_800_000_000))
    write("relay", "link_handshake", hello + frame(0x02, b"\x07" * 32) + frame(0x03, b"\x09" * 32)
          + frame(0x04, struct.pack(">IH", 0xdeadbeef, 443)))
    write("relay", "revocations", revoke * 3 + frame(0x30, bytes(8)) + frame(0x40, bytes(16) + b"\xff" * 8))
    write("relay", "revoke_cut", revoke[:20])

    # record_walk: 0 = raw, 1 = kind ‖ len(2) ‖ plaintext sealed, 2 = walk.
    def sealed(kind, plain):
        return bytes([1, kind]) + struct.pack(">H", len(plain)) + plain
    ip = bytearray(ping(40))
    ip[12:16] = bytes([10, 9, 0, 2])
    ip[16:20] = bytes([10, 1, 2, 3])
    data = b"\x00" + bytes(ip)
    write("record_walk", "data", sealed(8, data) + b"\x02")
    write("record_walk", "data_replayed", sealed(8, data) + sealed(8 | 4, data) + b"\x02")
    write("record_walk", "dpd_keepalive_bye", sealed(0, b"\x03" + b"\xde\xad\xbe\xef" * 4) + sealed(0, b"\x07")
          + b"\x02" + sealed(0, b"\x05\xb0") + b"\x02")
    write("record_walk", "alert_and_garbage", sealed(1, b"\x01\x00") + b"\x00\x10" + b"\x17\xfe\xfd" + bytes(13))

    # dtls_psk_handshake: 0 = device flights, 1 = raw, 2 = changed, 3 = time.
    write("dtls_psk_handshake", "complete", b"\x00" * 5)
    write("dtls_psk_handshake", "lost_flight", b"\x00\x02\x00\x10\xff\x0f\x00\x00\x00\x00")
    write("dtls_psk_handshake", "stranger", b"\x05\x00\x03\x16\xfe\xff\x00\x00\x00\x00\x00")


if __name__ == "__main__":
    main()
