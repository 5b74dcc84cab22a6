//! What the data plane is started with, and the address-pool arithmetic that
//! turns a packet's destination into a session slot.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use proto::grant::SessionId;
use proto::ip::Ipv4Net;

/// Longest pool prefix accepted is /32; the shortest is this. A /12 pool is
/// 2^20 addresses: a 2 MiB owner table shared by all shards and a 4 MiB slot
/// index per shard.
pub const MIN_POOL_PREFIX: u8 = 12;

/// Smallest and largest TUN MTU: an IPv4 minimum, and what one DTLS record
/// can carry with the type byte (RFC 5246 §6.2.1: 2^14 bytes of plaintext).
const TUN_MTU_RANGE: core::ops::RangeInclusive<u16> = 576..=16_000;

/// io_uring submission-queue sizes accepted (the kernel rounds up to a power of two).
const RING_ENTRIES_RANGE: core::ops::RangeInclusive<u32> = 16..=4096;

/// How to start the data plane.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Number of shards; 0 means one per available core.
    pub shards: usize,
    /// UDP address every shard binds (one `SO_REUSEPORT` group). Port 0 picks
    /// a free port once, and every shard then binds that port.
    pub udp_listen: SocketAddr,
    /// TUN interface name (at most 15 bytes).
    pub tun_name: String,
    /// The gateway's own address on the TUN, with the prefix that routes the
    /// pool into it (e.g. 192.168.99.1/24).
    pub tun_address: Ipv4Net,
    pub tun_mtu: u16,
    /// The client address pool: `SessionId(n)` is the address at offset `n`.
    pub pool: Ipv4Net,
    /// Pin shard `i` to core `i` (modulo the number of cores).
    pub pin_cores: bool,
    /// Submission-queue entries per shard ring (16..=4096).
    pub ring_entries: u32,
    /// Use the kernel's offloads: a vnet-header TUN with checksum, TSO and
    /// USO (super-packets are segmented in the shard, consecutive TCP
    /// segments and UDP datagrams from devices are coalesced into one TUN
    /// write), and UDP GSO
    /// (many records per send). What the kernel refuses is left out at run
    /// time and reported in [`ShardInfo`](crate::ShardInfo). Off: one TUN
    /// read or write and one UDP datagram per packet, the A/B baseline.
    pub offloads: bool,
    /// Which I/O engine the shards use.
    pub io: IoBackend,
    /// Attach the eBPF program that queues each TUN packet on its owner
    /// shard (with more than one shard). Off: the kernel's flow hash picks
    /// the queue and packets for another shard's sessions cross over its
    /// queue (`cross_shard`); for kernels that refuse the program anyway,
    /// and to measure what steering buys.
    pub steering: bool,
    /// Batch forming (io_uring where the kernel has the minimum-wait
    /// timeout, 6.12+): after a loop turn that handled at least
    /// [`LOADED_TURN`](crate::LOADED_TURN) packets, the next wait holds out
    /// up to this long for a batch of completions before it takes what has
    /// come; after a lighter turn it returns on the first completion, so an
    /// idle or lightly loaded shard answers at once. Zero: always the first
    /// completion. At most [`MAX_BATCH_WAIT`].
    pub batch_wait: Duration,
}

/// The longest batch-forming wait accepted.
pub const MAX_BATCH_WAIT: Duration = Duration::from_millis(1);

/// The shards' I/O engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoBackend {
    /// io_uring, or the readiness engine when io_uring cannot be set up
    /// (`kernel.io_uring_disabled`, a seccomp profile); the reason is in
    /// [`ShardInfo::io_fallback`](crate::ShardInfo::io_fallback).
    #[default]
    Auto,
    /// io_uring only: start-up fails without it.
    IoUring,
    /// epoll + `recvmmsg`/`sendmmsg`, one `read`/`write` per TUN packet.
    Readiness,
}

impl DataplaneConfig {
    pub(crate) fn validate(&self) -> io::Result<PoolIndex> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        if self.tun_name.is_empty() || self.tun_name.len() > 15 || self.tun_name.contains(['\0', '/']) {
            return Err(invalid("tun_name must be 1..=15 bytes without NUL or '/'"));
        }
        if !TUN_MTU_RANGE.contains(&self.tun_mtu) {
            return Err(invalid("tun_mtu must be within 576..=16000"));
        }
        if !RING_ENTRIES_RANGE.contains(&self.ring_entries) {
            return Err(invalid("ring_entries must be within 16..=4096"));
        }
        if self.batch_wait > MAX_BATCH_WAIT {
            return Err(invalid("batch_wait must be at most 1 ms"));
        }
        if self.shards > usize::from(u16::MAX) - 1 {
            return Err(invalid("too many shards"));
        }
        PoolIndex::new(self.pool).ok_or_else(|| invalid("pool prefix must be /12 or longer"))
    }
}

/// Address ↔ offset arithmetic over the pool. The offset is the session id
/// and the index into the owner table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolIndex {
    base: u32,
    len: u32,
}

impl PoolIndex {
    pub(crate) fn new(pool: Ipv4Net) -> Option<Self> {
        if pool.prefix < MIN_POOL_PREFIX || pool.prefix > 32 {
            return None;
        }
        Some(Self { base: u32::from(pool.network()), len: 1u32 << (32 - u32::from(pool.prefix)) })
    }

    /// The pool's first address.
    pub(crate) fn base(self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    pub(crate) fn len(self) -> usize {
        self.len as usize
    }

    /// Offset of `addr` in the pool, if it is in the pool.
    #[inline]
    pub(crate) fn offset_of(self, addr: Ipv4Addr) -> Option<u32> {
        let off = u32::from(addr).wrapping_sub(self.base);
        (off < self.len).then_some(off)
    }

    pub(crate) fn address_of(self, session: SessionId) -> Option<Ipv4Addr> {
        (session.0 < self.len).then(|| Ipv4Addr::from(self.base + session.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_offsets() {
        let pool = PoolIndex::new("10.77.0.0/24".parse().expect("net")).expect("pool");
        assert_eq!(pool.len(), 256);
        assert_eq!(pool.offset_of(Ipv4Addr::new(10, 77, 0, 10)), Some(10));
        assert_eq!(pool.offset_of(Ipv4Addr::new(10, 77, 1, 0)), None);
        assert_eq!(pool.offset_of(Ipv4Addr::new(10, 76, 255, 255)), None);
        assert_eq!(pool.address_of(SessionId(255)), Some(Ipv4Addr::new(10, 77, 0, 255)));
        assert_eq!(pool.address_of(SessionId(256)), None);
        assert!(PoolIndex::new("10.0.0.0/8".parse().expect("net")).is_none());
        assert_eq!(PoolIndex::new("10.1.2.3/32".parse().expect("net")).map(PoolIndex::len), Some(1));
    }
}
