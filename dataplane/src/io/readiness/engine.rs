//! One shard's readiness engine: slot arrays allocated once, a bounded
//! transmit queue, and a `wait` that flushes, releases, polls and drains.
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
//! transmits as the io_uring engine's op table ([`SubmitError::OpTableFull`]
//! beyond), and is allocated up front, so steady state allocates nothing.
//!
//! When the socket (or TUN) buffer is full (`EAGAIN`), transmits **stay
//! queued**, in order, and the fd is polled for `EPOLLOUT`: a burst the
//! kernel cannot take right now is delayed, not dropped, and back-pressure
//! reaches the shard as `OpTableFull` once the queue is full. Every other
//! error fails that one transmit (its completion carries the `io::Error`, e.g.
//! `ENOBUFS` from a full qdisc, which polling would not clear) and the rest
//! carry on.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::io::{Completion, EngineConfig, SubmitError, TunReadStyle, TxBuf};
use crate::sys::{
    read_eventfd, read_fd, write_fd, Epoll, Interest, Outgoing, RawSockAddr, Readiness, RecvBatch, SendBatch,
    MMSG_BATCH,
};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    Busy {
        /// Handed out by a completion of the current batch.
        held: bool,
        /// Queued transmits reading from the slot.
        pins: u32,
    },
}

/// One direction's slots: one allocation, a free list and per-slot state.
#[derive(Debug)]
struct SlotPool {
    memory: Box<[u8]>,
    slot_len: usize,
    /// Where a receive lands in a slot.
    fill: Range<usize>,
    states: Box<[SlotState]>,
    /// Free slots, used last-in first-out so recently touched (cache-warm)
    /// slots are refilled first.
    free: Vec<u16>,
    /// Slots handed out in the current batch.
    handed_out: Vec<u16>,
}

impl SlotPool {
    fn new(count: u16, slot_len: usize, fill: Range<usize>) -> io::Result<Self> {
        if count == 0 || fill.start > fill.end || fill.end > slot_len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "slot count or layout"));
        }
        let bytes = usize::from(count)
            .checked_mul(slot_len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "slot memory overflows"))?;
        Ok(Self {
            memory: vec![0u8; bytes].into_boxed_slice(),
            slot_len,
            fill,
            states: vec![SlotState::Free; usize::from(count)].into_boxed_slice(),
            free: (0..count).rev().collect(),
            handed_out: Vec::with_capacity(usize::from(count)),
        })
    }

    fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Byte range of `range` within slot `bid`, in `memory`.
    fn span(&self, bid: u16, range: &Range<usize>) -> Option<Range<usize>> {
        if range.start > range.end || range.end > self.slot_len || usize::from(bid) >= self.states.len() {
            return None;
        }
        let base = usize::from(bid) * self.slot_len;
        Some(base + range.start..base + range.end)
    }

    /// Takes a free slot to receive into. It stays `Free` in `states` until
    /// [`hand_out`](Self::hand_out), or goes back with [`give_back`](Self::give_back).
    fn take_free(&mut self) -> Option<u16> {
        self.free.pop()
    }

    fn give_back(&mut self, bid: u16) {
        self.free.push(bid);
    }

    /// A receive filled `bid`: it is the shard's for this batch.
    fn hand_out(&mut self, bid: u16) {
        if let Some(s) = self.states.get_mut(usize::from(bid)) {
            *s = SlotState::Busy { held: true, pins: 0 };
            self.handed_out.push(bid);
        }
    }

    /// The fill area of a free slot taken by [`take_free`](Self::take_free).
    fn fill_mut(&mut self, bid: u16) -> Option<&mut [u8]> {
        let span = self.span(bid, &self.fill.clone())?;
        self.memory.get_mut(span)
    }

    /// The whole slot, while it is held in this batch.
    fn held_mut(&mut self, bid: u16) -> Option<&mut [u8]> {
        match self.states.get(usize::from(bid))? {
            SlotState::Busy { held: true, .. } => {
                let span = self.span(bid, &(0..self.slot_len))?;
                self.memory.get_mut(span)
            }
            _ => None,
        }
    }

    /// Pins held slot `bid` for a transmit reading `range` of it.
    fn pin(&mut self, bid: u16, range: &Range<usize>) -> bool {
        if self.span(bid, range).is_none() {
            return false;
        }
        match self.states.get_mut(usize::from(bid)) {
            Some(SlotState::Busy { held: true, pins }) => {
                *pins += 1;
                true
            }
            _ => false,
        }
    }

    /// A transmit reading from `bid` is done.
    fn unpin(&mut self, bid: u16) {
        let Some(state) = self.states.get_mut(usize::from(bid)) else { return };
        if let SlotState::Busy { held, pins } = state {
            *pins = pins.saturating_sub(1);
            if *pins == 0 && !*held {
                *state = SlotState::Free;
                self.free.push(bid);
            }
        }
    }

    /// The batch ended: its slots are no longer the shard's, and those no
    /// transmit still reads go back on the free list.
    fn end_batch(&mut self) {
        for bid in self.handed_out.drain(..) {
            let Some(state) = self.states.get_mut(usize::from(bid)) else { continue };
            if let SlotState::Busy { held, pins } = state {
                *held = false;
                if *pins == 0 {
                    *state = SlotState::Free;
                    self.free.push(bid);
                }
            }
        }
    }

    /// Bytes a pinned transmit reads (valid whether or not still held).
    fn bytes(&self, bid: u16, range: &Range<usize>) -> Option<&[u8]> {
        self.memory.get(self.span(bid, range)?)
    }
}

