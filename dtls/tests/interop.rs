//! Interop with DTLS stacks nobody here wrote: OpenSSL 3.0 (`s_server`,
//! `s_client`), GnuTLS 3.7 (`gnutls-serv`, `gnutls-cli`), openconnect's exact
//! PSK-NEGOTIATE client profile (GnuTLS, `peers/oc_dtls_client.c`) and Mbed TLS
//! 2.28 (python-mbedtls). Every test names its peer; a peer that cannot be
//! found fails the test. `scripts/test.sh` installs them and runs this inside
//! a private network namespace, so all traffic stays on its own loopback.

#![allow(clippy::indexing_slicing)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use dtls::{
    AlertDescription, CipherSuite, ClientConfig, CloseReason, Error, Psk, PskRequest, PskResolver, ServerConfig,
    StaticPsk,
};
use support::driver::{bind_server, run_client, run_server, Outcome};
use support::peers::{self, OpensslServerOpts, PskSuite};

const LIMIT: Duration = Duration::from_secs(15);

fn suite(s: PskSuite) -> CipherSuite {
    CipherSuite(s.id())
}

fn server_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn our_client(s: PskSuite, identity: &str) -> ClientConfig {
    let mut c = ClientConfig::new(identity.as_bytes(), &peers::test_psk());
    c.common.suites = vec![suite(s)];
    c
}

fn our_server(suites: &[PskSuite]) -> ServerConfig {
    let mut s = ServerConfig::new(Arc::new(StaticPsk {
        identity: peers::TEST_PSK_IDENTITY.as_bytes().to_vec(),
        psk: peers::test_psk().into(),
    }));
    s.common.suites = suites.iter().map(|x| suite(*x)).collect();
    s
}

fn assert_connected(o: &Outcome, s: PskSuite) {
    let info = o.info.as_ref().unwrap_or_else(|| panic!("our side did not connect: {o:?}"));
    assert_eq!(info.suite, suite(s), "{o:?}");
}

// ---------------------------------------------------------------------------
// Our client → OpenSSL s_server

fn client_to_openssl(s: PskSuite, opts: OpensslServerOpts) -> (Outcome, peers::PeerProcess) {
    let port = peers::free_udp_port();
    let mut srv = peers::openssl_s_server(port, s.openssl(), &opts);
    srv.send_stdin_line("srv-hello");
    let o = run_client(our_client(s, peers::TEST_PSK_IDENTITY), server_addr(port), b"cli-hello\n", LIMIT);
    assert_connected(&o, s);
    assert_eq!(o.received_text(), "srv-hello\n", "{o:?}");
    srv.wait_for_line("cli-hello", Duration::from_secs(5)).expect("s_server got our data");
    (o, srv)
}

#[test]
fn openssl_s_server_psk_aes128_gcm() {
    let (o, _) = client_to_openssl(PskSuite::Aes128Gcm, OpensslServerOpts::default());
    assert!(o.info.as_ref().is_some_and(|i| i.extended_master_secret), "OpenSSL negotiates EMS when offered");
    assert_eq!(o.closed, Some(CloseReason::LocalClose));
}

#[test]
fn openssl_s_server_psk_aes256_gcm() {
    client_to_openssl(PskSuite::Aes256Gcm, OpensslServerOpts::default());
}

#[test]
fn openssl_s_server_psk_chacha20_poly1305() {
    client_to_openssl(PskSuite::Chacha20Poly1305, OpensslServerOpts::default());
}

#[test]
fn openssl_s_server_listen_stateless_cookies_and_hint_aes128() {
    let opts = OpensslServerOpts { listen: true, psk_hint: Some("corridor-hint".into()), ..Default::default() };
    let (o, _) = client_to_openssl(PskSuite::Aes128Gcm, opts);
    assert_eq!(o.info.and_then(|i| i.psk_identity_hint), Some(b"corridor-hint".to_vec()), "ServerKeyExchange read");
}

#[test]
fn openssl_s_server_listen_hint_no_ticket_aes256() {
    let opts = OpensslServerOpts { listen: true, psk_hint: Some("h".into()), no_ticket: true, ..Default::default() };
    client_to_openssl(PskSuite::Aes256Gcm, opts);
}

