//! Datagrams in batches: the relay's UDP sockets receive with UDP GRO (a
//! gateway's GSO batch to one device arrives as one buffer of equal-sized
//! segments) and forward the batch with UDP GSO (`UDP_SEGMENT`), so a burst
//! costs one receive and one send, not one of each per datagram. DTLS
//! records pass unmodified: the kernel splits the buffer back at the same
//! boundaries. Where the kernel refuses GSO the segments go one by one.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6,
    SockaddrStorage,
};

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
    let Some(seg) = segment.filter(|n| *n < data.len()) else {
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
}
