//! End-to-end tests of the data plane with no control plane: the test is the
//! device (a UDP socket with the mirrored record keys), control (grants,
//! events) and the organisation's server (a socket on the TUN address).
//!
//! Needs root; run inside a private network namespace:
//! `unshare --net -- bash -c 'ip link set lo up && cargo test -p corridor-dataplane'`.

#![allow(clippy::indexing_slicing)]

mod support;

use std::net::SocketAddr;

use dataplane::{Dataplane, DataplaneConfig, FromShard, IoBackend, ToShard};
use dtls::{CipherSuite, ContentType};
use proto::grant::{Policy, SessionId};
use support::*;

/// Device → server through the TUN, and the server's reply back to the
/// device as a DATA record; then a DPD request echoed, and a CSTP packet
/// from control written to the TUN.
fn round_trip(tun: &str, net: u8, shards: usize, suite: CipherSuite, offloads: bool) {
    round_trip_on(Harness::start_with(tun, net, shards, offloads), shards, suite);
}

fn round_trip_on(mut h: Harness, shards: usize, suite: CipherSuite) {
    h.grant_device(suite);
    let server_addr = h.server.local_addr().expect("addr");
    let device_inner = SocketAddr::from((h.addr.device(), 5555));

    // Device → network.
    let packet = ipv4_udp(device_inner, server_addr, b"hello from the device");
    h.device_send(TYPE_DATA, &packet);
    let (from, payload) = h.server_recv();
    assert_eq!(from, device_inner);
    assert_eq!(payload, b"hello from the device");

    // Network → device.
    h.server.send_to(b"hello back", device_inner).expect("send into the TUN");
    let (kind, inner) = h.device_recv();
    assert_eq!(kind, TYPE_DATA);
    let (src, dst, payload) = parse_ipv4_udp(&inner);
    assert_eq!((src, dst), (server_addr, device_inner));
    assert_eq!(payload, b"hello back");

    // Many packets each way, so that with several shards some TUN reads
    // land on the shard that does not own the session.
    for i in 0..32u8 {
        let flow = SocketAddr::from((h.addr.device(), 6000 + u16::from(i)));
        h.server.send_to(&[i; 100], flow).expect("send");
        let (kind, inner) = h.device_recv();
        assert_eq!(kind, TYPE_DATA);
        let (_, dst, payload) = parse_ipv4_udp(&inner);
        assert_eq!((dst, payload), (flow, vec![i; 100]));
    }

    // DPD: answered with the same bytes.
    let probe: Vec<u8> = (0..600u16).map(|i| i as u8).collect();
    h.device_send(TYPE_DPD_REQ, &probe);
    let (kind, echoed) = h.device_recv();
    assert_eq!(kind, TYPE_DPD_RESP);
    assert_eq!(echoed, probe);

    // A device packet that came over CSTP.
    let shard = h.dp.owner_of(h.addr.device_session()).expect("owned");
    let packet = ipv4_udp(device_inner, server_addr, b"over cstp");
    h.dp.send(shard, ToShard::tun_write(h.addr.device_session(), &packet)).expect("queue");
    let (from, payload) = h.server_recv();
    assert_eq!((from, payload.as_slice()), (device_inner, &b"over cstp"[..]));

    // One reply, 32 flows, one DPD answer; two packets into the TUN.
    let hs = h.handshake_received;
    let c = h.expect_counters("final counters", |c| c.tx_datagrams == 34 + hs && c.tun_writes == 2);
    assert_eq!((c.rx_records, c.dpd_answered, c.tun_reads), (2, 1, 33), "{c:?}");
    let drops = c.drop_malformed + c.drop_bad_mac + c.drop_replay + c.drop_spoofed_source + c.drop_policy;
    assert_eq!(drops + c.drop_no_session + c.io_errors + c.queue_full, 0, "{c:?}");
    // With two shards the steering program sends all 33 flows to the owner's
    // TUN queue; the kernel's flow hash alone would have sent some to the
    // other shard (all to one: odds 2^-32).
    assert_eq!(h.dp.info().steering.is_ok(), shards > 1, "{:?}", h.dp.info().steering);
    assert_eq!((c.cross_shard, c.steering_errors), (0, 0), "{c:?}");
    assert_eq!(h.dp.info().shards.len(), shards);
    // The latency sample path saw the turns that moved these packets: at
    // least one per direction, each a finite, positive time.
    let turns: Vec<_> = h.dp.latency();
    let total: u64 = turns.iter().map(|l| l.count).sum();
    assert!(total >= 2, "{turns:?}");
    for l in &turns {
        assert_eq!(l.buckets.iter().sum::<u64>(), l.count, "{l:?}");
        assert!(l.count == 0 || l.sum_ns > 0, "{l:?}");
    }
    // io_uring names its files by the registered table and writes slots
    // from registered buffers (this kernel allows both).
    let uring = h.dp.info().shards.iter().all(|s| s.io == "io_uring");
    assert!(!uring || h.dp.info().shards.iter().all(|s| s.fixed_files && s.fixed_buffers), "{:?}", h.dp.info().shards);
    h.dp.shutdown();
}

