//! A device against a scripted gateway: an in-memory rustls server that
//! answers with the ocserv responses captured in Appendix A.1, and a
//! corridor DTLS server keyed from the same TLS exporter. Virtual time.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;

mod reconnect;

const CA: &[u8] = include_bytes!("../../../testdata/ca.crt");
const CERT: &[u8] = include_bytes!("../../../testdata/server.crt");
const KEY: &[u8] = include_bytes!("../../../testdata/server.key");
/// CN `carol`, signed by the same CA.
const CLIENT_CERT: &[u8] = include_bytes!("../../../testdata/client.crt");
const CLIENT_KEY: &[u8] = include_bytes!("../../../testdata/client.key");

const APP_ID_HEX: &str = "c355ae8c3eb0ce4d56b422e23226462ad942cad5becdd01dd6cf3d1cf8e25258";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(CA).unwrap()).unwrap();
    roots
}

fn device_config() -> DeviceConfig {
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots())
        .with_no_client_auth();
    let name = ServerName::try_from("vpn.test").unwrap();
    DeviceConfig::new(Arc::new(tls), name, "vpn.test", "testuser", "s3cret")
}

/// A device holding carol's certificate and no password.
fn certificate_config() -> DeviceConfig {
    let chain = vec![CertificateDer::from_pem_slice(CLIENT_CERT).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(CLIENT_KEY).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots())
        .with_client_auth_cert(chain, key)
        .unwrap();
    DeviceConfig::with_certificate(Arc::new(tls), ServerName::try_from("vpn.test").unwrap(), "vpn.test")
}

/// The gateway's TLS end, driven by hand.
struct Gateway {
    tls: rustls::ServerConnection,
}

impl Gateway {
    fn new() -> Self {
        Self::with_verifier(rustls::server::WebPkiClientVerifier::no_client_auth())
    }

    /// Asks for a client certificate signed by the test CA and accepts a
    /// connection without one, as corridor with `client_ca` does.
    fn asking_for_certificates() -> Self {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots()), provider())
            .allow_unauthenticated()
            .build()
            .unwrap();
        Self::with_verifier(verifier)
    }

    fn with_verifier(verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>) -> Self {
        let cert = CertificateDer::from_pem_slice(CERT).unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert], key)
            .unwrap();
        Self { tls: rustls::ServerConnection::new(Arc::new(config)).unwrap() }
    }

    /// Whether the device presented carol's certificate in this handshake.
    fn saw_client_certificate(&self) -> bool {
        let carol = CertificateDer::from_pem_slice(CLIENT_CERT).unwrap();
        self.tls.peer_certificates().is_some_and(|chain| chain.first() == Some(&carol))
    }

    /// Moves TLS bytes both ways until neither side has any.
    fn pump(&mut self, now: Instant, d: &mut DeviceSession) {
        for _ in 0..20 {
            let mut to_gw = Vec::new();
            d.poll_tls(&mut to_gw);
            let mut to_dev = Vec::new();
            while self.tls.wants_write() {
                self.tls.write_tls(&mut to_dev).unwrap();
            }
            if to_gw.is_empty() && to_dev.is_empty() {
                return;
            }
            let mut input = to_gw.as_slice();
            while !input.is_empty() {
                self.tls.read_tls(&mut input).unwrap();
                self.tls.process_new_packets().unwrap();
            }
            d.handle_tls(now, &to_dev);
        }
        panic!("TLS did not settle");
    }

    /// Everything the device sent as plaintext.
    fn read(&mut self) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.tls.writer().write_all(bytes).unwrap();
    }
}

