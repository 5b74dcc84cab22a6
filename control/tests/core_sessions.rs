//! The control core's session lifecycle against real device sessions:
//! reconnects with the cookie, cluster adoption, every way a session ends,
//! and the CSTP path. See `support/mod.rs`. Runs as any user, no network.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use control::cluster::Cluster;
use control::core::ConnId;
use control::session::{DtlsState, EndReason};
use dataplane::{FromShard, ShardId, Tally};
use device::{Channel, DisconnectReason, Event, Phase};
use proto::grant::SessionId;
use support::*;

fn address_of(events: &[Event]) -> Option<std::net::Ipv4Addr> {
    events.iter().find_map(|e| match e {
        Event::TunnelUp { address, .. } => Some(*address),
        _ => None,
    })
}

/// A gateway, and a device logged in to it with its tunnel up.
fn tunnel(timers: &str, dtls: bool) -> (World, usize, SessionId, std::net::Ipv4Addr) {
    let mut w = World::new(config(timers, PASSWORDS));
    let mut dc = device_config(USER, PASSWORD);
    dc.dtls = dtls;
    let d = w.add_device(0, dc);
    let address = address_of(&w.take_events(d)).expect("tunnel up");
    let id = w.gateways[0].core.sessions().iter().next().expect("a session").id;
    (w, d, id, address)
}

fn gateway_ended(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::Disconnected(DisconnectReason::ByGateway(_))))
}

#[test]
fn a_lost_connection_reconnects_with_the_cookie_to_the_same_address() {
    let (mut w, d, id, address) = tunnel(DEFAULT_TIMERS, true);
    w.break_connection(d);
    assert_eq!(w.devices[d].session.phase(), Phase::Detached);
    let s = w.gateways[0].core.sessions().get(id).expect("the session outlives its connection");
    assert!(s.conn.is_none() && s.detached_at.is_some());
    w.advance(Duration::from_secs(2));
    w.reconnect(d, 0);
    let events = w.take_events(d);
    assert_eq!(address_of(&events), Some(address), "{events:?}");
    assert!(!events.contains(&Event::LoggedIn), "no second login");
    assert!(events.iter().any(|e| matches!(e, Event::DtlsUp { .. })), "a new DTLS handshake: {events:?}");
    let c = w.gateways[0].core.counters();
    assert_eq!((c.logins_password_ok, c.connects), (1, 2));
    assert_eq!(c.logins_cookie_ok, 2, "both CONNECTs are cookie logins");
    assert_eq!(w.gateways[0].core.sessions().len(), 1);
    assert_eq!(w.gateways[0].handshakes[0].counters.established, 2);
}

#[test]
fn a_reconnect_takes_the_session_over_from_an_older_connection() {
    let (mut w, d, id, _) = tunnel(DEFAULT_TIMERS, false);
    let old = w.gateways[0].core.sessions().get(id).and_then(|s| s.conn).expect("connected");
    // The device believes its connection dead while the gateway does not.
    w.devices[d].conn = None;
    w.devices[d].session.handle_connection_lost(w.now);
    w.run();
    w.advance(Duration::from_secs(2));
    w.reconnect(d, 0);
    let new = w.gateways[0].core.sessions().get(id).and_then(|s| s.conn).expect("connected again");
    assert_ne!(old, new);
    assert!(w.gateways[0].closes.contains(&(old, "replaced by a reconnect")), "{:?}", w.gateways[0].closes);
}

/// Two gateways of one cluster (nodes 1 and 2), and a device logging in
/// to node 1: (world, node 2's index, the device).
fn two_node_cluster() -> (World, usize, usize) {
    let cluster = |node| Cluster { secret: vec![0x5a; 32], node, nodes: 2 };
    let mut a = config(DEFAULT_TIMERS, PASSWORDS);
    a.cluster = Some(cluster(1));
    let mut b = config(DEFAULT_TIMERS, PASSWORDS);
    b.cluster = Some(cluster(2));
    let mut w = World::new(a);
    let gb = w.add_gateway(b);
    let d = w.add_device(0, device_config(USER, PASSWORD));
    (w, gb, d)
}

