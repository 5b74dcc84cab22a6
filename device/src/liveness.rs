//! Dead-peer detection and keepalive for one channel (CSTP or DTLS), the
//! client's algorithm of protocol reference §6.1.

use std::time::{Duration, Instant};

/// What a channel must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Nothing received for `dpd`: send DPD-REQ.
    DpdRequest,
    /// Nothing sent for `keepalive`: send KEEPALIVE.
    Keepalive,
    /// Nothing received for `2 × dpd`: the channel is dead.
    Dead,
}

/// One channel's clock: last receive, last send, last DPD sent.
#[derive(Debug, Clone)]
pub struct Liveness {
    dpd: Option<Duration>,
    keepalive: Option<Duration>,
    last_rx: Instant,
    last_tx: Instant,
    last_dpd: Option<Instant>,
}

impl Liveness {
    /// `0` seconds turns a timer off.
    pub fn new(now: Instant, dpd_secs: u32, keepalive_secs: u32) -> Self {
        let secs = |s: u32| (s > 0).then(|| Duration::from_secs(u64::from(s)));
        Self { dpd: secs(dpd_secs), keepalive: secs(keepalive_secs), last_rx: now, last_tx: now, last_dpd: None }
    }

    /// Any frame received refreshes `last_rx` (§6.1).
    pub fn received(&mut self, now: Instant) {
        self.last_rx = now;
        self.last_dpd = None;
    }

    pub fn sent(&mut self, now: Instant) {
        self.last_tx = now;
    }

    /// What is due at `now`. Call [`dpd_sent`](Self::dpd_sent) or
    /// [`sent`](Self::sent) after acting on it.
    pub fn due(&self, now: Instant) -> Due {
        if let Some(dpd) = self.dpd {
            let quiet = now.saturating_duration_since(self.last_rx);
            if quiet >= dpd * 2 {
                return Due::Dead;
            }
            // Repeat an outstanding DPD no sooner than dpd/2 after the last.
            let repeat_ok = self.last_dpd.is_none_or(|t| now.saturating_duration_since(t) >= dpd / 2);
            if quiet >= dpd && repeat_ok {
                return Due::DpdRequest;
            }
        }
        if let Some(k) = self.keepalive {
            if now.saturating_duration_since(self.last_tx) >= k {
                return Due::Keepalive;
            }
        }
        Due::Nothing
    }

    pub fn dpd_sent(&mut self, now: Instant) {
        self.last_dpd = Some(now);
        self.last_tx = now;
    }

    /// The next instant something may become due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let dpd = self.dpd.map(|d| {
            let first = self.last_rx + d;
            let dead = self.last_rx + d * 2;
            match self.last_dpd {
                None => first,
                Some(t) => (t + d / 2).max(first).min(dead),
            }
        });
        let keepalive = self.keepalive.map(|k| self.last_tx + k);
        [dpd, keepalive].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpd_then_repeat_then_dead() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut l = Liveness::new(t0, 30, 0);
        assert_eq!(l.due(t0 + s(29)), Due::Nothing);
        assert_eq!(l.next_deadline(), Some(t0 + s(30)));
        assert_eq!(l.due(t0 + s(30)), Due::DpdRequest);
        l.dpd_sent(t0 + s(30));
        assert_eq!(l.due(t0 + s(40)), Due::Nothing);
        assert_eq!(l.next_deadline(), Some(t0 + s(45)));
        assert_eq!(l.due(t0 + s(45)), Due::DpdRequest);
        l.dpd_sent(t0 + s(45));
        assert_eq!(l.due(t0 + s(60)), Due::Dead);
        l.received(t0 + s(59));
        assert_eq!(l.due(t0 + s(60)), Due::Nothing);
    }

    #[test]
    fn keepalive_counts_sends_only() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut l = Liveness::new(t0, 0, 10);
        l.received(t0 + s(9));
        assert_eq!(l.due(t0 + s(10)), Due::Keepalive);
        l.sent(t0 + s(10));
        assert_eq!(l.next_deadline(), Some(t0 + s(20)));
        assert_eq!(Liveness::new(t0, 0, 0).next_deadline(), None);
    }
}
