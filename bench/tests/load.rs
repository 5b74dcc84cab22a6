//! End to end: `corridor bench run` (the load generator, in the device
//! namespace) against the real `corridor` gateway, with `corridor bench
//! reflect` in the org namespace. Asserts on the JSON result only: counts,
//! never wall-clock figures. Needs root (namespaces, TUN) and
//! `cargo build -p corridor` beforehand.

// serde_json's `Index` returns Null for a missing key; it does not panic.
#![allow(clippy::indexing_slicing)]

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use testbed::*;

/// `corridor bench reflect` at ORG_IP:9000 in the org namespace.
fn start_reflector(t: &Topology) -> Proc {
    let mut cmd = ns(&t.org(), corridor_bin());
    cmd.args(["bench", "reflect", "--listen", &format!("{ORG_IP}:9000")]);
    let p = Proc::spawn("corridor bench reflect", cmd);
    p.log.wait_for("reflecting on", Duration::from_secs(10));
    p
}

/// Runs one scenario and returns its parsed JSON result.
fn bench_run(t: &Topology, gateway: &Proc, scenario: &str, args: &[&str]) -> serde_json::Value {
    let json = t.dir.join(format!("{scenario}.json"));
    let mut cmd = ns(&t.device(), corridor_bin());
    cmd.args(["bench", "run", scenario, "--gateway", &format!("https://{GATEWAY_IP}/"), "--cafile"])
        .arg(t.dir.join("ca.crt"))
        .args(["--user", "alice", "--password-stdin", "--json"])
        .arg(&json)
        .args(args)
        .env("CORRIDOR_COMMIT", "test")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("corridor bench run");
    child.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("password");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "{scenario} failed:\n{stdout}\n{stderr}\ngateway:\n{}", gateway.log.text());
    assert!(stdout.contains("histogram (µs)"), "a human table on stdout: {stdout}");
    let text = std::fs::read_to_string(&json).expect("the JSON result");
    serde_json::from_str(&text).expect("valid JSON")
}

#[test]
fn handshake_storm_and_udp_echo_through_corridor() {
    let t = Topology::up();
    let _reflector = start_reflector(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let gateway = &gw.proc;

    let storm = bench_run(&t, gateway, "handshake-storm", &["--devices", "20", "--concurrency", "5"]);
    assert_eq!(storm["scenario"], "handshake-storm");
    assert_eq!(storm["commit"], "test");
    assert_eq!(storm["parameters"]["devices"], 20);
    assert!(storm["machine"]["nproc"].as_u64().is_some_and(|n| n > 0), "{storm}");
    assert_eq!(storm["figures"]["devices_up"], 20, "{storm}");
    assert_eq!(storm["figures"]["failures"], 0, "{storm}");
    assert!(storm["figures"]["generator_cpu_s"].is_number(), "{storm}");
    let ttt = &storm["histograms"]["time_to_tunnel_us"];
    assert_eq!(ttt["count"], 20, "{storm}");
    assert_eq!(ttt["percentiles"].as_array().map(Vec::len), Some(4), "{storm}");

    let echo = bench_run(&t, gateway, "udp-echo", &["--devices", "5", "--rate", "100", "--seconds", "2"]);
    assert_eq!(echo["scenario"], "udp-echo");
    assert_eq!(echo["figures"]["devices_up"], 5, "{echo}");
    assert_eq!(echo["figures"]["failures"], 0, "{echo}");
    assert_eq!(echo["figures"]["probes_sent"], 200, "{echo}");
    assert_eq!(echo["figures"]["probes_received"], 200, "{echo}");
    assert_eq!(echo["figures"]["loss"], 0, "{echo}");
    assert_eq!(echo["histograms"]["rtt_us"]["count"], 200, "{echo}");
}
