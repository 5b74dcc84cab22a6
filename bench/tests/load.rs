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

/// Something whose log explains a failed run.
trait GatewayLog {
    fn text(&self) -> String;
}

impl GatewayLog for Proc {
    fn text(&self) -> String {
        self.log.text()
    }
}

impl GatewayLog for Ocserv {
    fn text(&self) -> String {
        self.log()
    }
}

/// Runs one scenario as alice (password) and returns its parsed JSON result.
fn bench_run(t: &Topology, gateway: &dyn GatewayLog, scenario: &str, args: &[&str]) -> serde_json::Value {
    bench_run_as(t, gateway, scenario, &["--user", "alice", "--password-stdin"], args)
}

/// Runs one scenario with the given login options (the password goes to
/// standard input when they ask for it).
fn bench_run_as(
    t: &Topology,
    gateway: &dyn GatewayLog,
    scenario: &str,
    login: &[&str],
    args: &[&str],
) -> serde_json::Value {
    let json = t.dir.join(format!("{scenario}.json"));
    let mut cmd = ns(&t.device(), corridor_bin());
    cmd.args(["bench", "run", scenario, "--gateway", &format!("https://{GATEWAY_IP}/"), "--cafile"])
        .arg(t.dir.join("ca.crt"))
        .args(login)
        .arg("--json")
        .arg(&json)
        .args(args)
        .env("CORRIDOR_COMMIT", "test")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("corridor bench run");
    let mut stdin = child.stdin.take().expect("stdin");
    if login.contains(&"--password-stdin") {
        stdin.write_all(format!("{PASSWORD}\n").as_bytes()).expect("password");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "{scenario} failed:\n{stdout}\n{stderr}\ngateway:\n{}", gateway.text());
    assert!(stdout.contains("histogram (µs)"), "a human table on stdout: {stdout}");
    let text = std::fs::read_to_string(&json).expect("the JSON result");
    serde_json::from_str(&text).expect("valid JSON")
}

#[test]
fn handshake_storm_and_udp_echo_through_corridor() {
    let t = Topology::up();
    let _reflector = start_reflector(&t);
    let gw = Gateway::start(&t, &GatewayOptions { load_generator: true, ..Default::default() });
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

    // Certificate login alone: every device presents carol's certificate.
    let cert = t.dir.join("client.crt").display().to_string();
    let key = t.dir.join("client.key").display().to_string();
    let login = ["--cert", cert.as_str(), "--key", key.as_str()];
    let by_cert = bench_run_as(&t, gateway, "handshake-storm", &login, &["--devices", "5", "--concurrency", "5"]);
    assert_eq!(by_cert["figures"]["devices_up"], 5, "{by_cert}");
    assert_eq!(by_cert["parameters"]["user"], "", "{by_cert}");
    let login = gateway.log.wait_for("method=certificate", Duration::from_secs(5));
    assert!(login.contains("user=carol"), "the certificate's CN is the user: {login}");

    let echo = bench_run(&t, gateway, "udp-echo", &["--devices", "5", "--rate", "100", "--seconds", "2"]);
    assert_eq!(echo["scenario"], "udp-echo");
    assert_eq!(echo["figures"]["devices_up"], 5, "{echo}");
    assert_eq!(echo["figures"]["failures"], 0, "{echo}");
    assert_eq!(echo["figures"]["probes_sent"], 200, "{echo}");
    assert_eq!(echo["figures"]["probes_received"], 200, "{echo}");
    assert_eq!(echo["figures"]["loss"], 0, "{echo}");
    assert_eq!(echo["histograms"]["rtt_us"]["count"], 200, "{echo}");
}

