//! Interop: a `DeviceSession` (driven by the `device-probe` example over
//! real sockets in the device namespace) against Debian's ocserv 1.1.6
//! (`scripts/ocserv-peer.sh`, via `testbed::Ocserv`) on the same topology
//! as corridor, to the UDP echo server in the org namespace. ocserv is a
//! server nobody here wrote: its two-step password login, its certificate
//! login (`auth = "certificate"`), cookies, CONNECT answer, DTLS-PSK and
//! reconnect handling are the real bytes. Needs root and ocserv installed
//! (scripts/test.sh installs it); fails without them.

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

/// The one line of `stdout` that starts with `prefix`; panics with
/// `context` if there are none or several.
fn one<'a>(stdout: &'a str, prefix: &str, context: impl Fn() -> String) -> &'a str {
    match lines(stdout, prefix).as_slice() {
        [line] => line,
        other => panic!("{} lines starting {prefix:?}, not one: {}", other.len(), context()),
    }
}

/// One login, the tunnel from ocserv's pool, DTLS-PSK up, and one UDP echo
/// over DTLS that the org echo server saw come from the tunnel address.
fn assert_one_login_and_a_dtls_echo(out: &Output, oc: &Ocserv, org: &Org) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = || format!("probe:\n{stdout}\n{}\nocserv log:\n{}", String::from_utf8_lossy(&out.stderr), oc.log());
    eprintln!("{stdout}");
    assert!(out.status.success(), "{}", context());
    one(&stdout, "LOGGED IN", context);
    let tunnel = one(&stdout, "TUNNEL UP", context);
    assert!(tunnel.contains("address=192.168.99."), "an address from ocserv's pool: {tunnel}");
    // ocserv's App-ID is 32 bytes, its DTLS port the TCP one (Appendix A.1).
    assert!(tunnel.contains("dtls_port=Some(443)") && tunnel.contains("app_id_len=32"), "{tunnel}");
    let dtls = one(&stdout, "DTLS UP", context);
    assert!(dtls.contains("TLS_PSK_WITH_AES_256_GCM_SHA384"), "{dtls}");
    assert_eq!(lines(&stdout, "SENT via"), ["SENT via Dtls"], "{}", context());
    // The echo came back as a DTLS record. (ocserv also forwards what the
    // kernel multicasts on its TUN, IGMP reports, so other packets may
    // have arrived: the probe prints them as PACKET lines.)
    let echo = one(&stdout, "ECHO OK", context);
    assert!(echo.starts_with("ECHO OK via=Dtls"), "{}", context());
    one(&stdout, "DONE", context);
    // The echo server saw the tunnel address, routed back through ocserv.
    let address = tunnel.split_whitespace().find_map(|w| w.strip_prefix("address=")).unwrap_or_default();
    org.udp.log.wait_for(&format!("from {address}"), Duration::from_secs(5));
}

#[test]
fn device_logs_in_to_ocserv_brings_dtls_up_and_echoes_udp() {
    let t = Topology::up();
    let org = Org::start(&t);
    let oc = Ocserv::start(&t);
    let out = probe(&t, &[]);
    assert_one_login_and_a_dtls_echo(&out, &oc, &org);
}

#[test]
fn device_logs_in_to_ocserv_by_certificate_alone_brings_dtls_up_and_echoes_udp() {
    // ocserv `auth = "certificate"` answers the `init` POST with success and
    // the cookie at once (§2.7, Appendix A.4); the device has no user name
    // or password to give, so a form would fail the login.
    let t = Topology::up();
    let org = Org::start(&t);
    let oc = Ocserv::start_with(&t, OcservAuth::Certificate);
    assert!(!oc.rundir.join("ocpasswd").exists(), "no password file: certificate login only");
    let mut cmd = ns(&t.device(), probe_bin());
    cmd.arg("--cert").arg(t.dir.join("client.crt")).arg("--key").arg(t.dir.join("client.key"));
    cmd.arg(GATEWAY_IP).arg(t.dir.join("ca.crt")).arg(format!("{ORG_IP}:9000"));
    let out = cmd.output().expect("device-probe");
    assert_one_login_and_a_dtls_echo(&out, &oc, &org);
    // ocserv took carol (client.crt's CN, cert-user-oid 2.5.4.3) from the
    // certificate: its worker verified it and sec-mod authenticated by it.
    oc.wait_for("client certificate verification succeeded", Duration::from_secs(5));
    oc.wait_for("using 'certificate' authentication to authenticate user", Duration::from_secs(5));
    oc.wait_for("initiating session for user 'carol'", Duration::from_secs(5));
    let logged_in = oc.wait_for("user logged in", Duration::from_secs(5));
    assert!(logged_in.contains("main[carol]:"), "{logged_in}\nocserv log:\n{}", oc.log());
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
