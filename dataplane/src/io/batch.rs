//! Batch forming: how long a shard's wait holds out for more completions.
//!
//! Waiting for one completion per `io_uring_enter` hands each loop turn
//! whatever arrived during the previous one; at partial load that is a
//! segment or two per TUN write and a record or two per GSO send, so the
//! fixed costs of a turn (a syscall, the batch ends, the counter publish)
//! are paid per packet. Asking the kernel for a batch instead (wait for
//! [`BATCH_TARGET`] completions, but no longer than the minimum wait, then
//! take whatever has come) pays them once per batch at the price of at
//! most one minimum wait of latency per turn.
//!
//! The policy adapts from the turn before: a turn that handled fewer than
//! [`LOADED_TURN`] packets means the shard is lightly loaded, and the next
//! wait returns on the first completion, as without batching; a loaded turn
//! makes the next wait form a batch. A burst after silence is answered at
//! once, and a shard under load stays batched while the load lasts.

use std::time::Duration;

/// Packets (datagrams received plus TUN packets or the records sealed from
/// them) in a loop turn from which the shard counts as loaded and its next
/// wait forms a batch.
pub const LOADED_TURN: u32 = 8;

/// Completions a batch-forming wait asks the kernel for before its minimum
/// wait runs out. (A GRO receive or a TSO read is one completion carrying
/// many packets, so this is not a packet count.)
pub(crate) const BATCH_TARGET: u32 = 16;

/// What the next wait asks of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitPlan {
    /// Completions to wait for (`wait_nr`).
    pub(crate) want: u32,
    /// How long the kernel waits for `want` completions before it returns
    /// with at least one (`min_wait_usec`); 0: return on the first.
    pub(crate) min_wait_us: u32,
}

/// The adaptive policy (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchWait {
    min_wait_us: u32,
    loaded: bool,
}

impl BatchWait {
    /// A policy that forms batches of up to `min_wait`, or never when
    /// `min_wait` is zero or the kernel lacks the minimum-wait timeout.
    pub(crate) fn new(min_wait: Duration, kernel_supports: bool) -> Self {
        let us = if kernel_supports { u32::try_from(min_wait.as_micros()).unwrap_or(u32::MAX) } else { 0 };
        Self { min_wait_us: us, loaded: false }
    }

    /// Whether this policy ever forms a batch.
    pub(crate) fn enabled(&self) -> bool {
        self.min_wait_us > 0
    }

    /// The plan for a wait of at most `timeout`: a batch only when the last
    /// turn was loaded and the wait may block at all.
    pub(crate) fn plan(&self, timeout: Duration) -> WaitPlan {
        if !self.loaded || self.min_wait_us == 0 || timeout.is_zero() {
            return WaitPlan { want: 1, min_wait_us: 0 };
        }
        let cap = u32::try_from(timeout.as_micros()).unwrap_or(u32::MAX).max(1);
        WaitPlan { want: BATCH_TARGET, min_wait_us: self.min_wait_us.min(cap) }
    }

    /// The packets the turn just ended handled.
    pub(crate) fn observe(&mut self, packets: u32) {
        self.loaded = packets >= LOADED_TURN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_light_turn_returns_on_the_first_completion() {
        let mut b = BatchWait::new(Duration::from_micros(50), true);
        assert_eq!(b.plan(SECOND), WaitPlan { want: 1, min_wait_us: 0 }, "idle at start");
        b.observe(LOADED_TURN - 1);
        assert_eq!(b.plan(SECOND), WaitPlan { want: 1, min_wait_us: 0 });
    }

    #[test]
    fn a_loaded_turn_forms_a_batch_until_the_load_goes() {
        let mut b = BatchWait::new(Duration::from_micros(50), true);
        b.observe(LOADED_TURN);
        assert_eq!(b.plan(SECOND), WaitPlan { want: BATCH_TARGET, min_wait_us: 50 });
        b.observe(200);
        assert_eq!(b.plan(SECOND).want, BATCH_TARGET);
        b.observe(1);
        assert_eq!(b.plan(SECOND), WaitPlan { want: 1, min_wait_us: 0 }, "one light turn ends it");
    }

    #[test]
    fn the_minimum_wait_never_outlasts_the_timeout_and_zero_never_waits() {
        let mut b = BatchWait::new(Duration::from_micros(50), true);
        b.observe(100);
        assert_eq!(b.plan(Duration::from_micros(20)).min_wait_us, 20);
        assert_eq!(b.plan(Duration::from_nanos(300)).min_wait_us, 1, "rounded to the kernel's unit, not to 0");
        assert_eq!(b.plan(Duration::ZERO), WaitPlan { want: 1, min_wait_us: 0 }, "a poll stays a poll");
    }

    #[test]
    fn off_when_configured_off_or_unsupported() {
        for b in [BatchWait::new(Duration::ZERO, true), BatchWait::new(Duration::from_micros(50), false)] {
            let mut b = b;
            assert!(!b.enabled());
            b.observe(1000);
            assert_eq!(b.plan(SECOND), WaitPlan { want: 1, min_wait_us: 0 });
        }
    }
}
