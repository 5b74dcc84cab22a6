//! Datagrams in batches. Toward devices, a flow port receives with UDP GRO
//! (a gateway's GSO batch to one device arrives as one buffer of
//! equal-sized segments) and forwards the batch with UDP GSO
//! (`UDP_SEGMENT`). Toward gateways, the devices' socket takes up to
//! [`BATCH`] datagrams per `recvmmsg` ([`RecvBatch`]), and a device's
//! consecutive datagrams of one size go on as one GSO send ([`Runs`]). So
//! a burst costs a receive and a send, not one of each per datagram. DTLS
//! records pass unmodified: the kernel splits the buffer back at the same
//! boundaries. Where the kernel refuses GSO the segments go one by one.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;
use nix::sys::socket::{
    recvmmsg, recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders,
    SockaddrIn, SockaddrIn6, SockaddrStorage,
};

/// Datagrams per `recvmmsg` on the devices' socket.
pub const BATCH: usize = 32;
/// The largest device datagram taken whole (a jumbo-frame record); larger
/// ones are truncated by the kernel and dropped.
pub const DEVICE_DATAGRAM: usize = 9216;
/// The most segments one GSO send carries (the kernel's UDP_MAX_SEGMENTS
/// is at least 64) and the most bytes.
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = 65_000;

/// Asks the kernel to coalesce a peer's consecutive datagrams on `s`.
pub fn enable_gro(s: &UdpSocket) -> bool {
    setsockopt(s, sockopt::UdpGroSegment, &true).is_ok()
}

/// A received buffer: `len` bytes from `from`, made of segments of
/// `segment` bytes (the last may be shorter) when the kernel coalesced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    pub segment: Option<usize>,
}

impl Received {
    /// How many datagrams the buffer holds.
    pub fn datagrams(&self) -> u64 {
        match self.segment {
            Some(s) if s > 0 => self.len.div_ceil(s) as u64,
            _ => 1,
        }
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// One receive; `WouldBlock` when nothing is queued.
pub fn recv(s: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    let mut space = nix::cmsg_space!(i32);
    let mut iov = [IoSliceMut::new(buf)];
    let msg =
        recvmsg::<SockaddrStorage>(s.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_DONTWAIT).map_err(errno)?;
    let from = msg.address.as_ref().and_then(to_std).ok_or_else(|| io::Error::other("datagram without an address"))?;
    let mut segment = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::UdpGroSegments(n) = c {
                segment = usize::try_from(n).ok().filter(|n| *n > 0 && *n < msg.bytes);
            }
        }
    }
    Ok(Received { len: msg.bytes, from, segment })
}

/// Sends `data` to `to`, split into `segment`-byte datagrams when given.
/// Returns how many datagrams left.
pub fn send(s: &UdpSocket, data: &[u8], segment: Option<usize>, to: SocketAddr) -> io::Result<u64> {
    let Some(seg) = segment.filter(|n| *n > 0 && *n < data.len()) else {
        s.send_to(data, to)?;
        return Ok(1);
    };
    if let Ok(size) = u16::try_from(seg) {
        let iov = [IoSlice::new(data)];
        let cmsg = [ControlMessage::UdpGsoSegments(&size)];
        let sent = match to {
            SocketAddr::V4(a) => sendmsg(s.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&SockaddrIn::from(a))),
            SocketAddr::V6(a) => sendmsg(s.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&SockaddrIn6::from(a))),
        };
        if sent.is_ok() {
            return Ok(data.len().div_ceil(seg) as u64);
        }
    }
    // GSO refused (an old kernel, a device without checksum offload):
    // the same datagrams, one send each.
    let mut n = 0;
    for chunk in data.chunks(seg) {
        s.send_to(chunk, to)?;
        n += 1;
    }
    Ok(n)
}

/// One `recvmmsg` worth of datagrams, in preallocated memory.
pub struct RecvBatch {
    headers: MultiHeaders<SockaddrStorage>,
    bufs: Box<[u8]>,
    /// (length, sender; `None`: truncated or without an address) per datagram.
    meta: [(usize, Option<SocketAddr>); BATCH],
    len: usize,
}

impl core::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecvBatch").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            headers: MultiHeaders::preallocate(BATCH, None),
            bufs: vec![0u8; BATCH * DEVICE_DATAGRAM].into_boxed_slice(),
            meta: [(0, None); BATCH],
            len: 0,
        }
    }
}

impl RecvBatch {
    /// Receives what is queued, up to [`BATCH`]; `WouldBlock` when nothing is.
    pub fn recv(&mut self, s: &UdpSocket) -> io::Result<usize> {
        let mut chunks = self.bufs.chunks_mut(DEVICE_DATAGRAM);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            core::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let res =
            recvmmsg(s.as_raw_fd(), &mut self.headers, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None).map_err(errno)?;
        let mut n = 0;
        for (slot, r) in self.meta.iter_mut().zip(res) {
            let whole = !r.flags.contains(MsgFlags::MSG_TRUNC);
            *slot = (r.bytes, r.address.as_ref().and_then(to_std).filter(|_| whole));
            n += 1;
        }
        self.len = n;
        Ok(n)
    }

