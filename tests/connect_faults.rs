//! `corridor connect` when the network or the gateway misbehaves: UDP
//! blocked (DTLS never comes up, everything goes over CSTP), and a hostile
//! gateway (malformed auth XML, oversized headers, broken CSTP framing, a
//! certificate no CA vouches for): each ends with exit status 1, a message
//! that says what was wrong, no panic, and no TUN left behind.

use std::process::Command;
use std::time::Duration;

use testbed::*;

const IFNAME: &str = "corridor0";

fn client(t: &Topology, extra: &[&str]) -> Proc {
    let mut cmd = ns(&t.device(), corridor_bin());
    cmd.args(["connect", GATEWAY_IP, "--interface", IFNAME, "--user", "alice", "--passwd-on-stdin", "--cafile"])
        .arg(t.dir.join("ca.crt"))
        .args(extra);
    let mut p = Proc::spawn("corridor connect", cmd);
    if let Some(mut stdin) = p.child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(format!("{PASSWORD}\n").as_bytes());
    }
    p
}

fn exit_code(p: &mut Proc, timeout: Duration) -> i32 {
    let status = wait_until("corridor connect to exit", timeout, || p.child.try_wait().ok().flatten());
    status.code().unwrap_or(-1)
}

#[test]
fn with_udp_blocked_everything_goes_over_cstp() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    // A hotel network: no UDP to the gateway at all.
    let rules = format!(
        "nft add table inet hotel && nft 'add chain inet hotel out {{ type filter hook output priority filter; policy accept; }}' && nft add rule inet hotel out ip daddr {GATEWAY_IP} udp dport 443 counter drop"
    );
    run(ns(&t.device(), "sh").arg("-c").arg(rules));
    let mut c = client(&t, &[]);
    c.log.wait_for("tunnel interface up", Duration::from_secs(20));
    assert_eq!(udp_echo(&t.device(), 10), 10, "the tunnel carries traffic over CSTP");
    let s = gw.session_of("alice").expect("session");
    assert_eq!(s["channel"], "cstp", "{s}");
    assert!(s["bytes_in"].as_u64() > Some(0), "{s}");
    assert!(!c.log.contains("DTLS up"), "{}", c.log.text());
    let dropped = run(ns(&t.device(), "nft").args(["list", "table", "inet", "hotel"]));
    assert!(!String::from_utf8_lossy(&dropped.stdout).contains("packets 0 "), "DTLS was tried and blocked");
    let _ = Command::new("kill").args(["-INT", &c.child.id().to_string()]).status();
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());
}

/// A TLS server in the gateway namespace playing a gateway that answers
/// `mode`'s way (Python's ssl module, the topology's certificate or
/// `cert`/`key`).
fn hostile_gateway(t: &Topology, mode: &str, cert: &str, key: &str) -> Proc {
    let script = r#"
import socket, ssl, sys
mode, cert, key, addr = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, 443))
s.listen(1)
print("ready", flush=True)
xml = b'<?xml version="1.0" encoding="UTF-8"?>\n<config-auth client="vpn" type="complete"><auth id="success"><title>ok</title></auth></config-auth>\n'
def answer(head, body):
    return b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nContent-Type: text/xml\r\n" + head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
while True:
    raw, _ = s.accept()
    try:
        c = ctx.wrap_socket(raw, server_side=True)
    except Exception as e:
        print("handshake failed", e, flush=True)
        continue
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                break
            buf += d
        if b"\r\n\r\n" not in buf:
            break
        head, buf = buf.split(b"\r\n\r\n", 1)
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(buf) < n:
            buf += c.recv(65536)
        buf = buf[n:]
        print("request", head.split(b"\r\n")[0].decode(), flush=True)
        if mode == "xml":
            c.sendall(answer(b"", b"<config-auth client=\"vpn\" type=\"auth-request\"><auth id=\"main\"><form><input type=\"password\" name=\"password\"></auth>"))
        elif mode == "headers":
            c.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 1000 + b"\r\n" * 1 + (b"X-Filler: " + b"a" * 1000 + b"\r\n") * 200 + b"\r\n")
        elif head.startswith(b"CONNECT"):
            c.sendall(b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\nX-CSTP-Address: 192.168.99.7\r\nX-CSTP-Netmask: 255.255.255.0\r\nX-CSTP-DPD: 30\r\nX-CSTP-Keepalive: 20\r\nX-CSTP-MTU: 1400\r\n\r\n")
            c.sendall(b"NOT-A-CSTP-FRAME" * 8)
        else:
            c.sendall(answer(b"Set-Cookie: webvpn=C00KIE; Secure\r\n", xml))
    c.close()
"#;
    let mut cmd = ns(&t.gateway(), "python3");
    cmd.args(["-c", script, mode, cert, key, GATEWAY_IP]);
    let p = Proc::spawn(&format!("hostile gateway ({mode})"), cmd);
    p.log.wait_for("ready", Duration::from_secs(10));
    p
}

#[test]
fn a_hostile_gateway_gets_a_clear_error_and_exit_1() {
    let t = Topology::up();
    let (cert, key) = (t.dir.join("server.crt").display().to_string(), t.dir.join("server.key").display().to_string());
    // A certificate of its own, signed by nobody the device trusts.
    let (rogue_cert, rogue_key) =
        (t.dir.join("rogue.crt").display().to_string(), t.dir.join("rogue.key").display().to_string());
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=10.10.0.1",
        "-addext",
        "subjectAltName=IP:10.10.0.1",
        "-keyout",
        &rogue_key,
        "-out",
        &rogue_cert,
    ]));
    for (mode, cert, key, says) in [
        ("xml", &cert, &key, "auth XML"),
        ("headers", &cert, &key, "HTTP"),
        ("cstp", &cert, &key, "CSTP"),
        ("cert", &rogue_cert, &rogue_key, "certificate"),
    ] {
        let server = hostile_gateway(&t, mode, cert, key);
        let mut c = client(&t, &[]);
        let code = exit_code(&mut c, Duration::from_secs(20));
        let log = c.log.text();
        assert_eq!(code, 1, "{mode}: {log}\nserver:\n{}", server.log.text());
        assert!(log.contains("corridor connect failed") && log.contains(says), "{mode}: says what was wrong: {log}");
        assert!(!log.contains("panicked"), "{mode}: {log}");
        let links = run(Command::new("ip").args(["-n", &t.device(), "-o", "link", "show"]));
        assert!(!String::from_utf8_lossy(&links.stdout).contains(IFNAME), "{mode}: no TUN left behind");
        drop(server);
    }
}
