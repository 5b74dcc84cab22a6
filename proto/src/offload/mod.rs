//! Packet arithmetic for Linux TUN offloads (`IFF_VNET_HDR` with
//! `TUNSETOFFLOAD` `CSUM|TSO4|TSO6|USO4|USO6`) on an IPv4-only gateway.
//!
//! With offloads on, the kernel skips work it would otherwise do per packet:
//! it hands the TUN reader TCP and UDP super-packets of up to 64 KiB with
//! checksums left partial, and accepts the same from the writer. The tunnel
//! peer is an ordinary device that wants MTU-sized, fully checksummed
//! packets, so each direction has its own room:
//!
//! - [`vnet`]: the 10-byte `virtio_net_hdr` in front of every TUN packet.
//! - [`checksum`]: the RFC 1071 sum, eight bytes per step.
//! - [`segment`]: network → device, cutting a super-packet into packets
//!   ([`Segments`]) or finishing a partial checksum ([`complete_checksum`]).
//! - [`coalesce`]: device → network, joining consecutive TCP segments (and,
//!   with USO, UDP datagrams) of a flow into one TUN write ([`Coalescer`]).
//!
//! No I/O, no clock: the caller owns the TUN descriptor and the buffers'
//! lifetimes.

use core::fmt;

pub mod checksum;
pub mod coalesce;
pub mod segment;
pub mod vnet;

pub use coalesce::{Coalescer, Verdict};
pub use segment::{complete_checksum, Segments};
pub use vnet::{GsoType, VnetFlags, VnetHdr, VNET_HDR_LEN};

/// Why a packet from the TUN cannot be made into device packets. The packet
/// is dropped and counted by the caller; nothing here is fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// Shorter than a header, or than the IPv4 total length, says it is.
    Truncated,
    /// Not an IPv4 packet.
    NotIpv4,
    /// Fields contradict each other or the vnet header (a zero `gso_size`,
    /// a fragment, a protocol other than the GSO type's, a checksum offset
    /// outside the packet).
    Malformed,
    /// A GSO type this gateway does not segment: IPv6 ones, legacy UDP
    /// fragmentation offload, unknown values, or `NONE` given to
    /// [`Segments`].
    Unsupported,
    /// The output buffer cannot hold the next segment.
    OutputTooSmall,
}

impl fmt::Display for OffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "TUN packet shorter than its headers say",
            Self::NotIpv4 => "TUN packet is not IPv4",
            Self::Malformed => "TUN packet contradicts its vnet header",
            Self::Unsupported => "TUN packet has a GSO type this gateway does not segment",
            Self::OutputTooSmall => "output buffer too small for the next segment",
        })
    }
}

impl std::error::Error for OffloadError {}

/// Big-endian reads and writes at fixed offsets that never panic: a read
/// past the end is `None`, a write past the end is `false`. Every header
/// access in this module goes through these, so a lying length field can
/// only ever produce an error.
pub(crate) mod bytes {
    pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        b.get(at..at.checked_add(2)?)?.first_chunk::<2>().map(|a| u16::from_be_bytes(*a))
    }

    pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        b.get(at..at.checked_add(4)?)?.first_chunk::<4>().map(|a| u32::from_be_bytes(*a))
    }

    pub(crate) fn addr_at(b: &[u8], at: usize) -> Option<std::net::Ipv4Addr> {
        b.get(at..at.checked_add(4)?)?.first_chunk::<4>().map(|a| std::net::Ipv4Addr::from(*a))
    }

    pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) -> bool {
        match at.checked_add(2).and_then(|end| b.get_mut(at..end)) {
            Some(s) => {
                s.copy_from_slice(&v.to_be_bytes());
                true
            }
            None => false,
        }
    }

    pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) -> bool {
        match at.checked_add(4).and_then(|end| b.get_mut(at..end)) {
            Some(s) => {
                s.copy_from_slice(&v.to_be_bytes());
                true
            }
            None => false,
        }
    }
}