    /// Datagram `i` of the last receive: its bytes and sender (`None`: truncated).
    pub fn get(&self, i: usize) -> Option<(&[u8], Option<SocketAddr>)> {
        let (len, from) = *self.meta.get(i).filter(|_| i < self.len)?;
        let start = i * DEVICE_DATAGRAM;
        Some((self.bufs.get(start..start + len.min(DEVICE_DATAGRAM))?, from))
    }
}

/// Joins consecutive datagrams of one sender into buffers a GSO send can
/// carry: every segment the size of the first, the last possibly shorter.
#[derive(Debug)]
pub struct Runs {
    buf: Vec<u8>,
    from: Option<SocketAddr>,
    segment: usize,
    count: usize,
    /// A shorter datagram ended the run: nothing more may follow it.
    closed: bool,
}

impl Default for Runs {
    fn default() -> Self {
        Self {
            buf: Vec::with_capacity(GSO_MAX_BYTES + DEVICE_DATAGRAM),
            from: None,
            segment: 0,
            count: 0,
            closed: false,
        }
    }
}

impl Runs {
    /// Adds `d` from `from` to the run if it continues it; `false` means
    /// the caller must [`take`](Self::take) the run first, then push again.
    pub fn push(&mut self, from: SocketAddr, d: &[u8]) -> bool {
        if self.count == 0 {
            self.from = Some(from);
            self.segment = d.len();
            self.closed = false;
        } else if self.from != Some(from)
            || self.closed
            || d.len() > self.segment
            || self.count >= GSO_MAX_SEGMENTS
            || self.buf.len() + d.len() > GSO_MAX_BYTES
        {
            return false;
        }
        if d.len() < self.segment {
            self.closed = true;
        }
        self.buf.extend_from_slice(d);
        self.count += 1;
        true
    }

    /// The run so far, or `None`: its bytes are swapped into `out` (whose
    /// old buffer the next run fills), so no byte is copied twice.
    pub fn take(&mut self, out: &mut Vec<u8>) -> Option<Received> {
        let from = self.from.filter(|_| self.count > 0)?;
        let r = Received { len: self.buf.len(), from, segment: (self.count > 1).then_some(self.segment) };
        std::mem::swap(&mut self.buf, out);
        self.buf.clear();
        self.count = 0;
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gso_batch_arrives_as_its_datagrams_or_one_gro_buffer() {
        let a = UdpSocket::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let gro = enable_gro(&b);
        let to = b.local_addr().expect("addr");
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let sent = send(&a, &data, Some(1200), to).expect("send");
        assert_eq!(sent, 3);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut buf = vec![0u8; 65_535];
        let mut got = Vec::new();
        let mut datagrams = 0;
        while let Ok(r) = recv(&b, &mut buf) {
            assert_eq!(r.from, a.local_addr().expect("addr"));
            datagrams += r.datagrams();
            got.extend_from_slice(&buf[..r.len]);
        }
        assert_eq!(got, data, "every byte, in order (GRO {gro})");
        assert_eq!(datagrams, 3);
    }

    #[test]
    fn runs_follow_the_gso_rule() {
        let a: SocketAddr = "10.0.0.1:1".parse().expect("addr");
        let b: SocketAddr = "10.0.0.2:1".parse().expect("addr");
        let mut runs = Runs::default();
        let mut out = Vec::new();
        assert!(runs.push(a, &[1; 100]) && runs.push(a, &[2; 100]) && runs.push(a, &[3; 40]));
        assert!(!runs.push(a, &[4; 40]), "nothing after a shorter one");
        let r = runs.take(&mut out).expect("a run");
        assert_eq!((r.len, r.from, r.segment, r.datagrams()), (240, a, Some(100), 3));
        assert_eq!(&out[200..], &[3; 40]);
        assert!(runs.push(a, &[5; 50]));
        assert!(!runs.push(b, &[5; 50]), "another sender");
        assert!(!runs.push(a, &[5; 60]), "a longer one");
        let r = runs.take(&mut out).expect("a run");
        assert_eq!((r.len, r.segment), (50, None), "one datagram needs no GSO");
        assert!(runs.take(&mut out).is_none());
        // Empty datagrams never make a zero segment size.
        assert!(runs.push(a, &[]) && runs.push(a, &[]));
        let r = runs.take(&mut out).expect("a run");
        let sock = UdpSocket::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        assert_eq!(send(&sock, &out[..r.len], r.segment, sock.local_addr().expect("addr")).expect("send"), 1);
    }

    #[test]
    fn a_batch_takes_many_datagrams_in_one_call() {
        let a = UdpSocket::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let to = b.local_addr().expect("addr");
        for i in 0..40u8 {
            a.send_to(&[i; 77], to).expect("send");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&b).expect("recv"), BATCH);
        let (d, from) = batch.get(31).expect("datagram 31");
        assert_eq!((d, from), (&[31u8; 77][..], Some(a.local_addr().expect("addr"))));
        assert!(batch.get(32).is_none());
        assert_eq!(batch.recv(&b).expect("recv"), 8);
        assert_eq!(batch.get(7).map(|(d, _)| d[0]), Some(39));
    }
}