#[test]
fn round_trip_one_shard() {
    round_trip("cdp-rt1", 1, 1, CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384, true);
}

#[test]
fn round_trip_one_shard_without_offloads() {
    round_trip("cdp-rt0", 13, 1, CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384, false);
}

/// The readiness engine (epoll + recvmmsg/sendmmsg) passes the same round
/// trip, offloads on and off, whatever `CORRIDOR_IO` says.
#[test]
fn round_trip_on_the_readiness_engine() {
    for (tun, net, offloads) in [("cdp-rd1", 15, true), ("cdp-rd0", 16, false)] {
        let h = Harness::start_io(tun, net, 2, offloads, IoBackend::Readiness);
        assert!(h.dp.info().shards.iter().all(|s| s.ring_setup.is_none() && s.io_fallback.is_none()));
        round_trip_on(h, 2, CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256);
    }
}

#[test]
fn round_trip_two_shards() {
    round_trip("cdp-rt2", 2, 2, CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256, true);
}

/// Without steering the kernel's flow hash spreads TUN reads over both
/// queues: packets for the session that land on the other shard cross over
/// its queue, and every one still reaches the device, once, in order per flow.
#[test]
fn without_steering_packets_cross_to_the_owner_shard() {
    let mut h = Harness::start_steered("cdp-xs", 17, 2, true, io_from_env(), false);
    assert_eq!(h.dp.info().steering, Err("dataplane.steering = false".to_owned()));
    h.grant_device(CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384);
    for i in 0..64u16 {
        let flow = SocketAddr::from((h.addr.device(), 7000 + i));
        h.server.send_to(&i.to_be_bytes(), flow).expect("send");
        let (kind, inner) = h.device_recv();
        assert_eq!(kind, TYPE_DATA);
        let (_, dst, payload) = parse_ipv4_udp(&inner);
        assert_eq!((dst, payload), (flow, i.to_be_bytes().to_vec()), "packet {i}");
    }
    // 64 flows all hashed to the owner's queue: odds 2^-64.
    let hs = h.handshake_received;
    let c = h.expect_counters("packets crossed shards", |c| c.tx_datagrams == 64 + hs && c.cross_shard > 0);
    assert_eq!((c.drop_no_session, c.queue_full, c.io_errors), (0, 0, 0), "{c:?}");
    h.dp.shutdown();
}

#[test]
fn round_trip_chacha_without_explicit_nonce() {
    round_trip("cdp-rt3", 3, 1, CipherSuite::TLS_PSK_WITH_CHACHA20_POLY1305_SHA256, true);
}

