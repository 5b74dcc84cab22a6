//! Readiness-style I/O for the epoll engine: an epoll set, `recvmmsg` and
//! `sendmmsg` over message arrays allocated once (each message with its own
//! address and control data), and plain `read`/`write` for the TUN queue and
//! the doorbell eventfd.
//!
//! Every wrapper takes slices and checks them, so the engine built on top
//! (`crate::io::readiness`) needs no `unsafe`. The file descriptors are plain
//! `RawFd`s, as the io_uring engine takes them: the shard owns them and
//! outlives its engine, and a stale number can only make a call fail, not
//! touch memory.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::cmsg::{gro_segment, SegmentCmsg, SEGMENT_SPACE};
use super::{check, parse_sockaddr, RawSockAddr, SOCKADDR_MAX};

/// Messages one `recvmmsg` or `sendmmsg` call carries at most.
pub(crate) const MMSG_BATCH: usize = 64;

/// Control data room per received message: a `UDP_GRO` cmsg takes
/// `CMSG_SPACE(4)` = 24 bytes; the rest is slack so that one unexpected
/// cmsg in front of it does not push it out (`MSG_CTRUNC`).
const RECV_CONTROL: usize = 64;

/// What an fd is watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Interest {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

impl Interest {
    /// Level-triggered: an fd left unread stays ready, which is what lets
    /// the engine stop draining at a per-turn bound and pick up the rest on
    /// the next turn without losing an edge.
    fn bits(self) -> u32 {
        let mut bits = 0;
        if self.readable {
            bits |= libc::EPOLLIN as u32;
        }
        if self.writable {
            bits |= libc::EPOLLOUT as u32;
        }
        bits
    }
}

/// One fd's state as `epoll_wait` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Readiness {
    pub(crate) token: u64,
    /// Data to read, or an error or hang-up, which the next read reports.
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

/// An epoll instance with room for the events of one wait.
pub(crate) struct Epoll {
    fd: OwnedFd,
    events: Box<[libc::epoll_event]>,
    ready: usize,
    /// `epoll_pwait2` works here (cleared on the first ENOSYS).
    precise: bool,
}

impl core::fmt::Debug for Epoll {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Epoll").field("fd", &self.fd).field("ready", &self.ready).finish_non_exhaustive()
    }
}

/// `epoll_wait` counts milliseconds: a non-zero timeout is rounded *up*
/// (a 100 µs wait sleeps 1 ms instead of spinning through zero-timeout
/// polls). Used only where the kernel lacks `epoll_pwait2` (before 5.11).
fn timeout_ms(timeout: Duration) -> libc::c_int {
    if timeout.is_zero() {
        return 0;
    }
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
}

/// The timeout as `epoll_pwait2` takes it, to the nanosecond.
fn timespec(timeout: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    }
}

impl Epoll {
    /// An epoll set that reports up to `capacity` fds per wait.
    pub(crate) fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; the flag is a valid constant.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)].into_boxed_slice();
        Ok(Self { fd, events, ready: 0, precise: true })
    }

    fn control(&self, op: libc::c_int, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event { events: interest.bits(), u64: token };
        // SAFETY: epoll_ctl reads one epoll_event, which `event` is, live across the call.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &raw mut event) }).map(drop)
    }

    /// Watches `fd`; its events come back tagged with `token`.
    pub(crate) fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    /// Changes what `fd` is watched for. No interest at all still reports
    /// errors and hang-ups (the kernel always does).
    pub(crate) fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Waits up to `timeout` for at least one watched fd to be ready;
    /// returns how many are (0: timed out or interrupted by a signal).
    /// With `epoll_pwait2` (5.11+) the timeout is kept to the nanosecond;
    /// before, it is rounded up to a millisecond.
    pub(crate) fn wait(&mut self, timeout: Duration) -> io::Result<usize> {
        self.ready = 0;
        let max = libc::c_int::try_from(self.events.len()).unwrap_or(libc::c_int::MAX);
        let mut n = -1;
        if self.precise {
            let ts = timespec(timeout);
            // SAFETY: the kernel writes at most `max` events into
            // `self.events`, which holds at least that many and is
            // exclusively borrowed here; it reads one timespec, live across
            // the call; a null sigmask leaves the mask alone.
            n = unsafe {
                libc::epoll_pwait2(self.fd.as_raw_fd(), self.events.as_mut_ptr(), max, &raw const ts, core::ptr::null())
            };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.precise = false;
            }
        }
        if !self.precise {
            // SAFETY: as above, without the timespec.
            n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), max, timeout_ms(timeout)) };
        }
        match check(n) {
            Ok(n) => {
                self.ready = usize::try_from(n).unwrap_or(0).min(self.events.len());
                Ok(self.ready)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The fds the last [`wait`](Self::wait) found ready.
    pub(crate) fn ready(&self) -> impl Iterator<Item = Readiness> + '_ {
        self.events.iter().take(self.ready).map(|event| {
            // Copies out of a packed struct (x86_64's epoll_event), no references to its fields.
            let bits = event.events;
            let token = event.u64;
            let trouble = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
            Readiness {
                token,
                readable: bits & (libc::EPOLLIN as u32 | trouble) != 0,
                writable: bits & libc::EPOLLOUT as u32 != 0,
            }
        })
    }
}

