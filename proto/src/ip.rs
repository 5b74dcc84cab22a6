//! IPv4 header view (RFC 791) — just what the gateway's policy needs.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Why bytes are not an IPv4 packet we forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpError {
    /// Shorter than the header or than its total length.
    Truncated,
    /// Not version 4 (IPv6 is not carried by this gateway yet).
    NotIpv4,
    /// IHL below 5 or beyond the packet.
    BadHeaderLength,
}

/// IP protocol numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const ICMP: Self = Self(1);
    pub const TCP: Self = Self(6);
    pub const UDP: Self = Self(17);
}

/// A checked view over an IPv4 packet at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks version, header length and total length against the buffer.
    pub fn new_checked(buf: T) -> Result<Self, IpError> {
        let b = buf.as_ref();
        let first = *b.first().ok_or(IpError::Truncated)?;
        if first >> 4 != 4 {
            return Err(IpError::NotIpv4);
        }
        let ihl = usize::from(first & 0x0f) * 4;
        if ihl < 20 {
            return Err(IpError::BadHeaderLength);
        }
        let total = b
            .get(2..4)
            .and_then(|t| <[u8; 2]>::try_from(t).ok())
            .map(|t| usize::from(u16::from_be_bytes(t)))
            .ok_or(IpError::Truncated)?;
        if total < ihl {
            return Err(IpError::BadHeaderLength);
        }
        if b.len() < total {
            return Err(IpError::Truncated);
        }
        Ok(Self { buf })
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    fn addr(&self, at: usize) -> Ipv4Addr {
        let mut a = [0u8; 4];
        if let Some(s) = self.b().get(at..at + 4) {
            a.copy_from_slice(s);
        }
        Ipv4Addr::from(a)
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.b().first().copied().unwrap_or(0) & 0x0f) * 4
    }

    /// Total length from the header (≤ the buffer length).
    pub fn total_len(&self) -> usize {
        self.b().get(2..4).and_then(|t| <[u8; 2]>::try_from(t).ok()).map_or(0, |t| usize::from(u16::from_be_bytes(t)))
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.b().get(9).copied().unwrap_or(0))
    }

    pub fn src(&self) -> Ipv4Addr {
        self.addr(12)
    }

    pub fn dst(&self) -> Ipv4Addr {
        self.addr(16)
    }

    /// The transport header and payload.
    pub fn payload(&self) -> &[u8] {
        self.b().get(self.header_len()..self.total_len()).unwrap_or_default()
    }
}

impl<'a> Ipv4Packet<&'a [u8]> {
    /// `(source port, destination port, payload)` of a UDP packet, borrowed
    /// from the packet's buffer; `None` for other protocols or a UDP header
    /// that does not fit.
    pub fn udp(&self) -> Option<(u16, u16, &'a [u8])> {
        if self.protocol() != IpProtocol::UDP {
            return None;
        }
        let u: &'a [u8] = self.buf.get(self.header_len()..self.total_len())?;
        let port = |at: usize| u.get(at..at + 2).and_then(|p| <[u8; 2]>::try_from(p).ok()).map(u16::from_be_bytes);
        Some((port(0)?, port(2)?, u.get(8..)?))
    }
}

/// Reads the destination of an IPv4 packet without a full check: the TUN
/// read path's cheapest possible classification.
pub fn ipv4_dst(packet: &[u8]) -> Option<Ipv4Addr> {
    let s: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
    (packet.first()? >> 4 == 4).then(|| Ipv4Addr::from(s))
}

/// The Internet checksum (RFC 1071) over `bytes`: the one's complement of
/// the one's-complement sum of 16-bit words (an odd last byte is padded).
/// Summed eight bytes at a time by [`crate::offload::checksum`].
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    use crate::offload::checksum::{fold, sum};
    !fold(sum(bytes, 0))
}

