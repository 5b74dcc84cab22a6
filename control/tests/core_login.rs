//! The control core against real device sessions in one process: logins,
//! CONNECT, DTLS hand-off, malformed input. See `support/mod.rs` for the
//! simulated network. Runs as any user, with no network at all.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use control::core::Effect;
use device::{Channel, Event};
use proto::ip::Ipv4Net;
use support::*;

fn pool() -> Ipv4Net {
    POOL.parse().unwrap()
}

/// The events up to and including the tunnel, with its address.
fn tunnel_up(events: &[Event]) -> std::net::Ipv4Addr {
    events
        .iter()
        .find_map(|e| match e {
            Event::TunnelUp { address, .. } => Some(*address),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no TunnelUp in {events:?}"))
}

#[test]
fn password_login_connect_and_dtls_carry_packets_both_ways() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    let d = w.add_device(0, device_config(USER, PASSWORD));
    let events = w.take_events(d);
    assert_eq!(events.first(), Some(&Event::LoggedIn), "{events:?}");
    let address = tunnel_up(&events);
    assert!(pool().contains(address), "{address} outside {POOL}");
    assert!(events.iter().any(|e| matches!(e, Event::DtlsUp { .. })), "DTLS did not come up: {events:?}");
    let g = &w.gateways[0];
    let c = g.core.counters();
    assert_eq!((c.logins_password_ok, c.logins_password_failed, c.connects), (1, 0, 1));
    assert_eq!(g.handshakes[0].counters.established, 1, "shard 0 ran the handshake");
    let s = g.core.sessions().iter().next().expect("one session");
    assert_eq!((s.user.as_str(), s.group.as_str(), s.address), (USER, "default", address));
    assert!(g.granted(s.id), "the session was handed to the shard");
    let id = s.id;

    // Device → network over DTLS: opened by the shard's own fast path with
    // the granted keys, admitted, written to the TUN.
    let packet = udp_packet(address, ORG, b"over dtls");
    let now = w.now;
    assert_eq!(w.devices[d].session.send_packet(now, &packet), Ok(Channel::Dtls));
    w.run();
    assert_eq!(w.gateways[0].tun, vec![(id, packet)]);
    // Network → device: the shard answers the device's DTLS DPD with a
    // record sealed under the granted keys, which the device opens.
    w.take_events(d);
    w.advance(Duration::from_secs(35));
    let events = w.take_events(d);
    assert!(events.contains(&Event::DpdResponse(Channel::Dtls)), "no DTLS DPD answer: {events:?}");
    assert!(w.devices[d].session.is_dtls_up());
}

#[test]
fn a_certificate_logs_in_without_a_form() {
    let extra = format!("[auth]\nclient_ca = \"{}\"\n", testdata("ca.crt").display());
    let mut w = World::new(config(DEFAULT_TIMERS, &extra));
    let d = w.add_device(0, certificate_device_config());
    let events = w.take_events(d);
    tunnel_up(&events);
    let s = w.gateways[0].core.sessions().iter().next().expect("one session");
    assert_eq!(s.user, "carol", "the user is the certificate's CN");
    let c = w.gateways[0].core.counters();
    assert_eq!((c.logins_certificate_ok, c.logins_password_ok), (1, 0));
}

#[test]
fn a_wrong_password_is_refused_and_holds_no_address() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    let d = w.add_device(0, device_config(USER, "not the password"));
    let events = w.take_events(d);
    assert!(events.iter().any(|e| matches!(e, Event::AuthFailed(_))), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::TunnelUp { .. })));
    let g = &w.gateways[0];
    assert_eq!((g.core.counters().logins_password_ok, g.core.counters().logins_password_failed), (0, 1));
    assert_eq!(g.core.sessions().len(), 0);
    assert_eq!(g.core.addresses_in_use(), 0);
}

#[test]
fn logins_past_max_login_attempts_get_401_and_the_connection_closes() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    let r = w.add_raw(0);
    let reply = |p: &str| {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"auth-reply\"><version who=\"vpn\">9.01</version><auth><username>{USER}</username><password>{p}</password></auth></config-auth>"
        );
        format!("POST /auth HTTP/1.1\r\nHost: vpn.test\r\nContent-Length: {}\r\n\r\n{body}", body.len())
    };
    w.raw_send(r, reply("wrong one").as_bytes());
    assert!(!w.raws[r].closed, "one failure of two allowed");
    assert!(String::from_utf8_lossy(&w.raws[r].received).contains("Login failed."));
    w.raw_send(r, reply("wrong two").as_bytes());
    // The second check waits for the source's pace and its verdict for the
    // user's failure delay: both released by the core's timers.
    w.advance(Duration::from_secs(1));
    let got = String::from_utf8_lossy(&w.raws[r].received).into_owned();
    assert!(got.contains("HTTP/1.1 401"), "{got}");
    assert!(w.raws[r].closed, "closed after the second failure");
    assert_eq!(w.gateways[0].core.counters().logins_password_failed, 2);
    assert_eq!(w.gateways[0].core.connection_count(), 0);
}