#[test]
fn openssl_s_server_small_mtu_fragments_its_flights() {
    // `-mtu 256` leaves ~228 bytes per datagram; a 250-byte hint makes the
    // ServerKeyExchange larger than that, so OpenSSL must fragment it.
    let opts = OpensslServerOpts { mtu: Some(256), psk_hint: Some("x".repeat(250)), ..Default::default() };
    let (o, _) = client_to_openssl(PskSuite::Aes128Gcm, opts);
    assert!(o.stats.partial_fragments >= 2, "{:?}", o.stats);
}

#[test]
fn openssl_s_server_without_ems_offer() {
    let port = peers::free_udp_port();
    let mut srv = peers::openssl_s_server(port, PskSuite::Aes256Gcm.openssl(), &OpensslServerOpts::default());
    srv.send_stdin_line("srv-hello");
    let mut c = our_client(PskSuite::Aes256Gcm, peers::TEST_PSK_IDENTITY);
    c.offer_extended_master_secret = false;
    let o = run_client(c, server_addr(port), b"cli-hello\n", LIMIT);
    assert!(o.info.as_ref().is_some_and(|i| !i.extended_master_secret), "{o:?}");
    assert_eq!(o.received_text(), "srv-hello\n");
}

#[test]
fn openssl_s_server_wrong_psk_never_connects_and_gives_up() {
    let port = peers::free_udp_port();
    let opts = OpensslServerOpts { psk_hex: Some("ffeeddccbbaa99887766554433221100".into()), ..Default::default() };
    let srv = peers::openssl_s_server(port, PskSuite::Aes128Gcm.openssl(), &opts);
    let mut c = our_client(PskSuite::Aes128Gcm, peers::TEST_PSK_IDENTITY);
    c.common.timers.handshake_timeout = Duration::from_secs(4);
    let o = run_client(c, server_addr(port), b"cli-hello\n", Duration::from_secs(10));
    assert!(o.info.is_none(), "{o:?}");
    assert_eq!(o.closed, Some(CloseReason::Error(Error::HandshakeTimeout)), "{o:?}");
    assert!(o.elapsed < Duration::from_secs(6));
    srv.assert_no_line("CONNECTION ESTABLISHED");
}

#[test]
fn openssl_s_server_no_shared_suite_alert() {
    let port = peers::free_udp_port();
    let _srv = peers::openssl_s_server(port, PskSuite::Aes256Gcm.openssl(), &OpensslServerOpts::default());
    let o = run_client(our_client(PskSuite::Aes128Gcm, "client1"), server_addr(port), b"x", LIMIT);
    assert_eq!(o.closed, Some(CloseReason::PeerAlert(AlertDescription::HANDSHAKE_FAILURE)), "{o:?}");
    assert!(o.elapsed < Duration::from_secs(3), "an alert fails fast: {:?}", o.elapsed);
}

// ---------------------------------------------------------------------------
// OpenSSL s_client → our server

fn openssl_client_to_us(s: PskSuite, cookies: bool) {
    let (sock, port) = bind_server();
    let mut cfg = our_server(&[PskSuite::Aes256Gcm, PskSuite::Aes128Gcm, PskSuite::Chacha20Poly1305]);
    cfg.cookies = cookies;
    let server = thread::spawn(move || run_server(cfg, sock, b"srv-hello\n", LIMIT, Duration::from_secs(3)));
    let mut cli = peers::openssl_s_client(port, s.openssl(), peers::TEST_PSK_IDENTITY, peers::TEST_PSK_HEX);
    cli.send_stdin_line("cli-hello");
    cli.wait_for_line("srv-hello", LIMIT).expect("s_client got our reply");
    cli.expect_line("CONNECTION ESTABLISHED");
    cli.expect_line(&format!("Ciphersuite: {}", s.openssl()));
    cli.close_stdin();
    cli.expect_success(Duration::from_secs(5));
    let o = server.join().expect("server thread");
    assert_connected(&o, s);
    assert_eq!(o.received_text(), "cli-hello\n");
    assert_eq!(o.hello_verify_requests, usize::from(cookies));
    assert_eq!(o.closed, Some(CloseReason::PeerClosed), "close_notify from s_client: {o:?}");
}

