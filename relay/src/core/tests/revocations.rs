//! Cookie revocations: passed to the other links of the name at once,
//! held until the cookie expires and replayed to a link that comes up
//! later, bounded per name, and never taken before authentication.

use super::*;

const GW1: &str = "10.20.0.2:50000";
const GW2: &str = "10.20.0.3:50000";
const GW3: &str = "10.20.0.4:50000";

fn revoke(n: u8, expires_in: u64) -> Frame {
    Frame::Revoke { tag: [n; 16], expires: UNIX_START + expires_in }
}

fn revokes(frames: &[Frame]) -> Vec<Frame> {
    frames.iter().filter(|f| matches!(f, Frame::Revoke { .. })).cloned().collect()
}

#[test]
fn a_revocation_goes_to_every_other_link_of_its_name_and_only_once() {
    let mut sim = Sim::new();
    let a = sim.link_up(GW1, NAME);
    let b = sim.link_up(GW2, NAME);
    let stranger = sim.link_up(GW3, OTHER_NAME);
    sim.send_frame(a.conn, &revoke(1, 3600));
    assert_eq!(sim.frames(b.conn), [revoke(1, 3600)]);
    assert!(sim.frames(a.conn).is_empty(), "not echoed to its sender");
    assert!(sim.frames(stranger.conn).is_empty(), "another name's gateways are another cluster");
    // The same tag again (a gateway re-sending its list after a redial):
    // held already, passed on no more.
    sim.send_frame(b.conn, &revoke(1, 3600));
    assert!(sim.frames(a.conn).is_empty() && sim.frames(b.conn).is_empty());
    let m = sim.counters();
    assert_eq!((m.revocations, m.revocations_forwarded, m.revocations_repeated), (1, 1, 1));
    assert!(sim.closed.is_empty(), "a revocation is no protocol error");
    assert!(sim.core.metrics_page().contains("corridor_relay_revocations 1\n"));
}

#[test]
fn a_link_that_comes_up_later_is_told_until_the_cookie_expires() {
    let mut sim = Sim::new();
    let a = sim.link_up(GW1, NAME);
    sim.send_frame(a.conn, &revoke(1, 60));
    sim.send_frame(a.conn, &revoke(2, 3600));
    let other = sim.link_up(GW3, OTHER_NAME);
    assert!(sim.frames(other.conn).is_empty(), "nothing of another name");
    // A node that (re)connects gets the Welcome, then the name's list.
    let (late, answer) = sim.authenticate(GW2, NAME, TOKEN, 0);
    assert!(matches!(answer.first(), Some(Frame::Welcome { .. })), "{answer:?}");
    assert_eq!(revokes(&answer), [revoke(1, 60), revoke(2, 3600)]);
    assert_eq!(sim.counters().revocations_replayed, 2);
    // The first cookie expires: forgotten, and a later link hears only the other.
    sim.advance(Duration::from_secs(61));
    assert!(sim.core.metrics_page().contains("corridor_relay_revocations 1\n"));
    sim.core.handle_end(late, Ended::Eof, sim.now);
    sim.drain();
    let (_, answer) = sim.authenticate(GW2, NAME, TOKEN, 0);
    assert_eq!(revokes(&answer), [revoke(2, 3600)]);
}

#[test]
fn the_wall_clock_the_driver_sets_decides_expiry() {
    let mut sim = Sim::new();
    let a = sim.link_up(GW1, NAME);
    sim.send_frame(a.conn, &revoke(1, 600));
    // The host clock jumps ten minutes ahead between two ticks.
    sim.core.set_wall_clock(sim.now, UNIX_START + 600);
    sim.advance(TICK);
    assert!(sim.core.metrics_page().contains("corridor_relay_revocations 0\n"));
}

#[test]
fn an_expired_cookie_is_not_held_or_passed_on() {
    let mut sim = Sim::new();
    let a = sim.link_up(GW1, NAME);
    let b = sim.link_up(GW2, NAME);
    sim.send_frame(a.conn, &Frame::Revoke { tag: [1; 16], expires: UNIX_START });
    assert!(sim.frames(b.conn).is_empty());
    assert_eq!((sim.counters().revocations_stale, sim.counters().revocations), (1, 0));
}

#[test]
fn a_revoke_before_authentication_drops_the_link_unanswered() {
    let mut sim = Sim::new();
    let up = sim.link_up(GW1, NAME);
    let (challenged, _) = sim.hello(GW2, NAME, 0);
    sim.send_frame(challenged, &revoke(1, 3600));
    assert!(sim.frames(challenged).is_empty());
    assert_eq!(sim.closed.get(&challenged), Some(&"gateway link dropped"));
    assert!(sim.frames(up.conn).is_empty(), "not passed on");
    assert_eq!((sim.counters().drop_frame_before_auth, sim.counters().revocations), (1, 0));
    // Nor as the first frame of a connection: that is no link at all.
    let stray = sim.dial_link(GW3);
    sim.send_frame(stray, &revoke(1, 3600));
    assert!(sim.closed.contains_key(&stray));
    assert_eq!(sim.counters().drop_bad_gateway_frame, 1);
    // And a later link hears nothing of them.
    let (_, answer) = sim.authenticate("10.20.0.5:50000", NAME, TOKEN, 0);
    assert!(revokes(&answer).is_empty(), "{answer:?}");
}

#[test]
fn a_full_list_drops_what_expires_first_and_counts_it() {
    let mut sim = Sim::with_limits("max_revocations_per_name = 2");
    let a = sim.link_up(GW1, NAME);
    for (n, expires_in) in [(1, 300), (2, 100), (3, 200)] {
        sim.send_frame(a.conn, &revoke(n, expires_in));
    }
    assert_eq!((sim.counters().revocations, sim.counters().revocations_evicted), (3, 1));
    // Another name's list is its own.
    let other = sim.link_up(GW3, OTHER_NAME);
    sim.send_frame(other.conn, &revoke(9, 100));
    assert_eq!(sim.counters().revocations_evicted, 1);
    let (_, answer) = sim.authenticate(GW2, NAME, TOKEN, 0);
    assert_eq!(revokes(&answer), [revoke(3, 200), revoke(1, 300)]);
}

#[test]
fn a_long_list_is_replayed_a_batch_a_tick() {
    use crate::core::revocations::REPLAY_BATCH;
    let mut sim = Sim::new();
    let a = sim.link_up(GW1, NAME);
    let total = REPLAY_BATCH + 10;
    for i in 0..total {
        sim.send_frame(a.conn, &Frame::Revoke { tag: numbered(i), expires: UNIX_START + 3600 + i as u64 });
    }
    let (late, answer) = sim.authenticate(GW2, NAME, TOKEN, 0);
    assert_eq!(revokes(&answer).len(), REPLAY_BATCH, "the first batch with the Welcome");
    sim.advance(TICK);
    let rest = revokes(&sim.frames(late));
    assert_eq!(rest.len(), 10);
    let last = Frame::Revoke { tag: numbered(total - 1), expires: UNIX_START + 3600 + total as u64 - 1 };
    assert_eq!(rest.last(), Some(&last), "in expiry order");
    sim.advance(TICK);
    assert!(sim.frames(late).is_empty(), "told once");
    assert_eq!(sim.counters().revocations_replayed, total as u64);
}

/// A tag of its own for each `i` below 65 536.
fn numbered(i: usize) -> [u8; 16] {
    core::array::from_fn(|b| (i >> (8 * (b % 2))) as u8)
}
