//! The few socket settings the generator needs beyond std and mio, through
//! nix's safe wrappers: buffer sizes, UDP GSO sends, the open-file limit.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{self, sockopt, ControlMessage, MsgFlags};

/// Asks for `bytes` of send and receive buffer, past `net.core.*mem_max`
/// when privileged (the `*BUFFORCE` options), else up to that maximum.
pub(crate) fn socket_buffers(fd: &impl AsFd, bytes: usize) {
    if socket::setsockopt(fd, sockopt::RcvBufForce, &bytes).is_err() {
        let _ = socket::setsockopt(fd, sockopt::RcvBuf, &bytes);
    }
    if socket::setsockopt(fd, sockopt::SndBufForce, &bytes).is_err() {
        let _ = socket::setsockopt(fd, sockopt::SndBuf, &bytes);
    }
}

/// Most segments one GSO send carries (the kernel's `UDP_MAX_SEGMENTS` is
/// 64 on older kernels, 128 on newer ones).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes one GSO send carries (an IPv4 datagram's length limit, less
/// the headers).
pub(crate) const GSO_MAX_BYTES: usize = 65_000;

/// Sends `buf` on the connected socket `fd` as datagrams of `segment`
/// bytes each (the last may be shorter) in one `sendmsg` with
/// `UDP_SEGMENT`; a single datagram goes without the control message.
pub(crate) fn send_segments(fd: &impl AsRawFd, buf: &[u8], segment: usize) -> std::io::Result<usize> {
    let iov = [IoSlice::new(buf)];
    let size = u16::try_from(segment).unwrap_or(u16::MAX);
    let gso = [ControlMessage::UdpGsoSegments(&size)];
    let cmsgs: &[ControlMessage<'_>] = if buf.len() > segment { &gso } else { &[] };
    socket::sendmsg::<()>(fd.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None).map_err(std::io::Error::from)
}

/// Raises this process's soft open-file limit to its hard limit (many
/// devices hold two sockets each); returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}
