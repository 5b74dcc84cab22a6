//! The control core's defences against guessing and floods, and its safe
//! defaults (docs/security.md), against real device sessions and raw TLS
//! clients in one process, in virtual time. See `support/mod.rs`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use control::core::ConnId;
use control::passwd::Entry;
use control::session::EndReason;
use control::Config;
use device::Event;
use support::*;

/// A gateway with password logins and these `[limits]`.
fn limits(body: &str) -> Config {
    config(DEFAULT_TIMERS, &format!("{PASSWORDS}[limits]\n{body}\n"))
}

/// No login pace and no verdict delay: each test turns on what it is about.
const QUICK: &str = "login_interval_ms = 0\nfailure_delay_ms = 0\nfailure_delay_max_ms = 0\n";

fn tunnel_up(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::TunnelUp { .. }))
}

fn auth_failed(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::AuthFailed(m) => Some(m.clone()),
        _ => None,
    })
}

#[test]
fn wrong_passwords_from_one_source_ban_it_while_another_source_logs_in() {
    let mut w = World::new(limits(&format!("{QUICK}max_ban_score = 30\nban_time = 300")));
    // One of the guesser's connections waits, idle, while the others guess.
    let idle = w.add_raw(0);
    for i in 0..3 {
        let r = w.add_raw(0);
        w.raw_send(r, login_request(USER, &format!("guess {i}")).as_bytes());
        assert!(w.raw_text(r).contains("Login failed."), "{}", w.raw_text(r));
    }
    let now = w.now;
    let g = &w.gateways[0];
    let c = g.core.counters();
    assert_eq!((c.logins_password_failed, c.bans), (3, 1));
    assert_eq!(g.core.banned_sources(now), 1);
    assert!(w.raws[idle].closed, "the banned source's other connection is closed");
    assert!(w.gateways[0].closes.iter().any(|(_, why)| *why == "source banned"));
    assert!(w.try_add_raw(0, RAW_SOURCE).is_none(), "a banned source is refused at accept");
    assert_eq!(w.gateways[0].core.counters().connections_refused_banned, 1);
    // Another source is untouched, even logging in as the guessed user.
    let d = w.add_device(0, device_config(USER, PASSWORD));
    assert!(tunnel_up(&w.take_events(d)));
    assert_eq!(w.gateways[0].core.counters().logins_password_ok, 1);
}

#[test]
fn malformed_requests_add_points_too() {
    let mut w = World::new(limits(&format!("{QUICK}max_ban_score = 20\nban_points_malformed = 10")));
    for _ in 0..2 {
        let r = w.add_raw(0);
        w.raw_send(r, b"\x00\x01 not http\r\n\r\n");
        assert!(w.raw_text(r).starts_with("HTTP/1.1 400"));
    }
    assert_eq!(w.gateways[0].core.counters().bans, 1);
    assert!(w.try_add_raw(0, RAW_SOURCE).is_none());
}

#[test]
fn tls_failures_add_points_and_ban() {
    let mut w = World::new(limits(&format!("{QUICK}max_ban_score = 10\nban_points_tls_failure = 5")));
    let now = w.now;
    let peer = "198.51.100.7:1000".parse().unwrap();
    let core = &mut w.gateways[0].core;
    // What the driver does when rustls fails a connection.
    for i in 0..2 {
        let id = ConnId(90_000 + i);
        assert!(core.handle_conn_open(id, peer, None, now));
        core.handle_tls_failure(id, now);
        core.handle_conn_closed(id, now, "TLS error");
    }
    assert_eq!((core.counters().tls_failures, core.counters().bans), (2, 1));
    assert!(!core.handle_conn_open(ConnId(90_002), peer, None, now));
}

