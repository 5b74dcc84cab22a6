//! One shard's io_uring: set-up with fallbacks, the standing receive
//! operations (multishot UDP `recvmsg`, TUN reads, the doorbell read), the
//! transmit operations the fast path submits, a backlog for a full SQ, and
//! completions turned into typed [`Completion`]s.

use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::ops::Range;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use io_uring::types::{self, CancelBuilder, Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};

use super::buffers::{ProvidedBuffers, SlotLayout};
use super::ops::{recv_template, Op, OpKind, OpTable};
use crate::io::batch::{BatchWait, WaitPlan};
use crate::io::{Completion, EngineConfig, RingSetup, SubmitError, TunReadStyle, TxBuf};
use crate::sys::{parse_sockaddr, RawSockAddr, SegmentCmsg};

const UDP_GROUP: u16 = 0;
const TUN_GROUP: u16 = 1;
/// Indexes of the two slot regions in the ring's registered buffer table.
const UDP_REGION: u16 = 0;
const TUN_REGION: u16 = 1;
/// `user_data` of cancel requests; never an op-table index.
const CANCEL_TOKEN: u64 = u64::MAX;
/// `struct io_uring_recvmsg_out` (four u32) that precedes every multishot
/// `recvmsg` buffer.
const RECVMSG_OUT_LEN: usize = 16;
/// One-shot TUN reads kept in flight when multishot read is unavailable.
const TUN_READ_POOL: u16 = 16;
/// How long shutdown waits for in-flight operations before leaking their memory.
const QUIESCE_LIMIT: Duration = Duration::from_secs(2);

/// Memory the kernel may read or write through pointers in SQEs.
#[derive(Debug)]
struct KernelVisible {
    ops: OpTable,
    udp: ProvidedBuffers,
    tun: ProvidedBuffers,
    recv_msg: libc::msghdr,
    wake_buf: [u8; 8],
}

/// How an operation names its file: an index into the ring's registered
/// file table (the kernel then skips the per-operation descriptor lookup
/// and reference count), or the raw descriptor where registration failed.
#[derive(Debug, Clone, Copy)]
enum File {
    Raw(RawFd),
    Fixed(u32),
}

/// Builds an entry over `$file` with the right descriptor type: `Fd` and
/// `Fixed` are different types to the opcode builders.
macro_rules! on_file {
    ($file:expr, |$t:ident| $build:expr) => {
        match $file {
            File::Raw(fd) => {
                let $t = Fd(fd);
                $build
            }
            File::Fixed(i) => {
                let $t = types::Fixed(i);
                $build
            }
        }
    };
}

pub(crate) struct Engine {
    ring: IoUring,
    /// Freed only once no operation can reach it (see Drop).
    mem: ManuallyDrop<Box<KernelVisible>>,
    udp_file: File,
    tun_file: File,
    wake_file: File,
    /// Both slot regions are registered buffers: TUN writes from a slot are
    /// `WRITE_FIXED` (the kernel maps no user pages per write).
    fixed_buffers: bool,
    setup: RingSetup,
    tun_style: TunReadStyle,
    udp_recv_live: bool,
    tun_reads_live: u16,
    tun_read_worked: bool,
    wake_live: bool,
    backlog: VecDeque<squeue::Entry>,
    /// Bumped before every `io_uring_enter`; see `ProvidedBuffers::slot`.
    epoch: u64,
    cqes: Vec<(u64, i32, u32)>,
    batch: BatchWait,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine").field("setup", &self.setup).field("tun_style", &self.tun_style).finish_non_exhaustive()
    }
}

fn round_up_64(n: usize) -> usize {
    n.div_ceil(64) * 64
}

fn errno(res: i32) -> i32 {
    -res
}

/// A transmit's CQE result as the engines report it: bytes, or the error.
fn transmitted(res: i32) -> io::Result<usize> {
    usize::try_from(res).map_err(|_| io::Error::from_raw_os_error(errno(res)))
}

