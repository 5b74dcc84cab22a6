//! A shard that dies is reported: `Dataplane::dead_shard` names it and its
//! health reads down, while the other shards stay up. The fault comes from
//! the test-only hook (`CORRIDOR_TEST_SHARD_FAULT`, read once at start), so
//! this test has its own binary: no other test's data plane sees it.
//!
//! Needs root; run inside a private network namespace (see fast_path.rs).

#![allow(clippy::indexing_slicing)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dataplane::handshake::Authorization;
use dataplane::{Dataplane, DataplaneConfig, IoBackend, ShardId, ToShard, FAULT_ENV};
use proto::grant::{Policy, SessionId};
use proto::ip::Ipv4Net;

#[test]
fn a_shard_that_panics_is_reported_dead() {
    std::env::set_var(FAULT_ENV, "1");
    let io = match std::env::var("CORRIDOR_IO").as_deref() {
        Ok("readiness") => IoBackend::Readiness,
        _ => IoBackend::Auto,
    };
    let dp = Dataplane::start(DataplaneConfig {
        shards: 2,
        udp_listen: "127.0.0.1:0".parse().expect("addr"),
        tun_name: "cdp-fault".to_owned(),
        tun_address: Ipv4Net::new(Ipv4Addr::new(10, 77, 30, 1), 24).expect("net"),
        tun_mtu: 1400,
        pool: Ipv4Net::new(Ipv4Addr::new(10, 77, 30, 0), 24).expect("net"),
        pin_cores: false,
        ring_entries: 64,
        offloads: true,
        io,
        steering: true,
        batch_wait: std::time::Duration::from_micros(50),
    })
    .expect("start the data plane (needs root, in a private network namespace)");
    std::env::remove_var(FAULT_ENV);
    assert_eq!(dp.dead_shard(), None);
    // Every shard turns its loop at least once a second.
    std::thread::sleep(Duration::from_millis(1200));
    let health = dp.health();
    assert!(health.iter().all(|h| h.up && h.since_last_turn < Duration::from_millis(1100)), "{health:?}");

    let authorization = Authorization {
        session: SessionId(10),
        app_id: vec![0x42; 32],
        psk: dtls::Psk::new(vec![0x17; 32]),
        address: Ipv4Addr::new(10, 77, 30, 10),
        policy: Policy::default(),
        mtu: 1400,
    };
    for shard in [ShardId(0), ShardId(1)] {
        dp.send(shard, ToShard::Authorize(Box::new(authorization.clone()))).expect("queue");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while dp.dead_shard().is_none() {
        assert!(Instant::now() < deadline, "the dead shard was not reported: {:?}", dp.health());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(dp.dead_shard(), Some(ShardId(1)));
    let health = dp.health();
    assert!(health[0].up && !health[1].up, "{health:?}");
    // Stopping is not dying: a shut-down data plane reports nothing.
    dp.shutdown();
}