/// Every kind of bad input is dropped and counted, and good traffic still flows.
#[test]
fn bad_input_is_dropped_and_counted() {
    let mut h = Harness::start("cdp-bad", 4, 1);
    h.grant_device(CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384);
    let server_addr = h.server.local_addr().expect("addr");
    let device_inner = SocketAddr::from((h.addr.device(), 5555));

    // Inner source is not the session's address.
    let spoofed = ipv4_udp(SocketAddr::from((h.addr.host(99), 5555)), server_addr, b"spoofed");
    h.device_send(TYPE_DATA, &spoofed);
    h.expect_counters("a spoofed source drop", |c| c.drop_spoofed_source == 1);

    // Destination outside the policy.
    let outside = ipv4_udp(device_inner, "10.99.0.1:53".parse().expect("addr"), b"outside");
    h.device_send(TYPE_DATA, &outside);
    h.expect_counters("a policy drop", |c| c.drop_policy == 1);

    // Not a DTLS record at all.
    h.device.send_to(&[0xffu8; 40], h.gateway_udp).expect("send");
    h.expect_counters("a malformed drop", |c| c.drop_malformed == 1);

    // A replayed record.
    let good = ipv4_udp(device_inner, server_addr, b"once");
    let record = h.device_send(TYPE_DATA, &good);
    assert_eq!(h.server_recv().1, b"once");
    h.device.send_to(&record, h.gateway_udp).expect("send");
    h.expect_counters("a replay drop", |c| c.drop_replay == 1);

    // A forged record: right header, wrong tag.
    let mut forged = seal_message(h.client(), TYPE_DATA, &good);
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    h.device.send_to(&forged, h.gateway_udp).expect("send");
    h.expect_counters("a bad MAC drop", |c| c.drop_bad_mac == 1);

    // A record from an epoch the session is not in.
    let mut other_epoch = seal_message(h.client(), TYPE_DATA, &good);
    other_epoch[3..5].copy_from_slice(&2u16.to_be_bytes());
    h.device.send_to(&other_epoch, h.gateway_udp).expect("send");
    h.expect_counters("a wrong epoch drop", |c| c.drop_wrong_epoch == 1);

    // Not IPv4 inside a DATA record, and an unknown message type.
    h.device_send(TYPE_DATA, &[0x60; 40]);
    h.device_send(0x42, b"?");
    h.expect_counters("a non-IPv4 drop and a malformed drop", |c| c.drop_not_ipv4 == 1 && c.drop_malformed == 2);

    // Keepalives are absorbed.
    h.device_send(TYPE_KEEPALIVE, &[]);
    h.expect_counters("a keepalive", |c| c.keepalives == 1);

    // An authenticated close_notify (a disconnecting openconnect sends one)
    // is an alert, not a malformed record.
    let close_notify = seal_record(h.client(), ContentType::ALERT, &[1, 0]);
    h.device.send_to(&close_notify, h.gateway_udp).expect("send");
    h.expect_counters("an alert, no new malformed drop", |c| c.rx_alerts == 1 && c.drop_malformed == 2);

    // Two records in one datagram are both handled.
    let mut two = seal_message(h.client(), TYPE_DATA, &ipv4_udp(device_inner, server_addr, b"first"));
    two.extend(seal_message(h.client(), TYPE_DATA, &ipv4_udp(device_inner, server_addr, b"second")));
    h.device.send_to(&two, h.gateway_udp).expect("send");
    let mut got = vec![h.server_recv().1, h.server_recv().1];
    got.sort();
    assert_eq!(got, vec![b"first".to_vec(), b"second".to_vec()]);

    // Only the good packets reached the TUN (completions are counted a
    // moment after the kernel delivered them).
    let c = h.expect_counters("three TUN writes", |c| c.tun_writes == 3);
    assert_eq!(c.io_errors, 0, "{c:?}");
}