fn response(extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\n{extra_headers}Content-Type: text/xml\r\nContent-Length: {}\r\nX-Transcend-Version: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const ASK_USERNAME: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"auth-request\">\n\
<version who=\"sg\">0.1(1)</version>\n<auth id=\"main\">\n<message>Please enter your username.</message>\n\
<form method=\"post\" action=\"/auth\">\n<input type=\"text\" name=\"username\" label=\"Username:\" />\n</form></auth>\n</config-auth>\n";

const ASK_PASSWORD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"auth-request\">\n\
<version who=\"sg\">0.1(1)</version>\n<auth id=\"main\">\n<message>Please enter your password.</message>\n\
<form method=\"post\" action=\"/auth\">\n<input type=\"password\" name=\"password\" label=\"Password:\" />\n</form></auth>\n</config-auth>\n";

const LOGIN_FAILED: &str = "<config-auth client=\"vpn\" type=\"auth-request\"><auth id=\"main\">\
<message>Please enter your password.</message><error>Login failed.</error><form method=\"post\" action=\"/auth\">\
<input type=\"password\" name=\"password\" label=\"Password:\" /></form></auth></config-auth>";

const SUCCESS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"complete\">\n\
<version who=\"sg\">0.1(1)</version>\n<auth id=\"success\">\n<title>SSL VPN Service</title>\
<banner>Welcome to the test gateway</banner></auth></config-auth>\n";

const SUCCESS_COOKIES: &str = "Connection: Keep-Alive\r\nSet-Cookie: webvpncontext=SID; Secure; HttpOnly\r\n\
Set-Cookie: webvpn=C00KIE; Secure; HttpOnly\r\n\
Set-Cookie: webvpnc=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure; HttpOnly\r\n";

fn events(d: &mut DeviceSession) -> Vec<Event> {
    std::iter::from_fn(|| d.poll_event()).collect()
}

/// Logs in over ocserv's two-step form (Appendix A.1) and returns the
/// CONNECT request the device sent.
fn login(now: Instant, gw: &mut Gateway, d: &mut DeviceSession) -> String {
    gw.pump(now, d);
    let init = gw.read();
    assert!(init.starts_with("POST / HTTP/1.1\r\nHost: vpn.test\r\n"), "{init}");
    assert!(init.contains("type=\"init\"") && init.contains("X-Aggregate-Auth: 1"), "{init}");

    gw.send(&response("Set-Cookie: webvpncontext=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/\r\n", ASK_USERNAME));
    gw.pump(now, d);
    let step1 = gw.read();
    assert!(step1.starts_with("POST /auth HTTP/1.1\r\n"), "{step1}");
    assert!(step1.contains("<auth><username>testuser</username></auth>"), "{step1}");
    assert!(!step1.contains("Cookie:"), "an expired cookie is not replayed: {step1}");

    gw.send(&response("Set-Cookie: webvpncontext=SID; Max-Age=300; Secure; HttpOnly\r\n", ASK_PASSWORD));
    gw.pump(now, d);
    let step2 = gw.read();
    assert!(step2.contains("\r\nCookie: webvpncontext=SID\r\n"), "{step2}");
    assert!(step2.contains("<auth><password>s3cret</password></auth>"), "{step2}");
    assert_eq!(d.phase(), Phase::Authenticating);

    gw.send(&response(SUCCESS_COOKIES, SUCCESS));
    gw.pump(now, d);
    assert_eq!(events(d), [Event::LoggedIn]);
    assert_eq!(d.phase(), Phase::Connecting);
    gw.read()
}

/// Appendix A.1's CONNECT answer from ocserv 1.1.6.
const OCSERV_CONNECT: &str = "HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\n\
X-CSTP-Server-Name: ocserv 1.1.6\r\nX-CSTP-Hostname: vm\r\nX-CSTP-DPD: 90\r\n\
X-CSTP-Default-Domain: example.test\r\nX-CSTP-Address: 192.168.99.121\r\nX-CSTP-Netmask: 255.255.255.0\r\n\
X-CSTP-DNS: 192.168.99.1\r\nX-CSTP-Split-Include: 10.99.0.0/255.255.0.0\r\nX-CSTP-Tunnel-All-DNS: false\r\n\
X-CSTP-Client-Bypass-Protocol: false\r\nX-CSTP-Split-Exclude: 10.99.5.0/255.255.255.0\r\n\
X-CSTP-Keepalive: 32400\r\nX-CSTP-Idle-Timeout: 1200\r\nX-CSTP-Smartcard-Removal-Disconnect: true\r\n\
X-CSTP-Rekey-Time: 172820\r\nX-CSTP-Rekey-Method: ssl\r\nX-CSTP-Session-Timeout: 86400\r\n\
X-CSTP-Session-Timeout-Remaining: 86400\r\nX-CSTP-Disconnected-Timeout: none\r\nX-CSTP-Keep: true\r\n\
X-CSTP-TCP-Keepalive: true\r\nX-CSTP-License: accept\r\nX-DTLS-DPD: 90\r\nX-DTLS-Port: 443\r\n\
X-DTLS-Rekey-Time: 172830\r\nX-DTLS-Rekey-Method: ssl\r\nX-DTLS-Keepalive: 32400\r\n\
X-DTLS-App-ID: c355ae8c3eb0ce4d56b422e23226462ad942cad5becdd01dd6cf3d1cf8e25258\r\n\
X-DTLS-CipherSuite: PSK-NEGOTIATE\r\nX-CSTP-Base-MTU: 1500\r\nX-CSTP-MTU: 1434\r\n\
X-CSTP-Banner: Welcome to the test gateway\r\n\r\n";

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ocserv_connect() -> String {
    OCSERV_CONNECT.replace("X-CSTP-DPD: 90", "X-CSTP-DPD: 30")
}

#[test]
fn ocserv_login_connect_and_cstp() {
    let t0 = Instant::now();
    let mut gw = Gateway::new();
    let mut config = device_config();
    config.dtls = false;
    let mut d = DeviceSession::new(config).unwrap();
    let connect = login(t0, &mut gw, &mut d);
    assert!(connect.starts_with("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n"), "{connect}");
    assert!(connect.contains("\r\nCookie: webvpn=C00KIE\r\n"), "only webvpn: {connect}");
    assert!(!connect.contains("X-DTLS-"), "DTLS not asked for: {connect}");

    // The head and the first frames in one read: the rest is CSTP (§3.2).
    let mut answer = ocserv_connect().into_bytes();
    cstp::write_frame(&mut answer, PacketType::DATA, b"\x45ip").unwrap();
    gw.send(&answer);
    let mut dpd = Vec::new();
    cstp::write_frame(&mut dpd, PacketType::DPD_REQ, b"probe").unwrap();
    gw.send(&dpd);
    gw.pump(t0, &mut d);
    assert_eq!(
        events(&mut d),
        [
            Event::TunnelUp {
                address: Ipv4Addr::new(192, 168, 99, 121),
                netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                mtu: 1434,
                dtls_port: None,
                app_id: None,
            },
            Event::Packet(b"\x45ip".to_vec()),
        ]
    );
    // DPD-REQ answered on CSTP with the same payload (§6.1).
    let mut expected = Vec::new();
    cstp::write_frame(&mut expected, PacketType::DPD_RESP, b"probe").unwrap();
    assert_eq!(gw.read().into_bytes(), expected);

    assert_eq!(d.send_packet(t0, b"\x45out"), Ok(Channel::Cstp));
    gw.pump(t0, &mut d);
    let mut expected = Vec::new();
    cstp::write_frame(&mut expected, PacketType::DATA, b"\x45out").unwrap();
    assert_eq!(gw.read().into_bytes(), expected);

    // Silent gateway: DPD after 30 s, again after 15 s more, dead at 60 s.
    let at = d.poll_timeout().unwrap();
    assert_eq!(at, t0 + Duration::from_secs(30));
    d.handle_timeout(at);
    gw.pump(at, &mut d);
    let mut expected = Vec::new();
    cstp::write_frame(&mut expected, PacketType::DPD_REQ, b"").unwrap();
    assert_eq!(gw.read().into_bytes(), expected);
    let at = d.poll_timeout().unwrap();
    assert_eq!(at, t0 + Duration::from_secs(45));
    d.handle_timeout(at);
    let dead = t0 + Duration::from_secs(60);
    d.handle_timeout(dead);
    // A dead CSTP channel is a lost connection: reconnect at once (§6.1, §6.6).
    assert_eq!(events(&mut d), [Event::Disconnected(DisconnectReason::DpdTimeout)]);
    assert_eq!(d.phase(), Phase::Detached);
    assert_eq!(d.reconnect_at(), Some(dead));
    assert_eq!(d.poll_timeout(), Some(dead + Duration::from_secs(300)));
    assert_eq!(d.send_packet(dead, b"x"), Err(SendError::NotConnected));
}

#[test]
fn wrong_password_is_reported_once_not_looped() {
    let t0 = Instant::now();
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(device_config()).unwrap();
    gw.pump(t0, &mut d);
    gw.read();
    // corridor's one-step form: both fields at once.
    let both = ASK_PASSWORD.replace("<input type", "<input type=\"text\" name=\"username\" /><input type");
    gw.send(&response("", &both));
    gw.pump(t0, &mut d);
    let reply = gw.read();
    assert!(reply.contains("<auth><username>testuser</username><password>s3cret</password></auth>"), "{reply}");
    gw.send(&response("", LOGIN_FAILED));
    gw.pump(t0, &mut d);
    let ev = events(&mut d);
    assert_eq!(ev, [Event::AuthFailed("Login failed.".into()), Event::Disconnected(DisconnectReason::AuthFailed)]);
    assert_eq!(d.phase(), Phase::Closed);
    assert!(gw.read().is_empty(), "no third POST");
}

#[test]
fn connect_refused_with_401() {
    let t0 = Instant::now();
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(device_config()).unwrap();
    login(t0, &mut gw, &mut d);
    gw.send(b"HTTP/1.1 401 Cookie is not acceptable\r\nX-Reason: unknown cookie\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    gw.pump(t0, &mut d);
    assert_eq!(
        events(&mut d),
        [Event::Disconnected(DisconnectReason::ConnectRefused { status: 401, reason: "unknown cookie".into() })]
    );
}

/// The gateway's DTLS end: keyed with the gateway's own exporter value,
/// so the handshake only completes if both sides derived the same PSK.
fn dtls_server(gw: &Gateway) -> dtls::Acceptor {
    let psk = gw.tls.export_keying_material([0u8; 32], b"EXPORTER-openconnect-psk", None).unwrap();
    let resolver = dtls::StaticPsk { identity: b"psk".to_vec(), psk: Zeroizing::new(psk.to_vec()) };
    let mut config = dtls::ServerConfig::new(Arc::new(resolver));
    config.cookies = false;
    dtls::Acceptor::new(Arc::new(config), Instant::now()).unwrap()
}

/// Runs the device's DTLS handshake against a server keyed from `gw`'s
/// exporter; checks the App-ID in the ClientHello (§5.3) and `DtlsUp`.
fn dtls_handshake(now: Instant, gw: &Gateway, d: &mut DeviceSession, app_id_hex: &str) -> Box<dtls::Connection> {
    // The ClientHello carries the App-ID as session_id, no EMS (§5.3).
    let mut hello = Vec::new();
    assert!(d.poll_datagram(&mut hello));
    let peeked = dtls::PeekedClientHello::parse(&hello).unwrap();
    assert_eq!(hex_of(&peeked.hello.session_id), app_id_hex);

    let mut acceptor = dtls_server(gw);
    let mut out = Vec::new();
    let dtls::Accept::Connection(mut server) = acceptor.accept(now, b"device", &hello, &mut out) else {
        panic!("not accepted");
    };
    // Shuttle datagrams until both ends are quiet.
    for _ in 0..10 {
        let mut moved = false;
        let mut buf = Vec::new();
        while server.poll_transmit(&mut buf) {
            d.handle_datagram(now, &buf);
            moved = true;
        }
        while d.poll_datagram(&mut buf) {
            server.handle_datagram(now, &buf);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert!(d.is_dtls_up(), "DTLS did not come up with {}'s exporter key", "this connection");
    let ev = events(d);
    assert!(matches!(ev[..], [Event::DtlsUp { .. }]), "{ev:?}");
    while server.poll_event().is_some() {}
    server
}

/// One DATA packet each way over an established DTLS pair.
fn dtls_round_trip(now: Instant, d: &mut DeviceSession, server: &mut dtls::Connection) {
    assert_eq!(d.send_packet(now, b"\x45ping"), Ok(Channel::Dtls));
    let mut buf = Vec::new();
    assert!(d.poll_datagram(&mut buf));
    server.handle_datagram(now, &buf);
    assert_eq!(server.poll_event(), Some(dtls::Event::ApplicationData(b"\x00\x45ping".to_vec())));
    server.send(b"\x00\x45pong").unwrap();
    while server.poll_transmit(&mut buf) {
        d.handle_datagram(now, &buf);
    }
    assert_eq!(events(d), [Event::Packet(b"\x45pong".to_vec())]);
}

#[test]
fn dtls_comes_up_with_the_exporter_psk_and_carries_packets() {
    let t0 = Instant::now();
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(device_config()).unwrap();
    let connect = login(t0, &mut gw, &mut d);
    assert!(connect.contains("\r\nX-DTLS-CipherSuite: PSK-NEGOTIATE\r\n"), "{connect}");
    gw.send(ocserv_connect().as_bytes());
    gw.pump(t0, &mut d);
    let ev = events(&mut d);
    assert!(
        matches!(&ev[..], [Event::TunnelUp { dtls_port: Some(443), app_id: Some(id), .. }] if id.len() == 32),
        "{ev:?}"
    );

    let mut server = dtls_handshake(t0, &gw, &mut d, APP_ID_HEX);

    // Packets now go over DTLS as type 0x00 + packet.
    assert_eq!(d.send_packet(t0, b"\x45hello"), Ok(Channel::Dtls));
    let mut buf = Vec::new();
    assert!(d.poll_datagram(&mut buf));
    server.handle_datagram(t0, &buf);
    assert_eq!(server.poll_event(), Some(dtls::Event::ApplicationData(b"\x00\x45hello".to_vec())));
    // And come back as Packet events; a DTLS DPD-REQ is echoed byte for byte.
    server.send(b"\x00\x45back").unwrap();
    server.send(b"\x03mtu-probe\x00\x00").unwrap();
    while server.poll_transmit(&mut buf) {
        d.handle_datagram(t0, &buf);
    }
    assert_eq!(events(&mut d), [Event::Packet(b"\x45back".to_vec())]);
    assert!(d.poll_datagram(&mut buf));
    server.handle_datagram(t0, &buf);
    assert_eq!(server.poll_event(), Some(dtls::Event::ApplicationData(b"\x04mtu-probe\x00\x00".to_vec())));
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn exporter(gw: &Gateway) -> [u8; 32] {
    gw.tls.export_keying_material([0u8; 32], b"EXPORTER-openconnect-psk", None).unwrap()
}

/// Logs in and CONNECTs (ocserv's answer, CSTP DPD 30 s); returns the
/// `TunnelUp` event.
fn tunnel_up(now: Instant, gw: &mut Gateway, d: &mut DeviceSession) -> Event {
    login(now, gw, d);
    gw.send(ocserv_connect().as_bytes());
    gw.pump(now, d);
    let ev = events(d);
    assert!(
        matches!(&ev[..], [Event::TunnelUp { address, .. }] if *address == Ipv4Addr::new(192, 168, 99, 121)),
        "{ev:?}"
    );
    assert_eq!(d.phase(), Phase::Tunnel);
    ev.into_iter().next().unwrap()
}

#[test]
fn certificate_login_takes_the_cookie_from_the_init_answer() {
    let t0 = Instant::now();
    let mut gw = Gateway::asking_for_certificates();
    let mut d = DeviceSession::new(certificate_config()).unwrap();
    gw.pump(t0, &mut d);
    assert!(gw.saw_client_certificate(), "carol's certificate in the TLS handshake");
    let init = gw.read();
    assert!(init.starts_with("POST / HTTP/1.1\r\n") && init.contains("type=\"init\""), "{init}");
    // ocserv `auth = "certificate"` (and corridor with `client_ca`) answer
    // `init` with success and the cookie at once (Appendix A.4).
    gw.send(&response(SUCCESS_COOKIES, SUCCESS));
    gw.pump(t0, &mut d);
    assert_eq!(events(&mut d), [Event::LoggedIn]);
    let connect = gw.read();
    assert!(connect.starts_with("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n"), "CONNECT next, no auth-reply: {connect}");
    assert!(connect.contains("\r\nCookie: webvpn=C00KIE\r\n"), "{connect}");
    gw.send(ocserv_connect().as_bytes());
    gw.pump(t0, &mut d);
    let ev = events(&mut d);
    assert!(matches!(ev[..], [Event::TunnelUp { .. }]), "{ev:?}");

    // Its reconnects present the certificate again, and still do not log in.
    lose_connection(t0, &mut d);
    let mut gw2 = Gateway::asking_for_certificates();
    d.reconnect(t0).unwrap();
    gw2.pump(t0, &mut d);
    assert!(gw2.saw_client_certificate());
    assert!(gw2.read().starts_with("CONNECT "));
}

#[test]
fn a_session_started_with_a_cookie_sends_connect_and_no_login() {
    let t0 = Instant::now();
    let mut gw = Gateway::new();
    let mut d = DeviceSession::with_cookie(device_config(), "C00KIE").unwrap();
    assert_eq!((d.phase(), d.cookie()), (Phase::Connecting, Some("C00KIE")));
    gw.pump(t0, &mut d);
    let connect = gw.read();
    assert!(connect.starts_with("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n"), "CONNECT first: {connect}");
    assert!(connect.contains("\r\nCookie: webvpn=C00KIE\r\n") && !connect.contains("POST"), "{connect}");
    assert!(d
        .server_certificate()
        .is_some_and(|c| c.as_ref() == CertificateDer::from_pem_slice(CERT).unwrap().as_ref()));
    gw.send(ocserv_connect().as_bytes());
    gw.pump(t0, &mut d);
    let ev = events(&mut d);
    assert!(matches!(ev[..], [Event::TunnelUp { .. }]), "{ev:?}");

    // A cookie the gateway does not know: refused, said so, over.
    let mut gw = Gateway::new();
    let mut d = DeviceSession::with_cookie(device_config(), "STALE").unwrap();
    gw.pump(t0, &mut d);
    gw.read();
    gw.send(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
    gw.pump(t0, &mut d);
    let ev = events(&mut d);
    assert!(matches!(&ev[..], [Event::Disconnected(DisconnectReason::ConnectRefused { status: 401, .. })]), "{ev:?}");
    assert_eq!(d.phase(), Phase::Closed);
}

#[test]
fn certificate_only_device_does_not_answer_a_password_form() {
    let t0 = Instant::now();
    // A gateway that does not ask for certificates shows its form.
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(certificate_config()).unwrap();
    gw.pump(t0, &mut d);
    assert!(!gw.saw_client_certificate());
    gw.read();
    let both = ASK_PASSWORD.replace("<input type", "<input type=\"text\" name=\"username\" /><input type");
    gw.send(&response("", &both));
    gw.pump(t0, &mut d);
    let ev = events(&mut d);
    let [Event::AuthFailed(why), Event::Disconnected(DisconnectReason::AuthFailed)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert!(why.contains("user name") && why.contains("certificate"), "{why}");
    assert!(gw.read().is_empty(), "no auth-reply with empty answers");
}

/// The device's connection dies at `at`: it detaches, keeping what it needs.
fn lose_connection(at: Instant, d: &mut DeviceSession) {
    d.handle_connection_lost(at);
    assert_eq!(events(d), [Event::Disconnected(DisconnectReason::TlsClosed)]);
    assert_eq!(d.phase(), Phase::Detached);
}
