//! corridor's data plane: sharded packet engine between DTLS-over-UDP
//! devices and the organisation's network (a multi-queue TUN).
//!
//! # Shape
//!
//! [`Dataplane::start`] creates one TUN queue, one UDP socket (all in one
//! `SO_REUSEPORT` group) and one thread per shard. Each shard owns an I/O
//! engine — io_uring, or where that cannot be set up (or
//! [`IoBackend::Readiness`] is asked for) epoll with `recvmmsg`/`sendmmsg` —
//! and the sessions installed on it; it never takes a lock and never waits
//! on control. A session's DTLS handshake runs on the shard that its
//! datagrams reach ([`handshake`]), against the authorisation control sent
//! every shard at CONNECT; the shard installs the session itself before the
//! handshake's last flight leaves. Control talks to a shard through a bounded lock-free queue
//! ([`Dataplane::send`]) and hears back through another
//! ([`Dataplane::drain_events`]); both sides sleep on an eventfd.
//!
//! # Fast path
//!
//! Device → network: multishot `recvmsg` into a provided-buffer ring (with
//! UDP GRO, one receive may hold many datagrams of a peer) → session by
//! peer address → DTLS record opened in place → OpenConnect type byte →
//! policy (inner source is the assigned address, destination allowed) →
//! TUN write straight from the receive buffer, or, with offloads,
//! consecutive TCP segments (and, with USO, same-sized UDP datagrams) of a
//! flow coalesced into one TUN GSO write.
//!
//! Network → device: TUN read (with offloads a `virtio_net_hdr` and a
//! TSO/USO super-packet of up to 64 KiB) → session by pool offset (an array
//! index) → each MTU-sized packet, or segment of the super-packet, sealed
//! into the peer's batch buffer → at the end of the loop turn one UDP GSO
//! `sendmsg` per peer. Without offloads each packet is sealed in place in
//! its read buffer and sent alone. An eBPF steering program keyed on the
//! pool offset makes the kernel queue each packet on the owner shard's TUN
//! queue; a packet that still lands elsewhere crosses a shard-to-shard
//! queue (counted as `cross_shard`).
//!
//! Offloads the kernel refuses are left out at start-up ([`ShardInfo`]) or
//! at run time (`offload_refused`); steady-state packets allocate nothing
//! (`tests/allocations.rs` counts).
//!
//! A loop turn waits for one completion. With `batch_wait` set (off by
//! default: PERF.md has why), after a loaded turn (8 packets or more)
//! io_uring's next wait forms a batch instead: up to 16 completions or
//! `batch_wait` (the kernel's minimum-wait timeout, 6.12+), whichever comes
//! first, while an idle shard still answers at once (`io::batch`).
//!
//! Each shard samples its loop-turn latency (one clock read per turn) into
//! a fixed histogram published with its counters ([`latency`]).
//!
//! The device → network per-record step is public as [`fastpath`], so that
//! benchmarks and tests run the shard's own code on memory, without a ring.
//!
//! # Unsafe
//!
//! Only `sys` (sockets, ioctls, eventfd, bpf, epoll and mmsg syscalls) and
//! `io::uring` (io_uring, shared buffers) may use it; every block says why
//! it is sound. The rest of `io` (the seam both engines share, and the
//! readiness engine) is safe code.

#![deny(unsafe_code)]

mod config;
mod counters;
mod handle;
pub mod handshake;
mod info;
mod io;
pub mod latency;
mod messages;
mod shard;
mod shared;
#[allow(unsafe_code)]
mod sys;

pub use config::{DataplaneConfig, IoBackend, MAX_BATCH_WAIT, MIN_POOL_PREFIX};
pub use counters::ShardCounters;
pub use handle::{Dataplane, ShardHealth, FAULT_ENV};
pub use info::{DataplaneInfo, ShardInfo};
pub use io::{RingSetup, TunReadStyle, LOADED_TURN};
pub use latency::{HandshakeLatency, TurnLatency};
pub use messages::{FromShard, ShardId, Tally, ToShard, TUN_WRITE_HEADROOM};
pub use shard::fastpath;
pub use sys::TunOffloads;

/// The TUN device as a device-side client needs it (`corridor connect`):
/// one queue, configured with an address, prefix and MTU. The shards use
/// the same calls.
pub mod tun {
    pub use crate::sys::tun::{configure_interface, open_tun_exclusive, open_tun_queue};
}