/// What the data plane tells control: handshakes from unknown peers and
/// epoch-0 records from known ones, packets for sessions without DTLS,
/// disconnects, activity; and revoking a session.
#[test]
fn events_for_control() {
    let mut h = Harness::start("cdp-ev", 5, 1);
    h.grant_device(CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256);
    let session = h.addr.device_session();

    // A TUN packet for a pool address nobody holds goes to control for CSTP.
    let other = SocketAddr::from((h.addr.host(20), 7777));
    h.server.send_to(b"for a cstp-only session", other).expect("send");
    let packet = h.expect_event("a CSTP packet", |e| match e {
        FromShard::CstpPacket { session, packet } if *session == SessionId(20) => Some(packet.clone()),
        _ => None,
    });
    let (_, dst, payload) = parse_ipv4_udp(&packet);
    assert_eq!((dst, payload.as_slice()), (other, &b"for a cstp-only session"[..]));

    // Traffic shows up as activity.
    let server_addr = h.server.local_addr().expect("addr");
    let inner = ipv4_udp(SocketAddr::from((h.addr.device(), 5555)), server_addr, b"x");
    h.device_send(TYPE_DATA, &inner);
    h.server_recv();
    let rx = h.expect_event("activity", |e| match e {
        FromShard::Activity { session: s, rx, .. } if *s == session => Some(*rx),
        _ => None,
    });
    // One DATA record, its inner packet counted whole.
    assert_eq!((rx.packets, rx.bytes), (1, inner.len() as u64));

    // DISCONNECT over DTLS.
    h.device_send(TYPE_DISCONNECT, b"\xb0Aborted by caller");
    h.expect_event("a disconnect", |e| {
        matches!(e, FromShard::Disconnect { session: s } if *s == session).then_some(())
    });

    // Revoke: the session is gone, its packets go to control again.
    let shard = h.shard.expect("granted");
    h.dp.send(shard, ToShard::Revoke(session)).expect("queue");
    wait_for("the revoke", || h.dp.owner_of(session).is_none().then_some(()));
    h.server.send_to(b"after revoke", SocketAddr::from((h.addr.device(), 5555))).expect("send");
    h.expect_event("a CSTP packet after revoke", |e| {
        matches!(e, FromShard::CstpPacket { session: s, .. } if *s == session).then_some(())
    });
    // And the device's records are opened no more: they go to the shard's
    // handshake table (where its finished handshake lingers), not to the TUN.
    let before = h.totals();
    h.device_send(TYPE_DATA, &inner);
    let c = h.expect_counters("the record received", |c| c.rx_datagrams > before.rx_datagrams);
    assert_eq!(c.rx_records, before.rx_records, "not opened after the revoke");
    h.expect_counters("one grant and one revoke", |c| (c.grants, c.revokes) == (1, 1));
}

/// The shard that a device's datagrams reach runs its handshake and
/// installs the session before the final flight leaves: a record the device
/// sends the moment its handshake completes is opened, not taken for a
/// stranger's; and nothing of the handshake went to control.
#[test]
fn a_handshake_completed_on_a_shard_is_installed_before_the_device_hears_so() {
    let mut h = Harness::start("cdp-gd", 11, 2);
    h.grant_device(CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256);
    let server_addr = h.server.local_addr().expect("addr");
    let device_inner = SocketAddr::from((h.addr.device(), 5555));
    h.device_send(TYPE_DATA, &ipv4_udp(device_inner, server_addr, b"first packet"));
    assert_eq!(h.server_recv(), (device_inner, b"first packet".to_vec()));
    let c = h.expect_counters("the record opened", |c| c.rx_records == 1);
    assert_eq!((c.grants, c.handshakes_established, c.hello_verify_requests), (1, 1, 1), "{c:?}");
}

