//! The generated traffic: IPv4/UDP probes carrying a sequence number and a
//! send time, and the parser that finds them again in what comes back.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Probe payload: sequence number, then nanoseconds since the run's epoch.
pub(crate) const PROBE_LEN: usize = 16;

/// An IPv4/UDP packet; UDP checksum 0 (allowed over IPv4, RFC 768).
pub(crate) fn ipv4_udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8], out: &mut Vec<u8>) {
    proto::ip::emit_ipv4_udp(SocketAddrV4::new(src, sport), SocketAddrV4::new(dst, dport), payload, out);
}

pub(crate) fn probe(seq: u64, sent_ns: u64) -> [u8; PROBE_LEN] {
    let mut p = [0u8; PROBE_LEN];
    let (a, b) = p.split_at_mut(8);
    a.copy_from_slice(&seq.to_be_bytes());
    b.copy_from_slice(&sent_ns.to_be_bytes());
    p
}

/// `(seq, sent_ns)` of a probe that came back from `from` to port `to_port`.
pub(crate) fn parse_probe(p: &[u8], from: Ipv4Addr, to_port: u16) -> Option<(u64, u64)> {
    let ip = proto::ip::Ipv4Packet::new_checked(p).ok()?;
    let (_, dport, udp_payload) = ip.udp()?;
    if ip.src() != from || dport != to_port {
        return None;
    }
    let payload = udp_payload.get(..PROBE_LEN)?;
    let seq = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    let sent = u64::from_be_bytes(payload.get(8..)?.try_into().ok()?);
    Some((seq, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_round_trips_through_an_echo() {
        let dev = Ipv4Addr::new(192, 168, 99, 7);
        let org = Ipv4Addr::new(10, 99, 0, 2);
        let mut out = Vec::new();
        ipv4_udp(dev, 40_000, org, 9000, &probe(42, 1234), &mut out);
        assert_eq!(proto::ip::internet_checksum(out.get(..20).unwrap_or_default()), 0);
        let mut echo = Vec::new();
        ipv4_udp(org, 9000, dev, 40_000, out.get(28..).unwrap_or_default(), &mut echo);
        assert_eq!(parse_probe(&echo, org, 40_000), Some((42, 1234)));
        assert_eq!(parse_probe(&echo, dev, 40_000), None);
    }
}