#[test]
fn openssl_s_client_psk_aes128_gcm_to_our_server() {
    openssl_client_to_us(PskSuite::Aes128Gcm, true);
}

#[test]
fn openssl_s_client_psk_aes256_gcm_to_our_server() {
    openssl_client_to_us(PskSuite::Aes256Gcm, true);
}

#[test]
fn openssl_s_client_psk_chacha20_to_our_server_without_cookies() {
    openssl_client_to_us(PskSuite::Chacha20Poly1305, false);
}

#[test]
fn openssl_s_client_no_shared_suite_gets_handshake_failure() {
    let (sock, port) = bind_server();
    let cfg = our_server(&[PskSuite::Aes256Gcm]);
    let server = thread::spawn(move || run_server(cfg, sock, b"", Duration::from_secs(5), Duration::ZERO));
    let mut cli = peers::openssl_s_client(port, PskSuite::Aes128Gcm.openssl(), "client1", peers::TEST_PSK_HEX);
    cli.wait_for_line("alert handshake failure", LIMIT).expect("alert 40 reached s_client");
    let status = cli.wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|s| !s.success()));
    let o = server.join().expect("server");
    assert_eq!(o.closed, Some(CloseReason::Error(Error::NoSharedCipherSuite)));
}

// ---------------------------------------------------------------------------
// GnuTLS

fn client_to_gnutls(s: PskSuite, priority: &str, mut c: ClientConfig) -> Outcome {
    let dir = tempdir();
    let file = peers::write_gnutls_psk_file(&dir);
    let port = peers::free_udp_port();
    let srv = peers::gnutls_serv(port, priority, &file);
    c.common.suites = vec![suite(s)];
    let o = run_client(c, server_addr(port), b"cli-hello\n", LIMIT);
    assert_connected(&o, s);
    assert_eq!(o.received_text(), "cli-hello\n", "gnutls-serv --echo: {o:?}");
    srv.wait_for_line("cli-hello", Duration::from_secs(5)).expect("gnutls-serv saw our data");
    o
}

#[test]
fn gnutls_serv_psk_aes128_gcm() {
    let o = client_to_gnutls(
        PskSuite::Aes128Gcm,
        PskSuite::Aes128Gcm.gnutls_priority(),
        our_client(PskSuite::Aes128Gcm, "client1"),
    );
    assert!(o.info.is_some_and(|i| i.extended_master_secret), "GnuTLS NORMAL negotiates EMS");
}

#[test]
fn gnutls_serv_psk_aes256_gcm() {
    client_to_gnutls(
        PskSuite::Aes256Gcm,
        PskSuite::Aes256Gcm.gnutls_priority(),
        our_client(PskSuite::Aes256Gcm, "client1"),
    );
}

#[test]
fn gnutls_serv_psk_chacha20_poly1305() {
    let s = PskSuite::Chacha20Poly1305;
    client_to_gnutls(s, s.gnutls_priority(), our_client(s, "client1"));
}

/// Row 5 of the matrix: an ocserv-like GnuTLS server (`%COMPAT`: no EMS) and
/// our client in openconnect's shape (identity `psk`, App-ID in session_id,
/// no EMS offered).
#[test]
fn gnutls_serv_ocserv_profile_with_our_openconnect_shaped_client() {
    let mut c = our_client(PskSuite::Aes256Gcm, peers::OC_PSK_IDENTITY);
    c.session_id = vec![0x42; 32];
    c.offer_extended_master_secret = false;
    let o = client_to_gnutls(PskSuite::Aes256Gcm, peers::OCSERV_PRIORITY, c);
    assert!(o.info.is_some_and(|i| !i.extended_master_secret));
}

