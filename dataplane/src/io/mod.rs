//! The seam between a shard and its I/O: the values both engines speak
//! (what the shard asks to send, what comes back, how each engine was set
//! up) and the engine a shard runs ([`Io`]), chosen once at start-up.
//!
//! The engines sit side by side: [`uring`] (io_uring: provided-buffer
//! rings, multishot receives; all of its `unsafe` is there) and
//! [`readiness`] (epoll + `recvmmsg`/`sendmmsg` through `sys`, safe code),
//! for kernels or sandboxes without io_uring and as the A/B baseline. Both
//! hand out receive slots the same way, take the same [`TxBuf`]s and report
//! the same [`Completion`]s, so the shard's fast path is written once and
//! dispatched by a `match` per call, never through a trait object.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::RawFd;
use std::time::Duration;

mod batch;
mod engine;
mod readiness;
#[allow(unsafe_code)]
mod uring;

pub use batch::LOADED_TURN;
pub(crate) use engine::Io;

/// What an engine is built over.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    /// Submission queue entries (io_uring; the readiness engine has no ring).
    pub(crate) entries: u32,
    pub(crate) udp_fd: RawFd,
    pub(crate) tun_fd: RawFd,
    pub(crate) wake_fd: RawFd,
    /// Slots in the UDP buffer group (a power of two).
    pub(crate) udp_buffers: u16,
    /// Slots in the TUN buffer group (a power of two).
    pub(crate) tun_buffers: u16,
    /// Largest UDP payload received whole.
    pub(crate) udp_payload: usize,
    /// Headroom in front of each TUN read (the kernel fills from here).
    pub(crate) tun_headroom: usize,
    /// Largest TUN read (vnet header included, if any) received whole.
    pub(crate) tun_packet: usize,
    /// Room behind each TUN packet.
    pub(crate) tun_tailroom: usize,
    /// Transmits (sends and TUN writes) in flight or queued at once.
    pub(crate) transmits: u32,
    /// The batch-forming wait ([`DataplaneConfig::batch_wait`](crate::DataplaneConfig::batch_wait)).
    pub(crate) batch_wait: Duration,
}

/// Something the shard must look at.
#[derive(Debug)]
pub(crate) enum Completion {
    /// A datagram in UDP slot `bid`: `payload` is its range in the slot.
    Datagram {
        bid: u16,
        peer: Option<SocketAddr>,
        payload: Range<usize>,
        truncated: bool,
        /// UDP GRO coalesced datagrams of this size (the last possibly
        /// shorter) into `payload`.
        segment: Option<u16>,
    },
    /// A packet in TUN slot `bid`, `len` bytes from the slot's headroom.
    TunPacket { bid: u16, len: usize },
    /// The doorbell rang: control or another shard queued something.
    Wake,
    /// A send of `datagrams` datagrams (more than one: UDP GSO) finished:
    /// the bytes sent, or the kernel's error (an OS error code, which
    /// allocates nothing); an owned buffer comes back for reuse.
    Sent { result: io::Result<usize>, datagrams: u16, owned: Option<Vec<u8>> },
    /// A TUN write finished, as [`Completion::Sent`].
    TunWritten { result: io::Result<usize>, owned: Option<Vec<u8>> },
    /// A receive failed or returned something unusable.
    ReceiveFailed,
}

/// Why a transmit was not submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubmitError {
    /// Every op-table slot is in flight (or, readiness, the transmit queue
    /// is full).
    OpTableFull,
    /// The buffer is not held in this batch, or the range lies outside it.
    BadBuffer,
}

/// Memory an outgoing operation reads from. Slot buffers stay the
/// engine's: naming one pins it until the transmit completes.
#[derive(Debug)]
pub(crate) enum TxBuf {
    /// A UDP receive slot (e.g. a decrypted packet written to the TUN, or a
    /// DPD reply sealed where the request was).
    Udp(u16),
    /// A TUN read slot (a packet sealed in place for a device).
    Tun(u16),
    /// A heap buffer (a CSTP packet from control, a cross-shard frame),
    /// handed back in the transmit's completion.
    Owned(Vec<u8>),
}

/// Datagrams a send of `len` bytes puts on the wire: one, or with UDP GSO
/// one per `segment` bytes, the last possibly shorter. Both engines report
/// it in [`Completion::Sent`].
pub(crate) fn datagrams(len: usize, segment: Option<u16>) -> u16 {
    match segment {
        Some(size) if size > 0 => u16::try_from(len.div_ceil(usize::from(size))).unwrap_or(u16::MAX),
        _ => 1,
    }
}

/// How a shard's io_uring was set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingSetup {
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`.
    SingleIssuerDeferTaskrun,
    /// No setup flags: the kernel refused the above with EINVAL.
    Plain,
}

/// How a shard reads its TUN queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunReadStyle {
    /// One multishot read (`IORING_OP_READ_MULTISHOT`) over a provided-buffer ring.
    Multishot,
    /// This many one-shot reads in flight, each picking a buffer from the
    /// same ring (multishot read unsupported or refused by the device); the
    /// readiness engine reads one packet at a time (`ReadPool(1)`).
    ReadPool(u16),
}
