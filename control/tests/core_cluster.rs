//! A cluster cookie's lifecycle across nodes: a session that ends for good
//! at one node (logout, kill, the cookie grace, the idle timeout) revokes
//! its cookie, the revocation reaches the peers (here handed over as a
//! relay would, [`relay_revocations`]), and every node answers the
//! cookie 401 until it expires. See `support/mod.rs`. No network.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use control::cluster::{revocation_tag, Cluster};
use control::session::EndReason;
use control::Config;
use device::{DisconnectReason, Event};
use proto::grant::SessionId;
use support::*;

const SECRET: [u8; 32] = [0x5a; 32];
/// Session timeout one hour: the cookie expires an hour after login.
const TIMERS: &str = "dpd = 30\nkeepalive = 20\nidle_timeout = 0\nsession_timeout = 3600\ncookie_grace = 60\n";

fn node(n: u32, timers: &str) -> Config {
    let mut c = config(timers, PASSWORDS);
    c.cluster = Some(Cluster { secret: SECRET.to_vec(), node: n, nodes: 2 });
    c
}

/// Two nodes of one cluster and a device logged in to node 1 (index 0),
/// its tunnel up: the world, the device, its session and cookie.
fn cluster(timers: &str) -> (World, usize, SessionId, String) {
    let mut w = World::new(node(1, timers));
    w.add_gateway(node(2, timers));
    let d = w.add_device(0, device_config(USER, PASSWORD));
    assert!(w.take_events(d).iter().any(|e| matches!(e, Event::TunnelUp { .. })));
    let s = w.gateways[0].core.sessions().iter().next().expect("a session");
    let (id, cookie) = (s.id, s.cookie.clone());
    (w, d, id, cookie)
}

/// What node 1 must send for `cookie`: its tag and its own expiry.
fn revocation_of(cookie: &str) -> (proto::relay::RevocationTag, u64) {
    let claims = Cluster { secret: SECRET.to_vec(), node: 1, nodes: 2 }.verify(cookie).expect("a cluster cookie");
    (revocation_tag(cookie), claims.expires)
}

/// What a relay does with gateway `from`'s revocations: passes each to
/// every other gateway. Returns how many there were.
fn relay_revocations(w: &mut World, from: usize) -> usize {
    let revoked = std::mem::take(&mut w.gateways[from].revocations);
    let now = w.now;
    for (i, g) in w.gateways.iter_mut().enumerate() {
        if i != from {
            for (tag, expires) in &revoked {
                g.core.handle_revocation(*tag, *expires, now);
            }
        }
    }
    w.run();
    revoked.len()
}

/// A CONNECT with `cookie` to gateway `gw` on a new connection: the
/// status line of the answer.
fn connect_with_cookie(w: &mut World, gw: usize, cookie: &str) -> String {
    let r = w.add_raw(gw);
    let request = format!("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn.test\r\nCookie: webvpn={cookie}\r\n\r\n");
    w.raw_send(r, request.as_bytes());
    w.raw_text(r).lines().next().unwrap_or_default().to_owned()
}

fn is_401(status: &str) -> bool {
    status.starts_with("HTTP/1.1 401")
}

#[test]
fn a_logout_revokes_the_cookie_at_every_node() {
    let (mut w, d, _, cookie) = cluster(TIMERS);
    let now = w.now;
    w.devices[d].session.disconnect(now);
    w.run();
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::Logout]);
    assert_eq!(w.gateways[0].revocations, [revocation_of(&cookie)]);
    assert_eq!(w.gateways[0].core.counters().cookies_revoked, 1);
    assert_eq!(relay_revocations(&mut w, 0), 1);
    assert_eq!(w.gateways[1].core.counters().revocations_received, 1);
    assert!(is_401(&connect_with_cookie(&mut w, 1, &cookie)), "the peer refuses it");
    assert!(is_401(&connect_with_cookie(&mut w, 0, &cookie)), "and so does the node");
    let peer = w.gateways[1].core.counters();
    assert_eq!((peer.connects_refused_revoked, peer.sessions_adopted), (1, 0));
    assert_eq!(w.gateways[0].core.counters().connects_refused_revoked, 1);
}

#[test]
fn an_administrator_kill_revokes_the_cookie_at_every_node() {
    let (mut w, _, id, cookie) = cluster(TIMERS);
    assert!(w.gateways[0].core.kill(id));
    w.run();
    assert_eq!(w.gateways[0].revocations, [revocation_of(&cookie)]);
    relay_revocations(&mut w, 0);
    assert!(is_401(&connect_with_cookie(&mut w, 1, &cookie)));
}

#[test]
fn the_end_of_the_cookie_grace_revokes_the_cookie_at_every_node() {
    let (mut w, d, _, cookie) = cluster(TIMERS);
    w.break_connection(d);
    w.advance(Duration::from_secs(59));
    assert!(w.gateways[0].revocations.is_empty(), "within the grace the device may come back");
    w.advance(Duration::from_secs(2));
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::ReconnectWindowExpired]);
    assert_eq!(w.gateways[0].revocations, [revocation_of(&cookie)]);
    relay_revocations(&mut w, 0);
    assert!(is_401(&connect_with_cookie(&mut w, 1, &cookie)));
}

#[test]
fn an_idle_timeout_revokes_the_cookie() {
    let timers = "dpd = 30\nkeepalive = 20\nidle_timeout = 60\nsession_timeout = 3600\ncookie_grace = 60\n";
    let (mut w, _, _, cookie) = cluster(timers);
    w.advance(Duration::from_secs(61));
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::IdleTimeout]);
    assert_eq!(w.gateways[0].revocations, [revocation_of(&cookie)]);
}

