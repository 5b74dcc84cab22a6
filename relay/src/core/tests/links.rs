//! Gateway links: authentication, refusal, pings and silence.

use super::*;

const GW: &str = "10.20.0.2:50000";

#[test]
fn a_gateway_with_the_right_token_is_welcomed() {
    let mut sim = Sim::new();
    let (conn, answer) = sim.authenticate(GW, NAME, TOKEN, 0);
    let [Frame::Welcome { route, dtls_port }] = answer[..] else { panic!("{answer:?}") };
    assert_ne!(route, 0);
    assert_eq!(dtls_port, 443, "the devices' DTLS port");
    assert_eq!(sim.counters().links_up, 1);
    assert_eq!(sim.core.links_up(), 1);
    assert!(sim.core.wants_bytes(conn));
    assert!(sim.closed.is_empty());
    assert!(
        sim.core.links_page().starts_with(&format!("{NAME} peer={GW} route={route:08x} ")),
        "{}",
        sim.core.links_page()
    );
}

#[test]
fn a_wrong_token_is_refused_and_the_link_closed() {
    let mut sim = Sim::new();
    let (conn, answer) = sim.authenticate(GW, NAME, OTHER_TOKEN, 0);
    assert!(matches!(&answer[..], [Frame::Refused { reason }] if reason == "authentication failed"), "{answer:?}");
    assert_eq!(sim.closed.get(&conn), Some(&"gateway link dropped"));
    assert_eq!((sim.counters().links_refused, sim.counters().links_up, sim.counters().links_lost), (1, 0, 0));
    assert_eq!(sim.core.links_up(), 0);
}

#[test]
fn an_unknown_name_is_refused_at_its_hello() {
    let mut sim = Sim::new();
    let (conn, answer) = sim.hello(GW, "nobody.test", 0);
    assert!(matches!(&answer[..], [Frame::Refused { reason }] if reason.contains("nobody.test")), "{answer:?}");
    assert_eq!(sim.closed.get(&conn), Some(&"gateway link refused"));
    assert_eq!(sim.counters().links_refused, 1);
}

#[test]
fn names_are_compared_lowercased_and_auth_may_come_with_the_hello() {
    let mut sim = Sim::new();
    let conn = sim.dial_link(GW);
    let hello = Frame::Hello { version: proto::relay::VERSION, route_hint: 0, name: "VPN.Test".into() };
    sim.send_frame(conn, &hello);
    let [Frame::Challenge { nonce }] = sim.frames(conn)[..] else { panic!("no challenge") };
    // A second gateway sends its Hello and Auth in one write: it cannot
    // know the nonce, so its Auth is wrong, but it must be read.
    let other = sim.dial_link("10.20.0.3:50000");
    let mut both = hello.to_vec();
    both.extend(Frame::Auth { mac: link_mac(TOKEN.as_bytes(), &nonce, NAME) }.to_vec());
    sim.read(other, &both);
    assert!(matches!(sim.frames(other)[..], [Frame::Challenge { .. }, Frame::Refused { .. }]));
    sim.send_frame(conn, &Frame::Auth { mac: link_mac(TOKEN.as_bytes(), &nonce, NAME) });
    assert!(matches!(sim.frames(conn)[..], [Frame::Welcome { .. }]));
}

#[test]
fn a_route_hint_is_kept_while_no_other_link_holds_it() {
    let mut sim = Sim::new();
    let (_, first) = sim.authenticate(GW, NAME, TOKEN, 0x1234_5678);
    assert!(matches!(first[..], [Frame::Welcome { route: 0x1234_5678, .. }]), "{first:?}");
    let (_, second) = sim.authenticate("10.20.0.3:50000", NAME, TOKEN, 0x1234_5678);
    let [Frame::Welcome { route, .. }] = second[..] else { panic!("{second:?}") };
    assert_ne!(route, 0x1234_5678, "two links never share a route");
}

#[test]
fn pings_are_answered_and_a_live_link_is_pinged() {
    let mut sim = Sim::with_limits("link_timeout = 30");
    let l = sim.link_up(GW, NAME);
    sim.send_frame(l.conn, &Frame::Ping { token: 7 });
    assert_eq!(sim.frames(l.conn), [Frame::Pong { token: 7 }]);
    sim.advance(Duration::from_secs(9));
    assert!(sim.frames(l.conn).is_empty(), "no ping before a third of link_timeout");
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.frames(l.conn), [Frame::Ping { token: 0 }]);
}

#[test]
fn a_silent_link_is_dropped_and_a_talking_one_kept() {
    let mut sim = Sim::with_limits("link_timeout = 30");
    let silent = sim.link_up(GW, NAME);
    let talking = sim.link_up("10.20.0.3:50000", NAME);
    for _ in 0..8 {
        sim.advance(Duration::from_secs(5));
        sim.send_frame(talking.conn, &Frame::Pong { token: 0 });
    }
    assert_eq!(sim.closed.get(&silent.conn), Some(&"gateway link dropped"));
    assert!(!sim.closed.contains_key(&talking.conn));
    assert_eq!(sim.counters().links_lost, 1);
    assert_eq!(sim.core.links_up(), 1);
}

#[test]
fn a_malformed_or_unexpected_frame_drops_the_link() {
    let mut sim = Sim::new();
    let a = sim.link_up(GW, NAME);
    sim.read(a.conn, &[0xee, 0, 0]);
    let b = sim.link_up("10.20.0.3:50000", NAME);
    sim.send_frame(b.conn, &Frame::Welcome { route: 1, dtls_port: 1 });
    assert!(sim.closed.contains_key(&a.conn) && sim.closed.contains_key(&b.conn));
    assert_eq!((sim.counters().drop_bad_gateway_frame, sim.counters().links_lost), (2, 2));
}

#[test]
fn a_gateway_connection_closed_before_a_frame_is_counted() {
    let mut sim = Sim::new();
    let closing = sim.accept(Listener::Gateways, GW);
    sim.core.handle_end(closing, Ended::Eof, sim.now);
    sim.drain();
    assert_eq!(sim.counters().drop_bad_gateway_frame, 1, "closed before a frame");
}

#[test]
fn a_link_whose_writes_fail_is_lost() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW, NAME);
    sim.core.handle_end(l.conn, Ended::WriteFailed, sim.now);
    sim.drain();
    assert!(sim.closed.contains_key(&l.conn));
    assert_eq!((sim.counters().links_lost, sim.core.links_up()), (1, 0));
}
