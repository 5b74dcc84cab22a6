//! A cluster cookie's end, end to end: two gateways of one `[cluster]`
//! behind one relay, the real openconnect client, and for each way a
//! session ends (logout, an administrator's kill, the session timeout,
//! the cookie grace) the cookie is refused with 401 by the gateway that
//! held the session and by its peer. Needs root; `scripts/test.sh` runs it.

#![allow(clippy::indexing_slicing)]

use std::time::Duration;

use testbed::cookie::{authenticate, connect_status};
use testbed::*;

/// A relay and gateways 1 and 2 of one cluster behind it, links up.
fn cluster(options: impl Fn(&mut GatewayOptions)) -> (Topology, Relay, [Gateway; 2]) {
    let t = Topology::up_relay();
    let relay = Relay::start(&t);
    let node = |n| {
        let mut o = GatewayOptions { relayed: n, cluster: true, ..GatewayOptions::default() };
        options(&mut o);
        Gateway::start(&t, &o)
    };
    let gws = [node(1), node(2)];
    relay.wait_links(2, Duration::from_secs(10));
    (t, relay, gws)
}

/// alice's cookie, her tunnel up with it through the relay, and which
/// gateway holds her session: (client, cookie, holder, peer).
fn tunnel(t: &Topology, gws: &[Gateway; 2]) -> (Client, String, usize, usize) {
    let cookie = authenticate(t, &t.device(), "alice");
    let client = Client::connect_relayed(t, &t.device(), Login::Cookie(&cookie));
    let holder = wait_until("a gateway to hold alice's session", Duration::from_secs(10), || {
        gws.iter().position(|g| g.session_of("alice").is_some())
    });
    assert_eq!(
        gws[holder].metric_with("corridor_logins_total", &[("method", "password"), ("outcome", "ok")]),
        1,
        "the CONNECT went to the gateway that logged alice in"
    );
    (client, cookie, holder, 1 - holder)
}

/// Waits until the peer has heard of the revocation, then asks both.
fn refused_by_both(t: &Topology, gws: &[Gateway; 2], holder: usize, peer: usize, cookie: &str) {
    wait_until("the revocation to reach the peer", Duration::from_secs(10), || {
        (gws[peer].metric("corridor_revocations_received_total") == 1).then_some(())
    });
    for gw in [&gws[holder], &gws[peer]] {
        let status = connect_status(t, gw, cookie);
        assert!(status.starts_with("HTTP/1.1 401"), "{}: {status}", gw.ns);
        assert!(gw.metric("corridor_connects_refused_revoked_total") >= 1, "{}", gw.admin("GET", "/metrics"));
        let refused = gw.metric_with("corridor_logins_total", &[("method", "cookie"), ("outcome", "refused")]);
        assert!(refused >= 1, "{}", gw.admin("GET", "/metrics"));
    }
    assert_eq!(gws[holder].metric("corridor_cookies_revoked_total"), 1);
    assert_eq!(gws[peer].metric("corridor_sessions_adopted_total"), 0);
}

#[test]
fn a_logout_ends_the_cookie_at_the_gateway_and_its_peer() {
    let (t, relay, gws) = cluster(|_| {});
    let (mut client, cookie, holder, peer) = tunnel(&t, &gws);
    client.disconnect();
    gws[holder].proc.log.wait_for("reason=client logout", Duration::from_secs(10));
    refused_by_both(&t, &gws, holder, peer, &cookie);
    assert_eq!(relay.metric("corridor_relay_revocations_total"), 1, "{}", relay.admin("/metrics"));
    assert_eq!(relay.metric("corridor_relay_revocations_forwarded_total"), 1);
    assert_eq!(relay.metric("corridor_relay_revocations"), 1, "held for links that come up later");
}

#[test]
fn an_administrator_kill_ends_the_cookie_at_the_gateway_and_its_peer() {
    let (t, _relay, gws) = cluster(|_| {});
    let (client, cookie, holder, peer) = tunnel(&t, &gws);
    let id = gws[holder].session_id_of("alice");
    let killed = gws[holder].kill_session(&id);
    assert_eq!(killed["result"], "killed", "{killed}");
    gws[holder].proc.log.wait_for("reason=administrator", Duration::from_secs(10));
    refused_by_both(&t, &gws, holder, peer, &cookie);
    drop(client);
}

#[test]
fn the_end_of_the_cookie_grace_ends_the_cookie_at_the_gateway_and_its_peer() {
    let (t, _relay, gws) = cluster(|o| o.cookie_grace = 2);
    let (mut client, cookie, holder, peer) = tunnel(&t, &gws);
    // The device vanishes without a logout (SIGKILL: no goodbye).
    let _ = client.proc.child.kill();
    let _ = client.proc.child.wait();
    gws[holder].proc.log.wait_for("CSTP connection lost; waiting for reconnect", Duration::from_secs(10));
    gws[holder].proc.log.wait_for("reason=no reconnect within the cookie grace period", Duration::from_secs(10));
    refused_by_both(&t, &gws, holder, peer, &cookie);
}

#[test]
fn the_session_timeout_ends_the_cookie_at_the_gateway_and_its_peer() {
    // Long enough for the tunnel to come up on a loaded machine first.
    let (t, _relay, gws) = cluster(|o| o.session_timeout = Some(8));
    let (client, cookie, holder, peer) = tunnel(&t, &gws);
    gws[holder].proc.log.wait_for("reason=session timeout", Duration::from_secs(15));
    // The cookie carries its expiry: no revocation is needed for this one.
    for gw in &gws {
        let status = connect_status(&t, gw, &cookie);
        assert!(status.starts_with("HTTP/1.1 401"), "{}: {status}", gw.ns);
    }
    assert_eq!(gws[peer].metric("corridor_sessions_adopted_total"), 0);
    assert_eq!(gws[peer].metric("corridor_revocations_received_total"), 0, "it expired by itself");
    drop(client);
}

#[test]
fn a_gateway_that_was_down_learns_the_revocation_from_the_relay_when_it_links_up() {
    let (t, relay, [gw1, gw2]) = cluster(|_| {});
    let mut gws = [gw1, gw2];
    let (mut client, cookie, holder, peer) = tunnel(&t, &gws);
    let peer_options = GatewayOptions { relayed: peer as u8 + 1, cluster: true, ..GatewayOptions::default() };
    gws[peer].proc.stop(Duration::from_secs(10));
    relay.wait_links(1, Duration::from_secs(10));
    client.disconnect();
    gws[holder].proc.log.wait_for("reason=client logout", Duration::from_secs(10));
    wait_until("the relay to hold the revocation", Duration::from_secs(10), || {
        (relay.metric("corridor_relay_revocations") == 1).then_some(())
    });
    assert_eq!(relay.metric("corridor_relay_revocations_forwarded_total"), 0, "no other link was up");
    // The peer comes back: the relay tells it on its Welcome.
    gws[peer] = Gateway::start(&t, &peer_options);
    relay.wait_links(2, Duration::from_secs(10));
    refused_by_both(&t, &gws, holder, peer, &cookie);
    assert_eq!(relay.metric("corridor_relay_revocations_replayed_total"), 1, "{}", relay.admin("/metrics"));
}
