//! What the data plane started with, for control to log and report: each
//! shard's engine and offloads, and the whole's TUN, steering and address.
//! Filled in by the shards (their part) and the handle (the rest).

use std::net::SocketAddr;

use crate::io::{RingSetup, TunReadStyle};
use crate::messages::ShardId;
use crate::sys::TunOffloads;

/// What one shard started with.
#[derive(Debug, Clone)]
pub struct ShardInfo {
    pub shard: ShardId,
    /// Core the thread is pinned to, if pinning was asked for and worked.
    pub core: Option<usize>,
    /// The I/O engine: "io_uring", or the readiness engine's description.
    pub io: &'static str,
    /// Why the readiness engine runs although io_uring was asked for
    /// (`IoBackend::Auto`).
    pub io_fallback: Option<String>,
    /// io_uring set-up flags (`None` for the readiness engine).
    pub ring_setup: Option<RingSetup>,
    /// io_uring operations name the UDP socket, TUN queue and doorbell by
    /// the ring's registered file table (false: raw descriptors, or the
    /// readiness engine).
    pub fixed_files: bool,
    /// TUN writes from receive slots are `WRITE_FIXED` from the ring's
    /// registered buffers.
    pub fixed_buffers: bool,
    /// As chosen at start-up; a device refusing multishot reads switches to
    /// a read pool on first use.
    pub tun_reads: TunReadStyle,
    /// Provided buffers for UDP receives.
    pub buffers: u16,
    /// Provided buffers for TUN reads (64 KiB each with TSO).
    pub tun_buffers: u16,
    /// Offloads the TUN queue runs with; `None`: no vnet header (offloads
    /// off in the configuration, or `IFF_VNET_HDR` refused).
    pub tun_offloads: Option<TunOffloads>,
    /// The UDP socket coalesces received datagrams (`UDP_GRO`).
    pub udp_gro: bool,
    /// A loaded shard's waits form batches (`batch_wait` configured and the
    /// kernel has io_uring's minimum-wait timeout).
    pub batching: bool,
}

/// What started, for control to log (the data plane logs nothing itself).
#[derive(Debug, Clone)]
pub struct DataplaneInfo {
    pub tun_name: String,
    /// How TUN reads reach the shard owning their session: `Ok(())` with
    /// the steering eBPF program keyed on the pool, or why the kernel's
    /// flow hash is used instead (and packets cross shards).
    pub steering: Result<(), String>,
    /// The address every shard's socket is bound to.
    pub udp_local: SocketAddr,
    pub shards: Vec<ShardInfo>,
}
