//! UDP sockets in one `SO_REUSEPORT` group: the kernel spreads peers over
//! the shards by 4-tuple hash, so a peer's datagrams keep landing on the
//! shard that saw its ClientHello.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{check, RawSockAddr};

/// A non-blocking, close-on-exec UDP socket with `SO_REUSEPORT`, bound to `addr`.
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
    let raw = RawSockAddr::new(addr);
    let (ptr, len) = raw.as_ptr();
    // SAFETY: `ptr`/`len` describe `raw`, which lives across the call.
    check(unsafe { libc::bind(fd.as_raw_fd(), ptr, len) })?;
    Ok(UdpSocket::from(fd))
}
