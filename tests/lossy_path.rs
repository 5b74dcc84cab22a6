//! Bulk TCP through the real openconnect client over a DTLS path that
//! loses, duplicates and reorders 5 % of datagrams each way (the userspace
//! lossy forwarder, `testbed::lossy`: this kernel has no `tc netem`). The
//! file must arrive sha256-identical, and over DTLS, not the CSTP fallback.
//! Needs root; `scripts/test.sh` runs it.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use testbed::lossy::{Impairment, Lossy};
use testbed::*;

/// Where the forwarder stands for the gateway: a second address of the
/// gateway namespace on the device link.
const LOSSY_IP: &str = "10.10.0.100";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("an address")
}

#[test]
fn bulk_tcp_over_a_lossy_duplicating_reordering_dtls_path_is_sha256_identical() {
    let t = Topology::up();
    let org = Org::start(&t);
    let digest = org.file("bulk.bin", 20);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    run(Command::new("ip").args(["-n", &t.gateway(), "addr", "add", &format!("{LOSSY_IP}/24"), "dev", "to-dev"]));
    let lossy = Lossy::start(
        &t.gateway(),
        addr(&format!("{LOSSY_IP}:443")),
        addr(&format!("{GATEWAY_IP}:443")),
        Impairment::five_percent_each(0x5eed),
    );
    // The device asks for the gateway by name, resolved to the forwarder:
    // its TLS and its DTLS (sent to the address its TLS reached) go there.
    let resolve = format!("--resolve={RELAY_NAME}:{LOSSY_IP}");
    let url = format!("https://{RELAY_NAME}/");
    let client = Client::spawn_in(&t, &t.device(), &url, Login::Password("alice", PASSWORD), &[&resolve], "tun0");
    client.wait_address(Duration::from_secs(30));
    client.wait_route("tun0", Duration::from_secs(10));
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(30));

    let out = run(ns(&client.ns, "sh")
        .arg("-c")
        .arg(format!("curl -sS --max-time 240 http://{ORG_IP}:8080/bulk.bin | sha256sum")));
    let got = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned();
    assert_eq!(got, digest, "20 MiB byte-identical over the lossy path");

    // Every impairment happened, both ways.
    let (up, down) = (lossy.upstream.tally(), lossy.downstream.tally());
    for (way, t) in [("device → gateway", up), ("gateway → device", down)] {
        assert!(t.dropped > 0 && t.duplicated > 0 && t.reordered > 0, "{way}: {t:?}");
    }
    assert!(down.bytes > 20 << 20, "the download crossed the forwarder as datagrams: {down:?}");
    // And the DTLS path carried it: the shards sealed the records, dropped
    // the duplicates as replays, and CSTP carried no bulk.
    let m = |n: &str| gw.metric(n);
    assert!(m("corridor_shard_tx_records_total") > 15_000, "{}", gw.admin("GET", "/metrics"));
    assert!(
        gw.metric_with("corridor_shard_drops_total", &[("reason", "replay")]) > 0,
        "{}",
        gw.admin("GET", "/metrics")
    );
    assert!(m("corridor_cstp_frames_out_total") < 1_000, "{}", gw.admin("GET", "/metrics"));
    let session = gw.session_of("alice").expect("alice's session");
    assert_eq!(session["channel"], "dtls", "{session}");
    eprintln!("lossy forwarder: up {up:?}, down {down:?}");
}
