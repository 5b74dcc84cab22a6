//! End to end: the gateway under test runs in FIPS mode exactly when it
//! should, everywhere an operator or a script looks (`corridor --version`,
//! the start-up line, `corridor ctl status`, `corridor_build_info` on
//! `/metrics`), after a real `openconnect` password login and a DTLS
//! tunnel carrying TCP and UDP; and its TLS refuses what FIPS does not
//! approve (ChaCha20-Poly1305, X25519) then and only then.
//!
//! `CORRIDOR_EXPECT_FIPS` says which ([`testbed::expect_fips`]): a plain
//! `cargo test` build must say false; scripts/test.sh runs this file once
//! more with `CORRIDOR_BIN` set to the package's binary (the release build
//! with `--features fips`, from scripts/package.sh) and
//! `CORRIDOR_EXPECT_FIPS=1`. Needs root (namespaces, TUN).

use std::process::Command;
use std::time::Duration;

use testbed::*;

/// `openssl s_client` from the device namespace offering TLS 1.3 with only
/// `option value` (`-ciphersuites X`, `-groups Y`): whether the gateway
/// completed the handshake, and everything openssl printed.
fn tls13_handshake_with_only(t: &Topology, option: &str, value: &str) -> (bool, String) {
    let out = ns(&t.device(), "openssl")
        .args(["s_client", "-connect", &format!("{GATEWAY_IP}:443"), "-tls1_3", option, value, "-CAfile"])
        .arg(t.dir.join("ca.crt"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success() && said.contains("Verification: OK"), said)
}

#[test]
fn fips_mode_is_what_the_build_promises_after_a_login_and_a_dtls_tunnel() {
    let fips = expect_fips();
    let bin = corridor_bin();

    // What scripts/package.sh probes before it packages a binary.
    let version = run(Command::new(&bin).arg("--version"));
    let version = String::from_utf8_lossy(&version.stdout);
    assert_eq!(version.lines().nth(1), Some(format!("fips: {fips}").as_str()), "{bin:?} --version:\n{version}");

    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let started = gw.proc.log.wait_for("gateway started", Duration::from_secs(1));
    assert!(started.contains(&format!("fips={fips}")), "{started}");

    // One login with the real client and a DTLS tunnel carrying traffic.
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    let line = client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    assert!(line.contains("(DTLS1.2)-(PSK)-(AES-256-GCM)"), "{line}");
    gw.proc.log.wait_for("DTLS established on its shard", Duration::from_secs(5));
    let page =
        run(ns(&client.ns, "curl").args(["-sS", "--max-time", "20", &format!("http://{ORG_IP}:8080/index.html")]));
    assert_eq!(page.stdout, b"<h1>org intranet</h1>\n", "TCP through the tunnel");
    assert_eq!(udp_echo(&client.ns, 50), 50, "UDP both ways");
    let session = gw.session_of("alice").expect("alice's session");
    assert_eq!(session["channel"], "dtls", "{session}");
    assert!(session["cipher"].as_str().is_some_and(|c| c.contains("AES_256_GCM")), "{session}");
    assert!(gw.metric("corridor_shard_rx_records_total") >= 50, "the echo went over DTLS");

    // What the operator sees.
    let status = gw.ctl_ok(&["status"]);
    assert_eq!(status["fips"], fips, "corridor ctl status: {status}");
    let metrics = gw.admin("GET", "/metrics");
    let build_info = format!("corridor_build_info{{version=\"{}\",fips=\"{fips}\"}} 1", env!("CARGO_PKG_VERSION"));
    assert!(metrics.lines().any(|l| l == build_info), "no `{build_info}` in /metrics:\n{metrics}");

    // TLS offers only approved suites and groups in FIPS mode, and the
    // rest otherwise.
    for (option, value) in [("-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"), ("-groups", "X25519")] {
        let (done, said) = tls13_handshake_with_only(&t, option, value);
        assert_eq!(done, !fips, "TLS 1.3 with only {option} {value} (fips={fips}):\n{said}");
    }
}
