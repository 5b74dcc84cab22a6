//! The multi-queue TUN device (`IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE`) and
//! the interface configuration ioctls (address, netmask, MTU, up).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::check;

/// An `ifreq` naming `name`, every other byte zero.
fn ifreq_named(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name must be 1..=15 bytes, no NUL"));
    }
    // SAFETY: ifreq is plain old data (a name array and a union of integers,
    // sockaddrs and a pointer); all-zero bytes are a valid value of each.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(ifr)
}

/// `TUN_F_*` offload bits of `TUNSETOFFLOAD` (linux/if_tun.h).
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

/// Which offloads the kernel accepted on a vnet-header TUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunOffloads {
    /// Packets may arrive checksum-partial (`VIRTIO_NET_HDR_F_NEEDS_CSUM`).
    pub csum: bool,
    /// TCP super-packets (TSO) in both directions.
    pub tso: bool,
    /// UDP super-packets (USO, Linux 6.2+).
    pub uso: bool,
}

/// Opens one more queue of the TUN `name`; the first call creates the
/// interface. Queues of one interface spread flows by hash. With
/// `vnet_hdr`, every read and write starts with a `virtio_net_hdr`.
pub fn open_tun_queue(name: &str, vnet_hdr: bool) -> io::Result<OwnedFd> {
    let vnet = if vnet_hdr { libc::IFF_VNET_HDR } else { 0 };
    open_tun(name, libc::IFF_MULTI_QUEUE | vnet)
}

/// Creates the single-queue TUN `name` (plain packets, no vnet header). A
/// TUN of that name that is open already (another client's, a gateway's)
/// is refused with EBUSY rather than shared.
pub fn open_tun_exclusive(name: &str) -> io::Result<OwnedFd> {
    open_tun(name, 0)
}

fn open_tun(name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let mut ifr = ifreq_named(name)?;
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | flags) as libc::c_short;
    // SAFETY: the path is a NUL-terminated literal; open takes no other pointer.
    let fd = check(unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `ifr` is, live across the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, core::ptr::from_mut(&mut ifr)) })?;
    Ok(fd)
}

/// Asks for checksum, TSO and USO offloads on a vnet-header TUN queue (the
/// setting is the device's), stepping down when the kernel refuses: USO
/// needs Linux 6.2, and USO without CSUM is EINVAL. Returns what stuck;
/// all false means plain packets only, which the shard handles the same way.
pub(crate) fn set_offloads(queue: &OwnedFd) -> TunOffloads {
    let ask = |flags: libc::c_uint| {
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned
        // int of TUN_F_* bits); no memory is passed.
        check(unsafe { libc::ioctl(queue.as_raw_fd(), libc::TUNSETOFFLOAD, libc::c_ulong::from(flags)) }).is_ok()
    };
    let tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    if ask(tso | TUN_F_USO4 | TUN_F_USO6) {
        TunOffloads { csum: true, tso: true, uso: true }
    } else if ask(tso) {
        TunOffloads { csum: true, tso: true, uso: false }
    } else if ask(TUN_F_CSUM) {
        TunOffloads { csum: true, tso: false, uso: false }
    } else {
        TunOffloads::default()
    }
}

/// A `struct sockaddr` holding an AF_INET address (port 0), as the SIOCSIF*
/// address ioctls take it.
fn inet_sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let mut data = [0 as libc::c_char; 14];
    // sockaddr_in after the family: port (2 bytes, zero here), then the address.
    for (dst, src) in data.iter_mut().skip(2).zip(addr.octets()) {
        *dst = src as libc::c_char;
    }
    libc::sockaddr { sa_family: libc::AF_INET as libc::sa_family_t, sa_data: data }
}

fn netmask(prefix: u8) -> Ipv4Addr {
    match prefix {
        0 => Ipv4Addr::UNSPECIFIED,
        p => Ipv4Addr::from(u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

/// Turns IPv6 off on the interface before it comes up, so the kernel sends
/// no router solicitations or MLD reports into it: the gateway carries IPv4
/// only for now. A kernel without IPv6 has nothing to turn off.
fn disable_ipv6(name: &str) -> io::Result<()> {
    match std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), b"1") {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Sets the interface's IPv4 address and prefix (which installs the connected
/// route), its MTU, turns IPv6 off, and brings it up.
pub fn configure_interface(name: &str, addr: Ipv4Addr, prefix: u8, mtu: u16) -> io::Result<()> {
    disable_ipv6(name)?;
    // SAFETY: socket takes no pointers.
    let sock = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `sock` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let ioctl = |request: libc::c_ulong, ifr: &mut libc::ifreq| -> io::Result<()> {
        // SAFETY: every SIOC[GS]IF* request used here reads or writes one
        // `struct ifreq`, which `ifr` is, live and exclusive across the call.
        check(unsafe { libc::ioctl(sock.as_raw_fd(), request, core::ptr::from_mut(ifr)) }).map(drop)
    };

    let mut ifr = ifreq_named(name)?;
    ifr.ifr_ifru.ifru_addr = inet_sockaddr(addr);
    ioctl(libc::SIOCSIFADDR, &mut ifr)?;

    // After the address: setting it resets the mask to the classful default.
    let mut ifr = ifreq_named(name)?;
    ifr.ifr_ifru.ifru_netmask = inet_sockaddr(netmask(prefix));
    ioctl(libc::SIOCSIFNETMASK, &mut ifr)?;

    let mut ifr = ifreq_named(name)?;
    ifr.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
    ioctl(libc::SIOCSIFMTU, &mut ifr)?;

    let mut ifr = ifreq_named(name)?;
    ioctl(libc::SIOCGIFFLAGS, &mut ifr)?;
    // SAFETY: SIOCGIFFLAGS just filled the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    ioctl(libc::SIOCSIFFLAGS, &mut ifr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(netmask(32), Ipv4Addr::BROADCAST);
        assert!(ifreq_named("a-name-that-is-too-long").is_err());
        assert!(ifreq_named("").is_err());
    }
}
