//! Slowing guessers down without sleeping: a per-source pace for password
//! checks (`limits.login_interval_ms`) and a per-user delay of verdicts
//! that doubles with each failure (`limits.failure_delay_ms`, up to
//! `limits.failure_delay_max_ms`). What must wait is queued here and
//! released by [`Core::handle_tick`](super::Core::handle_tick); the
//! connection meanwhile waits for its check as it would for a slow
//! verifier.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::bans::Source;
use super::{CheckId, Verdict};
use crate::config::Limits;

/// Something held back until `due`.
#[derive(Debug)]
pub(super) enum Deferred {
    /// A password check not yet handed to the verifiers (the source's pace).
    Check { check: CheckId, user: String, password: Zeroizing<String> },
    /// A verdict not yet applied (the user's delay).
    Verdict { check: CheckId, verdict: Verdict },
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Debug, Default)]
pub(super) struct Throttle {
    /// When each source may next have a password checked.
    next_check: HashMap<Source, Instant>,
    failures: HashMap<String, Failures>,
    deferred: Vec<(Instant, Deferred)>,
}

impl Throttle {
    /// When a password check from `s` may run (now or later); the slot is taken.
    pub(super) fn check_slot(&mut self, s: Source, l: &Limits, now: Instant) -> Instant {
        if l.login_interval.is_zero() {
            return now;
        }
        let slot = self.next_check.get(&s).map_or(now, |&t| t.max(now));
        self.next_check.insert(s, slot + l.login_interval);
        slot
    }

    /// How long `user`'s next verdict waits: nothing before a failure, then
    /// `failure_delay`, doubling per failure up to `failure_delay_max`.
    /// Failures older than `ban_reset_time` are forgotten.
    pub(super) fn user_delay(&self, user: &str, l: &Limits, now: Instant) -> Duration {
        let Some(f) = self.failures.get(user) else { return Duration::ZERO };
        if f.count == 0 || now.saturating_duration_since(f.last) >= l.ban_reset_time {
            return Duration::ZERO;
        }
        let factor = 1u32 << (f.count - 1).min(20);
        l.failure_delay.saturating_mul(factor).min(l.failure_delay_max)
    }

    pub(super) fn user_failed(&mut self, user: &str, l: &Limits, now: Instant) {
        let f = self.failures.entry(user.to_owned()).or_insert(Failures { count: 0, last: now });
        if now.saturating_duration_since(f.last) >= l.ban_reset_time {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    pub(super) fn user_succeeded(&mut self, user: &str) {
        self.failures.remove(user);
    }

    pub(super) fn defer(&mut self, due: Instant, d: Deferred) {
        self.deferred.push((due, d));
    }

    /// What is due at `now`, oldest first.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<Deferred> {
        if self.deferred.iter().all(|(due, _)| *due > now) {
            return Vec::new();
        }
        let (mut due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.deferred).into_iter().partition(|(d, _)| *d <= now);
        self.deferred = later;
        due.sort_by_key(|(d, _)| *d);
        due.into_iter().map(|(_, d)| d).collect()
    }

    /// Forgets paces that have passed and failures that have reset.
    pub(super) fn prune(&mut self, l: &Limits, now: Instant) {
        self.next_check.retain(|_, t| *t > now);
        self.failures.retain(|_, f| now.saturating_duration_since(f.last) < l.ban_reset_time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_users_delay_doubles_per_failure_up_to_the_cap_and_a_success_clears_it() {
        let l = Limits::default();
        let (mut t, now) = (Throttle::default(), Instant::now());
        assert_eq!(t.user_delay("alice", &l, now), Duration::ZERO);
        let mut got = Vec::new();
        for _ in 0..12 {
            t.user_failed("alice", &l, now);
            got.push(t.user_delay("alice", &l, now).as_millis());
        }
        assert_eq!(got, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]);
        assert_eq!(t.user_delay("bob", &l, now), Duration::ZERO, "other users are untouched");
        assert_eq!(t.user_delay("alice", &l, now + l.ban_reset_time), Duration::ZERO, "forgotten after the reset");
        t.user_succeeded("alice");
        assert_eq!(t.user_delay("alice", &l, now), Duration::ZERO);
    }

    #[test]
    fn a_source_gets_one_check_slot_per_interval() {
        let l = Limits::default();
        let (mut t, now) = (Throttle::default(), Instant::now());
        let s = Source::V4(Ipv4Addr::new(192, 0, 2, 1));
        let slots: Vec<Duration> = (0..3).map(|_| t.check_slot(s, &l, now) - now).collect();
        assert_eq!(slots, [Duration::ZERO, l.login_interval, l.login_interval * 2]);
        assert_eq!(t.check_slot(Source::V4(Ipv4Addr::new(192, 0, 2, 2)), &l, now), now, "another source");
    }
}