#[test]
fn bulk_saturated_echo_and_many_sessions_through_corridor() {
    let t = Topology::up();
    let _reflector = start_reflector(&t);
    let gw = Gateway::start(&t, &GatewayOptions { load_generator: true, ..Default::default() });
    let gateway = &gw.proc;

    // At a modest set rate nothing is lost: every datagram the sessions
    // took is counted by the reflector.
    let bulk = bench_run(&t, gateway, "bulk", &["--devices", "2", "--size", "512", "--rate", "2000", "--seconds", "1"]);
    assert_eq!(bulk["scenario"], "bulk");
    assert_eq!(bulk["parameters"]["size"], "512", "{bulk}");
    let sent = bulk["figures"]["packets_sent"].as_u64().expect("packets_sent");
    assert!(sent >= 1000, "about 2000 packets in one second: {bulk}");
    assert_eq!(bulk["figures"]["packets_delivered"], sent, "{bulk}");
    assert_eq!(bulk["figures"]["loss"], 0, "{bulk}");
    assert!(bulk["figures"]["delivered_gbps"].as_f64().is_some_and(|g| g > 0.0), "{bulk}");

    // The other way (bulk-down): the reflector sends each device its share
    // of the rate, the devices count; paced, nothing is lost.
    let down =
        bench_run(&t, gateway, "bulk-down", &["--devices", "2", "--size", "512", "--rate", "2000", "--seconds", "1"]);
    assert_eq!(down["scenario"], "bulk-down");
    let sent = down["figures"]["packets_sent"].as_u64().expect("packets_sent");
    assert!(sent >= 1000, "about 2000 packets in one second: {down}");
    assert_eq!(down["figures"]["packets_delivered"], sent, "{down}");
    assert!(down["figures"]["delivered_gbps"].as_f64().is_some_and(|g| g > 0.0), "{down}");

    // IMIX at full speed: some packets of each size arrive; loss is a figure here.
    let imix = bench_run(&t, gateway, "bulk", &["--devices", "1", "--size", "imix", "--seconds", "1"]);
    let (sent, delivered) = (imix["figures"]["packets_sent"].as_u64(), imix["figures"]["packets_delivered"].as_u64());
    assert!(delivered.is_some_and(|d| d > 0 && Some(d) <= sent), "{imix}");
    assert!(imix["figures"]["generator_datagrams_per_send"].as_f64().is_some_and(|b| b > 1.0), "GSO batches: {imix}");

    // At full speed one device's datagrams of one size reach a shard in
    // batches, and go to the TUN as UDP_L4 super-packets (USO) that the
    // kernel cuts back into the datagrams the reflector counts.
    let before = gw.metric("corridor_shard_tun_super_writes_total");
    let full = bench_run(&t, gateway, "bulk", &["--devices", "1", "--size", "1400", "--seconds", "1"]);
    assert!(full["figures"]["packets_delivered"].as_u64().is_some_and(|d| d > 1000), "{full}");
    assert!(
        gw.metric("corridor_shard_tun_super_writes_total") > before,
        "no coalesced UDP write: {}",
        gw.admin("GET", "/metrics")
    );

    // Saturation: a window of probes per device, answered or given up on.
    let echo =
        bench_run(&t, gateway, "udp-echo", &["--devices", "4", "--rate", "0", "--window", "4", "--seconds", "1"]);
    assert_eq!(echo["figures"]["mode"], "saturation", "{echo}");
    let (sent, received) = (echo["figures"]["probes_sent"].as_u64(), echo["figures"]["probes_received"].as_u64());
    assert!(received.is_some_and(|r| r > 16 && Some(r) <= sent), "{echo}");
    assert_eq!(echo["histograms"]["rtt_us"]["count"].as_u64(), received, "{echo}");

    // Idle sessions held through keepalives, with the gateway's memory; two
    // generator processes of two threads each, merged into one result.
    let pid = gateway.child.id().to_string();
    let args = ["--devices", "40", "--concurrency", "10", "--seconds", "3", "--threads", "2", "--processes", "2"];
    let held = bench_run(&t, gateway, "many-sessions", &[args.as_slice(), &["--gateway-pid", &pid]].concat());
    assert_eq!(held["figures"]["devices_up"], 40, "{held}");
    assert_eq!(held["figures"]["sessions_lost"], 0, "{held}");
    assert_eq!(held["figures"]["sessions_still_up"], 40, "{held}");
    assert_eq!(held["parameters"]["threads"], 2, "{held}");
    assert_eq!(held["parameters"]["processes"], 2, "{held}");
    assert_eq!(held["histograms"]["time_to_tunnel_us"]["count"], 40, "both processes' histograms: {held}");
    assert!(held["figures"]["gateway_pss_up_bytes"].as_u64().is_some_and(|b| b > 0), "{held}");
    assert!(held["figures"]["gateway_bytes_per_session"].is_u64(), "{held}");
}

/// The same generator against ocserv: the device library speaks to the
/// reference server, so corridor and ocserv are measured on identical work.
#[test]
fn handshake_storm_udp_echo_and_bulk_through_ocserv() {
    let t = Topology::up();
    let _reflector = start_reflector(&t);
    let ocserv = Ocserv::start(&t);

    let storm = bench_run(&t, &ocserv, "handshake-storm", &["--devices", "10", "--concurrency", "5"]);
    assert_eq!(storm["figures"]["devices_up"], 10, "{storm}");
    assert_eq!(storm["figures"]["failures"], 0, "{storm}");

    let echo = bench_run(&t, &ocserv, "udp-echo", &["--devices", "3", "--rate", "100", "--seconds", "2"]);
    assert_eq!(echo["figures"]["probes_sent"], 200, "{echo}");
    assert_eq!(echo["figures"]["probes_received"], 200, "{echo}");

    let bulk =
        bench_run(&t, &ocserv, "bulk", &["--devices", "1", "--size", "1400", "--rate", "1000", "--seconds", "1"]);
    let sent = bulk["figures"]["packets_sent"].as_u64().expect("packets_sent");
    assert!(sent >= 500, "{bulk}");
    assert_eq!(bulk["figures"]["packets_delivered"], sent, "{bulk}");
}
