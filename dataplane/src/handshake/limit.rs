//! The per-source rate limit on handshake datagrams: a token bucket per
//! source IP address, checked before a datagram is parsed, so that one
//! sender flooding the DTLS port costs a shard a table lookup per datagram
//! and no more (no ClientHello parse, no cookie HMAC, no HelloVerifyRequest).
//!
//! The table is bounded and allocated once: `SLOTS` buckets, each source
//! hashed (with a per-table random key, so a sender cannot aim at another's
//! slot) to two candidate slots; a source in neither takes the one seen
//! least recently, whose owner, if it comes back, starts again with a full
//! bucket. Eviction thus only ever gives a source more room, never less:
//! a legitimate device is never refused because of another's traffic, and a
//! flood from many addresses (spoofed ones included) is not what this limit
//! is for — the cookie exchange keeps it from creating state, and
//! `handshakes_overloaded` bounds what it can.
//!
//! All sources behind one address share a bucket: a relay's devices, or a
//! NAT's. The default rate is sized for that (a relay bringing up a
//! thousand devices a second sends some 3,000 handshake datagrams a second
//! over the shards). Allocation-free and panic-free per datagram.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::time::Instant;

/// Handshake datagrams a second one source address may send to one shard,
/// sustained.
pub const SOURCE_RATE: u32 = 5_000;
/// Handshake datagrams one source may send to one shard at once, after a
/// quiet spell.
pub const SOURCE_BURST: u32 = 10_000;
/// Sources tracked at once per shard.
pub const SOURCE_SLOTS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    source: Option<IpAddr>,
    /// Tokens, in millionths of a datagram (so refills of a few
    /// microseconds are not lost to rounding).
    micro_tokens: u64,
    refilled: Instant,
}

/// A token bucket per source address, in a bounded table that evicts.
#[derive(Debug)]
pub struct SourceLimit {
    slots: Box<[Bucket]>,
    hasher: RandomState,
    /// Refill per second, in micro-tokens per second = tokens per microsecond.
    rate: u64,
    burst_micro: u64,
}

const MICRO: u64 = 1_000_000;

impl SourceLimit {
    /// `rate` datagrams a second sustained, `burst` at once, `slots`
    /// sources tracked (at least 2).
    pub fn new(now: Instant, rate: u32, burst: u32, slots: usize) -> Self {
        let empty = Bucket { source: None, micro_tokens: 0, refilled: now };
        Self {
            slots: vec![empty; slots.max(2)].into_boxed_slice(),
            hasher: RandomState::new(),
            rate: u64::from(rate),
            burst_micro: u64::from(burst.max(1)) * MICRO,
        }
    }

    /// Takes one token from `source`'s bucket: `false` when it has none
    /// (the datagram is to be dropped).
    pub fn allow(&mut self, now: Instant, source: IpAddr) -> bool {
        let len = self.slots.len();
        let hash = self.hasher.hash_one(source);
        // Two candidate slots from the two halves of the hash.
        let first = (hash as usize) % len;
        let second = ((hash >> 32) as usize) % len;
        let slot = match (self.slots.get(first), self.slots.get(second)) {
            (Some(a), _) if a.source == Some(source) => first,
            (_, Some(b)) if b.source == Some(source) => second,
            (Some(a), Some(b)) => {
                // A newcomer: the slot refilled least recently (an empty
                // one never was) makes room, with a full bucket.
                let victim =
                    if a.source.is_none() || (b.source.is_some() && a.refilled <= b.refilled) { first } else { second };
                if let Some(v) = self.slots.get_mut(victim) {
                    *v = Bucket { source: Some(source), micro_tokens: self.burst_micro, refilled: now };
                }
                victim
            }
            _ => return true,
        };
        let Some(b) = self.slots.get_mut(slot) else { return true };
        let elapsed_us = u64::try_from(now.saturating_duration_since(b.refilled).as_micros()).unwrap_or(u64::MAX);
        b.micro_tokens = b.micro_tokens.saturating_add(elapsed_us.saturating_mul(self.rate)).min(self.burst_micro);
        b.refilled = now;
        if b.micro_tokens >= MICRO {
            b.micro_tokens -= MICRO;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let now = Instant::now();
        let mut l = SourceLimit::new(now, 100, 10, 64);
        assert_eq!((0..25).filter(|_| l.allow(now, ip(1))).count(), 10, "the burst");
        // 100 a second: one every 10 ms.
        assert!(!l.allow(now + Duration::from_millis(5), ip(1)));
        assert!(l.allow(now + Duration::from_millis(10), ip(1)));
        assert!(!l.allow(now + Duration::from_millis(10), ip(1)));
        // A long quiet spell refills the burst, no more.
        let later = now + Duration::from_secs(60);
        assert_eq!((0..25).filter(|_| l.allow(later, ip(1))).count(), 10);
    }

    #[test]
    fn one_source_flooding_does_not_limit_another() {
        let now = Instant::now();
        let mut l = SourceLimit::new(now, 100, 10, 64);
        assert_eq!((0..1000).filter(|_| l.allow(now, ip(1))).count(), 10);
        assert_eq!((0..10).filter(|_| l.allow(now, ip(2))).count(), 10);
    }

    #[test]
    fn the_table_is_bounded_and_an_evicted_source_starts_full() {
        let now = Instant::now();
        let mut l = SourceLimit::new(now, 1, 3, 4);
        assert_eq!((0..5).filter(|_| l.allow(now, ip(1))).count(), 3);
        // Many newcomers: each gets its burst; the table stays 4 slots.
        for last in 2..200 {
            assert!(l.allow(now + Duration::from_millis(u64::from(last)), ip(last)), "{last}");
        }
        assert_eq!(l.slots.len(), 4);
        // ip(1) was evicted long since: it starts again with a full bucket.
        let later = now + Duration::from_secs(1);
        assert_eq!((0..5).filter(|_| l.allow(later, ip(1))).count(), 3);
    }

    #[test]
    fn ipv6_sources_are_limited_alike() {
        let now = Instant::now();
        let mut l = SourceLimit::new(now, 1, 2, 8);
        let v6: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!((0..5).filter(|_| l.allow(now, v6)).count(), 2);
    }
}
