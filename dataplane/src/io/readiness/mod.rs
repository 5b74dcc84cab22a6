//! A readiness-based I/O engine for kernels or sandboxes without io_uring
//! (or with it disabled: `kernel.io_uring_disabled`, seccomp profiles that
//! refuse `io_uring_setup`): level-triggered epoll over the UDP socket, the
//! TUN queue and the doorbell, `recvmmsg`/`sendmmsg` batches, and one
//! `read`/`write` per TUN packet. Also the A/B baseline that shows what
//! io_uring buys.
//!
//! [`ReadinessEngine`] offers the io_uring engine's surface (the same
//! [`Completion`]s, slot-holding rules and [`TxBuf`](crate::io::TxBuf)
//! ownership), so the shard drives either one the same way. The syscalls
//! live in `sys::mmsg`; this module is safe code. Its rooms: the slot
//! arrays (`slots`), the transmit queue (`transmit`), the receives
//! (`receive`), the engine's tests on real sockets and TUN queues (`tests`);
//! here, the engine that owns them and its `wait`, which flushes, releases,
//! polls and drains.
//!
//! # Slots
//!
//! Each direction has one allocation of `count × slot_len` bytes, laid out
//! as the io_uring engine's provided buffers are: a UDP slot holds
//! [`UDP_PAYLOAD_AT`] bytes of headroom and then the datagram; a TUN slot is
//! `tun_headroom + tun_packet + tun_tailroom`, the read landing at
//! `tun_headroom`. A slot is
//!
//! * **free** — on its pool's free list; a receive may fill it;
//! * **held** — a completion of the current batch named it: the shard may
//!   read and write it until the next [`ReadinessEngine::wait`];
//! * **pinned** — queued transmits read from it. It is not refilled until
//!   the batch that received it has ended *and* its last transmit is done.
//!
//! Held and pinned overlap (a reply attached to the slot it was received
//! in); a slot whose batch ended but whose transmits are still queued is
//! pinned only, and [`ReadinessEngine::udp_slot`] no longer hands it out.
//!
//! # Transmits
//!
//! `send_to` and `write_tun` only queue: nothing reaches the kernel until
//! the next `wait`, so the shard may keep writing a held slot after
//! attaching a transmit to it, exactly as with io_uring (where the kernel
//! starts nothing before `io_uring_enter`). The queue holds at most as many
//! transmits as the io_uring engine's op table
//! ([`SubmitError::OpTableFull`](crate::io::SubmitError::OpTableFull) beyond),
//! and is allocated up front, so steady state allocates nothing.
//!
//! When the socket (or TUN) buffer is full (`EAGAIN`), transmits **stay
//! queued**, in order, and the fd is polled for `EPOLLOUT`: a burst the
//! kernel cannot take right now is delayed, not dropped, and back-pressure
//! reaches the shard as `OpTableFull` once the queue is full. Every other
//! error fails that one transmit (its completion carries the `io::Error`,
//! e.g. `ENOBUFS` from a full qdisc, which polling would not clear) and the
//! rest carry on.

#![forbid(unsafe_code)]

mod receive;
mod slots;
#[cfg(test)]
mod tests;
mod transmit;

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::io::{Completion, EngineConfig, TunReadStyle};
use crate::sys::{read_eventfd, Epoll, Interest, Readiness, RecvBatch, SendBatch, MMSG_BATCH};
use slots::SlotPool;
use transmit::{TunTransmit, UdpTransmit};

const UDP_TOKEN: u64 = 0;
const TUN_TOKEN: u64 = 1;
const WAKE_TOKEN: u64 = 2;

/// Where a datagram lands in its UDP slot. The source address and control
/// data go to the receive batch's own arrays, so this is pure headroom; it
/// keeps the payload cache-line aligned. (The shard never writes in front
/// of a datagram's payload: a vnet header goes where the consumed record
/// header was.)
pub(crate) const UDP_PAYLOAD_AT: usize = 64;

/// Datagrams taken from the UDP socket in one `wait` at most, so that a
/// flood on the socket cannot starve TUN reads or the doorbell; the socket
/// stays readable (level-triggered) and the rest come next turn.
const UDP_TURN_LIMIT: usize = 4 * MMSG_BATCH;

/// TUN packets read in one `wait` at most (one `read` each), as above.
const TUN_TURN_LIMIT: usize = 256;

fn round_up_64(n: usize) -> usize {
    n.div_ceil(64) * 64
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn is_interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// The engine over one UDP socket, one TUN queue and one doorbell eventfd
/// (all non-blocking, all owned by the shard, which outlives the engine).
pub(crate) struct ReadinessEngine {
    epoll: Epoll,
    udp_fd: RawFd,
    tun_fd: RawFd,
    wake_fd: RawFd,
    udp: SlotPool,
    tun: SlotPool,
    rx: RecvBatch,
    tx: SendBatch,
    /// The slots offered to the `recvmmsg` in progress.
    rx_bids: Vec<u16>,
    udp_queue: VecDeque<UdpTransmit>,
    tun_queue: VecDeque<TunTransmit>,
    queue_capacity: usize,
    /// The socket refused the queue's head with `EAGAIN`: wait for `EPOLLOUT`.
    udp_blocked: bool,
    /// As `udp_blocked`, for the TUN queue.
    tun_blocked: bool,
    udp_interest: Interest,
    tun_interest: Interest,
}

impl core::fmt::Debug for ReadinessEngine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReadinessEngine")
            .field("udp_free", &self.udp.free_count())
            .field("tun_free", &self.tun.free_count())
            .field("udp_queued", &self.udp_queue.len())
            .field("tun_queued", &self.tun_queue.len())
            .finish_non_exhaustive()
    }
}

