//! Socket addresses in the kernel's layout, both ways.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A `sockaddr_in`/`sockaddr_in6` built from a [`SocketAddr`], ready for a
/// `msghdr` or `bind`.
#[derive(Clone, Copy)]
pub(crate) enum RawSockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl core::fmt::Debug for RawSockAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::V4(_) => "RawSockAddr::V4",
            Self::V6(_) => "RawSockAddr::V6",
        })
    }
}

impl RawSockAddr {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => Self::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => Self::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo().to_be(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            }),
        }
    }

    /// Pointer and length for the kernel; valid while `self` is.
    pub(crate) fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            Self::V4(a) => {
                (core::ptr::from_ref(a).cast(), core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
            }
            Self::V6(a) => {
                (core::ptr::from_ref(a).cast(), core::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
            }
        }
    }
}

/// Largest address a datagram's source can be: room reserved per received message.
pub(crate) const SOCKADDR_MAX: usize = core::mem::size_of::<libc::sockaddr_in6>();

/// Reads a `sockaddr_in`/`sockaddr_in6` the kernel wrote as bytes (the name
/// part of a multishot `recvmsg` buffer).
pub(crate) fn parse_sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    if i32::from(family) == libc::AF_INET {
        let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
        Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    } else if i32::from(family) == libc::AF_INET6 {
        let flow = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
        let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
        let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
        Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(raw: &RawSockAddr) -> Vec<u8> {
        match raw {
            RawSockAddr::V4(a) => {
                let mut v = vec![0u8; 16];
                v[0..2].copy_from_slice(&a.sin_family.to_ne_bytes());
                v[2..4].copy_from_slice(&a.sin_port.to_ne_bytes());
                v[4..8].copy_from_slice(&a.sin_addr.s_addr.to_ne_bytes());
                v
            }
            RawSockAddr::V6(a) => {
                let mut v = vec![0u8; 28];
                v[0..2].copy_from_slice(&a.sin6_family.to_ne_bytes());
                v[2..4].copy_from_slice(&a.sin6_port.to_ne_bytes());
                v[4..8].copy_from_slice(&a.sin6_flowinfo.to_ne_bytes());
                v[8..24].copy_from_slice(&a.sin6_addr.s6_addr);
                v[24..28].copy_from_slice(&a.sin6_scope_id.to_ne_bytes());
                v
            }
        }
    }

    #[test]
    fn round_trip() {
        for a in ["127.0.0.1:4433", "[fd00::5]:443", "0.0.0.0:0"] {
            let addr: SocketAddr = a.parse().expect("addr");
            assert_eq!(parse_sockaddr(&bytes_of(&RawSockAddr::new(addr))), Some(addr));
        }
        assert_eq!(parse_sockaddr(&[0u8; 3]), None);
        assert_eq!(parse_sockaddr(&[0u8; 16]), None);
    }
}
