//! Network → device: what the kernel hands a TUN reader with offloads on,
//! made into the ordinary packets a tunnel peer expects.
//!
//! With `TUNSETOFFLOAD` TSO/USO the kernel skips segmentation and gives the
//! reader one super-packet of up to 64 KiB: a TCP segment of many MSS
//! ([`GsoType::TCPV4`]) or a UDP datagram of many datagrams' payload
//! ([`GsoType::UDP_L4`]), its L4 checksum left partial. [`Segments`] does
//! what the kernel's `tcp_gso_segment` / `__udp_gso_segment` would have done;
//! [`complete_checksum`] does `skb_checksum_help` for a plain packet whose
//! checksum was left partial (`CHECKSUM_PARTIAL` with
//! [`VnetFlags::NEEDS_CSUM`]).
//!
//! Lengths come from the IPv4 and TCP headers, not from the vnet header's
//! `hdr_len` (a hint the kernel fills in for devices that want it): the
//! packet is what gets copied, so it is what gets trusted and checked.

use std::net::Ipv4Addr;

use super::bytes::{addr_at, put_u16, put_u32, u16_at, u32_at};
use super::checksum::{fold, pseudo_header_v4, sum};
use super::field::*;
use super::vnet::{GsoType, VnetFlags, VnetHdr};
use super::{ipv4_lengths, set_ipv4_header_checksum, OffloadError};

/// Finishes the partial checksum of a non-GSO packet read from the TUN.
///
/// `packet` is exactly what followed the vnet header. With
/// [`VnetFlags::NEEDS_CSUM`] the field at `csum_start + csum_offset` holds
/// the folded pseudo-header sum; the sum over `csum_start..` (field
/// included) is inverted into it. A result of zero is stored as `0xffff`,
/// as Linux's `skb_checksum_help` does (`CSUM_MANGLED_0`): both are zero in
/// one's complement, and for UDP zero would mean "no checksum".
/// Without the flag the packet is already complete and left alone.
pub fn complete_checksum(hdr: &VnetHdr, packet: &mut [u8]) -> Result<(), OffloadError> {
    if !hdr.flags.contains(VnetFlags::NEEDS_CSUM) {
        return Ok(());
    }
    if hdr.gso_type.kind() != GsoType::NONE {
        return Err(OffloadError::Unsupported);
    }
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field.saturating_add(2) > packet.len() {
        return Err(OffloadError::Malformed);
    }
    let covered = packet.get(start..).ok_or(OffloadError::Malformed)?;
    let c = match !fold(sum(covered, 0)) {
        0 => 0xffff,
        c => c,
    };
    put_u16(packet, field, c).then_some(()).ok_or(OffloadError::Malformed)
}

/// Which transport a super-packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
}

/// The segments of a GSO super-packet from the TUN, written one at a time
/// into the caller's buffer.
///
/// Every segment but the last has the same length, [`Segments::segment_len`]
/// (the last may be shorter), so a caller can hand a run of them to a
/// UDP-GSO send with one segment size.
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    /// The IPv4 header, options included.
    ip: &'a [u8],
    /// The TCP header with its options, or the 8-byte UDP header.
    l4: &'a [u8],
    payload: &'a [u8],
    transport: Transport,
    /// Payload bytes per segment: `gso_size`, non-zero.
    mss: usize,
    count: usize,
    next: usize,
}

