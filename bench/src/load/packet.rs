//! The generated traffic and the parsers that find it again.
//!
//! Three UDP payloads travel through the tunnel to `corridor bench reflect`:
//!
//! * a **probe** (`udp-echo`): sequence number and send time, 16 bytes, echoed
//!   back unchanged;
//! * a **bulk** datagram (`bulk`): `CRBK`, run id, sequence number, padding to
//!   the packet size; counted by the reflector, never echoed;
//! * a **query** (`bulk`, after sending): `CRBQ` and the run id; answered with
//!   `CRBR` and a JSON object of what the reflector counted for that run;
//! * a **send request** (`bulk-down`): `CRBS`, run id, rate, size and
//!   duration; the reflector answers with bulk datagrams of that run to the
//!   device that asked, and counts them as `sent_down` in its query answer.
//!
//! A probe's first four bytes are the high half of its sequence number, zero
//! for any run shorter than 2³² probes, so it never looks like the other two.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Probe payload: sequence number, then nanoseconds since the run's epoch.
pub(crate) const PROBE_LEN: usize = 16;

pub(crate) const BULK_MAGIC: &[u8; 4] = b"CRBK";
/// `bulk-down`: a device asks the reflector to send it bulk datagrams.
pub(crate) const SEND_MAGIC: &[u8; 4] = b"CRBS";
/// A send request: magic, run id (u32), packets/s (u64, 0: as fast as the
/// socket takes them), IP packet size (u32), milliseconds (u32).
pub(crate) const SEND_LEN: usize = 24;
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

/// What a device asks of the reflector for `bulk-down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SendRequest {
    pub(crate) run: u32,
    /// Packets per second; 0: as fast as the reflector's socket takes them.
    pub(crate) rate: u64,
    /// IP packet size (headers included).
    pub(crate) ip_len: u32,
    pub(crate) millis: u32,
}

impl SendRequest {
    pub(crate) fn encode(&self) -> [u8; SEND_LEN] {
        let mut out = [0u8; SEND_LEN];
        let fields: [&[u8]; 5] = [
            SEND_MAGIC,
            &self.run.to_be_bytes(),
            &self.rate.to_be_bytes(),
            &self.ip_len.to_be_bytes(),
            &self.millis.to_be_bytes(),
        ];
        let mut at = 0;
        for f in fields {
            if let Some(dst) = out.get_mut(at..at + f.len()) {
                dst.copy_from_slice(f);
            }
            at += f.len();
        }
        out
    }

    /// A request from a UDP payload; `None` for anything else, or a size
    /// outside what a bulk datagram can be.
    pub(crate) fn parse(payload: &[u8]) -> Option<Self> {
        let rest = payload.strip_prefix(SEND_MAGIC.as_slice())?;
        let run = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let rate = u64::from_be_bytes(rest.get(4..12)?.try_into().ok()?);
        let ip_len = u32::from_be_bytes(rest.get(12..16)?.try_into().ok()?);
        let millis = u32::from_be_bytes(rest.get(16..20)?.try_into().ok()?);
        let sizes = (IP_UDP_HEADERS + BULK_HEADER) as u32..=1500;
        sizes.contains(&ip_len).then_some(Self { run, rate, ip_len, millis })
    }
}

/// `(run, IP bytes)` of a bulk datagram that came from `from` to port `to_port`.
pub(crate) fn parse_bulk(p: &[u8], from: Ipv4Addr, to_port: u16) -> Option<(u32, usize)> {
    let payload = udp_payload_from(p, from, to_port)?;
    let rest = payload.strip_prefix(BULK_MAGIC.as_slice())?;
    let run = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    Some((run, payload.len() + IP_UDP_HEADERS))
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
    fn a_send_request_round_trips_and_refuses_impossible_sizes() {
        let r = SendRequest { run: 3, rate: 50_000, ip_len: 1400, millis: 2000 };
        assert_eq!(SendRequest::parse(&r.encode()), Some(r));
        assert_eq!(SendRequest::parse(&SendRequest { ip_len: 20, ..r }.encode()), None);
        assert_eq!(SendRequest::parse(&SendRequest { ip_len: 9000, ..r }.encode()), None);
        assert_eq!(SendRequest::parse(r.encode().get(..20).unwrap_or_default()), None, "truncated");
        let mut payload = Vec::new();
        bulk(3, 1, 512, &mut payload);
        assert_eq!(parse_bulk(&echo_of(&payload), ORG, 40_000), Some((3, 512)));
        assert_eq!(parse_bulk(&echo_of(&payload), DEV, 40_000), None);
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
