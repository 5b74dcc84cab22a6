//! The shard's I/O engine: io_uring, or the readiness engine (epoll +
//! `recvmmsg`/`sendmmsg`) where io_uring is unavailable or configured off.
//! Both offer the same surface; a `match` per call dispatches statically.

use std::io;
use std::ops::Range;
use std::time::Duration;

use crate::config::IoBackend;
use crate::handle::{RingSetup, TunReadStyle};
use crate::readiness::ReadinessEngine;
use crate::sys::RawSockAddr;
use crate::uring::{Completion, Engine, EngineConfig, SubmitError, TxBuf};

pub(super) enum Io {
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
    pub(super) fn new(cfg: &EngineConfig, backend: IoBackend) -> io::Result<(Io, Option<String>)> {
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

    pub(super) fn describe(&self) -> &'static str {
        match self {
            Io::Uring(_) => "io_uring",
            Io::Readiness(e) => e.describe(),
        }
    }

    pub(super) fn ring_setup(&self) -> Option<RingSetup> {
        match self {
            Io::Uring(e) => Some(e.setup()),
            Io::Readiness(_) => None,
        }
    }

    pub(super) fn fixed_files(&self) -> bool {
        match self {
            Io::Uring(e) => e.fixed_files(),
            Io::Readiness(_) => false,
        }
    }

    pub(super) fn fixed_buffers(&self) -> bool {
        match self {
            Io::Uring(e) => e.fixed_buffers(),
            Io::Readiness(_) => false,
        }
    }

    pub(super) fn tun_style(&self) -> TunReadStyle {
        match self {
            Io::Uring(e) => e.tun_style(),
            Io::Readiness(e) => e.tun_style(),
        }
    }

    #[inline]
    pub(super) fn wait(&mut self, timeout: Duration, out: &mut Vec<Completion>) -> io::Result<()> {
        match self {
            Io::Uring(e) => e.wait(timeout, out),
            Io::Readiness(e) => e.wait(timeout, out),
        }
    }

    #[inline]
    pub(super) fn udp_slot(&mut self, bid: u16) -> Option<&mut [u8]> {
        match self {
            Io::Uring(e) => e.udp_slot(bid),
            Io::Readiness(e) => e.udp_slot(bid),
        }
    }

    #[inline]
    pub(super) fn tun_slot(&mut self, bid: u16) -> Option<&mut [u8]> {
        match self {
            Io::Uring(e) => e.tun_slot(bid),
            Io::Readiness(e) => e.tun_slot(bid),
        }
    }

    #[inline]
    pub(super) fn send_to(
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
    pub(super) fn write_tun(&mut self, buf: TxBuf, range: Range<usize>) -> Result<(), SubmitError> {
        match self {
            Io::Uring(e) => e.write_tun(buf, range),
            Io::Readiness(e) => e.write_tun(buf, range),
        }
    }
}
