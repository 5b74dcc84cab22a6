//! End to end: a `DeviceSession` (driven by the `device-probe` example
//! over real TCP and UDP sockets in the device namespace) against the real
//! `corridor` gateway, to a UDP echo server in the org namespace. Needs
//! root (namespaces, TUN) and `cargo build -p corridor` beforehand;
//! `scripts/test.sh` provides both.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use testbed::*;

/// This crate's `device-probe` example (cargo test builds examples).
fn probe_bin() -> PathBuf {
    let p = target_profile_dir().join("examples/device-probe");
    assert!(p.is_file(), "{} is missing: run `cargo test -p corridor-device` (it builds examples)", p.display());
    p
}

/// `device-probe FLAGS GATEWAY CA [alice PASSWORD] ECHO` in the device namespace.
fn probe_cmd(t: &Topology, flags: &[&str], password_login: bool) -> Command {
    let mut cmd = ns(&t.device(), probe_bin());
    cmd.args(flags).arg(GATEWAY_IP).arg(t.dir.join("ca.crt"));
    if password_login {
        cmd.args(["alice", PASSWORD]);
    }
    cmd.arg(format!("{ORG_IP}:9000"));
    cmd
}

fn lines<'a>(stdout: &'a str, prefix: &str) -> Vec<&'a str> {
    stdout.lines().filter(|l| l.starts_with(prefix)).collect()
}

fn address(tunnel_line: &str) -> &str {
    tunnel_line.split_whitespace().find_map(|w| w.strip_prefix("address=")).unwrap_or_default()
}

/// What every successful probe run shows: logged in once, DTLS up,
/// the echo came back as a DTLS record. Returns the TUNNEL UP lines.
fn assert_echoed<'a>(out: &Output, stdout: &'a str, gateway: &Gateway) -> Vec<&'a str> {
    let context = || {
        format!(
            "probe stdout:\n{stdout}\nstderr:\n{}\ngateway:\n{}",
            String::from_utf8_lossy(&out.stderr),
            gateway.proc.log.text()
        )
    };
    eprintln!("{stdout}");
    assert!(out.status.success(), "{}", context());
    assert_eq!(lines(stdout, "LOGGED IN").len(), 1, "{}", context());
    let tunnel = lines(stdout, "TUNNEL UP");
    let first = tunnel.first().copied().unwrap_or_else(|| panic!("{}", context()));
    assert!(address(first).starts_with("192.168.99."), "address from the pool: {first}");
    assert!(first.contains("dtls_port=Some(443)") && first.contains("app_id_len="), "{first}");
    let dtls = lines(stdout, "DTLS UP");
    assert!(!dtls.is_empty(), "{}", context());
    assert!(dtls.iter().all(|l| l.contains("TLS_PSK_WITH_AES_256_GCM_SHA384")), "{dtls:?}");
    assert!(lines(stdout, "SENT via").iter().all(|l| *l == "SENT via Dtls"), "{}", context());
    assert_eq!(lines(stdout, "DONE").len(), 1, "{}", context());
    tunnel
}

#[test]
fn device_logs_in_brings_dtls_up_and_echoes_udp_through_corridor() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let out = probe_cmd(&t, &[], true).output().expect("device-probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tunnel = assert_echoed(&out, &stdout, &gw);
    assert_eq!(tunnel.len(), 1, "{stdout}");
    // The echo came back as a DTLS record, not a CSTP frame.
    assert_eq!(lines(&stdout, "ECHO OK"), ["ECHO OK via=Dtls dtls_packets_in=1 cstp_packets_in=0"], "{stdout}");
    gw.proc.log.wait_for("DTLS established", Duration::from_secs(5));
}

