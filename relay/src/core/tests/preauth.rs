//! Before authentication: gateway-port connections are capped in total
//! and per source, must attach or authenticate within limits.auth_timeout,
//! and are answered nothing but the handshake.

use super::*;

const GW: &str = "10.20.0.2:50000";
const FLOOD: &str = "10.20.0.66";

#[test]
fn unauthenticated_connections_are_capped_per_source_and_in_total() {
    let mut sim = Sim::with_limits("max_unauthenticated = 3\nmax_unauthenticated_per_source = 2");
    let a: Vec<ConnId> = (0..3).map(|i| sim.accept(Listener::Gateways, &format!("{FLOOD}:{}", 40000 + i))).collect();
    assert_eq!(sim.closed.get(&a[2]), Some(&"per-source unauthenticated connection limit"));
    assert!(!sim.closed.contains_key(&a[0]) && !sim.closed.contains_key(&a[1]));
    let b = sim.dial_link(GW);
    let c = sim.accept(Listener::Gateways, "10.20.0.3:40000");
    assert_eq!(sim.closed.get(&c), Some(&"unauthenticated connection limit"));
    let m = sim.counters();
    assert_eq!((m.refused_unauthenticated_per_source, m.refused_unauthenticated), (1, 1));
    assert!(sim.core.metrics_page().contains("corridor_relay_unauthenticated 3\n"));

    // An authenticated link no longer counts: another may dial.
    sim.send_frame(b, &Frame::Hello { version: proto::relay::VERSION, route_hint: 0, name: NAME.into() });
    let [Frame::Challenge { nonce }] = sim.frames(b)[..] else { panic!("no challenge") };
    sim.send_frame(b, &Frame::Auth { mac: link_mac(TOKEN.as_bytes(), &nonce, NAME) });
    assert!(matches!(sim.frames(b)[..], [Frame::Welcome { .. }]));
    let d = sim.accept(Listener::Gateways, "10.20.0.3:40001");
    assert!(!sim.closed.contains_key(&d), "a slot was freed by the Welcome");
    assert!(sim.core.metrics_page().contains("corridor_relay_unauthenticated 3\n"));
}

#[test]
fn what_does_not_authenticate_in_time_is_closed_and_its_slot_freed() {
    let mut sim = Sim::with_limits("auth_timeout = 2\nmax_unauthenticated_per_source = 2");
    let up = sim.link_up(GW, NAME);
    let idle = sim.accept(Listener::Gateways, &format!("{FLOOD}:40000"));
    let (challenged, _) = sim.hello(&format!("{FLOOD}:40001"), NAME, 0);
    sim.advance(Duration::from_millis(1750));
    assert!(sim.closed.is_empty(), "not before limits.auth_timeout");
    sim.advance(Duration::from_millis(250));
    assert_eq!(sim.closed.get(&idle), Some(&"not authenticated in time"));
    assert_eq!(sim.closed.get(&challenged), Some(&"gateway link dropped"));
    assert!(!sim.closed.contains_key(&up.conn), "an authenticated link has no deadline");
    assert_eq!(sim.counters().drop_auth_timeout, 2);
    assert_eq!(sim.counters().links_lost, 0, "a link that never came up is not lost");
    // Both slots of the source are free again.
    for port in [40002, 40003] {
        let again = sim.accept(Listener::Gateways, &format!("{FLOOD}:{port}"));
        assert!(!sim.closed.contains_key(&again));
    }
}

#[test]
fn nothing_is_answered_before_authentication() {
    let mut sim = Sim::new();
    // A Ping after the Hello: not answered, the link closed and counted.
    let (pinging, _) = sim.hello(GW, NAME, 0);
    sim.send_frame(pinging, &Frame::Ping { token: 7 });
    assert!(sim.frames(pinging).is_empty(), "no Pong before the Welcome");
    assert_eq!(sim.closed.get(&pinging), Some(&"gateway link dropped"));
    // A Pong, or a Decline, is no better.
    let (other, _) = sim.hello("10.20.0.3:50000", NAME, 0);
    sim.send_frame(other, &Frame::Decline { stream: 1 });
    assert!(sim.frames(other).is_empty() && sim.closed.contains_key(&other));
    assert_eq!(sim.counters().drop_frame_before_auth, 2);
    // A Ping before the Hello is no link at all.
    let first = sim.dial_link("10.20.0.4:50000");
    sim.send_frame(first, &Frame::Ping { token: 7 });
    assert!(sim.frames(first).is_empty() && sim.closed.contains_key(&first));
    assert_eq!(sim.counters().drop_bad_gateway_frame, 1);
    assert_eq!((sim.counters().links_up, sim.core.links_up()), (0, 0));
}

#[test]
fn a_link_must_run_over_tls_and_a_stream_must_not() {
    let mut sim = Sim::new();
    let plain = sim.accept(Listener::Gateways, GW);
    sim.send_frame(plain, &Frame::Hello { version: proto::relay::VERSION, route_hint: 0, name: NAME.into() });
    let answer = sim.frames(plain);
    assert!(matches!(&answer[..], [Frame::Refused { reason }] if reason.contains("TLS")), "{answer:?}");
    assert_eq!(sim.closed.get(&plain), Some(&"link without TLS"));
    assert_eq!(sim.counters().drop_plaintext_link, 1);
    assert!(!sim.tls.contains_key(&plain));
    // An Attach inside TLS is not a stream.
    let wrapped = sim.dial_link(GW);
    sim.send_frame(wrapped, &Frame::Attach { stream: 1, nonce: [0; 16] });
    assert!(sim.closed.contains_key(&wrapped));
    assert_eq!(sim.counters().drop_bad_gateway_frame, 1);
}

#[test]
fn a_failed_tls_ends_the_link_and_is_counted() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW, NAME);
    let handshaking = sim.dial_link("10.20.0.3:50000");
    for conn in [l.conn, handshaking] {
        sim.core.handle_end(conn, Ended::TlsFailed, sim.now);
        sim.drain();
        assert!(sim.closed.contains_key(&conn));
    }
    let m = sim.counters();
    assert_eq!((m.drop_link_tls, m.links_lost, sim.core.links_up()), (2, 1, 0));
    assert!(sim.core.metrics_page().contains("corridor_relay_unauthenticated 0\n"));
}