/// The implicit deny, applied by the shard: a device may not reach the
/// gateway's TUN address nor another session's pool address, even in a
/// group that allows the whole pool; each drop is counted under its own
/// reason and nothing reaches the TUN. With `client_to_client` both are
/// written to the TUN, and the server on the TUN address hears the device
/// (this namespace does not forward, so the other session's packet goes no
/// further).
#[test]
fn the_gateway_and_other_sessions_are_implicitly_denied_unless_client_to_client() {
    for (tun, net, client_to_client) in [("cdp-deny", 18, false), ("cdp-c2c", 19, true)] {
        let mut h = Harness::start(tun, net, 1);
        let policy = Policy {
            allowed: vec!["0.0.0.0/0".parse().expect("net")],
            gateway: vec![h.addr.gateway()],
            pool: Some(h.addr.pool()),
            client_to_client,
        };
        h.grant_device_with(CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256, policy);
        let device_inner = SocketAddr::from((h.addr.device(), 5555));
        let server_addr = h.server.local_addr().expect("addr");
        let other_session = SocketAddr::from((h.addr.host(20), 7777));
        h.device_send(TYPE_DATA, &ipv4_udp(device_inner, server_addr, b"to the gateway"));
        h.device_send(TYPE_DATA, &ipv4_udp(device_inner, other_session, b"to another device"));
        if client_to_client {
            assert_eq!(h.server_recv(), (device_inner, b"to the gateway".to_vec()));
            let c = h.expect_counters("both written to the TUN", |c| c.tun_writes == 2);
            assert_eq!((c.drop_to_gateway, c.drop_client_to_client), (0, 0), "{c:?}");
        } else {
            let c = h.expect_counters("both dropped", |c| c.drop_to_gateway == 1 && c.drop_client_to_client == 1);
            assert_eq!((c.rx_records, c.tun_writes, c.drop_policy), (2, 0, 0), "{c:?}");
            h.server.set_read_timeout(Some(std::time::Duration::from_millis(200))).expect("timeout");
            assert!(h.server.recv_from(&mut [0u8; 64]).is_err(), "nothing reached the gateway's address");
        }
    }
}

/// Datagrams that cannot start an authorised handshake are dropped on the
/// shard and counted by reason; none reaches control.
#[test]
fn strangers_are_dropped_on_the_shard_by_reason() {
    let mut h = Harness::start("cdp-st", 13, 1);
    h.grant_device(CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256);
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    stranger.send_to(b"\x17\xfe\xfd not a ClientHello", h.gateway_udp).expect("send");
    let mut config = dtls::ClientConfig::new(b"psk", &[1; 32]);
    config.session_id = vec![0x99; 32];
    let mut unknown = dtls::Connection::client(std::sync::Arc::new(config), std::time::Instant::now()).expect("client");
    let mut hello = Vec::new();
    assert!(unknown.poll_transmit(&mut hello));
    stranger.send_to(&hello, h.gateway_udp).expect("send");
    let c =
        h.expect_counters("both dropped", |c| c.handshakes_not_client_hello >= 1 && c.handshakes_unknown_app_id >= 1);
    assert_eq!(c.handshakes_established, 1, "only the device's own");
    let mut events = Vec::new();
    h.dp.drain_events(&mut events);
    assert!(events.iter().all(|e| !matches!(e, FromShard::Established { .. })), "{events:?}");
}