/// SINGLE_ISSUER|DEFER_TASKRUN (completions run only when this thread waits
/// for them), or no flags where the kernel refuses that with EINVAL.
fn build_ring(entries: u32) -> io::Result<(IoUring, RingSetup)> {
    let cq = entries.saturating_mul(4);
    match IoUring::builder().setup_single_issuer().setup_defer_taskrun().setup_cqsize(cq).build(entries) {
        Ok(ring) => Ok((ring, RingSetup::SingleIssuerDeferTaskrun)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            Ok((IoUring::builder().setup_cqsize(cq).build(entries)?, RingSetup::Plain))
        }
        Err(e) => Err(e),
    }
}

impl Engine {
    /// Builds the ring in the calling thread (which becomes its only
    /// submitter), probes opcodes, registers both buffer groups.
    pub(crate) fn new(cfg: &EngineConfig) -> io::Result<Self> {
        let (ring, setup) = build_ring(cfg.entries)?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::RecvMsgMulti::CODE, "RECVMSG"),
            (opcode::SendMsg::CODE, "SENDMSG"),
            (opcode::Read::CODE, "READ"),
            (opcode::Write::CODE, "WRITE"),
            (opcode::AsyncCancel2::CODE, "ASYNC_CANCEL"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(io::ErrorKind::Unsupported, format!("io_uring lacks {name}")));
            }
        }
        let tun_style = if probe.is_supported(opcode::ReadMulti::CODE) {
            TunReadStyle::Multishot
        } else {
            TunReadStyle::ReadPool(TUN_READ_POOL)
        };

        let udp_fill = RECVMSG_OUT_LEN + crate::sys::SOCKADDR_MAX + crate::sys::GRO_SPACE + cfg.udp_payload;
        let udp_layout = SlotLayout {
            slot_len: round_up_64(udp_fill),
            fill_at: 0,
            fill_len: u32::try_from(round_up_64(udp_fill)).map_err(io::Error::other)?,
        };
        let tun_layout = SlotLayout {
            slot_len: round_up_64(cfg.tun_headroom + cfg.tun_packet + cfg.tun_tailroom),
            fill_at: cfg.tun_headroom,
            fill_len: u32::try_from(cfg.tun_packet).map_err(io::Error::other)?,
        };
        let udp = ProvidedBuffers::new(cfg.udp_buffers, udp_layout)?;
        let tun = ProvidedBuffers::new(cfg.tun_buffers, tun_layout)?;
        udp.register(&ring.submitter(), UDP_GROUP)?;
        tun.register(&ring.submitter(), TUN_GROUP)?;
        // Registered files, in this order; the ring drops the table with itself.
        let fixed = ring.submitter().register_files(&[cfg.udp_fd, cfg.tun_fd, cfg.wake_fd]).is_ok();
        let file = |i: u32, fd: RawFd| if fixed { File::Fixed(i) } else { File::Raw(fd) };
        // SAFETY: both regions are mappings owned by `mem` below, which
        // outlives the registration: Drop unregisters before freeing it, or
        // leaks it (and the ring's close then releases the pages).
        let fixed_buffers = unsafe { ring.submitter().register_buffers(&[udp.region(), tun.region()]) }.is_ok();

        // The transmits, plus owned buffers and the standing receives.
        let op_capacity = cfg.transmits + 256;
        let mem = Box::new(KernelVisible {
            ops: OpTable::with_capacity(op_capacity),
            udp,
            tun,
            recv_msg: recv_template(crate::sys::SOCKADDR_MAX, crate::sys::GRO_SPACE),
            wake_buf: [0; 8],
        });
        let batch = BatchWait::new(cfg.batch_wait, ring.params().is_feature_min_timeout());
        Ok(Self {
            ring,
            mem: ManuallyDrop::new(mem),
            udp_file: file(0, cfg.udp_fd),
            tun_file: file(1, cfg.tun_fd),
            wake_file: file(2, cfg.wake_fd),
            fixed_buffers,
            setup,
            tun_style,
            udp_recv_live: false,
            tun_reads_live: 0,
            tun_read_worked: false,
            wake_live: false,
            // As deep as the op table: a full SQ never makes the fast path allocate.
            backlog: VecDeque::with_capacity(op_capacity as usize),
            epoch: 0,
            cqes: Vec::with_capacity(cfg.entries as usize * 4),
            batch,
        })
    }

    pub(crate) fn setup(&self) -> RingSetup {
        self.setup
    }

    /// Whether operations name their files by the registered table.
    pub(crate) fn fixed_files(&self) -> bool {
        matches!(self.udp_file, File::Fixed(_))
    }

    /// Whether TUN writes from slots use the registered buffers.
    pub(crate) fn fixed_buffers(&self) -> bool {
        self.fixed_buffers
    }

    pub(crate) fn tun_style(&self) -> TunReadStyle {
        self.tun_style
    }

    /// # Safety
    ///
    /// Every address in `entry` must stay valid, and untouched by us where
    /// the kernel writes, until its completion is reaped.
    unsafe fn push(&mut self, entry: squeue::Entry) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(entry);
            return;
        }
        // SAFETY: forwarded from this function's contract.
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.backlog.push_back(entry);
        }
    }

    /// Re-arms standing receives that ended (multishot stopped, buffers
    /// were exhausted, a one-shot read completed).
    fn arm(&mut self) {
        if !self.udp_recv_live && self.mem.udp.in_kernel() > 0 {
            if let Ok(index) = self.mem.ops.insert(Op::UdpRecv) {
                let entry = on_file!(self.udp_file, |f| opcode::RecvMsgMulti::new(f, &self.mem.recv_msg, UDP_GROUP)
                    .build())
                .user_data(u64::from(index));
                // SAFETY: the msghdr template lives in `mem`, which outlives
                // every operation; the kernel fills only buffers of the group.
                unsafe { self.push(entry) };
                self.udp_recv_live = true;
            }
        }
        match self.tun_style {
            TunReadStyle::Multishot => {
                if self.tun_reads_live == 0 && self.mem.tun.in_kernel() > 0 {
                    if let Ok(index) = self.mem.ops.insert(Op::TunReadMulti) {
                        let entry = on_file!(self.tun_file, |f| opcode::ReadMulti::new(f, 0, TUN_GROUP).build())
                            .user_data(u64::from(index));
                        // SAFETY: no user memory besides the registered group.
                        unsafe { self.push(entry) };
                        self.tun_reads_live = 1;
                    }
                }
            }
            TunReadStyle::ReadPool(n) => {
                while self.tun_reads_live < n && self.mem.tun.in_kernel() > usize::from(self.tun_reads_live) {
                    let Ok(index) = self.mem.ops.insert(Op::TunRead) else { break };
                    let fill = self.mem.tun.layout().fill_len;
                    let entry = on_file!(self.tun_file, |f| opcode::Read::new(f, core::ptr::null_mut(), fill)
                        .buf_group(TUN_GROUP)
                        .build())
                    .flags(squeue::Flags::BUFFER_SELECT)
                    .user_data(u64::from(index));
                    // SAFETY: the kernel picks the buffer from the registered group.
                    unsafe { self.push(entry) };
                    self.tun_reads_live += 1;
                }
            }
        }
        if !self.wake_live {
            if let Ok(index) = self.mem.ops.insert(Op::Wake) {
                let buf = self.mem.wake_buf.as_mut_ptr();
                let entry =
                    on_file!(self.wake_file, |f| opcode::Read::new(f, buf, 8).build()).user_data(u64::from(index));
                // SAFETY: `wake_buf` lives in `mem` and is never read by us.
                unsafe { self.push(entry) };
                self.wake_live = true;
            }
        }
    }

    fn enter(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<()> {
        self.enter_planned(WaitPlan { want: u32::try_from(want).unwrap_or(u32::MAX), min_wait_us: 0 }, timeout)
    }

    /// `io_uring_enter`: submits, then waits for `plan.want` completions
    /// (with a minimum wait: until it runs out, then for at least one) or
    /// until `timeout`.
    fn enter_planned(&mut self, plan: WaitPlan, timeout: Option<Duration>) -> io::Result<()> {
        self.epoch += 1;
        let want = plan.want as usize;
        let res = match timeout {
            Some(t) => {
                let ts = Timespec::from(t);
                let args = SubmitArgs::new().timespec(&ts).min_wait_usec(plan.min_wait_us);
                self.ring.submitter().submit_with_args(want, &args)
            }
            None => self.ring.submitter().submit_and_wait(want),
        };
        match res {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn flush_backlog(&mut self) -> io::Result<()> {
        while let Some(entry) = self.backlog.pop_front() {
            // SAFETY: entries were checked against `push`'s contract when queued.
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                self.backlog.push_front(entry);
                let before = self.ring.submission().len();
                self.enter(0, None)?;
                if self.ring.submission().len() >= before {
                    // The kernel took nothing (CQ overflow): retry next turn.
                    break;
                }
            }
        }
        Ok(())
    }

    /// Ends the current batch (slots handed out become the kernel's again
    /// once their transmits finish), submits, waits up to `timeout` for at
    /// least one completion (for a batch of them after a loaded turn: see
    /// `io::batch`), and appends what completed to `out`. True when the
    /// wait asked for a batch.
    pub(crate) fn wait(&mut self, timeout: Duration, out: &mut Vec<Completion>) -> io::Result<bool> {
        self.mem.udp.end_batch();
        self.mem.tun.end_batch();
        self.arm();
        self.mem.udp.publish();
        self.mem.tun.publish();
        self.flush_backlog()?;
        let plan = self.batch.plan(timeout);
        self.enter_planned(plan, Some(timeout))?;
        self.reap(out);
        Ok(plan.want > 1)
    }

    /// The packets the turn just ended handled: sets the next wait's batch.
    pub(crate) fn observe_turn(&mut self, packets: u32) {
        self.batch.observe(packets);
    }

    /// Whether waits form batches (configured, and the kernel can).
    pub(crate) fn batching(&self) -> bool {
        self.batch.enabled()
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        let mut cqes = core::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        for &(user_data, res, flags) in &cqes {
            self.complete(user_data, res, flags, out);
        }
        self.cqes = cqes;
    }

    fn complete(&mut self, user_data: u64, res: i32, flags: u32, out: &mut Vec<Completion>) {
        let Ok(index) = u32::try_from(user_data) else { return };
        let Some(kind) = self.mem.ops.kind(index) else { return };
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        match kind {
            OpKind::UdpRecv => {
                if !more {
                    self.mem.ops.remove(index);
                    self.udp_recv_live = false;
                }
                match bid {
                    Some(bid) if res >= 0 => self.datagram(bid, res.unsigned_abs() as usize, out),
                    Some(bid) => {
                        // A buffer came back with an error: it is ours, hand it straight back.
                        self.mem.udp.on_filled(bid);
                        out.push(Completion::ReceiveFailed);
                    }
                    None if matches!(errno(res), libc::ENOBUFS | libc::ECANCELED) || res >= 0 => {}
                    None => out.push(Completion::ReceiveFailed),
                }
            }
            OpKind::TunReadMulti | OpKind::TunRead => {
                if !more || kind == OpKind::TunRead {
                    self.mem.ops.remove(index);
                    self.tun_reads_live = self.tun_reads_live.saturating_sub(1);
                }
                match bid {
                    Some(bid) if self.mem.tun.on_filled(bid) => {
                        if res >= 0 {
                            self.tun_read_worked = true;
                            out.push(Completion::TunPacket { bid, len: res.unsigned_abs() as usize });
                        } else {
                            out.push(Completion::ReceiveFailed);
                        }
                    }
                    Some(_) => {}
                    None => self.tun_read_failed(kind, res, out),
                }
            }
            OpKind::Wake => {
                self.mem.ops.remove(index);
                self.wake_live = false;
                out.push(Completion::Wake);
            }
            OpKind::UdpSend | OpKind::TunWrite => {
                let datagrams = self.mem.ops.slot(index).map_or(1, |s| s.datagrams);
                let owned = match self.mem.ops.remove(index) {
                    Some(Op::UdpSend(buf) | Op::TunWrite(buf)) => self.unpin(buf),
                    _ => None,
                };
                out.push(if kind == OpKind::UdpSend {
                    Completion::Sent { result: transmitted(res), datagrams, owned }
                } else {
                    Completion::TunWritten { result: transmitted(res), owned }
                });
            }
        }
    }

    /// A TUN read ended without data. If multishot read was refused before
    /// it ever worked, fall back to a pool of one-shot reads.
    fn tun_read_failed(&mut self, kind: OpKind, res: i32, out: &mut Vec<Completion>) {
        let e = errno(res);
        if kind == OpKind::TunReadMulti
            && !self.tun_read_worked
            && matches!(e, libc::EINVAL | libc::EOPNOTSUPP | libc::EBADFD | libc::EBADF)
        {
            self.tun_style = TunReadStyle::ReadPool(TUN_READ_POOL);
        } else if res < 0 && !matches!(e, libc::ENOBUFS | libc::ECANCELED | libc::EAGAIN) {
            out.push(Completion::ReceiveFailed);
        }
    }

    fn datagram(&mut self, bid: u16, filled: usize, out: &mut Vec<Completion>) {
        let mem = &mut **self.mem;
        if !mem.udp.on_filled(bid) {
            return;
        }
        let Some(slot) = mem.udp.slot(bid, self.epoch) else { return };
        let base = slot.as_ptr() as usize;
        let parsed = slot.get(..filled).and_then(|b| RecvMsgOut::parse(b, &mem.recv_msg).ok());
        out.push(match parsed {
            Some(msg) => {
                let start = msg.payload_data().as_ptr() as usize - base;
                Completion::Datagram {
                    bid,
                    peer: parse_sockaddr(msg.name_data()),
                    payload: start..start + msg.payload_data().len(),
                    truncated: msg.is_payload_truncated(),
                    segment: crate::sys::gro_segment(msg.control_data()),
                }
            }
            None => Completion::ReceiveFailed,
        });
    }

    /// A UDP slot handed out in this batch, whole.
    pub(crate) fn udp_slot(&mut self, bid: u16) -> Option<&mut [u8]> {
        self.mem.udp.slot(bid, self.epoch)
    }

    /// A TUN slot handed out in this batch, whole (packet at the headroom offset).
    pub(crate) fn tun_slot(&mut self, bid: u16) -> Option<&mut [u8]> {
        self.mem.tun.slot(bid, self.epoch)
    }

    /// Address and length of `range` of `buf`, pinning pool slots.
    fn pin(&mut self, buf: &TxBuf, range: &Range<usize>) -> Result<(*const u8, u32), SubmitError> {
        let len = u32::try_from(range.end.saturating_sub(range.start)).map_err(|_| SubmitError::BadBuffer)?;
        let addr = match buf {
            TxBuf::Udp(bid) => self.mem.udp.attach(*bid, self.epoch, range),
            TxBuf::Tun(bid) => self.mem.tun.attach(*bid, self.epoch, range),
            TxBuf::Owned(v) => v.get(range.clone()).map(<[u8]>::as_ptr),
        };
        addr.map(|a| (a, len)).ok_or(SubmitError::BadBuffer)
    }

    /// Ends `buf`'s hold on its memory; an owned buffer is handed back.
    fn unpin(&mut self, buf: TxBuf) -> Option<Vec<u8>> {
        match buf {
            TxBuf::Udp(bid) => self.mem.udp.detach(bid),
            TxBuf::Tun(bid) => self.mem.tun.detach(bid),
            TxBuf::Owned(v) => return Some(v),
        }
        None
    }

    /// Sends `range` of `buf` to `peer`: one datagram, or with `segment`
    /// (UDP GSO) one datagram per `segment` bytes, the last possibly shorter.
    pub(crate) fn send_to(
        &mut self,
        buf: TxBuf,
        range: Range<usize>,
        peer: &RawSockAddr,
        segment: Option<u16>,
    ) -> Result<(), SubmitError> {
        let (addr, len) = self.pin(&buf, &range)?;
        let index = match self.mem.ops.insert(Op::UdpSend(buf)) {
            Ok(i) => i,
            Err(Op::UdpSend(buf)) => {
                self.unpin(buf);
                return Err(SubmitError::OpTableFull);
            }
            Err(_) => return Err(SubmitError::OpTableFull),
        };
        let Some(slot) = self.mem.ops.slot_mut(index) else { return Err(SubmitError::OpTableFull) };
        let peer = slot.peer.insert(*peer);
        let (name, name_len) = peer.as_ptr();
        slot.iov = libc::iovec { iov_base: addr.cast_mut().cast(), iov_len: len as usize };
        slot.msg.msg_name = name.cast_mut().cast();
        slot.msg.msg_namelen = name_len;
        slot.msg.msg_iov = &raw mut slot.iov;
        slot.msg.msg_iovlen = 1;
        slot.datagrams = crate::io::datagrams(len as usize, segment);
        match segment {
            Some(size) => {
                slot.cmsg = SegmentCmsg::new(size);
                slot.msg.msg_control = (&raw mut slot.cmsg).cast();
                slot.msg.msg_controllen = crate::sys::SEGMENT_SPACE;
            }
            None => {
                slot.msg.msg_control = core::ptr::null_mut();
                slot.msg.msg_controllen = 0;
            }
        }
        let entry = on_file!(self.udp_file, |f| opcode::SendMsg::new(f, &raw const slot.msg).build())
            .user_data(u64::from(index));
        // SAFETY: the msghdr, iovec and address live in the op slot, and the
        // bytes in the pinned slot or owned buffer moved into it; the slot is
        // freed only when this operation's completion is reaped.
        unsafe { self.push(entry) };
        Ok(())
    }

    /// Writes `range` of `buf` to the TUN queue as one packet.
    pub(crate) fn write_tun(&mut self, buf: TxBuf, range: Range<usize>) -> Result<(), SubmitError> {
        let (addr, len) = self.pin(&buf, &range)?;
        let region = match (&buf, self.fixed_buffers) {
            (TxBuf::Udp(_), true) => Some(UDP_REGION),
            (TxBuf::Tun(_), true) => Some(TUN_REGION),
            _ => None,
        };
        let index = match self.mem.ops.insert(Op::TunWrite(buf)) {
            Ok(i) => i,
            Err(Op::TunWrite(buf)) => {
                self.unpin(buf);
                return Err(SubmitError::OpTableFull);
            }
            Err(_) => return Err(SubmitError::OpTableFull),
        };
        let entry = match region {
            Some(r) => on_file!(self.tun_file, |f| opcode::WriteFixed::new(f, addr, len, r).build()),
            None => on_file!(self.tun_file, |f| opcode::Write::new(f, addr, len).build()),
        }
        .user_data(u64::from(index));
        // SAFETY: the bytes are in a pinned slot or an owned buffer held by
        // the op slot until this operation's completion is reaped.
        unsafe { self.push(entry) };
        Ok(())
    }

    /// Cancels everything and reaps until no operation is in flight.
    /// False if some were still in flight at the deadline.
    fn quiesce(&mut self) -> bool {
        // Queued entries never reached the kernel: just end their operations.
        for entry in core::mem::take(&mut self.backlog) {
            if let Ok(index) = u32::try_from(entry.get_user_data()) {
                if let Some(Op::UdpSend(buf) | Op::TunWrite(buf)) = self.mem.ops.remove(index) {
                    self.unpin(buf);
                }
            }
        }
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::any()).build().user_data(CANCEL_TOKEN);
        // SAFETY: a cancel request carries no user memory.
        let _ = unsafe { self.ring.submission().push(&cancel) };
        let deadline = Instant::now() + QUIESCE_LIMIT;
        let mut scratch = Vec::new();
        while self.mem.ops.live() > 0 && Instant::now() < deadline {
            if self.enter(1, Some(Duration::from_millis(50))).is_err() {
                break;
            }
            scratch.clear();
            self.reap(&mut scratch);
        }
        self.mem.ops.live() == 0
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.quiesce() {
            let _ = self.ring.submitter().unregister_buf_ring(UDP_GROUP);
            let _ = self.ring.submitter().unregister_buf_ring(TUN_GROUP);
            if self.fixed_buffers {
                let _ = self.ring.submitter().unregister_buffers();
            }
            // SAFETY: no operation is in flight and both buffer groups (and
            // the registered regions) are unregistered, so the kernel holds
            // no pointer into `mem`; it is
            // dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.mem) };
        }
        // Otherwise `mem` is leaked on purpose: closing the ring (next) lets
        // the kernel finish those operations into memory that stays valid.
    }
}