#[test]
fn a_ban_ends_after_ban_time_and_unban_lifts_it_at_once() {
    let mut w = World::new(limits(&format!("{QUICK}max_ban_score = 10\nban_time = 30\nban_reset_time = 600")));
    let r = w.add_raw(0);
    w.raw_send(r, login_request(USER, "wrong").as_bytes());
    assert_eq!(w.gateways[0].core.counters().bans, 1);
    w.advance(Duration::from_secs(29));
    assert!(w.try_add_raw(0, RAW_SOURCE).is_none(), "still banned");
    w.advance(Duration::from_secs(1));
    assert_eq!(w.gateways[0].core.banned_sources(w.now), 0);
    let r = w.try_add_raw(0, RAW_SOURCE).expect("the ban ended");
    // The score has not reset yet: one more wrong password bans again.
    w.raw_send(r, login_request(USER, "wrong again").as_bytes());
    assert_eq!(w.gateways[0].core.counters().bans, 2);
    assert!(w.try_add_raw(0, RAW_SOURCE).is_none());
    let now = w.now;
    assert!(w.gateways[0].core.unban(RAW_SOURCE.into(), now));
    assert!(!w.gateways[0].core.unban(RAW_SOURCE.into(), now), "nothing left to lift");
    assert_eq!(w.gateways[0].core.counters().unbans, 1);
    assert!(w.try_add_raw(0, RAW_SOURCE).is_some(), "unbanned");
}

#[test]
fn a_users_verdicts_wait_longer_after_each_failure_and_other_users_do_not_wait() {
    let mut w = World::new(limits(
        "login_interval_ms = 0\nmax_ban_score = 0\nfailure_delay_ms = 2000\nfailure_delay_max_ms = 8000",
    ));
    let a = w.add_raw(0);
    w.raw_send(a, login_request("bob", "wrong").as_bytes());
    assert!(w.raw_text(a).contains("Login failed."), "the first failure is answered at once");
    for wait in [Duration::from_secs(2), Duration::from_secs(4)] {
        let r = w.add_raw(0);
        w.raw_send(r, login_request("bob", "wrong again").as_bytes());
        w.advance(wait - Duration::from_millis(100));
        assert!(!w.raw_text(r).contains("Login failed."), "held back for {wait:?}");
        w.advance(Duration::from_millis(200));
        assert!(w.raw_text(r).contains("Login failed."), "answered after {wait:?}");
    }
    assert_eq!(w.gateways[0].core.counters().verdicts_delayed, 2);
    // Alice has no failures: her login is not delayed.
    let d = w.add_device(0, device_config(USER, PASSWORD));
    assert!(tunnel_up(&w.take_events(d)));
    assert_eq!(w.gateways[0].core.counters().verdicts_delayed, 2);
}

#[test]
fn one_source_gets_one_password_check_per_login_interval() {
    let mut w = World::new(limits(
        "login_interval_ms = 1000\nfailure_delay_ms = 0\nfailure_delay_max_ms = 0\nmax_ban_score = 0",
    ));
    let (a, b) = (w.add_raw(0), w.add_raw(0));
    w.raw_send(a, login_request("bob", "wrong").as_bytes());
    w.raw_send(b, login_request("bob", "wrong").as_bytes());
    assert!(w.raw_text(a).contains("Login failed."));
    assert!(!w.raw_text(b).contains("Login failed."), "the second check waits for the source's pace");
    assert_eq!(w.gateways[0].core.counters().logins_paced, 1);
    // Another source is not paced.
    let d = w.add_device(0, device_config(USER, PASSWORD));
    assert!(tunnel_up(&w.take_events(d)));
    w.advance(Duration::from_millis(900));
    assert!(!w.raw_text(b).contains("Login failed."));
    w.advance(Duration::from_millis(200));
    assert!(w.raw_text(b).contains("Login failed."));
}