/// CSTP packets are admitted by control (`Policy::admit`, with the
/// session's policy at hand) and written by a shard as given: by any shard,
/// whether or not it holds a grant for the session, checked no further.
#[test]
fn cstp_packets_are_written_as_given_by_any_shard() {
    let h = Harness::start("cdp-cstp", 10, 2);
    let server_addr = h.server.local_addr().expect("addr");
    let cstp_only = SocketAddr::from((h.addr.host(20), 4000));
    for shard in [dataplane::ShardId(0), dataplane::ShardId(1)] {
        let packet = ipv4_udp(cstp_only, server_addr, format!("via {shard}").as_bytes());
        h.dp.send(shard, ToShard::tun_write(SessionId(20), &packet)).expect("queue");
        let (from, payload) = h.server_recv();
        assert_eq!((from, payload), (cstp_only, format!("via {shard}").into_bytes()));
    }
    // Not the session's address: control would have refused it, so the
    // shard, which checks nothing again, writes it.
    let other = SocketAddr::from((h.addr.host(21), 4000));
    let packet = ipv4_udp(other, server_addr, b"as given");
    h.dp.send(dataplane::ShardId(0), ToShard::tun_write(SessionId(20), &packet)).expect("queue");
    assert_eq!(h.server_recv(), (other, b"as given".to_vec()));
    let c = h.expect_counters("three writes", |c| c.tun_writes == 3);
    assert_eq!((c.drop_spoofed_source, c.drop_no_session, c.drop_malformed, c.io_errors), (0, 0, 0, 0), "{c:?}");
}

/// A grant whose address is not the pool address of its session id is refused.
#[test]
fn inconsistent_grant_is_rejected() {
    let h = Harness::start("cdp-gr", 6, 1);
    let (keys, _) = mirrored_keys(CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256);
    let grant = proto::grant::SessionGrant {
        session: SessionId(10),
        peer: "127.0.0.1:9".parse().expect("addr"),
        address: h.addr.host(11),
        policy: proto::grant::Policy::allowing(vec![h.addr.pool()]),
        keys,
        mtu: 1400,
    };
    h.dp.send(dataplane::ShardId(0), ToShard::Grant(Box::new(grant))).expect("queue");
    h.expect_counters("a rejected grant", |c| c.grants_rejected == 1);
    assert_eq!(h.dp.owner_of(SessionId(10)), None);
    assert!(h.dp.send(dataplane::ShardId(7), ToShard::Revoke(SessionId(1))).is_err(), "no such shard");
}