impl ReadinessEngine {
    /// Allocates both slot arrays, the transmit queue and the message
    /// arrays, and watches the three fds. `cfg.entries` (a ring size) has
    /// no meaning here; slot counts need not be powers of two.
    pub(crate) fn new(cfg: &EngineConfig) -> io::Result<Self> {
        let udp_len = round_up_64(UDP_PAYLOAD_AT + cfg.udp_payload);
        // Like the io_uring engine, a receive may use the whole rest of the slot.
        let udp = SlotPool::new(cfg.udp_buffers, udp_len, UDP_PAYLOAD_AT..udp_len)?;
        let tun_len = round_up_64(cfg.tun_headroom + cfg.tun_packet + cfg.tun_tailroom);
        let tun = SlotPool::new(cfg.tun_buffers, tun_len, cfg.tun_headroom..cfg.tun_headroom + cfg.tun_packet)?;

        let epoll = Epoll::new(3)?;
        let readable = Interest { readable: true, writable: false };
        epoll.add(cfg.udp_fd, UDP_TOKEN, readable)?;
        epoll.add(cfg.tun_fd, TUN_TOKEN, readable)?;
        epoll.add(cfg.wake_fd, WAKE_TOKEN, readable)?;

        // The io_uring engine's op-table size: every slot may carry a few
        // transmits (several records per datagram), plus owned buffers.
        let queue_capacity = cfg.transmits as usize + 256;
        Ok(Self {
            epoll,
            udp_fd: cfg.udp_fd,
            tun_fd: cfg.tun_fd,
            wake_fd: cfg.wake_fd,
            udp,
            tun,
            rx: RecvBatch::default(),
            tx: SendBatch::default(),
            rx_bids: Vec::with_capacity(MMSG_BATCH),
            udp_queue: VecDeque::with_capacity(queue_capacity),
            tun_queue: VecDeque::with_capacity(queue_capacity),
            queue_capacity,
            udp_blocked: false,
            tun_blocked: false,
            udp_interest: readable,
            tun_interest: readable,
        })
    }

    /// For the start-up report, where the io_uring engine gives its ring set-up.
    pub(crate) fn describe(&self) -> &'static str {
        "epoll + recvmmsg/sendmmsg"
    }

    /// One `read` per TUN packet, one packet at a time.
    pub(crate) fn tun_style(&self) -> TunReadStyle {
        TunReadStyle::ReadPool(1)
    }

    /// Ends the current batch and runs one turn:
    ///
    /// 1. flushes queued transmits (UDP in `sendmmsg` batches, TUN one
    ///    `write` each), appending their completions;
    /// 2. releases the previous batch's slots that no queued transmit reads;
    /// 3. polls the UDP socket, TUN queue and doorbell, for up to `timeout`
    ///    if step 1 completed nothing (else without sleeping);
    /// 4. drains what is ready, each fd up to its per-turn bound: datagrams
    ///    into free UDP slots, TUN packets into free TUN slots, the doorbell
    ///    (read, so reset, here) as [`Completion::Wake`]; transmits blocked
    ///    on a full buffer are retried when their fd turned writable.
    pub(crate) fn wait(&mut self, timeout: Duration, out: &mut Vec<Completion>) -> io::Result<()> {
        let before = out.len();
        self.flush_udp(out);
        self.flush_tun(out);
        self.udp.end_batch();
        self.tun.end_batch();
        self.update_interest()?;

        let timeout = if out.len() > before { Duration::ZERO } else { timeout };
        self.epoll.wait(timeout)?;
        let (mut udp, mut tun, mut wake) = (Readiness::default(), Readiness::default(), false);
        for r in self.epoll.ready() {
            match r.token {
                UDP_TOKEN => udp = r,
                TUN_TOKEN => tun = r,
                WAKE_TOKEN => wake = r.readable,
                _ => {}
            }
        }

        if wake {
            match read_eventfd(self.wake_fd) {
                Ok(_) => out.push(Completion::Wake),
                Err(e) if is_would_block(&e) || is_interrupted(&e) => {}
                Err(_) => out.push(Completion::ReceiveFailed),
            }
        }
        if udp.writable && self.udp_blocked {
            self.flush_udp(out);
        }
        if tun.writable && self.tun_blocked {
            self.flush_tun(out);
        }
        if udp.readable {
            self.receive_udp(out);
        }
        if tun.readable {
            self.read_tun(out);
        }
        Ok(())
    }

    /// Watches for input only while there are slots to put it in (so a
    /// readable fd with no free slot does not spin the loop), and for
    /// output only while a transmit waits for buffer space.
    fn update_interest(&mut self) -> io::Result<()> {
        let udp = Interest { readable: self.udp.free_count() > 0, writable: self.udp_blocked };
        if udp != self.udp_interest {
            self.epoll.modify(self.udp_fd, UDP_TOKEN, udp)?;
            self.udp_interest = udp;
        }
        let tun = Interest { readable: self.tun.free_count() > 0, writable: self.tun_blocked };
        if tun != self.tun_interest {
            self.epoll.modify(self.tun_fd, TUN_TOKEN, tun)?;
            self.tun_interest = tun;
        }
        Ok(())
    }

    /// A UDP slot handed out in this batch, whole (payload at the
    /// completion's `payload` range).
    pub(crate) fn udp_slot(&mut self, bid: u16) -> Option<&mut [u8]> {
        self.udp.held_mut(bid)
    }

    /// A TUN slot handed out in this batch, whole (packet at `tun_headroom`).
    pub(crate) fn tun_slot(&mut self, bid: u16) -> Option<&mut [u8]> {
        self.tun.held_mut(bid)
    }
}
