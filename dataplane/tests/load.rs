//! Bursts larger than the buffer rings, and a rough throughput smoke test.
//!
//! Needs root; run inside a private network namespace:
//! `unshare --net -- bash -c 'ip link set lo up && cargo test -p corridor-dataplane'`.
//! The smoke test is ignored by default:
//! `... cargo test --release -p corridor-dataplane --test load -- --ignored --nocapture`.

#![allow(clippy::indexing_slicing)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use dtls::CipherSuite;
use support::*;

/// Far more datagrams in each direction than the shard has receive buffers
/// (128 per direction at 64 ring entries): the multishot operations run out
/// of buffers, stop, and are re-armed; traffic flows again afterwards.
#[test]
fn bursts_beyond_the_buffer_rings_recover() {
    let mut h = Harness::start("cdp-burst", 8, 1);
    h.grant_device(CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256);
    let server_addr = h.server.local_addr().expect("addr");
    let device_inner = SocketAddr::from((h.addr.device(), 5555));
    let packet = ipv4_udp(device_inner, server_addr, &[7u8; 1000]);
    for _ in 0..2000 {
        h.device_send(TYPE_DATA, &packet);
    }
    for _ in 0..2000 {
        h.server.send_to(&[9u8; 1000], device_inner).expect("send");
    }
    // Whatever the sockets dropped, the rings must be serving again.
    let marker = ipv4_udp(device_inner, server_addr, b"after the burst");
    wait_for("the marker through the TUN", || {
        h.device_send(TYPE_DATA, &marker);
        h.server.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
        let mut buf = [0u8; 2048];
        let mut seen = false;
        while let Ok(n) = h.server.recv(&mut buf) {
            seen |= &buf[..n] == b"after the burst";
        }
        seen.then_some(())
    });
    h.device.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
    let mut buf = [0u8; 2048];
    while h.device.recv(&mut buf).is_ok() {}
    h.server.send_to(b"reply after the burst", device_inner).expect("send");
    h.device.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let (kind, inner) = h.device_recv();
    assert_eq!(kind, TYPE_DATA);
    assert_eq!(parse_ipv4_udp(&inner).2, b"reply after the burst");
    let c = h.totals();
    assert_eq!(c.io_errors + c.seal_errors + c.drop_bad_mac + c.drop_replay, 0, "{c:?}");
    assert!(c.rx_records > 128 && c.tun_reads > 128, "more than one ring's worth each way: {c:?}");
}