impl<'a> Segments<'a> {
    /// Checks a GSO super-packet (what followed the vnet header `hdr`) and
    /// prepares to cut it.
    ///
    /// Only [`GsoType::TCPV4`] and [`GsoType::UDP_L4`] are segmented: the
    /// gateway is IPv4-only, and legacy UFO ([`GsoType::UDP`]) is never
    /// enabled by corridor. A `NONE` packet goes to [`complete_checksum`].
    /// Bytes past the IPv4 total length are ignored.
    pub fn new(hdr: &VnetHdr, packet: &'a [u8]) -> Result<Self, OffloadError> {
        let transport = match hdr.gso_type.kind() {
            GsoType::TCPV4 => Transport::Tcp,
            GsoType::UDP_L4 => Transport::Udp,
            _ => return Err(OffloadError::Unsupported),
        };
        let mss = usize::from(hdr.gso_size);
        if mss == 0 {
            return Err(OffloadError::Malformed);
        }
        let (ihl, total) = ipv4_lengths(packet)?;
        let packet = packet.get(..total).ok_or(OffloadError::Truncated)?;
        // A super-packet is whole: the kernel never builds one from a fragment.
        if u16_at(packet, IP_FRAG).ok_or(OffloadError::Truncated)? & IP_MF_OFFSET != 0 {
            return Err(OffloadError::Malformed);
        }
        let proto = packet.get(IP_PROTO).copied().ok_or(OffloadError::Truncated)?;
        let (ip, rest) = packet.split_at_checked(ihl).ok_or(OffloadError::Truncated)?;
        let l4_len = match transport {
            Transport::Tcp if proto == PROTO_TCP => {
                let offset = rest.get(TCP_DATA_OFFSET).copied().ok_or(OffloadError::Truncated)?;
                let len = usize::from(offset >> 4) * 4;
                if len < TCP_MIN_HDR {
                    return Err(OffloadError::Malformed);
                }
                len
            }
            Transport::Udp if proto == PROTO_UDP => UDP_HDR,
            _ => return Err(OffloadError::Malformed),
        };
        let (l4, payload) = rest.split_at_checked(l4_len).ok_or(OffloadError::Truncated)?;
        // At most 65535 segments: bounded by the payload, one byte each.
        let count = payload.len().div_ceil(mss).max(1);
        Ok(Self { ip, l4, payload, transport, mss, count, next: 0 })
    }

    /// How many segments the super-packet makes (at least one).
    pub fn count(&self) -> usize {
        self.count
    }

    /// The IPv4 total length of every segment but the last, which may be
    /// shorter; with one segment, its length.
    pub fn segment_len(&self) -> usize {
        self.ip.len() + self.l4.len() + self.mss.min(self.payload.len())
    }

    /// Where the segments go: the tunnel peer that owns the address.
    pub fn dst(&self) -> Ipv4Addr {
        addr_at(self.ip, IP_DST).unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// Writes the next segment, a complete IPv4 packet with every checksum
    /// filled in, at `out[..n]` and returns `n`; `None` after the last.
    /// An error ends the iteration (later calls return `None`), so a
    /// `while let` loop over it always terminates.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize, OffloadError>> {
        let i = self.next;
        if i >= self.count {
            return None;
        }
        let r = self.write(i, out);
        self.next = if r.is_ok() { i + 1 } else { self.count };
        Some(r)
    }