/// A queued `send_to`.
#[derive(Debug)]
struct UdpTransmit {
    buf: TxBuf,
    range: Range<usize>,
    peer: RawSockAddr,
    segment: Option<u16>,
    datagrams: u16,
}

/// A queued `write_tun`.
#[derive(Debug)]
struct TunTransmit {
    buf: TxBuf,
    range: Range<usize>,
}

/// The bytes a queued transmit reads.
fn transmit_bytes<'a>(udp: &'a SlotPool, tun: &'a SlotPool, buf: &'a TxBuf, range: &Range<usize>) -> Option<&'a [u8]> {
    match buf {
        TxBuf::Udp(bid) => udp.bytes(*bid, range),
        TxBuf::Tun(bid) => tun.bytes(*bid, range),
        TxBuf::Owned(v) => v.get(range.clone()),
    }
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

    /// Sends queued datagrams, [`MMSG_BATCH`] per `sendmmsg`, until the
    /// queue is empty or the socket is full (see the module doc).
    fn flush_udp(&mut self, out: &mut Vec<Completion>) {
        loop {
            if self.udp_queue.is_empty() {
                self.udp_blocked = false;
                return;
            }
            let Self { tx, udp_queue, udp, tun, udp_fd, .. } = self;
            let messages = udp_queue.iter().take(MMSG_BATCH).map_while(|t| {
                Some(Outgoing { data: transmit_bytes(udp, tun, &t.buf, &t.range)?, peer: &t.peer, segment: t.segment })
            });
            match tx.send(*udp_fd, messages) {
                // The head's bytes are gone, which pinning at submit rules out.
                Ok(0) => self.complete_udp(Err(io::Error::from_raw_os_error(libc::EFAULT)), out),
                Ok(sent) => {
                    for i in 0..sent {
                        let bytes = self.tx.sent_len(i).unwrap_or(0);
                        self.complete_udp(Ok(bytes), out);
                    }
                }
                Err(e) if is_would_block(&e) => {
                    self.udp_blocked = true;
                    return;
                }
                Err(e) if is_interrupted(&e) => {}
                Err(e) => self.complete_udp(Err(e), out),
            }
        }
    }

    /// Ends the UDP queue's head with `result`.
    fn complete_udp(&mut self, result: io::Result<usize>, out: &mut Vec<Completion>) {
        if let Some(t) = self.udp_queue.pop_front() {
            let owned = self.release(t.buf);
            out.push(Completion::Sent { result, datagrams: t.datagrams, owned });
        }
    }

    /// Writes queued TUN packets, one `write` each (a TUN queue has no
    /// batch write), until the queue is empty or the device is full.
    fn flush_tun(&mut self, out: &mut Vec<Completion>) {
        while let Some(t) = self.tun_queue.front() {
            let result = match transmit_bytes(&self.udp, &self.tun, &t.buf, &t.range) {
                Some(bytes) => write_fd(self.tun_fd, bytes),
                None => Err(io::Error::from_raw_os_error(libc::EFAULT)),
            };
            match &result {
                Err(e) if is_would_block(e) => {
                    self.tun_blocked = true;
                    return;
                }
                Err(e) if is_interrupted(e) => continue,
                _ => {}
            }
            if let Some(t) = self.tun_queue.pop_front() {
                let owned = self.release(t.buf);
                out.push(Completion::TunWritten { result, owned });
            }
        }
        self.tun_blocked = false;
    }

    /// Ends a transmit's hold on its memory; an owned buffer is handed back.
    fn release(&mut self, buf: TxBuf) -> Option<Vec<u8>> {
        match buf {
            TxBuf::Udp(bid) => self.udp.unpin(bid),
            TxBuf::Tun(bid) => self.tun.unpin(bid),
            TxBuf::Owned(v) => return Some(v),
        }
        None
    }

    /// `recvmmsg` into free UDP slots, a batch at a time, while full batches
    /// come back, slots remain and the turn's bound is not reached.
    fn receive_udp(&mut self, out: &mut Vec<Completion>) {
        let mut taken = 0usize;
        while taken < UDP_TURN_LIMIT {
            let want = MMSG_BATCH.min(UDP_TURN_LIMIT - taken).min(self.udp.free_count());
            if want == 0 {
                return;
            }
            self.rx_bids.clear();
            while self.rx_bids.len() < want {
                let Some(bid) = self.udp.take_free() else { break };
                self.rx_bids.push(bid);
            }
            let (slot_len, fill) = (self.udp.slot_len, self.udp.fill.clone());
            let regions = self.rx_bids.iter().map(|&bid| {
                let base = usize::from(bid) * slot_len;
                base + fill.start..base + fill.end
            });
            let received = match self.rx.recv(self.udp_fd, &mut self.udp.memory, regions) {
                Ok(n) => n,
                Err(e) if is_interrupted(&e) => {
                    self.give_back_from(0);
                    continue;
                }
                Err(e) => {
                    self.give_back_from(0);
                    if !is_would_block(&e) {
                        out.push(Completion::ReceiveFailed);
                    }
                    return;
                }
            };
            for (i, &bid) in self.rx_bids.iter().enumerate().take(received) {
                match self.rx.received(i) {
                    Some(msg) => {
                        self.udp.hand_out(bid);
                        let len = msg.len.min(fill.end - fill.start);
                        out.push(Completion::Datagram {
                            bid,
                            peer: msg.peer,
                            payload: fill.start..fill.start + len,
                            truncated: msg.truncated,
                            segment: msg.gro_segment,
                        });
                    }
                    None => self.udp.give_back(bid),
                }
            }
            self.give_back_from(received);
            taken += received;
            if received < want {
                // The socket is drained; another call would only say EAGAIN.
                return;
            }
        }
    }

    /// Returns the slots of `rx_bids[from..]`, which received nothing, in
    /// the order that restores the free list's top.
    fn give_back_from(&mut self, from: usize) {
        for &bid in self.rx_bids.iter().skip(from).rev() {
            self.udp.give_back(bid);
        }
    }

    /// Reads TUN packets into free TUN slots until the queue is empty, the
    /// slots run out or the turn's bound is reached.
    fn read_tun(&mut self, out: &mut Vec<Completion>) {
        let mut reads = 0usize;
        while reads < TUN_TURN_LIMIT {
            let Some(bid) = self.tun.take_free() else { return };
            let result = match self.tun.fill_mut(bid) {
                Some(buf) => read_fd(self.tun_fd, buf),
                None => Err(io::Error::from_raw_os_error(libc::EFAULT)),
            };
            match result {
                Ok(len) if len > 0 => {
                    self.tun.hand_out(bid);
                    out.push(Completion::TunPacket { bid, len });
                    reads += 1;
                }
                Ok(_) => {
                    self.tun.give_back(bid);
                    return;
                }
                Err(e) if is_interrupted(&e) => self.tun.give_back(bid),
                Err(e) => {
                    self.tun.give_back(bid);
                    if !is_would_block(&e) {
                        out.push(Completion::ReceiveFailed);
                    }
                    return;
                }
            }
        }
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

    fn queued(&self) -> usize {
        self.udp_queue.len() + self.tun_queue.len()
    }

    /// Checks `range` of `buf` and pins a slot buffer until its transmit is done.
    fn pin(&mut self, buf: &TxBuf, range: &Range<usize>) -> Result<(), SubmitError> {
        let ok = match buf {
            TxBuf::Udp(bid) => self.udp.pin(*bid, range),
            TxBuf::Tun(bid) => self.tun.pin(*bid, range),
            TxBuf::Owned(v) => v.get(range.clone()).is_some(),
        };
        if ok {
            Ok(())
        } else {
            Err(SubmitError::BadBuffer)
        }
    }

    /// Queues `range` of `buf` for `peer`: one datagram, or with `segment`
    /// (UDP GSO) one datagram per `segment` bytes, the last possibly
    /// shorter. Sent in the next [`wait`](Self::wait).
    pub(crate) fn send_to(
        &mut self,
        buf: TxBuf,
        range: Range<usize>,
        peer: &RawSockAddr,
        segment: Option<u16>,
    ) -> Result<(), SubmitError> {
        self.pin(&buf, &range)?;
        if self.queued() >= self.queue_capacity {
            self.release(buf);
            return Err(SubmitError::OpTableFull);
        }
        let len = range.end - range.start;
        let datagrams = match segment {
            Some(size) if size > 0 => u16::try_from(len.div_ceil(usize::from(size))).unwrap_or(u16::MAX),
            _ => 1,
        };
        self.udp_queue.push_back(UdpTransmit { buf, range, peer: *peer, segment, datagrams });
        Ok(())
    }

    /// Queues `range` of `buf` as one packet for the TUN queue; written in
    /// the next [`wait`](Self::wait).
    pub(crate) fn write_tun(&mut self, buf: TxBuf, range: Range<usize>) -> Result<(), SubmitError> {
        self.pin(&buf, &range)?;
        if self.queued() >= self.queue_capacity {
            self.release(buf);
            return Err(SubmitError::OpTableFull);
        }
        self.tun_queue.push_back(TunTransmit { buf, range });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Real sockets, eventfds and TUN queues: run as root in a private
    //! network namespace (`unshare --net` with `lo` up), as CI does.

    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::time::Instant;

    use super::*;
    use crate::sys::{configure_interface, open_tun_queue, set_gro, EventFd};

    const PATIENCE: Duration = Duration::from_secs(5);
    const TICK: Duration = Duration::from_millis(20);
    const TUN_HEADROOM: usize = 40;

    /// An engine over a loopback UDP socket, a doorbell and a TUN queue (or,
    /// for tests that need none, an eventfd nobody rings in its place).
    struct Rig {
        engine: ReadinessEngine,
        socket: UdpSocket,
        peer: UdpSocket,
        bell: EventFd,
        _tun: Option<OwnedFd>,
        _no_tun: EventFd,
    }

    impl Rig {
        fn new(tun: Option<(&str, Ipv4Addr)>, tweak: impl FnOnce(&mut EngineConfig)) -> Self {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket.set_nonblocking(true).expect("non-blocking");
            let peer = UdpSocket::bind("127.0.0.1:0").expect("bind peer");
            peer.set_read_timeout(Some(PATIENCE)).expect("timeout");
            let bell = EventFd::new().expect("eventfd");
            let no_tun = EventFd::new().expect("eventfd");
            let tun = tun.map(|(name, addr)| {
                let q = open_tun_queue(name, false).expect("TUN queue (root, /dev/net/tun)");
                configure_interface(name, addr, 24, 1400).expect("configure TUN");
                q
            });
            let mut cfg = EngineConfig {
                entries: 64,
                udp_fd: socket.as_raw_fd(),
                tun_fd: tun.as_ref().map_or(no_tun.as_raw_fd(), AsRawFd::as_raw_fd),
                wake_fd: bell.as_raw_fd(),
                udp_buffers: 8,
                tun_buffers: 8,
                udp_payload: 2048,
                tun_headroom: TUN_HEADROOM,
                tun_packet: 1500,
                tun_tailroom: 16,
                transmits: 32,
            };
            tweak(&mut cfg);
            let engine = ReadinessEngine::new(&cfg).expect("engine");
            Self { engine, socket, peer, bell, _tun: tun, _no_tun: no_tun }
        }

        fn addr(&self) -> SocketAddr {
            self.socket.local_addr().expect("addr")
        }

        fn peer_addr(&self) -> SocketAddr {
            self.peer.local_addr().expect("peer addr")
        }

        /// Turns the engine until `on` (handed each completion while its
        /// batch lasts) says it has seen enough.
        fn drive(&mut self, mut on: impl FnMut(&mut ReadinessEngine, Completion) -> bool) {
            let deadline = Instant::now() + PATIENCE;
            let mut out = Vec::new();
            loop {
                assert!(Instant::now() < deadline, "timed out");
                self.engine.wait(TICK, &mut out).expect("wait");
                let mut done = false;
                for c in out.drain(..) {
                    done |= on(&mut self.engine, c);
                }
                if done {
                    return;
                }
            }
        }
    }

    fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0u8; 2048];
        let (n, from) = socket.recv_from(&mut buf).expect("datagram");
        (buf[..n].to_vec(), from)
    }

    #[test]
    fn datagrams_arrive_with_their_peer_and_payload() {
        let mut rig = Rig::new(None, |_| {});
        let sent: [&[u8]; 3] = [b"one", b"two!", b"three"];
        for d in sent {
            rig.peer.send_to(d, rig.addr()).expect("send");
        }
        let peer = rig.peer_addr();
        let mut got = Vec::new();
        rig.drive(|engine, c| {
            if let Completion::Datagram { bid, peer: from, payload, truncated, segment } = c {
                assert_eq!(from, Some(peer));
                assert!(!truncated);
                assert_eq!(segment, None);
                assert_eq!(payload.start, UDP_PAYLOAD_AT);
                got.push(engine.udp_slot(bid).expect("held")[payload].to_vec());
            }
            got.len() == sent.len()
        });
        assert_eq!(got, sent.map(<[u8]>::to_vec));
    }

    #[test]
    fn a_datagram_longer_than_its_slot_is_marked_truncated() {
        // Slot: round_up_64(64 + 100) = 192 bytes, 128 of them for the payload.
        let mut rig = Rig::new(None, |c| c.udp_payload = 100);
        let long: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        rig.peer.send_to(&long, rig.addr()).expect("send");
        rig.drive(|engine, c| match c {
            Completion::Datagram { bid, payload, truncated, .. } => {
                assert!(truncated);
                assert_eq!(payload.len(), 128);
                assert_eq!(engine.udp_slot(bid).expect("held")[payload], long[..128]);
                true
            }
            _ => false,
        });
    }

    #[test]
    fn sends_plain_and_gso_and_hands_owned_buffers_back() {
        let mut rig = Rig::new(None, |_| {});
        let to = RawSockAddr::new(rig.peer_addr());
        let hello = b"hello".to_vec();
        let train: Vec<u8> = [[b'a'; 100], [b'b'; 100], [b'c'; 100]].concat();
        rig.engine.send_to(TxBuf::Owned(hello.clone()), 0..5, &to, None).expect("queue plain");
        rig.engine.send_to(TxBuf::Owned(train.clone()), 0..300, &to, Some(100)).expect("queue GSO");
        let mut sent = Vec::new();
        rig.drive(|_, c| {
            if let Completion::Sent { result, datagrams, owned } = c {
                sent.push((result.expect("sent"), datagrams, owned));
            }
            sent.len() == 2
        });
        assert_eq!(sent, vec![(5, 1, Some(hello)), (300, 3, Some(train))]);

        let from = rig.addr();
        assert_eq!(recv(&rig.peer), (b"hello".to_vec(), from));
        for fill in [b'a', b'b', b'c'] {
            assert_eq!(recv(&rig.peer), (vec![fill; 100], from), "one datagram per GSO segment");
        }
    }

    #[test]
    fn a_reply_is_sent_from_the_slot_it_was_received_in() {
        let mut rig = Rig::new(None, |_| {});
        rig.peer.send_to(b"ping", rig.addr()).expect("send");
        let mut replied = false;
        rig.drive(|engine, c| match c {
            Completion::Datagram { bid, peer, payload, .. } => {
                let slot = engine.udp_slot(bid).expect("held");
                slot[payload.clone()].copy_from_slice(b"PONG");
                let to = RawSockAddr::new(peer.expect("peer"));
                engine.send_to(TxBuf::Udp(bid), payload, &to, None).expect("queue reply");
                replied = true;
                false
            }
            Completion::Sent { result, datagrams, owned } => {
                assert!(replied);
                assert_eq!((result.expect("sent"), datagrams, owned), (4, 1, None));
                true
            }
            _ => false,
        });
        assert_eq!(recv(&rig.peer).0, b"PONG");
        // Its batch is over and its send is done: no longer the shard's.
        assert!((0..8).all(|bid| rig.engine.udp_slot(bid).is_none()));
    }

    #[test]
    fn slots_are_reused_across_batches() {
        let mut rig = Rig::new(None, |c| c.udp_buffers = 8);
        let total = 80u16;
        for i in 0..total {
            rig.peer.send_to(&i.to_be_bytes(), rig.addr()).expect("send");
        }
        let mut seen = vec![false; usize::from(total)];
        let mut batches = 0;
        let deadline = Instant::now() + PATIENCE;
        let mut out = Vec::new();
        while seen.iter().any(|s| !s) {
            assert!(Instant::now() < deadline, "only {} of {total} arrived", seen.iter().filter(|s| **s).count());
            rig.engine.wait(TICK, &mut out).expect("wait");
            let mut in_batch = 0;
            for c in out.drain(..) {
                if let Completion::Datagram { bid, payload, .. } = c {
                    assert!(bid < 8);
                    let b = &rig.engine.udp_slot(bid).expect("held")[payload];
                    let i = u16::from_be_bytes([b[0], b[1]]);
                    assert!(!seen[usize::from(i)], "datagram {i} twice");
                    seen[usize::from(i)] = true;
                    in_batch += 1;
                }
            }
            assert!(in_batch <= 8, "more datagrams than slots in one batch");
            batches += usize::from(in_batch > 0);
        }
        assert!(batches >= 10, "80 datagrams through 8 slots took {batches} batches");
    }

    #[test]
    fn gro_receives_report_their_segment_size() {
        let mut rig = Rig::new(None, |_| {});
        if !set_gro(&rig.socket, true) {
            return; // A kernel before 5.0: nothing to check.
        }
        // GSO to itself over lo arrives coalesced (platform-facts §3).
        let to = RawSockAddr::new(rig.addr());
        let train: Vec<u8> = [[1u8; 100], [2u8; 100], [3u8; 100]].concat();
        rig.engine.send_to(TxBuf::Owned(train.clone()), 0..300, &to, Some(100)).expect("queue");
        rig.drive(|engine, c| match c {
            Completion::Datagram { bid, payload, segment, .. } => {
                assert_eq!(segment, Some(100));
                assert_eq!(engine.udp_slot(bid).expect("held")[payload], train);
                true
            }
            _ => false,
        });
    }

    #[test]
    fn the_doorbell_wakes_once_and_is_reset() {
        let mut rig = Rig::new(None, |_| {});
        rig.bell.notify();
        rig.bell.notify();
        rig.drive(|_, c| matches!(c, Completion::Wake));
        let mut out = Vec::new();
        let start = Instant::now();
        rig.engine.wait(Duration::from_millis(50), &mut out).expect("wait");
        assert!(out.is_empty(), "the engine read the eventfd, so it is quiet: {out:?}");
        assert!(start.elapsed() >= Duration::from_millis(45), "an idle wait sleeps out its timeout");
        rig.bell.notify();
        rig.drive(|_, c| matches!(c, Completion::Wake));
    }

    #[test]
    fn bad_buffers_and_a_full_queue_are_refused() {
        let mut rig = Rig::new(None, |_| {});
        let to = RawSockAddr::new(rig.peer_addr());
        assert_eq!(rig.engine.send_to(TxBuf::Udp(3), 0..4, &to, None), Err(SubmitError::BadBuffer));
        assert_eq!(rig.engine.write_tun(TxBuf::Tun(9), 0..4), Err(SubmitError::BadBuffer));
        assert_eq!(rig.engine.send_to(TxBuf::Owned(vec![0; 4]), 2..5, &to, None), Err(SubmitError::BadBuffer));

        rig.peer.send_to(b"x", rig.addr()).expect("send");
        rig.drive(|engine, c| match c {
            Completion::Datagram { bid, .. } => {
                let whole = engine.udp_slot(bid).expect("held").len();
                assert_eq!(engine.send_to(TxBuf::Udp(bid), 0..whole + 1, &to, None), Err(SubmitError::BadBuffer));
                true
            }
            _ => false,
        });

        // 32 + 256 transmits fit, as in the io_uring op table.
        let capacity = 288;
        for i in 0..capacity {
            assert_eq!(rig.engine.send_to(TxBuf::Owned(vec![1]), 0..1, &to, None), Ok(()), "transmit {i}");
        }
        assert_eq!(rig.engine.write_tun(TxBuf::Owned(vec![1]), 0..1), Err(SubmitError::OpTableFull));
        let mut back = 0;
        rig.drive(|_, c| {
            if let Completion::Sent { result, owned, .. } = c {
                assert_eq!(result.expect("sent"), 1);
                assert_eq!(owned, Some(vec![1]));
                back += 1;
            }
            back == capacity
        });
    }

    /// The UDP payload of an IPv4 packet, with its ports.
    fn udp_of(packet: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, &[u8])> {
        let ip = proto::ip::Ipv4Packet::new_checked(packet).ok()?;
        let (sport, dport, payload) = ip.udp()?;
        Some((SocketAddrV4::new(ip.src(), sport), SocketAddrV4::new(ip.dst(), dport), payload))
    }

    #[test]
    fn a_packet_routed_into_the_tun_arrives_and_is_echoed_from_its_slot() {
        let mut rig = Rig::new(Some(("crd-rdy0", Ipv4Addr::new(10, 214, 0, 1))), |_| {});
        let app = UdpSocket::bind("10.214.0.1:0").expect("bind on the TUN address");
        app.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let far = SocketAddrV4::new(Ipv4Addr::new(10, 214, 0, 2), 7000);
        app.send_to(b"through the tun", far).expect("send into the TUN");

        let mut echoed = None;
        rig.drive(|engine, c| match c {
            Completion::TunPacket { bid, len } => {
                let slot = engine.tun_slot(bid).expect("held");
                let packet = &mut slot[TUN_HEADROOM..TUN_HEADROOM + len];
                let Some((_, dst, payload)) = udp_of(packet) else { return false };
                if dst != far || payload != b"through the tun" {
                    return false;
                }
                // Swap addresses and ports: both checksums stay valid.
                let (src_ip, dst_ip) = (packet[12..16].to_vec(), packet[16..20].to_vec());
                packet[12..16].copy_from_slice(&dst_ip);
                packet[16..20].copy_from_slice(&src_ip);
                let (sport, dport) = (packet[20..22].to_vec(), packet[22..24].to_vec());
                packet[20..22].copy_from_slice(&dport);
                packet[22..24].copy_from_slice(&sport);
                engine.write_tun(TxBuf::Tun(bid), TUN_HEADROOM..TUN_HEADROOM + len).expect("queue echo");
                echoed = Some(len);
                false
            }
            Completion::TunWritten { result, owned } => {
                assert_eq!(result.ok(), echoed);
                assert_eq!(owned, None);
                true
            }
            _ => false,
        });
        assert_eq!(recv(&app), (b"through the tun".to_vec(), SocketAddr::V4(far)));
    }

    #[test]
    fn a_packet_written_to_the_tun_reaches_a_socket_on_its_address() {
        let mut rig = Rig::new(Some(("crd-rdy1", Ipv4Addr::new(10, 214, 1, 1))), |_| {});
        let app = UdpSocket::bind("10.214.1.1:0").expect("bind on the TUN address");
        app.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let SocketAddr::V4(app_addr) = app.local_addr().expect("addr") else { panic!("IPv4") };
        let far = SocketAddrV4::new(Ipv4Addr::new(10, 214, 1, 2), 5555);
        let mut packet = Vec::new();
        proto::ip::emit_ipv4_udp(far, app_addr, b"from the tunnel", &mut packet);
        let len = packet.len();
        rig.engine.write_tun(TxBuf::Owned(packet.clone()), 0..len).expect("queue");
        rig.drive(|_, c| match c {
            Completion::TunWritten { result, owned } => {
                assert_eq!(result.expect("written"), len);
                assert_eq!(owned.as_deref(), Some(&packet[..]));
                true
            }
            _ => false,
        });
        assert_eq!(recv(&app), (b"from the tunnel".to_vec(), SocketAddr::V4(far)));
    }

    #[test]
    fn a_slot_stays_out_of_the_pool_until_its_batch_ends_and_its_transmits_are_done() {
        let mut pool = SlotPool::new(2, 64, 16..64).expect("pool");
        let bid = pool.take_free().expect("free");
        pool.hand_out(bid);
        assert!(pool.held_mut(bid).is_some());
        assert!(pool.pin(bid, &(16..20)));
        assert!(pool.pin(bid, &(20..24)));
        assert!(!pool.pin(bid, &(60..65)), "beyond the slot");
        pool.end_batch();
        assert!(pool.held_mut(bid).is_none(), "the batch is over");
        assert!(!pool.pin(bid, &(16..20)), "only held slots take transmits");
        assert_eq!(pool.bytes(bid, &(16..20)).map(<[u8]>::len), Some(4), "queued transmits still read it");
        pool.unpin(bid);
        assert_eq!(pool.free_count(), 1);
        pool.unpin(bid);
        assert_eq!(pool.free_count(), 2);
        assert_eq!(pool.states[usize::from(bid)], SlotState::Free);
    }
}
