//! The shard's latency sample path, cheap enough to leave on: one clock
//! read per loop turn. A turn's latency is the time from harvesting its
//! completions to having submitted everything they produced (records sent,
//! TUN writes queued): an upper bound on the time each of the turn's
//! packets spent inside the shard. Recorded into a fixed log₂ histogram
//! (no allocation), published with the counters, served by control as a
//! Prometheus histogram per shard.
//!
//! The same log₂ histogram, from 100 µs, times each DTLS handshake from
//! the ClientHello that passed the cookie round to Finished: one
//! subtraction per handshake, of clock reads the handshake path already
//! has.

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets: upper bounds of `FIRST_NS` · 2^k for k < BUCKETS - 1, then +Inf.
pub const BUCKETS: usize = 19;

/// A shard's loop turns: 500 ns … 65.5 ms.
pub type TurnLatency = Log2Histogram<500>;
/// A shard's completed DTLS handshakes: 100 µs … 13.1 s.
pub type HandshakeLatency = Log2Histogram<100_000>;

/// Durations so far, in log₂ buckets from `FIRST_NS` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Log2Histogram<const FIRST_NS: u64> {
    /// Samples per bucket (not cumulative).
    pub buckets: [u64; BUCKETS],
    pub sum_ns: u64,
    pub count: u64,
}

impl<const FIRST_NS: u64> Default for Log2Histogram<FIRST_NS> {
    fn default() -> Self {
        Self { buckets: [0; BUCKETS], sum_ns: 0, count: 0 }
    }
}

impl<const FIRST_NS: u64> Log2Histogram<FIRST_NS> {
    /// Upper bound of bucket `k` in nanoseconds; `None` for the last (+Inf).
    pub fn bound_ns(k: usize) -> Option<u64> {
        (k + 1 < BUCKETS).then(|| FIRST_NS << k)
    }

    /// The bucket a duration of `ns` falls in: the first whose bound holds it.
    fn bucket(ns: u64) -> usize {
        let q = ns.div_ceil(FIRST_NS).max(1);
        // ceil(log2(q)): q = 1 → 0, 2 → 1, 3..=4 → 2, …
        let k = (u64::BITS - (q - 1).leading_zeros()) as usize;
        k.min(BUCKETS - 1)
    }

    #[inline]
    pub fn record(&mut self, ns: u64) {
        if let Some(b) = self.buckets.get_mut(Self::bucket(ns)) {
            *b += 1;
        }
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.count += 1;
    }

    /// (upper bound in ns or `None` for +Inf, samples at or under it), as
    /// a Prometheus histogram counts them.
    pub fn cumulative(&self) -> [(Option<u64>, u64); BUCKETS] {
        let mut acc = 0;
        core::array::from_fn(|k| {
            acc += self.buckets.get(k).copied().unwrap_or(0);
            (Self::bound_ns(k), acc)
        })
    }
}

/// A shard's [`Log2Histogram`] as control reads it: relaxed atomics, one writer.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct PublishedLatency<const FIRST_NS: u64> {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl<const FIRST_NS: u64> Default for PublishedLatency<FIRST_NS> {
    fn default() -> Self {
        Self {
            buckets: core::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl<const FIRST_NS: u64> PublishedLatency<FIRST_NS> {
    pub(crate) fn publish(&self, l: &Log2Histogram<FIRST_NS>) {
        for (slot, v) in self.buckets.iter().zip(l.buckets) {
            slot.store(v, Ordering::Relaxed);
        }
        self.sum_ns.store(l.sum_ns, Ordering::Relaxed);
        self.count.store(l.count, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Log2Histogram<FIRST_NS> {
        Log2Histogram {
            buckets: core::array::from_fn(|k| self.buckets.get(k).map_or(0, |b| b.load(Ordering::Relaxed))),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_lands_in_the_first_bucket_that_holds_it() {
        for ns in [0u64, 1, 499, 500, 501, 999, 1000, 1001, 4_000, 4_001, 1_000_000, 65_536_000, 65_536_001, u64::MAX] {
            let k = TurnLatency::bucket(ns);
            if let Some(b) = TurnLatency::bound_ns(k) {
                assert!(ns <= b, "{ns} ns in bucket {k} bounded by {b}");
            }
            if k > 0 {
                let below = TurnLatency::bound_ns(k - 1).expect("finite");
                assert!(ns > below, "{ns} ns belongs below bucket {k}");
            }
        }
        assert_eq!(TurnLatency::bucket(u64::MAX), BUCKETS - 1, "+Inf");
        assert_eq!(HandshakeLatency::bound_ns(BUCKETS - 2), Some(13_107_200_000), "handshakes: up to 13.1 s");
        assert_eq!(HandshakeLatency::bucket(3_000_000), 5, "3 ms: under 3.2 ms");
    }

    #[test]
    fn cumulative_counts_end_at_the_total_and_publish_round_trips() {
        let mut l = TurnLatency::default();
        for ns in [100, 700, 700, 3_000, 10_000_000_000] {
            l.record(ns);
        }
        let c = l.cumulative();
        assert_eq!(c[0], (Some(500), 1));
        assert_eq!(c[1], (Some(1000), 3));
        assert_eq!(c[BUCKETS - 1], (None, 5));
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
        assert_eq!(l.sum_ns, 10_000_004_500);
        let p = PublishedLatency::default();
        p.publish(&l);
        assert_eq!(p.snapshot(), l);
    }
}