#[test]
fn pre_auth_connections_are_capped_per_source_and_in_total_apart_from_tunnels() {
    let mut w = World::new(limits("max_preauth = 4\nmax_preauth_per_source = 2"));
    let d = w.add_device(0, device_config(USER, PASSWORD));
    let address = w.take_events(d).iter().find_map(|e| match e {
        Event::TunnelUp { address, .. } => Some(*address),
        _ => None,
    });
    assert!(address.is_some());
    assert_eq!(w.gateways[0].core.preauth_count(), 0, "a tunnel is not pre-auth");
    assert!(w.try_add_raw(0, RAW_SOURCE).is_some());
    assert!(w.try_add_raw(0, RAW_SOURCE).is_some());
    assert!(w.try_add_raw(0, RAW_SOURCE).is_none(), "the source is at its cap");
    assert_eq!(w.gateways[0].core.counters().connections_refused_preauth, 1);
    // The session reconnects with its cookie from its own address meanwhile.
    w.break_connection(d);
    w.reconnect(d, 0);
    let events = w.take_events(d);
    assert_eq!(
        events.iter().find_map(|e| match e {
            Event::TunnelUp { address, .. } => Some(*address),
            _ => None,
        }),
        address,
        "{events:?}"
    );
    assert_eq!(w.gateways[0].core.preauth_count(), 2);
    let other = Ipv4Addr::new(198, 51, 100, 2);
    assert!(w.try_add_raw(0, other).is_some());
    assert!(w.try_add_raw(0, other).is_some());
    assert!(w.try_add_raw(0, Ipv4Addr::new(198, 51, 100, 3)).is_none(), "the total is at its cap");
    assert_eq!(w.gateways[0].core.counters().connections_refused_preauth, 2);
}

#[test]
fn a_login_that_never_connects_releases_its_address_after_the_connect_grace() {
    let timers = format!("{DEFAULT_TIMERS}connect_grace = 5\n");
    let mut w = World::new(config(&timers.replace("cookie_grace = 60", "cookie_grace = 600"), PASSWORDS));
    // A device that CONNECTed and lost its connection keeps cookie_grace.
    let d = w.add_device(0, device_config("bob", "bob's password"));
    assert!(tunnel_up(&w.take_events(d)));
    w.break_connection(d);
    let r = w.add_raw(0);
    w.raw_send(r, login_request(USER, PASSWORD).as_bytes());
    assert!(w.raw_text(r).contains("Set-Cookie: webvpn="), "{}", w.raw_text(r));
    assert_eq!(w.gateways[0].core.addresses_in_use(), 2);
    w.advance(Duration::from_millis(4900));
    assert_eq!(w.gateways[0].core.addresses_in_use(), 2);
    w.advance(Duration::from_millis(200));
    assert_eq!(w.gateways[0].core.addresses_in_use(), 1, "the unused login's address is back");
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::NeverConnected]);
    assert_eq!(w.gateways[0].core.sessions().iter().next().map(|s| s.user.as_str()), Some("bob"));
}

#[test]
fn a_login_past_max_sessions_per_user_is_refused_and_live_sessions_carry_on() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    assert_eq!(w.gateways[0].core.config().limits.max_sessions_per_user, 2, "ocserv's default");
    for _ in 0..2 {
        let d = w.add_device(0, device_config(USER, PASSWORD));
        assert!(tunnel_up(&w.take_events(d)));
    }
    let third = w.add_device(0, device_config(USER, PASSWORD));
    let events = w.take_events(third);
    assert!(!tunnel_up(&events));
    assert!(auth_failed(&events).is_some_and(|m| m.contains("Too many sessions")), "{events:?}");
    let g = &w.gateways[0];
    assert_eq!((g.core.counters().logins_refused_session_cap, g.core.sessions().len()), (1, 2));
    // Another user is not limited by alice's sessions.
    let bob = w.add_device(0, device_config("bob", "bob's password"));
    assert!(tunnel_up(&w.take_events(bob)));
    // Once one of alice's sessions ends she may log in again.
    let id = w.gateways[0].core.sessions().iter().find(|s| s.user == USER).unwrap().id;
    w.gateways[0].core.kill(id);
    w.run();
    let again = w.add_device(0, device_config(USER, PASSWORD));
    assert!(tunnel_up(&w.take_events(again)));
}

