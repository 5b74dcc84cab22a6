//! What shards and control share: bounded lock-free queues and the
//! eventfd doorbells that wake a sleeping side. Nothing here is locked.
//!
//! A doorbell is an eventfd plus a "rung" flag, so a burst of messages costs
//! one `write(2)`: the sender rings only when it flips the flag from clear to
//! set, and the receiver clears the flag (with a read-modify-write, so it
//! synchronises with the last ringer) *before* draining the queue. A message
//! pushed before a ring that was skipped is then always seen by that drain.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::counters::PublishedCounters;
use crate::latency::PublishedLatency;
use crate::messages::{CrossPacket, FromShard, ToShard};
use crate::sys::EventFd;

/// Control → shard messages queued per shard.
const INBOX_CAPACITY: usize = 4096;
/// Shard → control events queued per shard.
const EVENTS_CAPACITY: usize = 8192;
/// Packets other shards may queue for one shard.
const CROSS_CAPACITY: usize = 4096;

#[derive(Debug)]
pub(crate) struct Doorbell {
    fd: EventFd,
    rung: AtomicBool,
}

impl Doorbell {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self { fd: EventFd::new()?, rung: AtomicBool::new(false) })
    }

    /// Wakes the owner unless a wake-up is already pending.
    pub(crate) fn ring(&self) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            self.fd.notify();
        }
    }

    /// The owner is about to drain: later messages need a new ring.
    pub(crate) fn clear(&self) {
        self.rung.swap(false, Ordering::AcqRel);
    }

    /// The owner's side of a wake-up, for owners that read the eventfd by
    /// syscall (control): consume the fd's count, *then* clear the flag,
    /// then ring again if messages are still queued. The other order lost
    /// wake-ups for good: a ring between the clear and the reset wrote the
    /// fd, the reset swallowed it, and the flag it set stayed set, so nobody
    /// rang again (DTLS handshakes stopped mid-run under a load test). In
    /// this order a ring after the clear always reaches the fd.
    pub(crate) fn acknowledge(&self, queued: impl Fn() -> bool) {
        self.acknowledge_around(queued, || {});
    }

    /// [`acknowledge`](Self::acknowledge) with `between` run between its
    /// two steps: the window a ringing sender can hit (tests drive it).
    fn acknowledge_around(&self, queued: impl Fn() -> bool, between: impl FnOnce()) {
        self.fd.reset();
        between();
        self.clear();
        if queued() {
            self.ring();
        }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// One shard's end of everything that crosses threads.
#[derive(Debug)]
pub(crate) struct ShardShared {
    /// Control → shard.
    pub(crate) inbox: ArrayQueue<ToShard>,
    /// Other shards → this shard.
    pub(crate) cross: ArrayQueue<CrossPacket>,
    /// Rung by control and by other shards; read by this shard's ring.
    pub(crate) doorbell: Doorbell,
    /// This shard → control.
    pub(crate) events: ArrayQueue<FromShard>,
    pub(crate) counters: PublishedCounters,
    pub(crate) latency: PublishedLatency<500>,
    pub(crate) handshake_latency: PublishedLatency<100_000>,
    /// The shard's loop is running: set when it starts, cleared when its
    /// thread ends, by a return or a panic.
    pub(crate) up: AtomicBool,
    /// Nanoseconds from the data plane's start to the shard's last loop turn.
    pub(crate) last_turn_ns: AtomicU64,
}

impl ShardShared {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            inbox: ArrayQueue::new(INBOX_CAPACITY),
            cross: ArrayQueue::new(CROSS_CAPACITY),
            doorbell: Doorbell::new()?,
            events: ArrayQueue::new(EVENTS_CAPACITY),
            counters: PublishedCounters::default(),
            latency: PublishedLatency::default(),
            handshake_latency: PublishedLatency::default(),
            up: AtomicBool::new(false),
            last_turn_ns: AtomicU64::new(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lost wake-up: a sender rings while the owner acknowledges. The
    /// fd must still be readable afterwards, so the owner wakes for the
    /// message that ring was for.
    #[test]
    fn a_ring_during_acknowledge_is_never_lost() {
        let bell = Doorbell::new().expect("eventfd");
        bell.ring();
        let queued = AtomicBool::new(false);
        bell.acknowledge_around(
            || queued.load(Ordering::Acquire),
            || {
                queued.store(true, Ordering::Release);
                bell.ring();
            },
        );
        assert!(bell.fd.reset() > 0, "the owner must be woken for the message queued during acknowledge");
    }

    #[test]
    fn a_burst_costs_one_wake_and_the_next_message_wakes_again() {
        let bell = Doorbell::new().expect("eventfd");
        bell.ring();
        bell.ring();
        bell.ring();
        bell.acknowledge(|| false);
        assert_eq!(bell.fd.reset(), 0, "acknowledge consumed the one write of the burst");
        bell.ring();
        assert_eq!(bell.fd.reset(), 1, "a ring after acknowledge reaches the fd");
    }
}
