//! Interop: a `DeviceSession` (driven by the `device-probe` example over
//! real sockets in the device namespace) against Debian's ocserv 1.1.6
//! (`scripts/ocserv-peer.sh`, via `testbed::Ocserv`) on the same topology
//! as corridor, to the UDP echo server in the org namespace. ocserv is a
//! server nobody here wrote: its two-step login, cookies, CONNECT answer,
//! DTLS-PSK and reconnect handling are the real bytes. Needs root and
//! ocserv installed (scripts/test.sh installs it); fails without them.

use std::io::Write;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use testbed::*;

fn probe_bin() -> PathBuf {
    let p = target_profile_dir().join("examples/device-probe");
    assert!(p.is_file(), "{} is missing: run `cargo test -p corridor-device` (it builds examples)", p.display());
    p
}

fn probe(t: &Topology, flags: &[&str]) -> Output {
    let mut cmd = ns(&t.device(), probe_bin());
    cmd.args(flags).arg(GATEWAY_IP).arg(t.dir.join("ca.crt")).args(["alice", PASSWORD, &format!("{ORG_IP}:9000")]);
    cmd.output().expect("device-probe")
}

fn lines<'a>(stdout: &'a str, prefix: &str) -> Vec<&'a str> {
    stdout.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn device_logs_in_to_ocserv_brings_dtls_up_and_echoes_udp() {
    let t = Topology::up();
    let org = Org::start(&t);
    let oc = Ocserv::start(&t);
    let out = probe(&t, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = || format!("probe:\n{stdout}\n{}\nocserv log:\n{}", String::from_utf8_lossy(&out.stderr), oc.log());
    eprintln!("{stdout}");
    assert!(out.status.success(), "{}", context());
    assert_eq!(lines(&stdout, "LOGGED IN").len(), 1, "{}", context());
    let tunnel = lines(&stdout, "TUNNEL UP");
    assert_eq!(tunnel.len(), 1, "{}", context());
    assert!(tunnel[0].contains("address=192.168.99."), "an address from ocserv's pool: {}", tunnel[0]);
    // ocserv's App-ID is 32 bytes, its DTLS port the TCP one (Appendix A.1).
    assert!(tunnel[0].contains("dtls_port=Some(443)") && tunnel[0].contains("app_id_len=32"), "{}", tunnel[0]);
    let dtls = lines(&stdout, "DTLS UP");
    assert_eq!(dtls.len(), 1, "{}", context());
    assert!(dtls[0].contains("TLS_PSK_WITH_AES_256_GCM_SHA384"), "{}", dtls[0]);
    assert_eq!(lines(&stdout, "SENT via"), ["SENT via Dtls"], "{}", context());
    // The echo came back as a DTLS record. (ocserv also forwards what the
    // kernel multicasts on its TUN, IGMP reports, so other packets may
    // have arrived: the probe prints them as PACKET lines.)
    let echo = lines(&stdout, "ECHO OK");
    assert_eq!(echo.len(), 1, "{}", context());
    assert!(echo[0].starts_with("ECHO OK via=Dtls"), "{}", context());
    assert_eq!(lines(&stdout, "DONE").len(), 1, "{}", context());
    // The echo server saw the tunnel address, routed back through ocserv.
    let address = tunnel[0].split_whitespace().find_map(|w| w.strip_prefix("address=")).unwrap_or_default();
    org.udp.log.wait_for(&format!("from {address}"), Duration::from_secs(5));
}

#[test]
fn device_reconnects_to_ocserv_with_its_cookie_and_keeps_the_address() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let oc = Ocserv::start(&t);
    let out = probe(&t, &["--reconnect"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = || format!("probe:\n{stdout}\n{}\nocserv log:\n{}", String::from_utf8_lossy(&out.stderr), oc.log());
    eprintln!("{stdout}");
    assert!(out.status.success(), "{}", context());
    assert_eq!(lines(&stdout, "LOGGED IN").len(), 1, "one login, then the cookie: {}", context());
    assert_eq!(lines(&stdout, "DROPPED TCP").len(), 1, "{}", context());
    assert_eq!(lines(&stdout, "RECONNECTING"), ["RECONNECTING attempt=1"], "{}", context());
    let tunnel = lines(&stdout, "TUNNEL UP");
    assert_eq!(tunnel.len(), 2, "{}", context());
    let address = |l: &str| l.split_whitespace().find(|w| w.starts_with("address=")).map(str::to_string);
    assert_eq!(address(tunnel[0]), address(tunnel[1]), "same address after the reconnect: {}", context());
    assert_eq!(lines(&stdout, "RECONNECTED"), ["RECONNECTED reconnects=1"], "{}", context());
    assert_eq!(lines(&stdout, "DTLS UP").len(), 2, "DTLS again with the new key: {}", context());
    let echo = lines(&stdout, "ECHO OK");
    assert_eq!(echo.len(), 2, "{}", context());
    assert!(echo.iter().all(|l| l.starts_with("ECHO OK via=Dtls")), "both echoes over DTLS: {}", context());
    assert_eq!(lines(&stdout, "DONE").len(), 1, "{}", context());
}

#[test]
fn device_is_told_to_log_in_again_when_a_restarted_ocserv_forgot_its_cookie() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let oc = Ocserv::start(&t);
    let mut cmd = ns(&t.device(), probe_bin());
    cmd.args(["--reconnect", "--hold", GATEWAY_IP]).arg(t.dir.join("ca.crt")).args([
        "alice",
        PASSWORD,
        &format!("{ORG_IP}:9000"),
    ]);
    let mut probe = Proc::spawn("device-probe", cmd);
    probe.log.wait_for("HOLDING", Duration::from_secs(30));
    // A new ocserv (same address, keys and users) knows no cookie.
    drop(oc);
    let oc = Ocserv::start(&t);
    let mut stdin = probe.child.stdin.take().expect("probe stdin");
    stdin.write_all(b"\n").expect("release the probe");
    let status = wait_until("the probe to exit", Duration::from_secs(30), || probe.child.try_wait().ok().flatten());
    let stdout = probe.log.text();
    eprintln!("{stdout}");
    assert!(!status.success(), "{stdout}\nocserv log:\n{}", oc.log());
    // ocserv answers the stale cookie with `401` and a fatal TLS alert at
    // once; the 401 must win: no attempt after it.
    assert_eq!(lines(&stdout, "RECONNECTING"), ["RECONNECTING attempt=1"], "no retries: {stdout}");
    let failed = lines(&stdout, "FAILED");
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].starts_with("FAILED disconnected: CookieRejected { status: 401"),
        "{stdout}\nocserv log:\n{}",
        oc.log()
    );
}

#[test]
fn device_over_tls12_derives_the_dtls_psk_ocserv_expects() {
    // Under TLS 1.2 the exporter with no context differs from one with an
    // empty context (§5.3): GnuTLS on the other end is the judge.
    let t = Topology::up();
    let _org = Org::start(&t);
    let oc = Ocserv::start(&t);
    let out = probe(&t, &["--tls12"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(out.status.success(), "{stdout}\nocserv log:\n{}", oc.log());
    assert_eq!(lines(&stdout, "DTLS UP").len(), 1, "{stdout}");
    let echo = lines(&stdout, "ECHO OK");
    assert!(echo.len() == 1 && echo[0].starts_with("ECHO OK via=Dtls"), "{stdout}");
}