fn gnutls_client_to_us(s: PskSuite) {
    let (sock, port) = bind_server();
    let cfg = our_server(&[PskSuite::Aes256Gcm, PskSuite::Aes128Gcm, PskSuite::Chacha20Poly1305]);
    let server = thread::spawn(move || run_server(cfg, sock, b"srv-hello\n", LIMIT, Duration::from_secs(1)));
    let mut cli = peers::gnutls_cli(port, s.gnutls_priority(), peers::TEST_PSK_IDENTITY, peers::TEST_PSK_HEX);
    cli.send_stdin_line("cli-hello");
    cli.wait_for_line("srv-hello", LIMIT).expect("gnutls-cli got our reply");
    cli.expect_line("Handshake was completed");
    cli.expect_line(s.gnutls_description());
    cli.expect_line("extended master secret");
    cli.kill();
    let o = server.join().expect("server");
    assert_connected(&o, s);
    assert!(o.info.as_ref().is_some_and(|i| i.extended_master_secret));
    assert_eq!(o.received_text(), "cli-hello\n");
    assert_eq!(o.hello_verify_requests, 1);
}

#[test]
fn gnutls_cli_psk_aes128_gcm_to_our_server() {
    gnutls_client_to_us(PskSuite::Aes128Gcm);
}

#[test]
fn gnutls_cli_psk_aes256_gcm_to_our_server() {
    gnutls_client_to_us(PskSuite::Aes256Gcm);
}

#[test]
fn gnutls_cli_psk_chacha20_to_our_server() {
    gnutls_client_to_us(PskSuite::Chacha20Poly1305);
}

// ---------------------------------------------------------------------------
// openconnect's PSK-NEGOTIATE client profile → our server

/// Keys by App-ID, the way the gateway will look them up: the identity is
/// always `psk` and carries nothing.
#[derive(Debug)]
struct AppIdKeys(HashMap<Vec<u8>, Vec<u8>>);

impl PskResolver for AppIdKeys {
    fn resolve(&self, r: &PskRequest<'_>) -> Option<Psk> {
        if r.identity != b"psk" {
            return None;
        }
        self.0.get(r.app_id).map(|k| k.clone().into())
    }
}

const APP_A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const APP_B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const KEY_A: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
const KEY_B: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn app_id_server(cookies: bool, suites: &[PskSuite]) -> ServerConfig {
    let keys = HashMap::from([
        (peers::decode_hex(APP_A), peers::decode_hex(KEY_A)),
        (peers::decode_hex(APP_B), peers::decode_hex(KEY_B)),
    ]);
    let mut cfg = ServerConfig::new(Arc::new(AppIdKeys(keys)));
    cfg.cookies = cookies;
    cfg.common.suites = suites.iter().map(|s| suite(*s)).collect();
    cfg
}

fn openconnect_profile_to_us(cookies: bool, app: &str, key: &str, suites: &[PskSuite], expect: PskSuite) {
    let (sock, port) = bind_server();
    let cfg = app_id_server(cookies, suites);
    let server = thread::spawn(move || run_server(cfg, sock, b"srv-hello\n", LIMIT, Duration::from_millis(500)));
    let mut cli = peers::oc_dtls_client(port, key, app, None);
    let line = cli.wait_for_line("HANDSHAKE OK", LIMIT).expect("openconnect profile handshake");
    assert!(line.contains(&format!("suite={}", expect.gnutls_name())), "{line}");
    assert!(line.contains("ems=0"), "openconnect's %COMPAT profile has no EMS: {line}");
    cli.wait_for_line("RECV srv-hello", LIMIT).expect("reply");
    cli.expect_success(Duration::from_secs(5));
    let o = server.join().expect("server");
    assert_connected(&o, expect);
    let info = o.info.as_ref().expect("info");
    assert_eq!(info.app_id, peers::decode_hex(app), "the key was chosen by the ClientHello session_id");
    assert_eq!(info.psk_identity, b"psk");
    assert!(!info.extended_master_secret);
    assert_eq!(o.received_text(), "cli-hello\n");
}

#[test]
fn openconnect_profile_picks_key_by_app_id_with_cookies() {
    let all = [PskSuite::Aes256Gcm, PskSuite::Aes128Gcm, PskSuite::Chacha20Poly1305];
    openconnect_profile_to_us(true, APP_A, KEY_A, &all, PskSuite::Aes256Gcm);
}