#[test]
fn a_cluster_peer_adopts_the_session_with_its_address_and_the_minting_node_does_not() {
    let (mut w, gb, d) = two_node_cluster();
    let address = address_of(&w.take_events(d)).expect("tunnel up on node 1");
    // Node 1 dies with the session; the device reconnects to node 2.
    w.break_connection(d);
    w.advance(Duration::from_secs(2));
    w.reconnect(d, gb);
    let events = w.take_events(d);
    assert_eq!(address_of(&events), Some(address), "same address on the peer: {events:?}");
    let g = &w.gateways[gb];
    assert_eq!(g.core.counters().sessions_adopted, 1);
    let s = g.core.sessions().iter().next().expect("adopted");
    assert_eq!((s.user.as_str(), s.address), (USER, address));
    // The adopted session is node 2's own now: its timers and its
    // administrator end it, and the device is told.
    let id = s.id;
    assert!(w.gateways[gb].core.kill(id));
    w.run();
    assert_eq!(w.gateways[gb].end_reasons(), [EndReason::AdminKill]);
    let e = w.take_events(d);
    assert!(gateway_ended(&e), "{e:?}");
}

/// `corridor ctl kill` revokes the cookie: a session adopted from another
/// node's cookie and killed here is not adopted again from that cookie.
#[test]
fn an_adopted_session_the_administrator_killed_is_not_adopted_again_there() {
    let (mut w, gb, d) = two_node_cluster();
    address_of(&w.take_events(d)).expect("tunnel up on node 1");
    w.break_connection(d);
    w.advance(Duration::from_secs(2));
    w.reconnect(d, gb);
    address_of(&w.take_events(d)).expect("adopted by node 2");
    let id = w.gateways[gb].core.sessions().iter().next().expect("adopted").id;
    w.break_connection(d);
    assert!(w.gateways[gb].core.kill(id));
    w.advance(Duration::from_secs(2));
    w.reconnect(d, gb);
    let events = w.take_events(d);
    assert!(
        events.iter().any(|e| matches!(e, Event::Disconnected(DisconnectReason::CookieRejected { status: 401, .. }))),
        "{events:?}"
    );
    assert_eq!(w.gateways[gb].core.counters().sessions_adopted, 1, "adopted once, not again");
    assert!(w.gateways[gb].core.sessions().is_empty());
}

#[test]
fn a_cookie_the_node_minted_itself_is_not_adopted_after_its_session_ended() {
    let mut c = config(DEFAULT_TIMERS, PASSWORDS);
    c.cluster = Some(Cluster { secret: vec![0x33; 32], node: 1, nodes: 2 });
    let mut w = World::new(c);
    let d = w.add_device(0, device_config(USER, PASSWORD));
    address_of(&w.take_events(d)).expect("tunnel up");
    let id = w.gateways[0].core.sessions().iter().next().expect("session").id;
    w.break_connection(d);
    assert!(w.gateways[0].core.kill(id));
    w.advance(Duration::from_secs(2));
    w.reconnect(d, 0);
    let events = w.take_events(d);
    assert!(
        events.iter().any(|e| matches!(e, Event::Disconnected(DisconnectReason::CookieRejected { status: 401, .. }))),
        "{events:?}"
    );
    assert_eq!(w.gateways[0].core.counters().sessions_adopted, 0);
}

#[test]
fn an_idle_session_ends_with_idle_timeout() {
    let timers = "dpd = 30\nkeepalive = 20\nidle_timeout = 60\nsession_timeout = 0\ncookie_grace = 60\n";
    let (mut w, d, id, _) = tunnel(timers, true);
    w.advance(Duration::from_secs(59));
    assert!(w.gateways[0].core.sessions().get(id).is_some(), "DPD and keepalives are not activity, but 59 s is not 60");
    w.advance(Duration::from_secs(2));
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::IdleTimeout]);
    assert!(gateway_ended(&w.take_events(d)), "the device was told");
    assert_eq!(w.gateways[0].core.addresses_in_use(), 0, "the address went back to the pool");
    assert!(!w.gateways[0].granted(id), "the shard's grant was revoked");
}

#[test]
fn traffic_keeps_a_session_from_idling_but_not_from_its_session_timeout() {
    let timers = "dpd = 30\nkeepalive = 20\nidle_timeout = 60\nsession_timeout = 200\ncookie_grace = 60\n";
    let (mut w, d, id, address) = tunnel(timers, true);
    for _ in 0..4 {
        w.advance(Duration::from_secs(40));
        let now = w.now;
        assert_eq!(w.devices[d].session.send_packet(now, &udp_packet(address, ORG, b"keep me")), Ok(Channel::Dtls));
        w.run();
        // The shard reports activity once a second in real life.
        let rx = w.gateways[0].tun.len() as u64;
        let rx = Tally { packets: rx, bytes: rx * 36 };
        w.shard_event(
            0,
            FromShard::Activity { session: id, shard: ShardId(0), last_rx: now, rx, tx: Tally::default() },
        );
    }
    assert!(w.gateways[0].ended.is_empty(), "160 s with traffic every 40 s: {:?}", w.gateways[0].ended);
    w.advance(Duration::from_secs(45));
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::SessionTimeout]);
}

