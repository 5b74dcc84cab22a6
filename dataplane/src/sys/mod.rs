//! Thin, checked wrappers over the system calls the data plane needs besides
//! io_uring: eventfd, UDP sockets in a `SO_REUSEPORT` group, and the TUN
//! device with its interface configuration. Every `unsafe` block sits here or
//! in `uring`, and says why it is sound.

mod eventfd;
mod sockaddr;
mod tun;
mod udp;

pub(crate) use eventfd::EventFd;
pub(crate) use sockaddr::{parse_sockaddr, RawSockAddr, SOCKADDR_MAX};
pub(crate) use tun::{configure_interface, open_tun_queue};
pub(crate) use udp::bind_reuseport;

use std::io;

/// `Ok(n)` for a non-negative return, the thread's `errno` otherwise.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
