//! When to try the session cookie on a new TLS connection after the old
//! one was lost, and when to give up (protocol reference §6.6).
//!
//! openconnect's `ssl_reconnect` schedule: the first attempt right away;
//! after each failed one wait `interval`, which grows by its starting value
//! per failure up to ten times it (10 s, 20 s … 100 s); stop once
//! `--reconnect-timeout` (300 s) has passed since the loss.

use std::time::{Duration, Instant};

/// openconnect's `RECONNECT_INTERVAL_MAX` / `RECONNECT_INTERVAL_MIN`.
const MAX_INTERVAL_FACTOR: u32 = 10;

/// The schedule of one outage: from the loss to a tunnel up again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backoff {
    deadline: Instant,
    next_attempt: Instant,
    /// The wait after the next failure.
    interval: Duration,
    step: Duration,
}

impl Backoff {
    pub(crate) fn new(lost_at: Instant, timeout: Duration, interval: Duration) -> Self {
        Self { deadline: lost_at + timeout, next_attempt: lost_at, interval, step: interval }
    }

    /// When the next attempt should start.
    pub(crate) fn next_attempt(&self) -> Instant {
        self.next_attempt
    }

    /// No attempt starts, and none in flight is waited for, from here on.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// An attempt (or the connection it made) failed at `now`. `false`
    /// when the deadline has passed: give up.
    pub(crate) fn attempt_failed(&mut self, now: Instant) -> bool {
        if now >= self.deadline {
            return false;
        }
        self.next_attempt = now + self.interval;
        self.interval = (self.interval + self.step).min(self.step * MAX_INTERVAL_FACTOR);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openconnect_schedule_then_give_up() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = Backoff::new(t0, s(300), s(10));
        assert_eq!((b.next_attempt(), b.deadline()), (t0, t0 + s(300)));
        // Each attempt fails the moment it starts: 10, 20, … then 100 s apart.
        let mut at = t0;
        let mut gaps = Vec::new();
        let mut attempts = 0;
        while at < b.deadline() {
            attempts += 1;
            assert!(b.attempt_failed(at));
            gaps.push(b.next_attempt().duration_since(at).as_secs());
            at = b.next_attempt();
        }
        assert_eq!(gaps, [10, 20, 30, 40, 50, 60, 70, 80]);
        // Attempts at 0, 10, 30, 60, 100, 150, 210, 280; the one due at 360 is past the deadline.
        assert_eq!(attempts, 8);
        assert_eq!(at, t0 + s(360));
        assert!(!b.attempt_failed(at), "a failure past the deadline gives up");

        let mut long = Backoff::new(t0, s(3600), s(10));
        let mut at = t0;
        for _ in 0..12 {
            assert!(long.attempt_failed(at));
            at = long.next_attempt();
        }
        assert!(long.attempt_failed(at));
        assert_eq!(long.next_attempt().duration_since(at), s(100), "capped at ten times the interval");
    }
}
