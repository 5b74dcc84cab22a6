//! End to end: the gateway's and the relay's `/metrics` pages after real
//! traffic pass `promtool check metrics` (format and lint: each family's
//! samples together under one HELP and TYPE, counters ending in `_total`,
//! units in names), and carry the figures docs/metrics.md promises. Needs
//! root (namespaces, TUN) and promtool; `scripts/test.sh` installs it and
//! runs this.

use std::time::Duration;

use service::Counter;
use testbed::metrics::{promtool_check, sum};
use testbed::*;

/// Whether every family's samples follow its own TYPE line, before the
/// next family's: what promtool also checks, said here in our words so
/// that a failure names the family.
fn families_are_grouped(page: &str) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut current = "";
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().unwrap_or_default();
            if seen.contains(&current) {
                return Err(format!("{current} typed twice"));
            }
            seen.push(current);
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            if name != current && family != current {
                return Err(format!("{name} sampled under {current}'s TYPE"));
            }
        }
    }
    Ok(())
}

#[test]
fn both_metrics_pages_pass_promtool_after_relayed_traffic() {
    let t = Topology::up_relay();
    let _org = Org::start(&t);
    let relay = Relay::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions { relayed: 1, ..GatewayOptions::default() });
    relay.wait_links(1, Duration::from_secs(10));
    let client = Client::connect_relayed(&t, &t.device(), Login::Password("alice", PASSWORD));
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    assert_eq!(udp_echo(&client.ns, 50), 50, "UDP both ways");
    gw.proc.log.wait_for("DTLS established on its shard", Duration::from_secs(5));

    // Counters are published once per shard loop turn: wait for the echo's.
    wait_until("the shards to publish the echo's bytes", Duration::from_secs(5), || {
        (gw.metric("corridor_shard_tx_bytes_total") > 0 && gw.metric("corridor_shard_tun_write_bytes_total") > 0)
            .then_some(())
    });
    let page = gw.admin("GET", "/metrics");
    promtool_check(&page).unwrap_or_else(|e| panic!("gateway: {e}\n{page}"));
    families_are_grouped(&page).unwrap_or_else(|e| panic!("gateway: {e}\n{page}"));
    let version = env!("CARGO_PKG_VERSION");
    assert!(page.contains(&format!("corridor_build_info{{version=\"{version}\",fips=\"")), "{page}");
    assert_eq!(sum(&page, "corridor_sessions", &[("state", "tunnel"), ("via", "relay")]), 1, "{page}");
    assert_eq!(sum(&page, "corridor_sessions", &[]), 1, "{page}");
    assert_eq!(sum(&page, "corridor_logins_total", &[("method", "password"), ("outcome", "ok")]), 1, "{page}");
    assert!(sum(&page, "corridor_logins_total", &[("method", "cookie"), ("outcome", "ok")]) >= 1, "{page}");
    assert_eq!(sum(&page, "corridor_shard_handshakes_total", &[("outcome", "established")]), 1, "{page}");
    assert_eq!(sum(&page, "corridor_shard_dtls_handshake_seconds_count", &[]), 1, "timed: {page}");
    for bytes in ["rx_bytes", "tx_bytes", "tun_read_bytes", "tun_write_bytes"] {
        assert!(sum(&page, &format!("corridor_shard_{bytes}_total"), &[]) > 50 * 28, "{bytes}: {page}");
    }
    // Every shard drop reason is a sample of one family, zeros included.
    let shards = sum(&page, "corridor_shard_up", &[]);
    let reasons = page.lines().filter(|l| l.starts_with("corridor_shard_drops_total{")).count() as u64;
    assert_eq!(reasons, 13 * shards, "{page}");

    let page = relay.metrics();
    promtool_check(&page).unwrap_or_else(|e| panic!("relay: {e}\n{page}"));
    families_are_grouped(&page).unwrap_or_else(|e| panic!("relay: {e}\n{page}"));
    assert!(page.contains(&format!("corridor_relay_build_info{{version=\"{version}\",fips=\"")), "{page}");
    assert!(sum(&page, "corridor_relay_udp_datagrams_total", &[("direction", "from_devices")]) >= 50, "{page}");
    assert!(sum(&page, "corridor_relay_udp_bytes_total", &[("direction", "to_devices")]) > 0, "{page}");
    assert_eq!(sum(&page, "corridor_relay_streams_spliced_total", &[]), 1, "{page}");
}

/// The checks themselves. promtool (2.42) lets a family split by another
/// pass, which is why `families_are_grouped` checks that too.
#[test]
fn the_checks_refuse_a_split_family_and_a_lint_problem() {
    let split = "# HELP a_total a\n# TYPE a_total counter\na_total{s=\"0\"} 1\n\
                 # HELP b_total b\n# TYPE b_total counter\nb_total 1\na_total{s=\"1\"} 1\n";
    assert!(families_are_grouped(split).is_err());
    let lint = "# HELP a a\n# TYPE a counter\na 1\n";
    assert!(promtool_check(lint).is_err(), "a counter not ending in _total is a lint problem");
    let good = "# HELP a_total a\n# TYPE a_total counter\na_total{s=\"0\"} 1\na_total{s=\"1\"} 1\n";
    assert_eq!(promtool_check(good), Ok(()));
    assert_eq!(families_are_grouped(good), Ok(()));
}

/// docs/metrics.md names every counter family and every label value the
/// `counters!` declarations make, so a counter added without its line
/// there fails here.
#[test]
fn docs_metrics_names_every_counter_and_label() {
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    let sets: [&[Counter]; 4] = [
        control::core::ControlCounters::COUNTERS,
        control::relay_link::LinkCounters::COUNTERS,
        dataplane::ShardCounters::COUNTERS,
        relay::core::Counters::COUNTERS,
    ];
    for counter in sets.into_iter().flatten() {
        assert!(doc.contains(&format!("`{}`", counter.metric)), "docs/metrics.md lacks {}", counter.metric);
        if !counter.labels.is_empty() {
            assert!(doc.contains(&format!("`{}`", counter.labels)), "docs/metrics.md lacks {counter:?}");
        }
    }
}