#[test]
fn dtls_traffic_adds_up_across_grants_and_reaches_the_session_end() {
    let (mut w, d, id, _) = tunnel(DEFAULT_TIMERS, true);
    let Some(DtlsState::Granted { shard, peer, suite, .. }) = w.gateways[0].core.sessions().get(id).map(|s| s.dtls)
    else {
        panic!("no DTLS grant")
    };
    let now = w.now;
    let activity = |shard, rx: (u64, u64), tx: (u64, u64)| FromShard::Activity {
        session: id,
        shard,
        last_rx: now,
        rx: Tally { packets: rx.0, bytes: rx.1 },
        tx: Tally { packets: tx.0, bytes: tx.1 },
    };
    w.shard_event(0, activity(shard, (3, 300), (2, 150)));
    // The device handshakes again: the shard counts the new grant from zero.
    w.shard_event(0, FromShard::Established { shard, session: id, peer, suite });
    w.shard_event(0, activity(shard, (1, 100), (1, 50)));
    // A late report from a shard the session does not hold changes nothing.
    w.shard_event(0, activity(ShardId(shard.0 + 1), (999, 99_900), (999, 99_900)));
    let traffic = w.gateways[0].core.sessions().get(id).expect("session").traffic;
    let (dtls_rx, dtls_tx) = traffic.dtls();
    assert_eq!((dtls_rx, dtls_tx), (Tally { packets: 4, bytes: 400 }, Tally { packets: 3, bytes: 200 }));
    assert_eq!(traffic.rx(), traffic.cstp_rx + dtls_rx);

    let now = w.now;
    w.devices[d].session.disconnect(now);
    w.run();
    let ended = &w.gateways[0].ended;
    assert_eq!(ended.len(), 1);
    assert_eq!((ended[0].traffic, ended[0].peer.is_some()), (traffic, true), "{ended:?}");
}

/// A device that pauses its tunnel (`corridor connect` on the trusted
/// network) keeps its session: the connection closes, the cookie and the
/// address wait, and the resumed device comes back to both.
#[test]
fn a_paused_tunnel_keeps_its_session_for_the_resume() {
    let (mut w, d, id, address) = tunnel(DEFAULT_TIMERS, true);
    let now = w.now;
    assert!(w.devices[d].session.pause(now, "trusted_network"));
    w.run();
    let s = w.gateways[0].core.sessions().get(id).expect("the session waits");
    assert!(s.conn.is_none() && s.detached_at.is_some(), "detached, not ended");
    assert!(w.gateways[0].ended.is_empty(), "{:?}", w.gateways[0].ended);
    w.take_events(d);

    w.advance(Duration::from_secs(30));
    let now = w.now;
    w.devices[d].session.resume(now);
    w.reconnect(d, 0);
    assert_eq!(address_of(&w.take_events(d)), Some(address), "the same address");
    assert!(w.gateways[0].core.sessions().get(id).is_some_and(|s| s.conn.is_some()));
}

#[test]
fn a_silent_cstp_connection_dies_by_dpd_then_the_session_by_cookie_grace() {
    let (mut w, d, id, _) = tunnel(DEFAULT_TIMERS, false);
    let conn = w.gateways[0].core.sessions().get(id).and_then(|s| s.conn).expect("connected");
    w.devices[d].silent = true;
    w.advance(Duration::from_secs(91));
    assert!(w.gateways[0].closes.contains(&(conn, "CSTP dead-peer detection timeout")), "{:?}", w.gateways[0].closes);
    assert!(w.gateways[0].core.sessions().get(id).is_some_and(|s| s.conn.is_none()), "detached, not ended");
    w.advance(Duration::from_secs(61));
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::ReconnectWindowExpired]);
}

#[test]
fn a_logout_ends_the_session_and_its_cookie() {
    let (mut w, d, id, _) = tunnel(DEFAULT_TIMERS, true);
    let cookie = w.gateways[0].core.sessions().get(id).expect("session").cookie.clone();
    let now = w.now;
    w.devices[d].session.disconnect(now);
    w.run();
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::Logout]);
    assert_eq!(w.gateways[0].core.sessions().len(), 0);
    assert_eq!(w.gateways[0].core.addresses_in_use(), 0);
    // The same cookie on a new connection: refused.
    let r = w.add_raw(0);
    w.raw_send(
        r,
        format!("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn.test\r\nCookie: webvpn={cookie}\r\n\r\n").as_bytes(),
    );
    let got = String::from_utf8_lossy(&w.raws[r].received).into_owned();
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
}

