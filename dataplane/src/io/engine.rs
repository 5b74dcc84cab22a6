//! Which engine a shard runs, and the dispatch to it: io_uring, or the
//! readiness engine (epoll + `recvmmsg`/`sendmmsg`) where io_uring is
//! unavailable or configured off. Both offer the same surface; a `match`
//! per call dispatches statically (no trait object on the packet path).

use std::io;
use std::ops::Range;
use std::time::Duration;

use super::readiness::ReadinessEngine;
use super::uring::Engine;
use super::{Completion, EngineConfig, RingSetup, SubmitError, TunReadStyle, TxBuf};
use crate::config::IoBackend;
use crate::sys::RawSockAddr;

/// The engine one shard runs, chosen once by [`Io::new`].
pub(crate) enum Io {
    Uring(Engine),
    Readiness(ReadinessEngine),
}

impl core::fmt::Debug for Io {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Io::Uring(e) => e.fmt(f),
            Io::Readiness(_) => f.write_str("ReadinessEngine"),
        }
    }
}

impl Io {
    /// The engine `backend` asks for. `Auto` falls back to readiness when
    /// io_uring cannot be set up, and says why in the second value.
    pub(crate) fn new(cfg: &EngineConfig, backend: IoBackend) -> io::Result<(Io, Option<String>)> {
        match backend {
            IoBackend::IoUring => Ok((Io::Uring(Engine::new(cfg)?), None)),
            IoBackend::Readiness => Ok((Io::Readiness(ReadinessEngine::new(cfg)?), None)),
            IoBackend::Auto => match Engine::new(cfg) {
                Ok(e) => Ok((Io::Uring(e), None)),
                Err(e) => {
                    let why = match e.raw_os_error() {
                        Some(libc::EPERM) => format!("io_uring refused ({e}): kernel.io_uring_disabled or seccomp"),
                        Some(libc::ENOSYS) => format!("io_uring not in this kernel ({e})"),
                        _ => format!("io_uring set-up failed ({e})"),
                    };
                    Ok((Io::Readiness(ReadinessEngine::new(cfg)?), Some(why)))
                }
            },
        }
    }

    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Io::Uring(_) => "io_uring",
            Io::Readiness(e) => e.describe(),
        }
    }

    pub(crate) fn ring_setup(&self) -> Option<RingSetup> {
        match self {
            Io::Uring(e) => Some(e.setup()),
            Io::Readiness(_) => None,
        }
    }

    pub(crate) fn fixed_files(&self) -> bool {
        match self {
            Io::Uring(e) => e.fixed_files(),
            Io::Readiness(_) => false,
        }
    }

    pub(crate) fn fixed_buffers(&self) -> bool {
        match self {
            Io::Uring(e) => e.fixed_buffers(),
            Io::Readiness(_) => false,
        }
    }

    pub(crate) fn tun_style(&self) -> TunReadStyle {
        match self {
            Io::Uring(e) => e.tun_style(),
            Io::Readiness(e) => e.tun_style(),
        }
    }

    /// Waits for completions (see the engines' `wait`); true when the wait
    /// asked the kernel for a batch.
    #[inline]
    pub(crate) fn wait(&mut self, timeout: Duration, out: &mut Vec<Completion>) -> io::Result<bool> {
        match self {
            Io::Uring(e) => e.wait(timeout, out),
            Io::Readiness(e) => e.wait(timeout, out).map(|()| false),
        }
    }

    /// The packets the turn just ended handled (io_uring forms its next
    /// batch from it; epoll has no minimum wait to set).
    #[inline]
    pub(crate) fn observe_turn(&mut self, packets: u32) {
        if let Io::Uring(e) = self {
            e.observe_turn(packets);
        }
    }

    /// Whether the shard's waits form batches.
    pub(crate) fn batching(&self) -> bool {
        match self {
            Io::Uring(e) => e.batching(),
            Io::Readiness(_) => false,
        }
    }

    #[inline]
    pub(crate) fn udp_slot(&mut self, bid: u16) -> Option<&mut [u8]> {
        match self {
            Io::Uring(e) => e.udp_slot(bid),
            Io::Readiness(e) => e.udp_slot(bid),
        }
    }

    #[inline]
    pub(crate) fn tun_slot(&mut self, bid: u16) -> Option<&mut [u8]> {
        match self {
            Io::Uring(e) => e.tun_slot(bid),
            Io::Readiness(e) => e.tun_slot(bid),
        }
    }

    #[inline]
    pub(crate) fn send_to(
        &mut self,
        buf: TxBuf,
        range: Range<usize>,
        peer: &RawSockAddr,
        segment: Option<u16>,
    ) -> Result<(), SubmitError> {
        match self {
            Io::Uring(e) => e.send_to(buf, range, peer, segment),
            Io::Readiness(e) => e.send_to(buf, range, peer, segment),
        }
    }

    #[inline]
    pub(crate) fn write_tun(&mut self, buf: TxBuf, range: Range<usize>) -> Result<(), SubmitError> {
        match self {
            Io::Uring(e) => e.write_tun(buf, range),
            Io::Readiness(e) => e.write_tun(buf, range),
        }
    }
}