/// Writes an IPv4/UDP packet into `out` (cleared first): a 20-byte header
/// with its checksum, DF set, TTL 64, then UDP with its checksum, as a
/// device's stack sends it (and as the gateway's coalescer requires: a
/// datagram without a checksum is written alone). What generators and tests
/// put into the tunnel.
pub fn emit_ipv4_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8], out: &mut Vec<u8>) {
    let udp_len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
    let total = udp_len.saturating_add(20);
    out.clear();
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0x40, 0, 64, IpProtocol::UDP.0, 0, 0]);
    out.extend_from_slice(&src.ip().octets());
    out.extend_from_slice(&dst.ip().octets());
    let header = internet_checksum(out.get(..20).unwrap_or_default());
    if let Some(c) = out.get_mut(10..12) {
        c.copy_from_slice(&header.to_be_bytes());
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    use crate::offload::checksum::{fold, pseudo_header_v4, sum};
    let c = !fold(sum(out.get(20..).unwrap_or_default(), pseudo_header_v4(*src.ip(), *dst.ip(), 17, udp_len)));
    // RFC 768: a computed zero is sent as all ones (zero means "none").
    let c = if c == 0 { 0xffff } else { c };
    if let Some(field) = out.get_mut(26..28) {
        field.copy_from_slice(&c.to_be_bytes());
    }
}

/// An IPv4 network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then_some(Self { addr, prefix })
    }

    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    fn mask_bits(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_bits())
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask_bits() == u32::from(self.addr) & self.mask_bits()
    }
}

impl core::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl core::str::FromStr for Ipv4Net {
    type Err = &'static str;

    /// `a.b.c.d/len`, or a bare address as /32.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a.trim().parse().map_err(|_| "expected an IPv4 address like 10.0.0.0/24")?;
        let prefix: u8 = p.trim().parse().map_err(|_| "expected a prefix length 0..=32 after '/'")?;
        Self::new(addr, prefix).ok_or("prefix length must be 0..=32")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_header_fields() {
        // 84-byte ICMP echo from 192.168.99.121 to 10.99.0.1.
        let mut p = vec![0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 192, 168, 99, 121, 10, 99, 0, 1];
        p.resize(84, 0);
        let ip = Ipv4Packet::new_checked(&p[..]).expect("valid");
        assert_eq!(ip.src(), Ipv4Addr::new(192, 168, 99, 121));
        assert_eq!(ip.dst(), Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(ip.protocol(), IpProtocol::ICMP);
        assert_eq!(ip.payload().len(), 64);
        assert_eq!(ipv4_dst(&p), Some(Ipv4Addr::new(10, 99, 0, 1)));
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert_eq!(Ipv4Packet::new_checked(&[][..]).err(), Some(IpError::Truncated));
        assert_eq!(Ipv4Packet::new_checked(&[0x60; 40][..]).err(), Some(IpError::NotIpv4));
        assert_eq!(Ipv4Packet::new_checked(&[0x44; 40][..]).err(), Some(IpError::BadHeaderLength));
        let mut p = [0u8; 20];
        p[0] = 0x45;
        p[3] = 40;
        assert_eq!(Ipv4Packet::new_checked(&p[..]).err(), Some(IpError::Truncated));
    }

    #[test]
    fn emitted_udp_packets_parse_and_checksum_to_zero() {
        let mut p = Vec::new();
        let src = SocketAddrV4::new(Ipv4Addr::new(192, 168, 99, 2), 4000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 2), 9000);
        emit_ipv4_udp(src, dst, b"hello", &mut p);
        let ip = Ipv4Packet::new_checked(&p[..]).expect("valid");
        assert_eq!((ip.src(), ip.dst(), ip.protocol()), (*src.ip(), *dst.ip(), IpProtocol::UDP));
        assert_eq!(ip.payload().len(), 8 + 5);
        assert_eq!(ip.udp(), Some((4000, 9000, &b"hello"[..])));
        // A header with its checksum in place sums to zero (RFC 1071), and
        // so does the UDP datagram with its pseudo-header.
        assert_eq!(internet_checksum(&p[..20]), 0);
        use crate::offload::checksum::{fold, pseudo_header_v4, sum};
        assert_ne!(&p[26..28], &[0, 0]);
        assert_eq!(fold(sum(&p[20..], pseudo_header_v4(*src.ip(), *dst.ip(), 17, 13))), 0xffff);
    }

    #[test]
    fn networks() {
        let n: Ipv4Net = "10.99.0.0/16".parse().expect("net");
        assert!(n.contains(Ipv4Addr::new(10, 99, 200, 1)));
        assert!(!n.contains(Ipv4Addr::new(10, 98, 0, 1)));
        assert_eq!(n.mask(), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!("0.0.0.0/0".parse::<Ipv4Net>().map(|n| n.contains(Ipv4Addr::BROADCAST)), Ok(true));
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
    }
}