#[test]
fn bad_configuration_is_refused_before_touching_the_system() {
    let base = DataplaneConfig {
        shards: 1,
        udp_listen: "127.0.0.1:0".parse().expect("addr"),
        tun_name: "cdp-cfg".into(),
        tun_address: "10.77.7.1/24".parse().expect("net"),
        tun_mtu: 1400,
        pool: "10.77.7.0/24".parse().expect("net"),
        pin_cores: false,
        ring_entries: 64,
        offloads: true,
        io: io_from_env(),
        steering: true,
        batch_wait: std::time::Duration::from_micros(50),
    };
    for bad in [
        DataplaneConfig { tun_name: "a-name-far-too-long".into(), ..base.clone() },
        DataplaneConfig { tun_name: "tun%d".into(), ..base.clone() },
        DataplaneConfig { tun_mtu: 100, ..base.clone() },
        DataplaneConfig { pool: "10.0.0.0/8".parse().expect("net"), ..base.clone() },
        DataplaneConfig { ring_entries: 1 << 20, ..base.clone() },
    ] {
        let err = Dataplane::start(bad).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}

/// A device that sends with UDP GSO (as corridor's own load generator does)
/// has its datagrams coalesced by UDP GRO at the gateway: one receive, every
/// record still opened and written to the TUN.
#[test]
fn gro_coalesced_datagrams_are_each_opened() {
    use std::os::fd::AsRawFd;

    let mut h = Harness::start("cdp-gro", 14, 1);
    h.grant_device(CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256);
    assert!(h.dp.info().shards[0].udp_gro, "UDP_GRO on with offloads");
    let server_addr = h.server.local_addr().expect("addr");
    let device_inner = SocketAddr::from((h.addr.device(), 5555));
    let records: Vec<Vec<u8>> = (0..8u8)
        .map(|i| seal_message(h.client(), TYPE_DATA, &ipv4_udp(device_inner, server_addr, &[i; 1000])))
        .collect();
    let size = records[0].len();
    assert!(records.iter().all(|r| r.len() == size));
    let segment = libc::c_int::try_from(size).expect("size");
    // SAFETY (test): the option value is a live c_int of the size passed.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            h.device.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            std::ptr::from_ref(&segment).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "UDP_SEGMENT on the device socket");
    h.device.send_to(&records.concat(), h.gateway_udp).expect("one GSO send of 8 records");
    let mut got: Vec<u8> = (0..8).map(|_| h.server_recv().1[0]).collect();
    got.sort_unstable();
    assert_eq!(got, (0..8).collect::<Vec<u8>>());
    let c = h.expect_counters("8 records", |c| c.rx_records == 8);
    // The handshake's datagrams, then the 8 records in one receive.
    assert_eq!((c.rx_datagrams, c.gro_receives, c.gro_datagrams), (h.handshake_sent + 8, 1, 8), "{c:?}");

    // A burst of coalesced receives: each record may become a TUN write
    // in the same loop turn, so the engine must hold that many transmits
    // (regression: an op table sized per receive slot, not per datagram,
    // dropped most of them as queue_full).
    let sends: Vec<Vec<u8>> = (0..48)
        .map(|_| {
            (0..40u8)
                .flat_map(|i| seal_message(h.client(), TYPE_DATA, &ipv4_udp(device_inner, server_addr, &[i; 1000])))
                .collect()
        })
        .collect();
    for send in &sends {
        h.device.send_to(send, h.gateway_udp).expect("a GSO send of 40 records");
    }
    let c = h.expect_counters("the burst opened", |c| c.rx_records >= 8 + 48 * 40);
    assert_eq!((c.queue_full, c.drop_replay), (0, 0), "{c:?}");
    // Every receive of the burst was a loaded turn (40 datagrams), so the
    // wait after it asked for a batch wherever the shard forms them.
    assert!(c.loop_turns > 0 && c.loop_turns <= c.rx_datagrams + c.tun_reads + 64, "{c:?}");
    if h.dp.info().shards[0].batching {
        assert!(c.batched_waits > 0, "{c:?}");
    } else {
        assert_eq!(c.batched_waits, 0, "{c:?}");
    }
}

/// ClientHellos sent right behind their sessions' authorisations are all
/// answered. The shard once handled a turn's completions before control's
/// messages, so under load a ClientHello arriving in the same turn as its
/// authorisation (queued before control even answered the CONNECT) was
/// dropped as an unknown App-ID and the device waited a retransmission
/// (1 s): a handshake storm's p99 went from 0.2 s to 1.1 s (PERF.md). That
/// race needs load to show; this pins the behaviour it broke.
#[test]
fn a_client_hello_right_behind_its_authorisation_is_answered() {
    let h = Harness::start("cdp-auth", 14, 1);
    let device = h.device.local_addr().expect("addr");
    for i in 0..20u8 {
        let app_id = [i; 32];
        let authorization = dataplane::handshake::Authorization {
            session: SessionId(10 + u32::from(i)),
            app_id: app_id.to_vec(),
            psk: dtls::Psk::new(vec![7; 32]),
            address: h.addr.host(10 + i),
            policy: proto::grant::Policy::allowing(vec![h.addr.pool()]),
            mtu: 1400,
        };
        let mut config = dtls::ClientConfig::new(b"psk", &[7; 32]);
        config.session_id = app_id.to_vec();
        let mut client =
            dtls::Connection::client(std::sync::Arc::new(config), std::time::Instant::now()).expect("client");
        let mut hello = Vec::new();
        assert!(client.poll_transmit(&mut hello));
        h.dp.send(dataplane::ShardId(0), ToShard::Authorize(Box::new(authorization))).expect("queue");
        h.device.send_to(&hello, h.gateway_udp).expect("send");
    }
    let c = h.expect_counters("20 cookie rounds", |c| c.hello_verify_requests == 20);
    assert_eq!(c.handshakes_unknown_app_id, 0, "{device}: {c:?}");
}