#[test]
fn openconnect_profile_second_app_id_without_cookies() {
    let all = [PskSuite::Aes256Gcm, PskSuite::Aes128Gcm];
    openconnect_profile_to_us(false, APP_B, KEY_B, &all, PskSuite::Aes256Gcm);
}

#[test]
fn openconnect_profile_server_preference_aes128() {
    openconnect_profile_to_us(true, APP_A, KEY_A, &[PskSuite::Aes128Gcm, PskSuite::Aes256Gcm], PskSuite::Aes128Gcm);
}

#[test]
fn openconnect_profile_key_of_another_app_id_fails() {
    let (sock, port) = bind_server();
    let mut cfg = app_id_server(true, &[PskSuite::Aes256Gcm]);
    cfg.common.timers.handshake_timeout = Duration::from_secs(4);
    let server = thread::spawn(move || run_server(cfg, sock, b"", Duration::from_secs(8), Duration::ZERO));
    // App-ID A with B's key: the server derives A's key, so nothing verifies.
    let mut cli = peers::oc_dtls_client(port, KEY_B, APP_A, None);
    let status = cli.wait_exit(Duration::from_secs(15));
    assert!(status.is_some_and(|s| !s.success()), "{}", cli.transcript());
    cli.assert_no_line("HANDSHAKE OK");
    let o = server.join().expect("server");
    assert!(o.info.is_none(), "{o:?}");
    assert!(o.stats.bad_record_mac >= 1, "the client's Finished failed authentication: {o:?}");
}

// ---------------------------------------------------------------------------
// Mbed TLS (python-mbedtls)

fn client_to_mbedtls(s: PskSuite) {
    let port = peers::free_udp_port();
    let srv = peers::mbedtls_server(port, s.mbedtls(), peers::TEST_PSK_IDENTITY, peers::TEST_PSK_HEX);
    let o = run_client(our_client(s, peers::TEST_PSK_IDENTITY), server_addr(port), b"cli-hello\n", LIMIT);
    assert_connected(&o, s);
    assert_eq!(o.received_text(), "srv-hello\n", "{o:?}");
    srv.wait_for_line("RECV cli-hello", Duration::from_secs(5)).expect("mbedtls got our data");
    srv.expect_line(&format!("suite={}", s.mbedtls()));
}

#[test]
fn mbedtls_server_psk_aes128_gcm() {
    client_to_mbedtls(PskSuite::Aes128Gcm);
}

#[test]
fn mbedtls_server_psk_aes256_gcm() {
    client_to_mbedtls(PskSuite::Aes256Gcm);
}

fn mbedtls_client_to_us(s: PskSuite) {
    let (sock, port) = bind_server();
    let cfg = our_server(&[PskSuite::Aes256Gcm, PskSuite::Aes128Gcm]);
    let server = thread::spawn(move || run_server(cfg, sock, b"srv-hello\n", LIMIT, Duration::from_millis(500)));
    let mut cli = peers::mbedtls_client(port, s.mbedtls(), peers::TEST_PSK_IDENTITY, peers::TEST_PSK_HEX);
    cli.wait_for_line("RECV srv-hello", LIMIT).expect("mbedtls client got our reply");
    cli.expect_line(&format!("suite={}", s.mbedtls()));
    cli.expect_success(Duration::from_secs(5));
    let o = server.join().expect("server");
    assert_connected(&o, s);
    assert_eq!(o.received_text(), "cli-hello\n");
}

#[test]
fn mbedtls_client_psk_aes128_gcm_to_our_server() {
    mbedtls_client_to_us(PskSuite::Aes128Gcm);
}

#[test]
fn mbedtls_client_psk_aes256_gcm_to_our_server() {
    mbedtls_client_to_us(PskSuite::Aes256Gcm);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "interop-{}-{}",
        std::process::id(),
        peers::free_udp_port()
    ));
    std::fs::create_dir_all(&d).expect("tempdir");
    d
}