#[test]
fn a_gateway_that_stops_leaves_its_cookies_to_the_cluster() {
    let (mut w, _, _, cookie) = cluster(TIMERS);
    w.gateways[0].core.shutdown();
    w.run();
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::Shutdown]);
    assert!(w.gateways[0].revocations.is_empty(), "failing over with the cookie is what a cluster is for");
    assert!(connect_with_cookie(&mut w, 1, &cookie).starts_with("HTTP/1.1 200"), "the peer adopts it");
}

#[test]
fn a_gateway_without_a_cluster_revokes_nothing() {
    let mut w = World::new(config(TIMERS, PASSWORDS));
    let d = w.add_device(0, device_config(USER, PASSWORD));
    let now = w.now;
    w.devices[d].session.disconnect(now);
    w.run();
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::Logout]);
    assert!(w.gateways[0].revocations.is_empty(), "a node-local cookie means nothing elsewhere");
    let c = w.gateways[0].core.counters();
    assert_eq!(c.cookies_revoked, 0);
    w.gateways[0].core.handle_revocation([1; 16], u64::MAX, now);
    assert_eq!(w.gateways[0].core.revocations_held(), 0, "nor does it hold revocations");
}

/// Before revocations, a node that adopted a cookie and saw its session
/// logged out would adopt the same cookie again: it was another node's.
#[test]
fn a_logout_at_the_adopting_node_is_not_undone_by_adopting_the_cookie_again() {
    let (mut w, d, _, cookie) = cluster(TIMERS);
    // Node 1 is unreachable; the device reconnects to node 2, which adopts it.
    w.break_connection(d);
    w.advance(Duration::from_secs(2));
    w.reconnect(d, 1);
    assert_eq!(w.gateways[1].core.counters().sessions_adopted, 1);
    let now = w.now;
    w.devices[d].session.disconnect(now);
    w.run();
    assert_eq!(w.gateways[1].end_reasons(), [EndReason::Logout]);
    assert!(is_401(&connect_with_cookie(&mut w, 1, &cookie)), "node 2 does not adopt it again");
    assert_eq!(w.gateways[1].core.counters().sessions_adopted, 1);
    // Node 1 still holds the session detached, waiting out its grace: the
    // revocation ends it there, and tells no one again.
    assert_eq!(w.gateways[0].core.sessions().len(), 1);
    assert_eq!(relay_revocations(&mut w, 1), 1);
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::RevokedAtPeer]);
    assert!(w.gateways[0].revocations.is_empty(), "a revocation from a peer is not sent back");
    assert_eq!(w.gateways[0].core.addresses_in_use(), 0);
}

#[test]
fn a_revocation_from_a_peer_ends_the_session_it_names_and_tells_the_device() {
    let (mut w, d, id, cookie) = cluster(TIMERS);
    let (tag, expires) = revocation_of(&cookie);
    let now = w.now;
    w.gateways[0].core.handle_revocation(tag, expires, now);
    w.run();
    assert!(w.gateways[0].core.sessions().get(id).is_none());
    assert_eq!(w.gateways[0].end_reasons(), [EndReason::RevokedAtPeer]);
    let events = w.take_events(d);
    assert!(events.iter().any(|e| matches!(e, Event::Disconnected(DisconnectReason::ByGateway(_)))), "{events:?}");
    // Repeated (a relay replays its list to a link that comes back): nothing more.
    w.gateways[0].core.handle_revocation(tag, expires, now);
    assert_eq!(w.gateways[0].core.counters().revocations_received, 1);
}

#[test]
fn a_revocation_is_forgotten_when_its_cookie_expires() {
    let (mut w, d, _, cookie) = cluster(TIMERS);
    let now = w.now;
    w.devices[d].session.disconnect(now);
    w.run();
    relay_revocations(&mut w, 0);
    assert_eq!(w.gateways[1].core.revocations_held(), 1);
    assert_eq!(w.gateways[0].core.revocations_held(), 1, "the node refuses its own revoked cookie too");
    w.advance(Duration::from_secs(3590));
    assert_eq!(w.gateways[1].core.revocations_held(), 1, "held while the cookie is good");
    w.advance(Duration::from_secs(15));
    assert_eq!((w.gateways[0].core.revocations_held(), w.gateways[1].core.revocations_held()), (0, 0));
    // Past its expiry the cookie is refused for that alone.
    assert!(is_401(&connect_with_cookie(&mut w, 1, &cookie)));
    assert_eq!(w.gateways[1].core.counters().connects_refused_revoked, 0);
    // A revocation that arrives expired is not held.
    let (tag, expires) = revocation_of(&cookie);
    let now = w.now;
    w.gateways[1].core.handle_revocation(tag, expires, now);
    assert_eq!(w.gateways[1].core.revocations_held(), 0);
}

#[test]
fn a_peer_cannot_make_a_revocation_outlive_this_node_s_session_timeout() {
    let (mut w, _, _, _) = cluster(TIMERS);
    let now = w.now;
    w.gateways[1].core.handle_revocation([7; 16], u64::MAX, now);
    assert_eq!(w.gateways[1].core.revocations_held(), 1);
    // Past the session timeout no cookie issued before the revocation is
    // adopted here anyway.
    w.advance(Duration::from_secs(3601));
    assert_eq!(w.gateways[1].core.revocations_held(), 0);
}