/// Offsets into the IPv4 (RFC 791) and TCP (RFC 9293) headers, and the UDP
/// (RFC 768) ones this module reads or rewrites.
pub(crate) mod field {
    pub(crate) const IP_TOS: usize = 1;
    pub(crate) const IP_TOTAL_LEN: usize = 2;
    pub(crate) const IP_ID: usize = 4;
    pub(crate) const IP_FRAG: usize = 6;
    pub(crate) const IP_TTL: usize = 8;
    pub(crate) const IP_PROTO: usize = 9;
    pub(crate) const IP_CHECKSUM: usize = 10;
    pub(crate) const IP_SRC: usize = 12;
    pub(crate) const IP_DST: usize = 16;
    /// The smallest IPv4 header: IHL 5.
    pub(crate) const IP_MIN_HDR: usize = 20;
    /// Don't Fragment, in the 16-bit flags/fragment-offset word.
    pub(crate) const IP_DF: u16 = 0x4000;
    /// More Fragments and the 13-bit offset: any of these set is a fragment.
    pub(crate) const IP_MF_OFFSET: u16 = 0x3fff;
    /// The fragment offset alone: zero for a first fragment, which has the ports.
    pub(crate) const IP_OFFSET: u16 = 0x1fff;

    pub(crate) const TCP_SEQ: usize = 4;
    pub(crate) const TCP_ACK: usize = 8;
    pub(crate) const TCP_DATA_OFFSET: usize = 12;
    pub(crate) const TCP_FLAGS: usize = 13;
    pub(crate) const TCP_WINDOW: usize = 14;
    pub(crate) const TCP_CHECKSUM: usize = 16;
    pub(crate) const TCP_MIN_HDR: usize = 20;
    pub(crate) const TCP_FIN: u8 = 0x01;
    pub(crate) const TCP_PSH: u8 = 0x08;
    pub(crate) const TCP_ACK_FLAG: u8 = 0x10;
    pub(crate) const TCP_CWR: u8 = 0x80;

    pub(crate) const UDP_LEN: usize = 4;
    pub(crate) const UDP_CHECKSUM: usize = 6;
    pub(crate) const UDP_HDR: usize = 8;

    pub(crate) const PROTO_TCP: u8 = 6;
    pub(crate) const PROTO_UDP: u8 = 17;

    /// The largest IPv4 total length.
    pub(crate) const IP_MAX_LEN: usize = 65535;
}

