//! A readiness-based I/O engine for kernels or sandboxes without io_uring
//! (or with it disabled: `kernel.io_uring_disabled`, seccomp profiles that
//! refuse `io_uring_setup`): level-triggered epoll over the UDP socket, the
//! TUN queue and the doorbell, `recvmmsg`/`sendmmsg` batches, and one
//! `read`/`write` per TUN packet.
//!
//! [`ReadinessEngine`] offers the io_uring engine's surface (the same
//! [`Completion`](crate::io::Completion)s, slot-holding rules and
//! [`TxBuf`](crate::io::TxBuf) ownership), so the shard drives either one
//! the same way. The syscalls live in `sys::mmsg`; this module is safe code.

#![forbid(unsafe_code)]

mod engine;

pub(super) use engine::ReadinessEngine;
