//! Thin, checked wrappers over the system calls the data plane needs besides
//! io_uring: eventfd, UDP sockets in a `SO_REUSEPORT` group, and the TUN
//! device with its interface configuration. Every `unsafe` block sits here or
//! in `io::uring`, and says why it is sound.

mod cmsg;
mod eventfd;
mod mmsg;
mod sockaddr;
mod steering;
pub(crate) mod tun;
mod udp;

pub(crate) use cmsg::{gro_segment, SegmentCmsg, GRO_SPACE, SEGMENT_SPACE};
pub(crate) use eventfd::EventFd;
pub(crate) use mmsg::{
    read_eventfd, read_fd, write_fd, Epoll, Interest, Outgoing, Readiness, RecvBatch, SendBatch, MMSG_BATCH,
};
pub(crate) use sockaddr::{parse_sockaddr, RawSockAddr, SOCKADDR_MAX};
pub(crate) use steering::TunSteering;
pub use tun::TunOffloads;
pub(crate) use tun::{configure_interface, open_tun_queue, set_offloads};
pub(crate) use udp::{bind_reuseport, set_gro};

use std::io;

/// `Ok(n)` for a non-negative return, the thread's `errno` otherwise.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