fn empty_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain data (pointers and integers); all-zero is a
    // valid, empty message.
    unsafe { core::mem::zeroed() }
}

fn empty_iovec() -> libc::iovec {
    libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 }
}

/// Control data storage aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct RecvControl([u8; RECV_CONTROL]);

/// One datagram a [`RecvBatch::recv`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// Bytes written into the message's region.
    pub(crate) len: usize,
    pub(crate) peer: Option<SocketAddr>,
    /// The datagram was longer than its region (`MSG_TRUNC`); the rest is lost.
    pub(crate) truncated: bool,
    /// `UDP_GRO` coalesced datagrams of this size into the region.
    pub(crate) gro_segment: Option<u16>,
}

/// The `mmsghdr`s, iovecs, source-address and control buffers of one
/// `recvmmsg`, allocated once so that a receive allocates nothing.
pub(crate) struct RecvBatch {
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    names: Box<[[u8; SOCKADDR_MAX]]>,
    control: Box<[RecvControl]>,
    /// Messages the last call filled.
    filled: usize,
}

impl core::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecvBatch").field("filled", &self.filled).finish_non_exhaustive()
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            hdrs: (0..MMSG_BATCH).map(|_| empty_mmsghdr()).collect(),
            iovs: (0..MMSG_BATCH).map(|_| empty_iovec()).collect(),
            names: vec![[0; SOCKADDR_MAX]; MMSG_BATCH].into_boxed_slice(),
            control: vec![RecvControl([0; RECV_CONTROL]); MMSG_BATCH].into_boxed_slice(),
            filled: 0,
        }
    }
}

impl RecvBatch {
    /// Receives up to [`MMSG_BATCH`] datagrams from `fd` without blocking,
    /// the i-th into `arena[regions[i]]` (regions past the batch size are
    /// not used). Returns how many arrived; [`received`](Self::received)
    /// describes each. `WouldBlock` when none was waiting.
    ///
    /// A region outside `arena` is refused before anything is received.
    /// Overlapping regions only garble the data (the kernel writes through
    /// the one exclusive borrow of `arena`).
    pub(crate) fn recv(
        &mut self,
        fd: RawFd,
        arena: &mut [u8],
        regions: impl IntoIterator<Item = Range<usize>>,
    ) -> io::Result<usize> {
        self.filled = 0;
        let arena_len = arena.len();
        let base = arena.as_mut_ptr();
        let mut count = 0usize;
        let per_message = self.iovs.iter_mut().zip(self.names.iter_mut()).zip(self.control.iter_mut());
        for ((region, hdr), ((iov, name), control)) in regions.into_iter().zip(self.hdrs.iter_mut()).zip(per_message) {
            if region.start > region.end || region.end > arena_len {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "receive region outside the arena"));
            }
            *iov = libc::iovec { iov_base: base.wrapping_add(region.start).cast(), iov_len: region.end - region.start };
            let msg = &mut hdr.msg_hdr;
            msg.msg_name = name.as_mut_ptr().cast();
            msg.msg_namelen = SOCKADDR_MAX as libc::socklen_t;
            msg.msg_iov = core::ptr::from_mut(iov);
            msg.msg_iovlen = 1;
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = RECV_CONTROL as _;
            msg.msg_flags = 0;
            hdr.msg_len = 0;
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        // SAFETY: the first `count` headers point at their own iovec, name
        // and control buffers in `self` (sizes as given in the headers) and
        // each iovec at a range of `arena` checked above; all of it is
        // exclusively borrowed across the call, and the kernel writes only
        // within those lengths. No timeout pointer is passed.
        let n = unsafe {
            libc::recvmmsg(fd, self.hdrs.as_mut_ptr(), count as libc::c_uint, libc::MSG_DONTWAIT, core::ptr::null_mut())
        };
        self.filled = usize::try_from(check(n)?).unwrap_or(0).min(count);
        Ok(self.filled)
    }

    /// The `i`-th datagram of the last [`recv`](Self::recv).
    pub(crate) fn received(&self, i: usize) -> Option<Received> {
        if i >= self.filled {
            return None;
        }
        let hdr = self.hdrs.get(i)?;
        let name_len = (hdr.msg_hdr.msg_namelen as usize).min(SOCKADDR_MAX);
        let control_len = hdr.msg_hdr.msg_controllen.min(RECV_CONTROL);
        let iov_len = self.iovs.get(i).map_or(0, |v| v.iov_len);
        Some(Received {
            len: (hdr.msg_len as usize).min(iov_len),
            peer: self.names.get(i)?.get(..name_len).and_then(parse_sockaddr),
            truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            gro_segment: self.control.get(i)?.0.get(..control_len).and_then(gro_segment),
        })
    }
}

