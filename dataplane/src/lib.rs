//! corridor's data plane: sharded io_uring packet engine between DTLS-over-UDP
//! devices and the organisation's network (a multi-queue TUN).
//!
//! # Shape
//!
//! [`Dataplane::start`] creates one TUN queue, one UDP socket (all in one
//! `SO_REUSEPORT` group) and one thread per shard. Each shard owns an
//! io_uring and the sessions granted to it; it never takes a lock and never
//! waits on control. Control talks to a shard through a bounded lock-free
//! queue ([`Dataplane::send`]) and hears back through another
//! ([`Dataplane::drain_events`]); both sides sleep on an eventfd.
//!
//! # Fast path
//!
//! Device → network: multishot `recvmsg` into a provided-buffer ring →
//! session by peer address → DTLS record opened in place → OpenConnect type
//! byte → policy (inner source is the assigned address, destination allowed)
//! → TUN write straight from the receive buffer.
//!
//! Network → device: TUN read into a provided buffer at an offset that leaves
//! room for the type byte, the record header and the explicit nonce in front,
//! and the tag behind → session by pool offset (an array index) → seal in
//! place → UDP send from the same buffer. A packet for a session another
//! shard owns crosses a shard-to-shard queue (counted as `cross_shard`).
//!
//! The device → network per-record step is public as [`fastpath`], so that
//! benchmarks and tests run the shard's own code on memory, without a ring.
//!
//! # Unsafe
//!
//! Only `sys` (sockets, ioctls, eventfd) and `uring` (io_uring, shared
//! buffers) may use it; every block says why it is sound.

#![deny(unsafe_code)]

mod config;
mod counters;
mod handle;
mod messages;
mod readiness;
mod shard;
mod shared;
#[allow(unsafe_code)]
mod sys;
#[allow(unsafe_code)]
mod uring;

pub use config::{DataplaneConfig, IoBackend, MIN_POOL_PREFIX};
pub use counters::ShardCounters;
pub use handle::{Dataplane, DataplaneInfo, RingSetup, ShardInfo, TunReadStyle};
pub use messages::{FromShard, ShardId, ToShard};
pub use shard::fastpath;
pub use sys::TunOffloads;