    fn write(&self, i: usize, out: &mut [u8]) -> Result<usize, OffloadError> {
        let start = i.checked_mul(self.mss).ok_or(OffloadError::Malformed)?;
        let end = start.saturating_add(self.mss).min(self.payload.len());
        let chunk = self.payload.get(start..end).unwrap_or_default();
        let l4_total = self.l4.len() + chunk.len();
        let n = self.ip.len() + l4_total;
        let out = out.get_mut(..n).ok_or(OffloadError::OutputTooSmall)?;
        let (ip, l4_out) = out.split_at_mut_checked(self.ip.len()).ok_or(OffloadError::OutputTooSmall)?;
        let (l4, data) = l4_out.split_at_mut_checked(self.l4.len()).ok_or(OffloadError::OutputTooSmall)?;
        ip.copy_from_slice(self.ip);
        l4.copy_from_slice(self.l4);
        data.copy_from_slice(chunk);

        // The segment index wraps into the 16-bit IP ID, as the kernel's
        // `inet_gso_segment` does with `id++`.
        let id = u16_at(ip, IP_ID).unwrap_or(0).wrapping_add(i as u16);
        let total = u16::try_from(n).map_err(|_| OffloadError::Malformed)?;
        let l4_len = u16::try_from(l4_total).map_err(|_| OffloadError::Malformed)?;
        let ok = put_u16(ip, IP_TOTAL_LEN, total) && put_u16(ip, IP_ID, id) && set_ipv4_header_checksum(ip);
        let (src, dst) = (addr_at(ip, IP_SRC), addr_at(ip, IP_DST));
        let (Some(src), Some(dst), true) = (src, dst, ok) else {
            return Err(OffloadError::Malformed);
        };

        let ok = match self.transport {
            Transport::Tcp => {
                let seq = u32_at(l4, TCP_SEQ).unwrap_or(0).wrapping_add(start as u32);
                let mut flags = l4.get(TCP_FLAGS).copied().unwrap_or(0);
                // tcp_gso_segment: FIN and PSH belong to the last byte of
                // the stream, CWR to the first segment (RFC 3168 §6.1.2).
                if i + 1 != self.count {
                    flags &= !(TCP_FIN | TCP_PSH);
                }
                if i != 0 {
                    flags &= !TCP_CWR;
                }
                if let Some(f) = l4.get_mut(TCP_FLAGS) {
                    *f = flags;
                }
                put_u32(l4, TCP_SEQ, seq)
                    && put_u16(l4, TCP_CHECKSUM, 0)
                    && put_u16(l4_out, TCP_CHECKSUM, !fold(sum(l4_out, pseudo_header_v4(src, dst, PROTO_TCP, l4_len))))
            }
            Transport::Udp => {
                let ok = put_u16(l4, UDP_LEN, l4_len) && put_u16(l4, UDP_CHECKSUM, 0);
                // RFC 768: a computed zero is sent as all ones.
                let c = match !fold(sum(l4_out, pseudo_header_v4(src, dst, PROTO_UDP, l4_len))) {
                    0 => 0xffff,
                    c => c,
                };
                ok && put_u16(l4_out, UDP_CHECKSUM, c)
            }
        };
        ok.then_some(n).ok_or(OffloadError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::offload::testpkt::*;
    use crate::offload::VNET_HDR_LEN;
    use proptest::prelude::*;

    fn gso(kind: GsoType, gso_size: u16, csum_start: u16, csum_offset: u16) -> VnetHdr {
        VnetHdr { flags: VnetFlags::NEEDS_CSUM, gso_type: kind, hdr_len: 0, gso_size, csum_start, csum_offset }
    }

    fn all(s: &mut Segments<'_>) -> Result<Vec<Vec<u8>>, OffloadError> {
        let mut out = vec![0u8; 65535];
        let mut v = Vec::new();
        while let Some(r) = s.next_into(&mut out) {
            v.push(out[..r?].to_vec());
        }
        Ok(v)
    }

    fn segment(hdr: &VnetHdr, packet: &[u8]) -> Result<Vec<Vec<u8>>, OffloadError> {
        all(&mut Segments::new(hdr, packet)?)
    }

    #[test]
    fn tcp_super_packet_vector() {
        // What the kernel hands over for a 3000-byte write with MSS 1000
        // and FIN: one segment, sequence number about to wrap.
        let sup = Tcp {
            seq: 0xffff_fc00,
            flags: ACK | PSH | FIN,
            payload: counting(3000),
            ip: Ip { id: 0xfffe, ..Ip::default() },
            ..Tcp::default()
        };
        let wire = sup.build_partial();
        let hdr = VnetHdr { hdr_len: 52, ..gso(GsoType::TCPV4, 1000, 20, 16) };
        let mut s = Segments::new(&hdr, &wire).unwrap();
        assert_eq!((s.count(), s.segment_len(), s.dst()), (3, 1052, Ipv4Addr::new(10, 99, 0, 7)));
        let segs = all(&mut s).unwrap();
        assert_eq!(segs.len(), 3);
        for (i, seg) in segs.iter().enumerate() {
            let expect = Tcp {
                seq: 0xffff_fc00u32.wrapping_add(1000 * i as u32),
                flags: if i == 2 { ACK | PSH | FIN } else { ACK },
                payload: sup.payload[1000 * i..1000 * (i + 1)].to_vec(),
                ip: Ip { id: 0xfffeu16.wrapping_add(i as u16), ..Ip::default() },
                ..sup.clone()
            };
            assert_eq!(seg, &expect.build(), "segment {i}");
            assert!(checksums_ok(seg));
        }
        // The fields read straight off the bytes, as a second look.
        assert_eq!(&segs[0][2..6], &[0x04, 0x1c, 0xff, 0xfe]);
        assert_eq!(&segs[1][4..6], &[0xff, 0xff]);
        assert_eq!(&segs[2][4..6], &[0x00, 0x00]);
        assert_eq!(&segs[1][24..28], &[0xff, 0xff, 0xff, 0xe8]);
        assert_eq!(&segs[2][24..28], &[0x00, 0x00, 0x03, 0xd0]);
        assert_eq!(segs[0][33], ACK);
        assert_eq!(segs[2][33], ACK | PSH | FIN);
        assert_eq!(&segs[2][52..56], &[2000 % 251, 2001 % 251, 2002 % 251, 2003 % 251].map(|x| x as u8));
        // The first segment's checksums, derived once outside Rust (a
        // literal RFC 1071 sum in Python; the IP one also by hand:
        // 4500+041c+fffe+4000+4006+c0a8+6302+0a63+0007 = 2f734 → f736 → 08c9).
        assert_eq!(&segs[0][10..12], &[0x08, 0xc9]);
        assert_eq!(&segs[0][36..38], &[0x05, 0xce]);
    }

    #[test]
    fn ecn_cwr_only_on_the_first_segment_and_ip_options_copied() {
        let sup = Tcp {
            flags: ACK | CWR,
            payload: counting(2500),
            ip: Ip { options: vec![1, 1, 1, 0], df: false, ..Ip::default() },
            options: vec![],
            ..Tcp::default()
        };
        let wire = sup.build_partial();
        let segs = segment(&gso(GsoType(GsoType::TCPV4.0 | GsoType::ECN), 1200, 24, 16), &wire).unwrap();
        assert_eq!(segs.iter().map(Vec::len).collect::<Vec<_>>(), [1244, 1244, 144]);
        for (i, seg) in segs.iter().enumerate() {
            let expect = Tcp {
                seq: sup.seq + 1200 * i as u32,
                flags: if i == 0 { ACK | CWR } else { ACK },
                payload: sup.payload[1200 * i..(1200 * (i + 1)).min(2500)].to_vec(),
                ip: Ip { id: sup.ip.id + i as u16, ..sup.ip.clone() },
                ..sup.clone()
            };
            assert_eq!(seg, &expect.build(), "segment {i}");
        }
    }

    #[test]
    fn udp_super_packet_vector() {
        let sup = Udp { ip: Ip::default(), sport: 4433, dport: 50000, payload: counting(2500) };
        let wire = sup.build_partial();
        let mut s = Segments::new(&gso(GsoType::UDP_L4, 1200, 20, 6), &wire).unwrap();
        assert_eq!((s.count(), s.segment_len()), (3, 1228));
        let segs = all(&mut s).unwrap();
        assert_eq!(segs.iter().map(Vec::len).collect::<Vec<_>>(), [1228, 1228, 128]);
        for (i, seg) in segs.iter().enumerate() {
            let expect = Udp {
                ip: Ip { id: 0x1234 + i as u16, ..Ip::default() },
                payload: sup.payload[1200 * i..(1200 * (i + 1)).min(2500)].to_vec(),
                ..sup.clone()
            };
            assert_eq!(seg, &expect.build(), "segment {i}");
            assert!(checksums_ok(seg));
        }
        assert_eq!(&segs[2][24..26], &[0, 108]);
    }

    #[test]
    fn one_segment_when_the_payload_fits_and_when_it_is_empty() {
        for n in [0, 1, 999, 1000] {
            let sup = Tcp { payload: counting(n), ..Tcp::default() };
            let segs = segment(&gso(GsoType::TCPV4, 1000, 20, 16), &sup.build_partial()).unwrap();
            assert_eq!(segs, [sup.build()], "{n} bytes");
        }
    }

    #[test]
    fn complete_checksum_finishes_tcp_and_udp() {
        let tcp = Tcp { payload: counting(333), ..Tcp::default() };
        let mut p = tcp.build_partial();
        complete_checksum(&gso(GsoType::NONE, 0, 20, 16), &mut p).unwrap();
        assert_eq!(p, tcp.build());

        let udp = Udp { ip: Ip::default(), sport: 53, dport: 40000, payload: counting(77) };
        let mut p = udp.build_partial();
        complete_checksum(&gso(GsoType::NONE, 0, 20, 6), &mut p).unwrap();
        assert_eq!(p, udp.build());

        // Without NEEDS_CSUM nothing changes, whatever the offsets say.
        let mut p = udp.build_partial();
        complete_checksum(&VnetHdr { csum_start: 9999, ..VnetHdr::NONE }, &mut p).unwrap();
        assert_eq!(p, udp.build_partial());
    }

    #[test]
    fn complete_checksum_never_writes_a_zero() {
        // Two payload bytes chosen so the datagram sums to all ones, making
        // the computed checksum zero: UDP must send 0xffff instead.
        let mut udp = Udp { ip: Ip::default(), sport: 1, dport: 2, payload: vec![0, 0, 1, 2, 3] };
        let rest = naive_sum(&[&udp.build_partial()[20..]]);
        udp.payload[..2].copy_from_slice(&(0xffff - rest).to_be_bytes());
        let mut p = udp.build_partial();
        assert_eq!(naive_sum(&[&p[20..]]), 0xffff);
        complete_checksum(&gso(GsoType::NONE, 0, 20, 6), &mut p).unwrap();
        assert_eq!(&p[26..28], &[0xff, 0xff]);
        assert!(checksums_ok(&p));
    }

    #[test]
    fn complete_checksum_rejects_offsets_outside_the_packet() {
        let mut p = Udp { ip: Ip::default(), sport: 1, dport: 2, payload: vec![9; 10] }.build_partial();
        let before = p.clone();
        for (start, offset) in [(38, 0), (37, 0), (20, 17), (u16::MAX, u16::MAX), (60, 0)] {
            let r = complete_checksum(&gso(GsoType::NONE, 0, start, offset), &mut p);
            assert_eq!(r, Err(OffloadError::Malformed), "{start}+{offset}");
        }
        assert_eq!(complete_checksum(&gso(GsoType::TCPV4, 0, 20, 6), &mut p), Err(OffloadError::Unsupported));
        assert_eq!(p, before);
        // The last two bytes are a checksum field that fits.
        assert_eq!(complete_checksum(&gso(GsoType::NONE, 0, 36, 0), &mut p), Ok(()));
    }

    #[test]
    fn every_rejection() {
        let tcp = Tcp { payload: counting(3000), ..Tcp::default() }.build_partial();
        let udp = Udp { ip: Ip::default(), sport: 1, dport: 2, payload: counting(3000) }.build_partial();
        let t = gso(GsoType::TCPV4, 1000, 20, 16);
        let u = gso(GsoType::UDP_L4, 1000, 20, 6);
        let err = |h: &VnetHdr, p: &[u8]| Segments::new(h, p).err();
        use OffloadError::*;
        assert_eq!(err(&VnetHdr { gso_size: 0, ..t }, &tcp), Some(Malformed));
        for kind in [GsoType::NONE, GsoType::UDP, GsoType::TCPV6, GsoType(2), GsoType(0x84), GsoType(0x7f)] {
            assert_eq!(err(&VnetHdr { gso_type: kind, ..t }, &tcp), Some(Unsupported), "{kind:?}");
        }
        assert_eq!(err(&t, &udp), Some(Malformed));
        assert_eq!(err(&u, &tcp), Some(Malformed));
        assert_eq!(err(&t, &[0x60; 100]), Some(NotIpv4));
        assert_eq!(err(&t, &[]), Some(Truncated));
        let edit = |p: &[u8], at: usize, v: u8| {
            let mut p = p.to_vec();
            p[at] = v;
            p
        };
        assert_eq!(err(&t, &edit(&tcp, 0, 0x44)), Some(Malformed), "IHL 4");
        assert_eq!(err(&t, &edit(&tcp, 6, 0x60)), Some(Malformed), "DF|MF: a fragment");
        assert_eq!(err(&t, &edit(&tcp, 7, 1)), Some(Malformed), "a fragment offset");
        assert_eq!(err(&t, &edit(&tcp, 32, 0x40)), Some(Malformed), "TCP data offset 4");
        // Total length past the buffer, below the header, and a data offset
        // past the total length.
        let mut short = tcp.clone();
        short[2..4].copy_from_slice(&(tcp.len() as u16 + 1).to_be_bytes());
        assert_eq!(err(&t, &short), Some(Truncated));
        short[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(err(&t, &short), Some(Malformed));
        short[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(err(&t, &short), Some(Truncated));
        short[2..4].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(err(&u, &edit(&short, 9, 17)), Some(Truncated), "UDP header past the total length");
    }

    #[test]
    fn bytes_past_the_total_length_are_ignored() {
        let sup = Tcp { payload: counting(2100), ..Tcp::default() }.build_partial();
        let mut padded = sup.clone();
        padded.extend_from_slice(&[0xee; 37]);
        let t = gso(GsoType::TCPV4, 1000, 20, 16);
        assert_eq!(segment(&t, &padded), segment(&t, &sup));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let tcp = Tcp { payload: counting(2100), ..Tcp::default() }.build_partial();
        let udp = Udp { ip: Ip::default(), sport: 1, dport: 2, payload: counting(2100) }.build_partial();
        for (h, p) in [(gso(GsoType::TCPV4, 1000, 20, 16), &tcp), (gso(GsoType::UDP_L4, 1000, 20, 6), &udp)] {
            for n in 0..p.len() {
                assert!(Segments::new(&h, &p[..n]).is_err(), "{:?} cut at {n}", h.gso_type);
            }
            assert_eq!(segment(&h, p).unwrap().len(), 3);
        }
    }

    #[test]
    fn a_small_output_buffer_ends_the_iteration() {
        let sup = Tcp { payload: counting(2100), ..Tcp::default() }.build_partial();
        let mut s = Segments::new(&gso(GsoType::TCPV4, 1000, 20, 16), &sup).unwrap();
        let mut out = vec![0u8; 1051];
        assert_eq!(s.next_into(&mut out), Some(Err(OffloadError::OutputTooSmall)));
        assert_eq!(s.next_into(&mut out), None);
        let mut s = Segments::new(&gso(GsoType::TCPV4, 1000, 20, 16), &sup).unwrap();
        let mut out = vec![0u8; 1052];
        assert_eq!(s.next_into(&mut out), Some(Ok(1052)));
    }

    #[test]
    fn one_byte_segments_are_bounded() {
        let sup = Udp { ip: Ip::default(), sport: 1, dport: 2, payload: counting(65535 - 28) }.build_partial();
        let mut s = Segments::new(&gso(GsoType::UDP_L4, 1, 20, 6), &sup).unwrap();
        assert_eq!(s.count(), 65507);
        let mut out = [0u8; 29];
        let mut n = 0;
        while let Some(r) = s.next_into(&mut out) {
            assert_eq!(r, Ok(29));
            n += 1;
        }
        assert_eq!(n, 65507);
        assert!(checksums_ok(&out));
        // The 16-bit ID wrapped on the way.
        assert_eq!(u16::from_be_bytes([out[4], out[5]]), 0x1234u16.wrapping_add(65506));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn valid_super_packets_segment_into_valid_packets(
            tcp in any::<bool>(),
            len in 0usize..9000,
            mss in 1u16..2000,
            options in 0usize..11,
            seq in any::<u32>(),
            id in any::<u16>(),
        ) {
            let payload = counting(len);
            let ip = Ip { id, options: vec![1; 4 * (options % 3)], ..Ip::default() };
            let (wire, kind) = if tcp {
                let t = Tcp { ip, seq, options: vec![1; 4 * options], payload: payload.clone(), ..Tcp::default() };
                (t.build_partial(), GsoType::TCPV4)
            } else {
                (Udp { ip, sport: 9, dport: 10, payload: payload.clone() }.build_partial(), GsoType::UDP_L4)
            };
            let mut s = Segments::new(&gso(kind, mss, 0, 0), &wire).unwrap();
            let (count, seg_len) = (s.count(), s.segment_len());
            prop_assert_eq!(count, len.div_ceil(usize::from(mss)).max(1));
            let segs = all(&mut s).unwrap();
            prop_assert_eq!(segs.len(), count);
            let mut joined = Vec::new();
            for (i, seg) in segs.iter().enumerate() {
                prop_assert!(checksums_ok(seg));
                prop_assert!(seg.len() == seg_len || (i + 1 == count && seg.len() < seg_len));
                let hl = usize::from(seg[0] & 0x0f) * 4;
                prop_assert_eq!(u16::from_be_bytes([seg[4], seg[5]]), id.wrapping_add(i as u16));
                let l4 = if tcp {
                    let s = u32::from_be_bytes(seg[hl + 4..hl + 8].try_into().unwrap());
                    prop_assert_eq!(s, seq.wrapping_add((i * usize::from(mss)) as u32));
                    usize::from(seg[hl + 12] >> 4) * 4
                } else {
                    prop_assert_eq!(usize::from(u16::from_be_bytes([seg[hl + 4], seg[hl + 5]])), seg.len() - hl);
                    8
                };
                joined.extend_from_slice(&seg[hl + l4..]);
            }
            prop_assert_eq!(joined, payload);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2000), kind in 0u8..7) {
            // Lean the header towards the types that get past the first check.
            let mut data = data;
            if data.len() > VNET_HDR_LEN + 1 {
                data[1] = [0, 1, 5, 0x81, 3, 4, data[1]][usize::from(kind)];
                data[VNET_HDR_LEN] = 0x45;
            }
            if let Some((hdr, packet)) = VnetHdr::parse(&data) {
                let mut owned = packet.to_vec();
                let _ = complete_checksum(&hdr, &mut owned);
                if let Ok(mut s) = Segments::new(&hdr, packet) {
                    let mut out = vec![0u8; 1500];
                    while let Some(Ok(n)) = s.next_into(&mut out) {
                        let ihl = usize::from(out[0] & 0x0f) * 4;
                        prop_assert_eq!(naive_sum(&[&out[..ihl]]), 0xffff);
                        prop_assert_eq!(usize::from(u16::from_be_bytes([out[2], out[3]])), n);
                    }
                }
            }
        }
    }
}