#[test]
fn a_user_whose_group_is_not_configured_is_refused_not_given_the_first_group() {
    let mut w = World::new(config(DEFAULT_TIMERS, PASSWORDS));
    w.gateways[0].passwords.set(Entry::new("mallory", "pw", Some("admins"), 1000).unwrap());
    let d = w.add_device(0, device_config("mallory", "pw"));
    assert!(!tunnel_up(&w.take_events(d)));
    let g = &w.gateways[0];
    let c = g.core.counters();
    assert_eq!((c.logins_refused_group, c.logins_password_ok), (1, 0));
    assert_eq!((g.core.sessions().len(), g.core.addresses_in_use()), (0, 0));
    assert!(g.closes.iter().any(|(_, why)| *why == "group not configured"), "{:?}", g.closes);
    // A user of a configured group logs in with it.
    let bob = w.add_device(0, device_config("bob", "bob's password"));
    assert!(tunnel_up(&w.take_events(bob)));
    assert_eq!(w.gateways[0].core.sessions().iter().next().map(|s| s.group.as_str()), Some("staff"));
}

#[test]
fn connections_that_stall_in_tls_or_before_login_are_closed_at_their_deadlines() {
    let mut w = World::new(limits("tls_handshake_timeout = 5\nauth_timeout = 20"));
    let now = w.now;
    let silent = ConnId(90_000);
    // A TCP connection that never sends a ClientHello.
    assert!(w.gateways[0].core.handle_conn_open(silent, "198.51.100.7:1".parse().unwrap(), None, now));
    // A TLS connection that never asks for anything.
    let r = w.add_raw(0);
    w.advance(Duration::from_millis(4900));
    assert!(w.gateways[0].closes.is_empty());
    w.advance(Duration::from_millis(200));
    assert_eq!(w.gateways[0].closes, [(silent, "TLS handshake timeout")]);
    assert!(!w.raws[r].closed, "its TLS is done: it has until the auth deadline");
    w.advance(Duration::from_secs(15));
    assert!(w.raws[r].closed);
    assert_eq!(w.gateways[0].closes[1].1, "authentication timeout");
    let c = w.gateways[0].core.counters();
    assert_eq!((c.tls_handshake_timeouts, c.auth_timeouts), (1, 1));
    assert_eq!((w.gateways[0].core.preauth_count(), w.gateways[0].core.connection_count()), (0, 0));
}

#[test]
fn a_cluster_cookie_carries_its_expiry_and_no_peer_honours_it_after() {
    use control::cluster::Cluster;
    let cluster = |node| Cluster { secret: vec![0x5a; 32], node, nodes: 2 };
    // The minting node's session timeout is 30 s; the peer has none of its
    // own, so only the cookie's expiry can end it there.
    let mut a = config(&DEFAULT_TIMERS.replace("session_timeout = 0", "session_timeout = 30"), PASSWORDS);
    a.cluster = Some(cluster(1));
    let mut b = config(DEFAULT_TIMERS, PASSWORDS);
    b.cluster = Some(cluster(2));
    let mut w = World::new(a);
    let gb = w.add_gateway(b);
    let d = w.add_device(0, device_config(USER, PASSWORD));
    assert!(tunnel_up(&w.take_events(d)));
    let cookie = w.gateways[0].core.sessions().iter().next().unwrap().cookie.clone();
    let claims = cluster(2).verify(&cookie).expect("a cluster cookie");
    assert_eq!(claims.expires, claims.issued + 30);
    // The node dies; its device comes back to the peer after the expiry.
    w.break_connection(d);
    w.gateways[0].core.shutdown();
    w.advance(Duration::from_secs(31));
    let r = w.add_raw(gb);
    w.raw_send(
        r,
        format!("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn.test\r\nCookie: webvpn={cookie}\r\n\r\n").as_bytes(),
    );
    assert!(w.raw_text(r).starts_with("HTTP/1.1 401"), "{}", w.raw_text(r));
    assert_eq!(w.gateways[gb].core.counters().sessions_adopted, 0);
}