/// One datagram to send (or with `segment`, UDP GSO: one per `segment`
/// bytes of `data`, the last possibly shorter).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) peer: &'a RawSockAddr,
    pub(crate) segment: Option<u16>,
}

/// The `mmsghdr`s, iovecs and `UDP_SEGMENT` cmsgs of one `sendmmsg`,
/// allocated once.
pub(crate) struct SendBatch {
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    control: Box<[SegmentCmsg]>,
    /// Messages the last call sent.
    sent: usize,
}

impl core::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SendBatch").field("sent", &self.sent).finish_non_exhaustive()
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        let cmsg = SegmentCmsg::new(0);
        Self {
            hdrs: (0..MMSG_BATCH).map(|_| empty_mmsghdr()).collect(),
            iovs: (0..MMSG_BATCH).map(|_| empty_iovec()).collect(),
            control: vec![cmsg; MMSG_BATCH].into_boxed_slice(),
            sent: 0,
        }
    }
}

impl SendBatch {
    /// Sends up to [`MMSG_BATCH`] of `messages` on `fd` without blocking.
    /// Returns how many the kernel took, in order (fewer than offered: the
    /// next one failed, and sending it alone reports why); `WouldBlock`
    /// when the socket buffer had no room for the first. `Ok(0)` only when
    /// `messages` is empty.
    pub(crate) fn send<'a>(
        &mut self,
        fd: RawFd,
        messages: impl IntoIterator<Item = Outgoing<'a>>,
    ) -> io::Result<usize> {
        self.sent = 0;
        let mut count = 0usize;
        let per_message = self.iovs.iter_mut().zip(self.control.iter_mut());
        for ((out, hdr), (iov, control)) in messages.into_iter().zip(self.hdrs.iter_mut()).zip(per_message) {
            // The kernel only reads through these pointers (const → mut is
            // the C API's spelling, not a write).
            *iov = libc::iovec { iov_base: out.data.as_ptr().cast_mut().cast(), iov_len: out.data.len() };
            let (name, name_len) = out.peer.as_ptr();
            let msg = &mut hdr.msg_hdr;
            msg.msg_name = name.cast_mut().cast();
            msg.msg_namelen = name_len;
            msg.msg_iov = core::ptr::from_mut(iov);
            msg.msg_iovlen = 1;
            msg.msg_flags = 0;
            // A zero size would mean "no segmentation" to the kernel anyway.
            match out.segment.filter(|&s| s > 0) {
                Some(size) => {
                    *control = SegmentCmsg::new(size);
                    msg.msg_control = core::ptr::from_mut(control).cast();
                    msg.msg_controllen = SEGMENT_SPACE as _;
                }
                None => {
                    msg.msg_control = core::ptr::null_mut();
                    msg.msg_controllen = 0;
                }
            }
            hdr.msg_len = 0;
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        // SAFETY: the first `count` headers point at their own iovec and
        // cmsg in `self` (exclusively borrowed) and at data and peer
        // addresses borrowed for 'a, which outlives this call; the kernel
        // only reads those, and writes nothing but each header's `msg_len`.
        let n = unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr(), count as libc::c_uint, libc::MSG_DONTWAIT) };
        self.sent = usize::try_from(check(n)?).unwrap_or(0).min(count);
        Ok(self.sent)
    }

    /// Bytes the `i`-th message of the last [`send`](Self::send) put on
    /// the wire (all its segments together).
    pub(crate) fn sent_len(&self, i: usize) -> Option<usize> {
        if i >= self.sent {
            return None;
        }
        self.hdrs.get(i).map(|h| h.msg_len as usize)
    }
}

/// `read(2)` into `buf`: one TUN packet, or an eventfd counter.
pub(crate) fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`,
    // exclusively borrowed across the call.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n.unsigned_abs())
}

/// `write(2)` of `buf`: one TUN packet.
pub(crate) fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`, borrowed across the call.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n.unsigned_abs())
}

/// Reads (and so resets) an eventfd's counter; `WouldBlock` when it was zero.
pub(crate) fn read_eventfd(fd: RawFd) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    match read_fd(fd, &mut buf)? {
        8 => Ok(u64::from_ne_bytes(buf)),
        _ => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short eventfd read")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_micros(100)), 1);
        assert_eq!(timeout_ms(Duration::from_millis(7)), 7);
        assert_eq!(timeout_ms(Duration::from_secs(u64::MAX)), libc::c_int::MAX);
    }
}