/// An IPv4 header at the start of `packet`, checked: `(header length, total
/// length)`, both within `packet`. Trailing bytes past the total length
/// (link padding) are the caller's to ignore.
pub(crate) fn ipv4_lengths(packet: &[u8]) -> Result<(usize, usize), OffloadError> {
    let first = *packet.first().ok_or(OffloadError::Truncated)?;
    if first >> 4 != 4 {
        return Err(OffloadError::NotIpv4);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < field::IP_MIN_HDR {
        return Err(OffloadError::Malformed);
    }
    let total = usize::from(bytes::u16_at(packet, field::IP_TOTAL_LEN).ok_or(OffloadError::Truncated)?);
    if total < ihl {
        return Err(OffloadError::Malformed);
    }
    if total > packet.len() {
        return Err(OffloadError::Truncated);
    }
    Ok((ihl, total))
}

/// Writes the header checksum of the IPv4 header that is exactly `header`
/// (options included). `false` if `header` is too short to hold the field.
pub(crate) fn set_ipv4_header_checksum(header: &mut [u8]) -> bool {
    if !bytes::put_u16(header, field::IP_CHECKSUM, 0) {
        return false;
    }
    let c = !checksum::fold(checksum::sum(header, 0));
    bytes::put_u16(header, field::IP_CHECKSUM, c)
}

/// Packets for the tests of every room here, built the slow, obvious way:
/// checksums by a literal RFC 1071 sum that shares no code with
/// [`checksum`], so a bug there cannot hide itself.
#[cfg(test)]
pub(crate) mod testpkt {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    /// RFC 1071 over the concatenation of `parts`, 16-bit words, folded.
    pub(crate) fn naive_sum(parts: &[&[u8]]) -> u16 {
        let all: Vec<u8> = parts.concat();
        let mut s: u64 = 0;
        for w in all.chunks(2) {
            s += u64::from(w[0]) << 8;
            if w.len() == 2 {
                s += u64::from(w[1]);
            }
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    pub(crate) fn pseudo(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
        p
    }

    /// An IPv4 header's fields; `build` fills in lengths and checksums.
    #[derive(Debug, Clone)]
    pub(crate) struct Ip {
        pub(crate) src: [u8; 4],
        pub(crate) dst: [u8; 4],
        pub(crate) id: u16,
        pub(crate) tos: u8,
        pub(crate) ttl: u8,
        pub(crate) df: bool,
        /// A multiple of four bytes.
        pub(crate) options: Vec<u8>,
    }

    impl Default for Ip {
        fn default() -> Self {
            Self { src: [192, 168, 99, 2], dst: [10, 99, 0, 7], id: 0x1234, tos: 0, ttl: 64, df: true, options: vec![] }
        }
    }

    impl Ip {
        fn header(&self, proto: u8, l4_len: usize) -> Vec<u8> {
            let ihl = 20 + self.options.len();
            let mut h = vec![0x40 | (ihl / 4) as u8, self.tos];
            h.extend_from_slice(&((ihl + l4_len) as u16).to_be_bytes());
            h.extend_from_slice(&self.id.to_be_bytes());
            h.extend_from_slice(&[if self.df { 0x40 } else { 0 }, 0, self.ttl, proto, 0, 0]);
            h.extend_from_slice(&self.src);
            h.extend_from_slice(&self.dst);
            h.extend_from_slice(&self.options);
            let c = !naive_sum(&[&h]);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h
        }
    }

    /// A TCP/IPv4 packet's fields.
    #[derive(Debug, Clone)]
    pub(crate) struct Tcp {
        pub(crate) ip: Ip,
        pub(crate) sport: u16,
        pub(crate) dport: u16,
        pub(crate) seq: u32,
        pub(crate) ack: u32,
        pub(crate) flags: u8,
        pub(crate) window: u16,
        /// A multiple of four bytes.
        pub(crate) options: Vec<u8>,
        pub(crate) payload: Vec<u8>,
    }

    pub(crate) const ACK: u8 = 0x10;
    pub(crate) const PSH: u8 = 0x08;
    pub(crate) const FIN: u8 = 0x01;
    pub(crate) const CWR: u8 = 0x80;

    /// NOP, NOP, timestamps (RFC 7323): what Linux puts on every segment.
    pub(crate) const TIMESTAMPS: [u8; 12] = [1, 1, 8, 10, 0, 0x12, 0xd6, 0x87, 0x7f, 0x00, 0x00, 0x01];

    impl Default for Tcp {
        fn default() -> Self {
            Self {
                ip: Ip::default(),
                sport: 443,
                dport: 51000,
                seq: 1_000_000,
                ack: 77,
                flags: ACK,
                window: 502,
                options: TIMESTAMPS.to_vec(),
                payload: vec![],
            }
        }
    }

    impl Tcp {
        pub(crate) fn header(&self) -> Vec<u8> {
            let mut t = Vec::new();
            t.extend_from_slice(&self.sport.to_be_bytes());
            t.extend_from_slice(&self.dport.to_be_bytes());
            t.extend_from_slice(&self.seq.to_be_bytes());
            t.extend_from_slice(&self.ack.to_be_bytes());
            t.push((((20 + self.options.len()) / 4) as u8) << 4);
            t.push(self.flags);
            t.extend_from_slice(&self.window.to_be_bytes());
            t.extend_from_slice(&[0, 0, 0, 0]);
            t.extend_from_slice(&self.options);
            t
        }

        /// With the TCP checksum complete.
        pub(crate) fn build(&self) -> Vec<u8> {
            let mut t = self.header();
            let len = t.len() + self.payload.len();
            let c = !naive_sum(&[&pseudo(self.ip.src, self.ip.dst, 6, len), &t, &self.payload]);
            t[16..18].copy_from_slice(&c.to_be_bytes());
            [self.ip.header(6, len), t, self.payload.clone()].concat()
        }

        /// With the TCP checksum left partial, as the kernel hands over a
        /// `CHECKSUM_PARTIAL` packet: the folded pseudo-header sum.
        pub(crate) fn build_partial(&self) -> Vec<u8> {
            let mut t = self.header();
            let len = t.len() + self.payload.len();
            let c = naive_sum(&[&pseudo(self.ip.src, self.ip.dst, 6, len)]);
            t[16..18].copy_from_slice(&c.to_be_bytes());
            [self.ip.header(6, len), t, self.payload.clone()].concat()
        }
    }

    /// A UDP/IPv4 packet's fields.
    #[derive(Debug, Clone)]
    pub(crate) struct Udp {
        pub(crate) ip: Ip,
        pub(crate) sport: u16,
        pub(crate) dport: u16,
        pub(crate) payload: Vec<u8>,
    }

    impl Udp {
        fn header(&self, check: u16) -> Vec<u8> {
            let len = (8 + self.payload.len()) as u16;
            [self.sport.to_be_bytes(), self.dport.to_be_bytes(), len.to_be_bytes(), check.to_be_bytes()].concat()
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let len = 8 + self.payload.len();
            let c = !naive_sum(&[&pseudo(self.ip.src, self.ip.dst, 17, len), &self.header(0), &self.payload]);
            let c = if c == 0 { 0xffff } else { c };
            [self.ip.header(17, len), self.header(c), self.payload.clone()].concat()
        }

        pub(crate) fn build_partial(&self) -> Vec<u8> {
            let len = 8 + self.payload.len();
            let c = naive_sum(&[&pseudo(self.ip.src, self.ip.dst, 17, len)]);
            [self.ip.header(17, len), self.header(c), self.payload.clone()].concat()
        }
    }

    /// Whether an IPv4 packet's header checksum and its TCP or UDP checksum
    /// are right, by the naive sum.
    pub(crate) fn checksums_ok(p: &[u8]) -> bool {
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
        let l4 = &p[ihl..total];
        let ph = pseudo(p[12..16].try_into().unwrap(), p[16..20].try_into().unwrap(), p[9], l4.len());
        naive_sum(&[&p[..ihl]]) == 0xffff && naive_sum(&[&ph, l4]) == 0xffff
    }

    /// `0, 1, 2, …` wrapping: payload whose misplacement shows.
    pub(crate) fn counting(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::testpkt::*;
    use super::*;
    use proptest::prelude::*;

    /// What the kernel would pass on for one TUN write: the segments of a
    /// GSO buffer, or the plain packet.
    fn kernel_segments(buf: &[u8]) -> Vec<Vec<u8>> {
        let (hdr, packet) = VnetHdr::parse(buf).unwrap();
        if hdr.gso_type == GsoType::NONE {
            assert_eq!(hdr, VnetHdr::NONE);
            return vec![packet.to_vec()];
        }
        let mut s = Segments::new(&hdr, packet).unwrap();
        let mut out = vec![0u8; 65535];
        let mut v = Vec::new();
        while let Some(n) = s.next_into(&mut out) {
            v.push(out[..n.unwrap()].to_vec());
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Coalescing loses nothing: cutting each TUN write the way the
        /// kernel does gives back exactly the device's packets, in order.
        #[test]
        fn segmenting_what_was_coalesced_gives_the_packets_back(
            mss in 1usize..1461,
            n in 1usize..60,
            last in any::<prop::sample::Index>(),
            push in any::<bool>(),
            df in any::<bool>(),
            timestamps in any::<bool>(),
            seq in any::<u32>(),
            id in any::<u16>(),
        ) {
            let first = Tcp {
                seq,
                ip: Ip { id, df, ..Ip::default() },
                options: if timestamps { TIMESTAMPS.to_vec() } else { vec![] },
                ..Tcp::default()
            };
            let last_len = last.index(mss) + 1;
            let packets: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    let len = if i + 1 == n { last_len } else { mss };
                    Tcp {
                        seq: seq.wrapping_add((i * mss) as u32),
                        ip: Ip { id: id.wrapping_add(i as u16), ..first.ip.clone() },
                        flags: if push && i + 1 == n { ACK | PSH } else { ACK },
                        payload: counting(i * mss + len)[i * mss..].to_vec(),
                        ..first.clone()
                    }
                    .build()
                })
                .collect();
            let mut c = Coalescer::new(4, 64);
            let mut written = Vec::new();
            for p in &packets {
                let mut emitted = Vec::new();
                let v = c.offer(p, &mut |b| emitted.push(b));
                written.extend(emitted.iter().flat_map(|b| kernel_segments(b)));
                if v == Verdict::Alone {
                    written.push(p.clone());
                }
            }
            let mut emitted = Vec::new();
            c.flush(&mut |b| emitted.push(b));
            written.extend(emitted.iter().flat_map(|b| kernel_segments(b)));
            prop_assert_eq!(written, packets);
        }

        /// The same for UDP datagrams (USO): a run of one size, the last
        /// possibly shorter, any number of them, IDs running on.
        #[test]
        fn segmenting_coalesced_udp_gives_the_datagrams_back(
            size in 1usize..1461,
            n in 1usize..140,
            last in any::<prop::sample::Index>(),
            df in any::<bool>(),
            id in any::<u16>(),
        ) {
            let last_len = last.index(size) + 1;
            let packets: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    let len = if i + 1 == n { last_len } else { size };
                    Udp {
                        ip: Ip { id: id.wrapping_add(i as u16), df, ..Ip::default() },
                        sport: 5000,
                        dport: 9000,
                        payload: counting(i * size + len)[i * size..].to_vec(),
                    }
                    .build()
                })
                .collect();
            let mut c = Coalescer::new(4, 64).with_udp(true);
            let mut written = Vec::new();
            let mut writes = 0;
            for p in &packets {
                let mut emitted = Vec::new();
                let v = c.offer(p, &mut |b| emitted.push(b));
                writes += emitted.len();
                written.extend(emitted.iter().flat_map(|b| kernel_segments(b)));
                if v == Verdict::Alone {
                    writes += 1;
                    written.push(p.clone());
                }
            }
            let mut emitted = Vec::new();
            c.flush(&mut |b| emitted.push(b));
            writes += emitted.len();
            written.extend(emitted.iter().flat_map(|b| kernel_segments(b)));
            prop_assert_eq!(written, packets);
            // At most 64 datagrams a write, 64 KiB a super-packet.
            let per_write = 64.min(65_000 / size).max(1);
            prop_assert!(writes <= n.div_ceil(per_write) + 1, "{} writes for {} datagrams", writes, n);
        }

        /// A super-packet from the TCP stack, segmented for the device and
        /// coalesced again on the way back, is the same super-packet.
        #[test]
        fn coalescing_what_was_segmented_gives_the_super_packet_back(
            mss in 1u16..1461,
            len in 1usize..20000,
            push in any::<bool>(),
            timestamps in any::<bool>(),
            seq in any::<u32>(),
        ) {
            let sup = Tcp {
                seq,
                flags: if push { ACK | PSH } else { ACK },
                options: if timestamps { TIMESTAMPS.to_vec() } else { vec![] },
                payload: counting(len),
                ..Tcp::default()
            };
            let hdr = VnetHdr {
                flags: VnetFlags::NEEDS_CSUM,
                gso_type: GsoType::TCPV4,
                hdr_len: (40 + sup.options.len()) as u16,
                gso_size: mss,
                csum_start: 20,
                csum_offset: 16,
            };
            let wire = [hdr.to_bytes().to_vec(), sup.build_partial()].concat();
            let segs = kernel_segments(&wire);
            let mut c = Coalescer::new(4, 4);
            let mut emitted = Vec::new();
            let mut alone = Vec::new();
            for s in &segs {
                if c.offer(s, &mut |b| emitted.push(b)) == Verdict::Alone {
                    alone.push(s.clone());
                }
            }
            c.flush(&mut |b| emitted.push(b));
            if segs.len() == 1 {
                // One segment: written as it is, by the caller or as a plain buffer.
                let plain = emitted.into_iter().map(|b| b[VNET_HDR_LEN..].to_vec());
                prop_assert_eq!(alone.into_iter().chain(plain).collect::<Vec<_>>(), vec![sup.build()]);
            } else {
                prop_assert!(alone.is_empty());
                prop_assert_eq!(emitted, vec![wire]);
            }
        }
    }
}
