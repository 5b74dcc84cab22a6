//! The generated traffic and the parsers that find it again.
//!
//! Three UDP payloads travel through the tunnel to `corridor bench reflect`:
//!
//! * a **probe** (`udp-echo`): sequence number and send time, 16 bytes, echoed
//!   back unchanged;
//! * a **bulk** datagram (`bulk`): `CRBK`, run id, sequence number, padding to
//!   the packet size; counted by the reflector, never echoed;
//! * a **query** (`bulk`, after sending): `CRBQ` and the run id; answered with
//!   `CRBR` and a JSON object of what the reflector counted for that run.
//!
//! A probe's first four bytes are the high half of its sequence number, zero
//! for any run shorter than 2³² probes, so it never looks like the other two.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Probe payload: sequence number, then nanoseconds since the run's epoch.
pub(crate) const PROBE_LEN: usize = 16;

pub(crate) const BULK_MAGIC: &[u8; 4] = b"CRBK";
pub(crate) const QUERY_MAGIC: &[u8; 4] = b"CRBQ";
pub(crate) const REPLY_MAGIC: &[u8; 4] = b"CRBR";
/// Bulk payload header: magic, run id (u32), sequence number (u64).
pub(crate) const BULK_HEADER: usize = 16;
/// IPv4 (20) + UDP (8) headers in front of every payload.
pub(crate) const IP_UDP_HEADERS: usize = 28;

/// An IPv4/UDP packet with its UDP checksum, as a device sends it.
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
    let payload = udp_payload_from(p, from, to_port)?.get(..PROBE_LEN)?;
    let seq = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    let sent = u64::from_be_bytes(payload.get(8..)?.try_into().ok()?);
    Some((seq, sent))
}

/// A bulk payload for an IP packet of `ip_len` bytes (at least the headers
/// plus [`BULK_HEADER`]), written into `out` (cleared first).
pub(crate) fn bulk(run: u32, seq: u64, ip_len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(BULK_MAGIC);
    out.extend_from_slice(&run.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.resize(ip_len.saturating_sub(IP_UDP_HEADERS).max(BULK_HEADER), 0);
}

pub(crate) fn query(run: u32) -> [u8; 8] {
    let mut q = [0u8; 8];
    let (a, b) = q.split_at_mut(4);
    a.copy_from_slice(QUERY_MAGIC);
    b.copy_from_slice(&run.to_be_bytes());
    q
}

/// The JSON object of a query's answer that came back from `from` to
/// port `to_port`.
pub(crate) fn parse_reply(p: &[u8], from: Ipv4Addr, to_port: u16) -> Option<serde_json::Value> {
    let payload = udp_payload_from(p, from, to_port)?;
    let json = payload.strip_prefix(REPLY_MAGIC.as_slice())?;
    serde_json::from_slice(json).ok()
}

fn udp_payload_from(p: &[u8], from: Ipv4Addr, to_port: u16) -> Option<&[u8]> {
    let ip = proto::ip::Ipv4Packet::new_checked(p).ok()?;
    if ip.src() != from {
        return None;
    }
    let (_, dport, payload) = ip.udp()?;
    (dport == to_port).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: Ipv4Addr = Ipv4Addr::new(192, 168, 99, 7);
    const ORG: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

    fn echo_of(payload: &[u8]) -> Vec<u8> {
        let mut echo = Vec::new();
        ipv4_udp(ORG, 9000, DEV, 40_000, payload, &mut echo);
        echo
    }

    #[test]
    fn a_probe_round_trips_through_an_echo() {
        let mut out = Vec::new();
        ipv4_udp(DEV, 40_000, ORG, 9000, &probe(42, 1234), &mut out);
        assert_eq!(proto::ip::internet_checksum(out.get(..20).unwrap_or_default()), 0);
        let echo = echo_of(out.get(28..).unwrap_or_default());
        assert_eq!(parse_probe(&echo, ORG, 40_000), Some((42, 1234)));
        assert_eq!(parse_probe(&echo, DEV, 40_000), None);
        assert_eq!(parse_probe(&echo, ORG, 40_001), None);
    }

    #[test]
    fn bulk_payloads_fill_the_packet_size_and_carry_run_and_sequence() {
        let mut payload = Vec::new();
        bulk(7, 99, 512, &mut payload);
        assert_eq!(payload.len() + IP_UDP_HEADERS, 512);
        assert_eq!(payload.get(..4), Some(BULK_MAGIC.as_slice()));
        assert_eq!(payload.get(4..8), Some(7u32.to_be_bytes().as_slice()));
        assert_eq!(payload.get(8..16), Some(99u64.to_be_bytes().as_slice()));
        // Never smaller than its own header.
        bulk(7, 99, 10, &mut payload);
        assert_eq!(payload.len(), BULK_HEADER);
    }

    #[test]
    fn a_reply_is_found_only_from_the_reflector() {
        let mut payload = REPLY_MAGIC.to_vec();
        payload.extend_from_slice(br#"{"run":3,"packets":10}"#);
        let reply = echo_of(&payload);
        let json = parse_reply(&reply, ORG, 40_000).expect("a reply");
        assert_eq!(json.get("packets").and_then(serde_json::Value::as_u64), Some(10));
        assert!(parse_reply(&reply, DEV, 40_000).is_none());
        assert!(parse_reply(&echo_of(b"CRBRnot json"), ORG, 40_000).is_none());
        assert!(parse_reply(&echo_of(&probe(1, 2)), ORG, 40_000).is_none());
    }
}