#[test]
fn a_busy_verifier_asks_again_without_counting_a_failure() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    w.gateways[0].verifiers_busy = true;
    let d = w.add_device(0, device_config(USER, PASSWORD));
    let events = w.take_events(d);
    let refused = events.iter().find_map(|e| match e {
        Event::AuthFailed(m) => Some(m.clone()),
        _ => None,
    });
    assert!(refused.is_some_and(|m| m.contains("busy")), "{events:?}");
    let c = w.gateways[0].core.counters();
    assert_eq!((c.logins_busy, c.logins_password_failed, c.logins_password_ok), (1, 0, 0));
    assert_eq!(c.logins_password_refused, 1, "busy is a refusal, not a wrong password");
}

#[test]
fn a_verdict_for_a_connection_that_closed_is_discarded() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    w.gateways[0].hold_checks = true;
    let d = w.add_device(0, device_config(USER, PASSWORD));
    let check = w.gateways[0].held_checks.pop().expect("a check was asked for");
    w.break_connection(d);
    let now = w.now;
    w.gateways[0].core.handle_verdict(check, control::core::Verdict::Accepted { group: None }, now);
    assert_eq!(w.gateways[0].core.counters().verdicts_discarded, 1);
    assert_eq!(w.gateways[0].core.sessions().len(), 0, "no session for a connection that is gone");
}

#[test]
fn malformed_http_gets_400_and_is_closed() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    let r = w.add_raw(0);
    w.raw_send(r, b"\x00\x01 garbage that is no request\r\n\r\n");
    let got = String::from_utf8_lossy(&w.raws[r].received).into_owned();
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(w.raws[r].closed);
    assert_eq!(w.gateways[0].core.counters().bad_requests, 1);
}

#[test]
fn a_malformed_auth_document_gets_400() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    let r = w.add_raw(0);
    let body = "<config-auth type=\"auth-reply\"><auth><username>a</username";
    w.raw_send(r, format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    let got = String::from_utf8_lossy(&w.raws[r].received).into_owned();
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(w.raws[r].closed);
}

#[test]
fn an_unknown_method_gets_405() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    let r = w.add_raw(0);
    w.raw_send(r, b"DELETE / HTTP/1.1\r\nHost: vpn.test\r\n\r\n");
    let got = String::from_utf8_lossy(&w.raws[r].received).into_owned();
    assert!(got.starts_with("HTTP/1.1 405"), "{got}");
    assert!(w.raws[r].closed);
}

#[test]
fn a_request_that_never_ends_is_cut_off() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    let r = w.add_raw(0);
    w.raw_send(r, b"POST / HTTP/1.1\r\nX-Pad: ");
    for _ in 0..8 {
        w.raw_send(r, &[b'a'; 16 * 1024]);
    }
    assert!(w.raws[r].closed, "an endless header is refused");
    assert!(w.gateways[0].core.counters().bad_requests >= 1);
}

#[test]
fn connect_with_an_unknown_cookie_gets_401() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    let r = w.add_raw(0);
    w.raw_send(r, b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn.test\r\nCookie: webvpn=0123456789abcdef\r\n\r\n");
    let got = String::from_utf8_lossy(&w.raws[r].received).into_owned();
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
    assert!(w.raws[r].closed);
    assert_eq!(w.gateways[0].core.counters().connect_rejected, 1);
}

#[test]
fn connections_past_max_connections_are_refused() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    for _ in 0..8 {
        w.add_raw(0);
    }
    let now = w.now;
    let peer = "198.51.100.9:1".parse().unwrap();
    assert!(!w.gateways[0].core.handle_conn_open(control::core::ConnId(9999), peer, None, now));
    assert_eq!(w.gateways[0].core.counters().connections_refused, 1);
}

#[test]
fn a_relay_flow_is_bound_for_a_known_app_id_and_refused_otherwise() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    let mut dc = device_config(USER, PASSWORD);
    dc.dtls = true;
    let d = w.add_device(0, dc);
    let app_id = w
        .take_events(d)
        .into_iter()
        .find_map(|e| match e {
            Event::TunnelUp { app_id, .. } => app_id,
            _ => None,
        })
        .expect("an App-ID");
    let relay: std::net::SocketAddr = "203.0.113.5:50000".parse().unwrap();
    let request = |app_id: Vec<u8>, flow| control::core::FlowRequest {
        link: 0,
        flow,
        relay,
        nonce: [7; 16],
        app_id,
        device: "192.0.2.99:1".parse().unwrap(),
    };
    w.run();
    let g = &mut w.gateways[0];
    g.outbox.clear();
    g.core.handle_flow_request(request(app_id, 1));
    let sent = match g.core.port_mut().to_shards.pop_front() {
        Some((_, dataplane::ToShard::SendDatagram { to, datagram })) => (to, datagram),
        other => panic!("not a bind from the shards' port: {other:?}"),
    };
    assert_eq!(sent, (relay, proto::relay::Bind { flow: 1, nonce: [7; 16] }.to_bytes().to_vec()));
    assert_eq!(g.core.counters().relay_flows_bound, 1);
    g.core.handle_flow_request(request(vec![0xc0; 32], 2));
    assert!(matches!(g.core.poll_effect(), Some(Effect::RefuseFlow { link: 0, flow: 2 })));
}
