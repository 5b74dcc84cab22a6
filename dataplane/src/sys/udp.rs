//! UDP sockets in one `SO_REUSEPORT` group: the kernel spreads peers over
//! the shards by 4-tuple hash, so a peer's datagrams keep landing on the
//! shard that saw its ClientHello.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{check, RawSockAddr};

/// Socket buffer size asked for, each direction.
const SOCKET_BUFFER: libc::c_int = 4 << 20;

fn set_int(fd: &OwnedFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value points at a live c_int and its exact size is passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            core::ptr::from_ref(&value).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// A non-blocking, close-on-exec UDP socket with `SO_REUSEPORT` and large
/// socket buffers, bound to `addr`.
pub(crate) fn bind_reuseport(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket takes no pointers.
    let fd = check(unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) })?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: the option value points at a live c_int and its exact size is passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            core::ptr::from_ref(&one).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    // A burst of datagrams arrives faster than one completion pass drains
    // it; the default 208 KiB receive buffer overflowed under a single
    // iperf3 stream. Best effort: FORCE needs CAP_NET_ADMIN, the plain
    // option is capped by net.core.rmem_max/wmem_max.
    for (force, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
        if set_int(&fd, force, SOCKET_BUFFER).is_err() {
            let _ = set_int(&fd, plain, SOCKET_BUFFER);
        }
    }
    let raw = RawSockAddr::new(addr);
    let (ptr, len) = raw.as_ptr();
    // SAFETY: `ptr`/`len` describe `raw`, which lives across the call.
    check(unsafe { libc::bind(fd.as_raw_fd(), ptr, len) })?;
    Ok(UdpSocket::from(fd))
}

/// Asks the kernel to coalesce consecutive datagrams of one flow into one
/// receive (`UDP_GRO`, Linux 5.0+), or not; the segment size then comes with
/// each receive as a cmsg. False if refused.
pub(crate) fn set_gro(socket: &UdpSocket, on: bool) -> bool {
    let one = libc::c_int::from(on);
    // SAFETY: the option value points at a live c_int and its exact size is passed.
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            core::ptr::from_ref(&one).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .is_ok()
}