#[test]
fn an_administrator_kill_ends_the_session_and_tells_the_device() {
    let (mut w, d, id, _) = tunnel(DEFAULT_TIMERS, true);
    let app_id = w.gateways[0].core.sessions().get(id).expect("session").app_id;
    assert!(w.gateways[0].handshakes.iter().all(|h| h.is_authorized(&app_id)), "every shard was authorised");
    assert!(!w.gateways[0].core.kill(SessionId(id.0 + 1)), "no such session");
    assert!(w.gateways[0].core.kill(id));
    w.run();
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::AdminKill]);
    assert!(gateway_ended(&w.take_events(d)));
    assert!(!w.gateways[0].granted(id));
    assert!(w.gateways[0].handshakes.iter().all(|h| !h.is_authorized(&app_id)), "no shard takes its handshake now");
    assert_eq!(w.gateways[0].core.connection_count(), 0, "its connection was closed");
}

#[test]
fn shutdown_ends_every_session() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    let a = w.add_device(0, device_config(USER, PASSWORD));
    let b = w.add_device(0, device_config("bob", "bob's password"));
    assert!(address_of(&w.take_events(a)).is_some() && address_of(&w.take_events(b)).is_some());
    let staff = w.gateways[0].core.sessions().iter().find(|s| s.user == "bob").map(|s| s.group.clone());
    assert_eq!(staff.as_deref(), Some("staff"), "the password file's group is the session's");
    w.gateways[0].core.shutdown();
    w.run();
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::Shutdown, EndReason::Shutdown]);
    assert!(gateway_ended(&w.take_events(a)) && gateway_ended(&w.take_events(b)));
}

#[test]
fn cstp_packets_pass_the_admission_rule_and_come_back_over_cstp() {
    let (mut w, d, id, address) = tunnel(DEFAULT_TIMERS, false);
    let now = w.now;
    let good = udp_packet(address, ORG, b"over cstp");
    let spoofed = udp_packet(std::net::Ipv4Addr::new(10, 200, 0, 99), ORG, b"not mine");
    let denied = udp_packet(address, FORBIDDEN, b"not allowed");
    for p in [&good, &spoofed, &denied] {
        assert_eq!(w.devices[d].session.send_packet(now, p), Ok(Channel::Cstp));
    }
    w.run();
    assert_eq!(w.gateways[0].tun, vec![(id, good)], "only the admitted packet reached the TUN");
    let c = w.gateways[0].core.counters();
    assert_eq!((c.drop_spoofed_source, c.drop_policy), (1, 1));
    // A reply from the network for a session without DTLS: over CSTP.
    let reply = udp_packet(ORG, address, b"reply");
    w.shard_event(0, dataplane::FromShard::CstpPacket { session: id, packet: reply.clone() });
    assert!(w.take_events(d).contains(&Event::Packet(reply)));
}

#[test]
fn a_device_whose_udp_is_blocked_falls_back_to_cstp_and_its_grant_is_revoked() {
    let (mut w, d, id, address) = tunnel(DEFAULT_TIMERS, true);
    assert!(w.gateways[0].granted(id));
    w.devices[d].udp_blocked = true;
    // The device's DTLS DPD goes unanswered; it declares DTLS dead.
    let mut down = false;
    for _ in 0..40 {
        w.advance(Duration::from_secs(5));
        if w.take_events(d).contains(&Event::DtlsDown) {
            down = true;
            break;
        }
    }
    assert!(down, "the device gave up on DTLS");
    let now = w.now;
    let packet = udp_packet(address, ORG, b"fallback");
    assert_eq!(w.devices[d].session.send_packet(now, &packet), Ok(Channel::Cstp));
    w.run();
    assert!(!w.gateways[0].granted(id), "the shard's grant was revoked on the first CSTP packet");
    assert_eq!(w.gateways[0].tun.last(), Some(&(id, packet)));
    assert!(matches!(w.gateways[0].core.sessions().get(id).map(|s| s.dtls), Some(control::session::DtlsState::None)));
}

#[test]
fn a_cstp_framing_error_closes_the_connection_and_detaches_the_session() {
    let (mut w, _d, id, _) = tunnel(DEFAULT_TIMERS, false);
    let conn: ConnId = w.gateways[0].core.sessions().get(id).and_then(|s| s.conn).expect("connected");
    let now = w.now;
    w.gateways[0].core.handle_conn_data(conn, now, b"XXXX not a CSTP frame");
    w.run();
    assert_eq!(w.gateways[0].core.counters().cstp_protocol_errors, 1);
    assert!(w.gateways[0].closes.contains(&(conn, "CSTP framing error")));
    assert!(w.gateways[0].core.sessions().get(id).is_some_and(|s| s.conn.is_none()));
}