#[test]
fn device_reconnects_to_corridor_with_its_cookie_and_keeps_the_address() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let out = probe_cmd(&t, &["--reconnect"], true).output().expect("device-probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tunnel = assert_echoed(&out, &stdout, &gw);
    assert_eq!(lines(&stdout, "DROPPED TCP").len(), 1, "{stdout}");
    assert_eq!(lines(&stdout, "RECONNECTING"), ["RECONNECTING attempt=1"], "{stdout}");
    assert_eq!(tunnel.len(), 2, "{stdout}");
    assert_eq!(address(tunnel[0]), address(tunnel[1]), "same address after the reconnect: {stdout}");
    assert_eq!(lines(&stdout, "RECONNECTED"), ["RECONNECTED reconnects=1"], "{stdout}");
    assert_eq!(lines(&stdout, "DTLS UP").len(), 2, "DTLS again, keyed from the new connection: {stdout}");
    let echo = lines(&stdout, "ECHO OK");
    assert_eq!(echo.len(), 2, "{stdout}");
    assert!(
        echo[1].starts_with("ECHO OK via=Dtls dtls_packets_in=2 cstp_packets_in=0"),
        "the second echo over the new DTLS: {stdout}"
    );
    // The gateway saw a single login; the second CONNECT came with the cookie.
    assert_eq!(
        gw.metric_with("corridor_logins_total", &[("outcome", "ok"), ("method", "password")]),
        1,
        "{}",
        gw.proc.log.text()
    );
    assert_eq!(gw.proc.log.text().matches("tunnel up (CSTP)").count(), 2, "{}", gw.proc.log.text());
    assert_eq!(gw.proc.log.text().matches("DTLS established").count(), 2, "{}", gw.proc.log.text());
}

#[test]
fn device_whose_session_was_killed_is_told_to_log_in_again() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let mut probe = Proc::spawn("device-probe", probe_cmd(&t, &["--reconnect", "--hold"], true));
    probe.log.wait_for("HOLDING", Duration::from_secs(30));
    // While the device is away, an administrator ends its session.
    let id = wait_until("the session to be detached", Duration::from_secs(10), || {
        let detached = gw.sessions().into_iter().find(|s| s["channel"] == "none")?;
        detached["id"].as_str().map(str::to_owned)
    });
    let killed = gw.ctl_ok(&["kill", &id, "--reason", "device-probe test"]);
    assert_eq!(killed["sessions"][0], id.as_str(), "{killed}");
    let mut stdin = probe.child.stdin.take().expect("probe stdin");
    stdin.write_all(b"\n").expect("release the probe");
    let status = wait_until("the probe to exit", Duration::from_secs(30), || probe.child.try_wait().ok().flatten());
    let stdout = probe.log.text();
    eprintln!("{stdout}");
    assert!(!status.success(), "{stdout}");
    assert_eq!(lines(&stdout, "RECONNECTING"), ["RECONNECTING attempt=1"], "one attempt, no retries: {stdout}");
    assert_eq!(
        lines(&stdout, "FAILED"),
        [r#"FAILED disconnected: CookieRejected { status: 401, reason: "Cookie is not acceptable" }"#],
        "{stdout}"
    );
    assert_eq!(gw.metric_with("corridor_logins_total", &[("outcome", "ok"), ("method", "password")]), 1);
}

#[test]
fn device_logs_in_to_corridor_with_a_client_certificate() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions { client_ca: true, ..GatewayOptions::default() });
    let (cert, key) = (t.dir.join("client.crt"), t.dir.join("client.key"));
    let flags = ["--cert", cert.to_str().unwrap_or_default(), "--key", key.to_str().unwrap_or_default()];
    let out = probe_cmd(&t, &flags, false).output().expect("device-probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tunnel = assert_echoed(&out, &stdout, &gw);
    assert_eq!(tunnel.len(), 1, "{stdout}");
    assert_eq!(lines(&stdout, "ECHO OK"), ["ECHO OK via=Dtls dtls_packets_in=1 cstp_packets_in=0"], "{stdout}");
    // corridor took the certificate's CN as the user, with no password.
    let login = gw.proc.log.wait_for("method=certificate", Duration::from_secs(5));
    assert!(login.contains("user=carol"), "{login}");
    let tunnel_up = gw.proc.log.wait_for("tunnel up (CSTP)", Duration::from_secs(5));
    assert!(tunnel_up.contains("user=carol"), "{tunnel_up}");
    assert_eq!(gw.metric_with("corridor_logins_total", &[("outcome", "ok"), ("method", "certificate")]), 1);
}
