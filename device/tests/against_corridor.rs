//! End to end: a `DeviceSession` (driven by the `device-probe` example
//! over real TCP and UDP sockets in the device namespace) against the real
//! `corridor` gateway, to a UDP echo server in the org namespace. Needs
//! root (namespaces, TUN) and `cargo build -p corridor` beforehand;
//! `scripts/test.sh` provides both.

use std::path::PathBuf;
use std::time::Duration;

use testbed::*;

/// This crate's `device-probe` example (cargo test builds examples).
fn probe_bin() -> PathBuf {
    let p = target_profile_dir().join("examples/device-probe");
    assert!(p.is_file(), "{} is missing: run `cargo test -p corridor-device` (it builds examples)", p.display());
    p
}

#[test]
fn device_logs_in_brings_dtls_up_and_echoes_udp_through_corridor() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let gateway = &gw.proc;
    let mut cmd = ns(&t.device(), probe_bin());
    cmd.arg(GATEWAY_IP).arg(t.dir.join("ca.crt")).args(["alice", PASSWORD, &format!("{ORG_IP}:9000")]);
    let out = cmd.output().expect("device-probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = || {
        format!(
            "probe stdout:\n{stdout}\nstderr:\n{}\ngateway:\n{}",
            String::from_utf8_lossy(&out.stderr),
            gateway.log.text()
        )
    };
    eprintln!("{stdout}");
    assert!(out.status.success(), "{}", context());
    let line = |prefix: &str| stdout.lines().find(|l| l.starts_with(prefix)).map(str::to_string);
    assert!(line("LOGGED IN").is_some(), "{}", context());
    let tunnel = line("TUNNEL UP").unwrap_or_else(|| panic!("{}", context()));
    assert!(tunnel.contains("address=192.168.99."), "address from the pool: {tunnel}");
    assert!(tunnel.contains("dtls_port=Some(443)") && tunnel.contains("app_id_len="), "{tunnel}");
    let dtls = line("DTLS UP").unwrap_or_else(|| panic!("{}", context()));
    assert!(dtls.contains("TLS_PSK_WITH_AES_256_GCM_SHA384"), "{dtls}");
    assert_eq!(line("SENT via").as_deref(), Some("SENT via Dtls"), "{}", context());
    // The echo came back as a DTLS record, not a CSTP frame.
    let echo = line("ECHO OK").unwrap_or_else(|| panic!("{}", context()));
    assert!(echo.contains("dtls_packets_in=1") && echo.contains("cstp_packets_in=0"), "{echo}");
    assert!(line("DONE").is_some(), "{}", context());
    gateway.log.wait_for("DTLS established", Duration::from_secs(5));
}
