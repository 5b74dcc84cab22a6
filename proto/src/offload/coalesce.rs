//! Device → network: consecutive TCP segments, and with USO consecutive
//! UDP datagrams, of a flow, joined into one TUN write.
//!
//! Each TUN write costs a syscall and a pass through the kernel's stack; a
//! write of one `TCPV4` (or `UDP_L4`) super-packet carrying many segments
//! costs about the same as a write of one. [`Coalescer`] does for the TUN
//! writer what GRO (`tcp_gro_receive`, `udp_gro_receive_segment`) does for
//! a NIC, with the same rules, so the kernel can cut the super-packet back
//! into exactly the packets the device sent (`tcp_gso_segment`,
//! `__udp_gso_segment`), or hand it whole to an offloading NIC.
//! wireguard-go's `tun/offload_linux.go` does the same for its TUN.
//!
//! The order per flow is kept; packets of different flows may overtake one
//! another, which TCP and UDP do not mind.

use super::bytes::{addr_at, put_u16, u16_at, u32_at};
use super::checksum::{fold, pseudo_header_v4, sum};
use super::field::*;
use super::vnet::{GsoType, VnetFlags, VnetHdr, VNET_HDR_LEN};
use super::{ipv4_lengths, set_ipv4_header_checksum};

/// The capacity of every buffer: a vnet header and the largest IPv4 packet.
/// Appending never grows a buffer beyond it, so it never reallocates.
const BUF_CAPACITY: usize = VNET_HDR_LEN + IP_MAX_LEN;

/// What [`Coalescer::offer`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Copied into a pending super-packet; the caller is done with it.
    Absorbed,
    /// Not taken: the caller writes it by itself (with [`VnetHdr::NONE`]),
    /// after everything `emit` received during the same call.
    Alone,
}

/// The most datagrams one `UDP_L4` super-packet carries: what the kernel's
/// UDP GRO builds (`UDP_GRO_CNT_MAX`) and every kernel's GSO takes.
const UDP_MAX_SEGMENTS: usize = 64;

/// A flow: protocol, both addresses (source high) and both ports, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    proto: u8,
    addrs: u64,
    ports: u32,
}

/// A packet that could join a super-packet, checked.
#[derive(Debug, Clone, Copy)]
struct Candidate<'a> {
    /// The IPv4 packet, exactly its total length.
    packet: &'a [u8],
    flow: Flow,
    /// The TCP header's length, or UDP's 8.
    l4_hlen: usize,
    /// TCP only (0 for UDP).
    seq: u32,
    id: u16,
    push: bool,
    payload: &'a [u8],
}

/// A super-packet being built: the first segment's headers, then the
/// payloads of it and its followers.
#[derive(Debug)]
struct Pending {
    flow: Flow,
    /// `VNET_HDR_LEN` bytes left for the vnet header (zero while the pending
    /// holds one segment), then the IPv4 packet.
    buf: Vec<u8>,
    l4_hlen: usize,
    /// The first segment's payload length: every other but the last has it.
    gso_size: usize,
    segments: usize,
    next_seq: u32,
    next_id: u16,
    /// The last segment had PSH, which the super-packet must carry for the
    /// kernel to put it back on the last segment.
    push: bool,
}

impl Pending {
    fn ip_len(&self) -> usize {
        self.buf.len().saturating_sub(VNET_HDR_LEN)
    }

    /// Whether `c` continues this super-packet: the conditions under which
    /// Linux's `inet_gro_receive` and `tcp_gro_receive` merge, so that
    /// segmenting the result gives back the packets that went in.
    fn can_append(&self, c: &Candidate<'_>) -> bool {
        let Some(first) = self.buf.get(VNET_HDR_LEN..) else {
            return false;
        };
        let (Some((ip, tcp)), Some((c_ip, c_tcp))) =
            (first.split_at_checked(IP_MIN_HDR), c.packet.split_at_checked(IP_MIN_HDR))
        else {
            return false;
        };
        let byte = |b: &[u8], at: usize| b.get(at).copied();
        let df = |b: &[u8]| u16_at(b, IP_FRAG).map(|f| f & IP_DF);
        let same = |a: Option<&[u8]>, b: Option<&[u8]>| a.is_some() && a == b;
        let ip_ok = c.payload.len() <= self.gso_size
            && self.ip_len() + c.payload.len() <= IP_MAX_LEN
            && byte(ip, IP_TOS) == byte(c_ip, IP_TOS)
            && byte(ip, IP_TTL) == byte(c_ip, IP_TTL)
            && df(ip) == df(c_ip)
            // Without DF the ID must run on: the kernel gives segment i the
            // first ID + i, and fragments are reassembled by it.
            && (df(c_ip) == Some(IP_DF) || c.id == self.next_id);
        if self.flow.proto == PROTO_UDP {
            // udp_gro_receive_segment: same length but a shorter last one,
            // which the caller then emits; nothing else in a UDP header.
            return ip_ok && self.segments < UDP_MAX_SEGMENTS;
        }
        let hlen = self.l4_hlen;
        ip_ok
            && c.l4_hlen == hlen
            && c.seq == self.next_seq
            // ACK number, data offset byte, flags but PSH, window, options.
            && same(tcp.get(TCP_ACK..TCP_FLAGS), c_tcp.get(TCP_ACK..TCP_FLAGS))
            && byte(tcp, TCP_FLAGS).map(|f| f & !TCP_PSH) == byte(c_tcp, TCP_FLAGS).map(|f| f & !TCP_PSH)
            && same(tcp.get(TCP_WINDOW..TCP_CHECKSUM), c_tcp.get(TCP_WINDOW..TCP_CHECKSUM))
            && same(tcp.get(TCP_MIN_HDR..hlen), c_tcp.get(TCP_MIN_HDR..hlen))
    }

    /// The TUN write: the buffer unchanged with a zero vnet header for one
    /// segment; for more, a `TCPV4` header and the IPv4/TCP headers made to
    /// describe the whole, the TCP checksum left partial (the folded
    /// pseudo-header sum over the whole TCP length, not inverted), as
    /// `__tcp_v4_send_check` leaves it for `CHECKSUM_PARTIAL` and
    /// `tcp_gso_segment` expects it.
    ///
    /// A UDP super-packet is the same with `UDP_L4`: the UDP length is the
    /// whole, the checksum the partial pseudo-header sum over it, which
    /// `__udp_gso_segment` adjusts per datagram.
    fn finish(self) -> Vec<u8> {
        let Self { mut buf, l4_hlen, gso_size, segments, push, flow, .. } = self;
        if segments < 2 {
            return buf;
        }
        let udp = flow.proto == PROTO_UDP;
        let ip_len = buf.len().saturating_sub(VNET_HDR_LEN);
        let hdr = VnetHdr {
            flags: VnetFlags::NEEDS_CSUM,
            gso_type: if udp { GsoType::UDP_L4 } else { GsoType::TCPV4 },
            hdr_len: u16::try_from(IP_MIN_HDR + l4_hlen).unwrap_or(0),
            gso_size: u16::try_from(gso_size).unwrap_or(0),
            csum_start: IP_MIN_HDR as u16,
            csum_offset: if udp { UDP_CHECKSUM as u16 } else { TCP_CHECKSUM as u16 },
        };
        let at = VNET_HDR_LEN.min(buf.len());
        let (head, packet) = buf.split_at_mut(at);
        if let Some(h) = head.first_chunk_mut::<VNET_HDR_LEN>() {
            *h = hdr.to_bytes();
        }
        let (ip, tcp) = packet.split_at_mut(IP_MIN_HDR.min(packet.len()));
        put_u16(ip, IP_TOTAL_LEN, u16::try_from(ip_len).unwrap_or(0));
        set_ipv4_header_checksum(ip);
        if udp {
            if let (Some(src), Some(dst), Ok(udp_len)) =
                (addr_at(ip, IP_SRC), addr_at(ip, IP_DST), u16::try_from(tcp.len()))
            {
                put_u16(tcp, UDP_LEN, udp_len);
                put_u16(tcp, UDP_CHECKSUM, fold(pseudo_header_v4(src, dst, PROTO_UDP, udp_len)));
            }
            return buf;
        }
        if push {
            if let Some(f) = tcp.get_mut(TCP_FLAGS) {
                *f |= TCP_PSH;
            }
        }
        if let (Some(src), Some(dst), Ok(tcp_len)) =
            (addr_at(ip, IP_SRC), addr_at(ip, IP_DST), u16::try_from(tcp.len()))
        {
            put_u16(tcp, TCP_CHECKSUM, fold(pseudo_header_v4(src, dst, PROTO_TCP, tcp_len)));
        }
        buf
    }
}

/// Joins consecutive TCP segments (and, [`with_udp`](Self::with_udp), UDP
/// datagrams) of up to `max_flows` flows into `TCPV4` (`UDP_L4`)
/// super-packets for the TUN writer.
///
/// Call order per receive batch: [`offer`](Self::offer) each decrypted
/// packet, writing what `emit` receives and then, for [`Verdict::Alone`],
/// the packet itself; [`flush`](Self::flush) at the end of the batch; and
/// [`recycle`](Self::recycle) each emitted buffer once its write is done.
/// All buffers are allocated by [`new`](Self::new): in steady state nothing
/// allocates. With no spare buffer a packet is simply left alone.
#[derive(Debug)]
pub struct Coalescer {
    /// Oldest first, at most `max_flows`, one per flow.
    pending: Vec<Pending>,
    spare: Vec<Vec<u8>>,
    buffers: usize,
    max_flows: usize,
    /// UDP datagrams are coalesced too (the TUN takes `UDP_L4`: USO).
    udp: bool,
}

impl Coalescer {
    /// A coalescer with `buffers` buffers of 64 KiB and a vnet header each,
    /// building at most `max_flows` super-packets at once; TCP only.
    pub fn new(max_flows: usize, buffers: usize) -> Self {
        Self {
            pending: Vec::with_capacity(max_flows),
            spare: (0..buffers).map(|_| Vec::with_capacity(BUF_CAPACITY)).collect(),
            buffers,
            max_flows,
            udp: false,
        }
    }

    /// Also coalesces UDP datagrams (only where the TUN accepts `UDP_L4`
    /// writes, i.e. has USO on).
    pub fn with_udp(mut self, on: bool) -> Self {
        self.udp = on;
        self
    }

    /// Offers one IPv4 packet from the device; see [`Verdict`]. Buffers
    /// handed to `emit` are vnet header + IPv4 packet, ready for a TUN write.
    ///
    /// A packet is taken if it is a TCP segment with payload, no IP options,
    /// not a fragment, flags exactly ACK or ACK|PSH, and correct IPv4 header
    /// and TCP checksums (a super-packet gets a fresh checksum over its data,
    /// which must not turn a corrupted segment into a valid one); or, with
    /// UDP on, a UDP datagram with payload, a length that matches the IP
    /// header's, and a correct, non-zero checksum. It joins its flow's
    /// pending super-packet if it continues it; otherwise that one is
    /// emitted first, keeping the flow's order.
    pub fn offer(&mut self, packet: &[u8], emit: &mut impl FnMut(Vec<u8>)) -> Verdict {
        let Some(c) = candidate(packet, self.udp) else {
            self.emit_flow_of(packet, emit);
            return Verdict::Alone;
        };
        if let Some(i) = self.pending.iter().position(|p| p.flow == c.flow) {
            if let Some(p) = self.pending.get_mut(i).filter(|p| p.can_append(&c)) {
                p.buf.extend_from_slice(c.payload);
                p.segments += 1;
                p.next_seq = p.next_seq.wrapping_add(c.payload.len() as u32);
                p.next_id = p.next_id.wrapping_add(1);
                p.push = c.push;
                // tcp_gro_receive: a short segment or PSH ends the
                // super-packet; nothing could follow it anyway.
                if c.push || c.payload.len() < p.gso_size {
                    self.emit_at(i, emit);
                }
                return Verdict::Absorbed;
            }
            self.emit_at(i, emit);
        }
        // A PSH segment would end its super-packet at once: a copy for
        // nothing.
        if c.push || self.max_flows == 0 {
            return Verdict::Alone;
        }
        let Some(mut buf) = self.spare.pop() else {
            return Verdict::Alone;
        };
        if self.pending.len() >= self.max_flows {
            self.emit_at(0, emit);
        }
        buf.clear();
        buf.extend_from_slice(&[0; VNET_HDR_LEN]);
        buf.extend_from_slice(c.packet);
        self.pending.push(Pending {
            flow: c.flow,
            buf,
            l4_hlen: c.l4_hlen,
            gso_size: c.payload.len(),
            segments: 1,
            next_seq: c.seq.wrapping_add(c.payload.len() as u32),
            next_id: c.id.wrapping_add(1),
            push: false,
        });
        Verdict::Absorbed
    }

    /// Emits every pending super-packet: the end of a receive batch.
    pub fn flush(&mut self, emit: &mut impl FnMut(Vec<u8>)) {
        for p in self.pending.drain(..) {
            emit(p.finish());
        }
    }

    /// Takes back a buffer `emit` gave out, once its TUN write completed.
    /// Buffers beyond the `buffers` given to [`new`](Self::new), or not of
    /// the capacity it allocated, are dropped rather than kept.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < self.buffers && buf.capacity() >= BUF_CAPACITY {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// How many super-packets are pending (each holds a buffer).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn emit_at(&mut self, i: usize, emit: &mut impl FnMut(Vec<u8>)) {
        if i < self.pending.len() {
            emit(self.pending.remove(i).finish());
        }
    }

    /// Emits the pending super-packets a packet that is left alone may
    /// belong to, so it cannot overtake them: its flow's, or, for a fragment
    /// whose ports are not in it, every flow between its two addresses.
    fn emit_flow_of(&mut self, packet: &[u8], emit: &mut impl FnMut(Vec<u8>)) {
        let proto = packet.get(IP_PROTO).copied().unwrap_or(0);
        if self.pending.is_empty()
            || packet.first().map(|b| b >> 4) != Some(4)
            || !(proto == PROTO_TCP || (self.udp && proto == PROTO_UDP))
        {
            return;
        }
        let Some(addrs) = addrs(packet) else {
            return;
        };
        let ihl = packet.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
        let first_fragment = u16_at(packet, IP_FRAG).is_some_and(|f| f & IP_OFFSET == 0);
        let ports = if first_fragment && ihl >= IP_MIN_HDR { u32_at(packet, ihl) } else { None };
        let mut i = 0;
        while let Some(p) = self.pending.get(i) {
            if p.flow.proto == proto && p.flow.addrs == addrs && ports.is_none_or(|ports| ports == p.flow.ports) {
                self.emit_at(i, emit);
            } else {
                i += 1;
            }
        }
    }
}

fn addrs(packet: &[u8]) -> Option<u64> {
    Some(u64::from(u32_at(packet, IP_SRC)?) << 32 | u64::from(u32_at(packet, IP_DST)?))
}

/// `packet` as a segment that may join a super-packet, or `None`.
fn candidate(packet: &[u8], udp: bool) -> Option<Candidate<'_>> {
    let (ihl, total) = ipv4_lengths(packet).ok()?;
    let packet = packet.get(..total)?;
    let proto = packet.get(IP_PROTO).copied()?;
    if ihl != IP_MIN_HDR || u16_at(packet, IP_FRAG)? & IP_MF_OFFSET != 0 {
        return None;
    }
    if udp && proto == PROTO_UDP {
        return udp_candidate(packet);
    }
    if proto != PROTO_TCP {
        return None;
    }
    let (ip, tcp) = packet.split_at_checked(IP_MIN_HDR)?;
    let tcp_hlen = usize::from(tcp.get(TCP_DATA_OFFSET)? >> 4) * 4;
    if tcp_hlen < TCP_MIN_HDR {
        return None;
    }
    let (_, payload) = tcp.split_at_checked(tcp_hlen)?;
    let flags = tcp.get(TCP_FLAGS).copied()?;
    if payload.is_empty() || flags & !TCP_PSH != TCP_ACK_FLAG {
        return None;
    }
    // RFC 1071 §1: data with its checksum in place sums to all ones.
    let (src, dst) = (addr_at(ip, IP_SRC)?, addr_at(ip, IP_DST)?);
    let tcp_len = u16::try_from(tcp.len()).ok()?;
    if fold(sum(ip, 0)) != 0xffff || fold(sum(tcp, pseudo_header_v4(src, dst, PROTO_TCP, tcp_len))) != 0xffff {
        return None;
    }
    Some(Candidate {
        packet,
        flow: Flow { proto: PROTO_TCP, addrs: addrs(ip)?, ports: u32_at(tcp, 0)? },
        l4_hlen: tcp_hlen,
        seq: u32_at(tcp, TCP_SEQ)?,
        id: u16_at(ip, IP_ID)?,
        push: flags & TCP_PSH != 0,
        payload,
    })
}

/// An IPv4 packet without options or fragmentation, as a UDP datagram
/// that may join a super-packet, or `None`.
fn udp_candidate(packet: &[u8]) -> Option<Candidate<'_>> {
    let (ip, udp) = packet.split_at_checked(IP_MIN_HDR)?;
    let (_, payload) = udp.split_at_checked(UDP_HDR)?;
    // RFC 768: a zero checksum is "none": the super-packet would get one
    // the device never sent, so such datagrams go alone.
    if payload.is_empty() || usize::from(u16_at(udp, UDP_LEN)?) != udp.len() || u16_at(udp, UDP_CHECKSUM)? == 0 {
        return None;
    }
    let (src, dst) = (addr_at(ip, IP_SRC)?, addr_at(ip, IP_DST)?);
    let udp_len = u16::try_from(udp.len()).ok()?;
    if fold(sum(ip, 0)) != 0xffff || fold(sum(udp, pseudo_header_v4(src, dst, PROTO_UDP, udp_len))) != 0xffff {
        return None;
    }
    Some(Candidate {
        packet,
        flow: Flow { proto: PROTO_UDP, addrs: addrs(ip)?, ports: u32_at(udp, 0)? },
        l4_hlen: UDP_HDR,
        seq: 0,
        id: u16_at(ip, IP_ID)?,
        push: false,
        payload,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::offload::testpkt::*;

    /// `n` consecutive segments of `mss` bytes from `t`, IDs running on.
    fn run(t: &Tcp, n: usize, mss: usize) -> Vec<Tcp> {
        (0..n)
            .map(|i| Tcp {
                seq: t.seq.wrapping_add((i * mss) as u32),
                ip: Ip { id: t.ip.id.wrapping_add(i as u16), ..t.ip.clone() },
                payload: counting(mss * (i + 1))[mss * i..].to_vec(),
                ..t.clone()
            })
            .collect()
    }

    /// Offers `packets`, recording emitted buffers and lone packets in the
    /// order the caller would write them.
    #[derive(Debug, PartialEq)]
    enum Write {
        Emitted(Vec<u8>),
        Alone(Vec<u8>),
    }

    fn offer_all(c: &mut Coalescer, packets: &[Vec<u8>]) -> (Vec<Write>, Vec<Verdict>) {
        let mut writes = Vec::new();
        let mut verdicts = Vec::new();
        for p in packets {
            let mut emitted = Vec::new();
            let v = c.offer(p, &mut |b| emitted.push(b));
            writes.extend(emitted.into_iter().map(Write::Emitted));
            if v == Verdict::Alone {
                writes.push(Write::Alone(p.clone()));
            }
            verdicts.push(v);
        }
        let mut emitted = Vec::new();
        c.flush(&mut |b| emitted.push(b));
        writes.extend(emitted.into_iter().map(Write::Emitted));
        (writes, verdicts)
    }

    fn plain(p: &[u8]) -> Write {
        Write::Emitted([&[0; VNET_HDR_LEN][..], p].concat())
    }

    fn built(ts: &[Tcp]) -> Vec<Vec<u8>> {
        ts.iter().map(Tcp::build).collect()
    }

    /// The super-packet a kernel would build from `ts`: the first's headers,
    /// every payload, PSH from the last, the checksum partial.
    fn expected_super(ts: &[Tcp]) -> Vec<u8> {
        let first = &ts[0];
        let s = Tcp {
            flags: first.flags | (ts[ts.len() - 1].flags & PSH),
            payload: ts.iter().flat_map(|t| t.payload.clone()).collect(),
            ..first.clone()
        };
        let thl = 20 + first.options.len();
        let hdr = VnetHdr {
            flags: VnetFlags::NEEDS_CSUM,
            gso_type: GsoType::TCPV4,
            hdr_len: (20 + thl) as u16,
            gso_size: first.payload.len() as u16,
            csum_start: 20,
            csum_offset: 16,
        };
        [hdr.to_bytes().to_vec(), s.build_partial()].concat()
    }

    fn udp(i: u16, len: usize) -> Vec<u8> {
        Udp {
            ip: Ip { id: 0x100 + i, ..Ip::default() },
            sport: 5000,
            dport: 9000,
            payload: counting(len).iter().map(|b| b.wrapping_add(i as u8)).collect(),
        }
        .build()
    }

    #[test]
    fn consecutive_udp_datagrams_become_one_udp_l4_write() {
        let packets = vec![udp(0, 1000), udp(1, 1000), udp(2, 300)];
        let mut c = Coalescer::new(4, 4).with_udp(true);
        let (w, v) = offer_all(&mut c, &packets);
        assert_eq!(v, vec![Verdict::Absorbed; 3]);
        let [Write::Emitted(b)] = &w[..] else { panic!("one write: {w:?}") };
        let (hdr, packet) = VnetHdr::parse(b).unwrap();
        let payload: Vec<u8> = packets.iter().flat_map(|p| p[28..].to_vec()).collect();
        let whole = Udp { ip: Ip { id: 0x100, ..Ip::default() }, sport: 5000, dport: 9000, payload };
        assert_eq!(
            hdr,
            VnetHdr {
                flags: VnetFlags::NEEDS_CSUM,
                gso_type: GsoType::UDP_L4,
                hdr_len: 28,
                gso_size: 1000,
                csum_start: 20,
                csum_offset: 6,
            }
        );
        assert_eq!(packet, &whole.build_partial()[..], "headers describe the whole, checksum partial");
    }

    #[test]
    fn udp_without_its_switch_or_checksum_or_with_a_lying_length_goes_alone() {
        let p = udp(0, 500);
        let mut tcp_only = Coalescer::new(4, 4);
        assert_eq!(offer_all(&mut tcp_only, std::slice::from_ref(&p)).1, vec![Verdict::Alone]);
        let mut c = Coalescer::new(4, 4).with_udp(true);
        let mut no_checksum = p.clone();
        no_checksum[26..28].copy_from_slice(&[0, 0]);
        let mut bad_checksum = p.clone();
        bad_checksum[27] ^= 1;
        let mut short_len = p.clone();
        short_len[24..26].copy_from_slice(&100u16.to_be_bytes());
        for bad in [no_checksum, bad_checksum, short_len] {
            assert_eq!(offer_all(&mut c, std::slice::from_ref(&bad)).1, vec![Verdict::Alone]);
        }
    }

    #[test]
    fn a_udp_and_a_tcp_flow_on_the_same_ports_never_mix() {
        let u = udp(0, 200);
        let t = Tcp { sport: 5000, dport: 9000, payload: counting(200), ..Tcp::default() }.build();
        let mut c = Coalescer::new(4, 4).with_udp(true);
        let (w, v) = offer_all(&mut c, &[u.clone(), t.clone()]);
        assert_eq!(v, vec![Verdict::Absorbed, Verdict::Absorbed]);
        assert_eq!(w, vec![plain(&u), plain(&t)], "two flows, each written alone as it came");
    }

    #[test]
    fn one_segment_is_written_unchanged() {
        let p = Tcp { payload: counting(100), ..Tcp::default() }.build();
        let mut c = Coalescer::new(4, 4);
        let (w, v) = offer_all(&mut c, std::slice::from_ref(&p));
        assert_eq!((w, v), (vec![plain(&p)], vec![Verdict::Absorbed]));
    }

    #[test]
    fn consecutive_segments_become_one_tcpv4_write() {
        let mut ts = run(&Tcp::default(), 3, 1000);
        ts[2].flags |= PSH;
        let mut c = Coalescer::new(4, 4);
        let (w, v) = offer_all(&mut c, &built(&ts));
        assert_eq!(v, [Verdict::Absorbed; 3]);
        assert_eq!(w, [Write::Emitted(expected_super(&ts))]);
        let Write::Emitted(buf) = &w[0] else { unreachable!() };
        // Read straight off the bytes: the header, the lengths, the checksums.
        assert_eq!(&buf[..VNET_HDR_LEN], &[1, 1, 52, 0, 0xe8, 0x03, 20, 0, 16, 0]);
        let ip = &buf[VNET_HDR_LEN..];
        assert_eq!(ip.len(), 3052);
        assert_eq!(&ip[2..4], &3052u16.to_be_bytes());
        assert_eq!(naive_sum(&[&ip[..20]]), 0xffff);
        assert_eq!(ip[33], ACK | PSH);
        let partial = naive_sum(&[&pseudo(ip[12..16].try_into().unwrap(), ip[16..20].try_into().unwrap(), 6, 3032)]);
        assert_eq!(&ip[36..38], &partial.to_be_bytes());
        assert_eq!(&ip[52..], &counting(3000)[..]);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn order_is_kept_per_flow() {
        let a = run(&Tcp::default(), 2, 1000);
        let b = run(&Tcp { sport: 444, ..Tcp::default() }, 2, 1000);
        let a_ack = Tcp { seq: a[1].seq + 1000, ..Tcp::default() }.build();
        let b_ack = Tcp { sport: 444, seq: b[1].seq + 1000, ..Tcp::default() }.build();
        let mut c = Coalescer::new(4, 4);
        let (a0, a1, b0, b1) = (a[0].build(), a[1].build(), b[0].build(), b[1].build());
        let (w, v) = offer_all(&mut c, &[a0, b0, a1, a_ack.clone(), b1, b_ack.clone()]);
        use Verdict::*;
        assert_eq!(v, [Absorbed, Absorbed, Absorbed, Alone, Absorbed, Alone]);
        // A's pure ACK goes after A's super-packet, B's after B's.
        assert_eq!(
            w,
            [
                Write::Emitted(expected_super(&a)),
                Write::Alone(a_ack),
                Write::Emitted(expected_super(&b)),
                Write::Alone(b_ack)
            ]
        );
    }

    #[test]
    fn pure_acks_and_other_protocols_are_alone_and_leave_other_flows_pending() {
        let a = run(&Tcp::default(), 1, 1000);
        let other_ack = Tcp { dport: 1, ..Tcp::default() }.build();
        let udp = Udp { ip: Ip::default(), sport: 443, dport: 51000, payload: vec![1; 100] }.build();
        let mut c = Coalescer::new(4, 4);
        let (w, v) = offer_all(&mut c, &[a[0].build(), other_ack.clone(), udp.clone(), b"junk".to_vec()]);
        assert_eq!(v, [Verdict::Absorbed, Verdict::Alone, Verdict::Alone, Verdict::Alone]);
        assert_eq!(
            w,
            [Write::Alone(other_ack), Write::Alone(udp), Write::Alone(b"junk".to_vec()), plain(&a[0].build())]
        );
    }

    #[test]
    fn a_gap_in_sequence_emits_and_starts_afresh() {
        let a = run(&Tcp::default(), 4, 1000);
        let mut c = Coalescer::new(4, 4);
        let (w, v) = offer_all(&mut c, &[a[0].build(), a[2].build(), a[3].build()]);
        assert_eq!(v, [Verdict::Absorbed; 3]);
        assert_eq!(w, [plain(&a[0].build()), Write::Emitted(expected_super(&a[2..]))]);
        // A retransmission of what is pending does not join it either.
        let (w, _) = offer_all(&mut c, &[a[0].build(), a[1].build(), a[1].build()]);
        assert_eq!(w, [Write::Emitted(expected_super(&a[..2])), plain(&a[1].build())]);
    }

    #[test]
    fn psh_and_short_segments_end_a_super_packet() {
        let mut a = run(&Tcp::default(), 6, 1000);
        a[2].flags |= PSH;
        a[4].payload.truncate(500);
        a[5].seq -= 500;
        let mut c = Coalescer::new(4, 4);
        let mut emitted = Vec::new();
        let mut emit = |b| emitted.push(b);
        assert_eq!(c.offer(&a[0].build(), &mut emit), Verdict::Absorbed);
        assert_eq!(c.offer(&a[1].build(), &mut emit), Verdict::Absorbed);
        assert_eq!(c.offer(&a[2].build(), &mut emit), Verdict::Absorbed);
        assert_eq!(c.pending(), 0, "PSH emitted it at once");
        assert_eq!(c.offer(&a[3].build(), &mut emit), Verdict::Absorbed);
        assert_eq!(c.offer(&a[4].build(), &mut emit), Verdict::Absorbed);
        assert_eq!(c.pending(), 0, "the short segment emitted it at once");
        assert_eq!(c.offer(&a[5].build(), &mut emit), Verdict::Absorbed);
        c.flush(&mut emit);
        assert_eq!(
            emitted,
            [expected_super(&a[..3]), expected_super(&a[3..5]), [&[0; 10][..], &a[5].build()].concat()]
        );
        // A PSH segment with nothing pending is not worth a copy.
        let lone = Tcp { flags: ACK | PSH, payload: vec![7; 10], ..Tcp::default() }.build();
        assert_eq!(c.offer(&lone, &mut |_| panic!("nothing pending")), Verdict::Alone);
    }

    #[test]
    fn a_longer_segment_does_not_join() {
        let a = run(&Tcp::default(), 2, 500);
        let longer = Tcp {
            seq: a[1].seq + 500,
            ip: Ip { id: a[1].ip.id + 1, ..Ip::default() },
            payload: vec![3; 501],
            ..Tcp::default()
        };
        let mut c = Coalescer::new(4, 4);
        let (w, _) = offer_all(&mut c, &[a[0].build(), a[1].build(), longer.build()]);
        assert_eq!(w, [Write::Emitted(expected_super(&a)), plain(&longer.build())]);
    }

    #[test]
    fn differing_headers_do_not_join() {
        let base = run(&Tcp::default(), 2, 1000);
        let changes: [fn(&mut Tcp); 9] = [
            |t| t.ack += 1,
            |t| t.window += 1,
            |t| t.ip.ttl -= 1,
            |t| t.ip.tos = 2,
            |t| t.ip.df = false,
            |t| t.options[11] ^= 1,
            |t| t.options = vec![1; 8],
            |t| t.flags = ACK | FIN,
            |t| t.flags = ACK | CWR,
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut second = base[1].clone();
            change(&mut second);
            let mut c = Coalescer::new(4, 4);
            let (w, _) = offer_all(&mut c, &[base[0].build(), second.build()]);
            assert_eq!(w.len(), 2, "change {i}");
            assert_eq!(w[0], plain(&base[0].build()), "change {i}");
        }
    }

    #[test]
    fn ip_ids_must_run_on_without_df_only() {
        let no_df = Tcp { ip: Ip { df: false, ..Ip::default() }, ..Tcp::default() };
        let mut a = run(&no_df, 2, 1000);
        let mut c = Coalescer::new(4, 4);
        assert_eq!(offer_all(&mut c, &built(&a)).0, [Write::Emitted(expected_super(&a))]);
        a[1].ip.id += 1;
        assert_eq!(offer_all(&mut c, &built(&a)).0.len(), 2);
        // With DF the ID is free: Linux sends a fixed one on some paths.
        let mut d = run(&Tcp::default(), 2, 1000);
        d[1].ip.id = d[0].ip.id;
        assert_eq!(offer_all(&mut c, &built(&d)).0, [Write::Emitted(expected_super(&d))]);
    }

    #[test]
    fn the_oldest_flow_makes_room() {
        let flows: Vec<Vec<Tcp>> = (0..3).map(|i| run(&Tcp { sport: 1000 + i, ..Tcp::default() }, 2, 100)).collect();
        let mut c = Coalescer::new(2, 8);
        let mut emitted = Vec::new();
        for f in &flows {
            assert_eq!(c.offer(&f[0].build(), &mut |b| emitted.push(b)), Verdict::Absorbed);
        }
        assert_eq!(emitted, [[&[0; 10][..], &flows[0][0].build()].concat()]);
        assert_eq!(c.pending(), 2);
        for f in &flows[1..] {
            assert_eq!(c.offer(&f[1].build(), &mut |b| emitted.push(b)), Verdict::Absorbed);
        }
        c.flush(&mut |b| emitted.push(b));
        assert_eq!(emitted[1..], [expected_super(&flows[1]), expected_super(&flows[2])]);
        let mut none = Coalescer::new(0, 8);
        assert_eq!(none.offer(&flows[0][0].build(), &mut |_| panic!("no flows")), Verdict::Alone);
    }

    #[test]
    fn a_corrupt_segment_is_alone_and_never_laundered() {
        let a = run(&Tcp::default(), 3, 1000);
        let mut bad_payload = a[1].build();
        bad_payload[100] ^= 0x40;
        let mut bad_ip = a[1].build();
        bad_ip[8] -= 1; // TTL, covered only by the IP header checksum
        for bad in [bad_payload, bad_ip] {
            let mut c = Coalescer::new(4, 4);
            let (w, v) = offer_all(&mut c, &[a[0].build(), bad.clone(), a[2].build()]);
            assert_eq!(v, [Verdict::Absorbed, Verdict::Alone, Verdict::Absorbed]);
            assert_eq!(w, [plain(&a[0].build()), Write::Alone(bad), plain(&a[2].build())]);
        }
    }

    #[test]
    fn options_fragments_and_lies_are_alone_and_keep_order() {
        let a = run(&Tcp::default(), 1, 1000);
        let with_ip_options = Tcp { ip: Ip { options: vec![1, 1, 1, 0], ..Ip::default() }, ..a[0].clone() };
        let mut fragment = a[0].build();
        fragment[6] |= 0x20; // MF
        let mut later_fragment = a[0].build();
        later_fragment[7] = 0x10;
        let mut long = a[0].build();
        long[3] += 1;
        let mut c = Coalescer::new(4, 4);
        for odd in [with_ip_options.build(), fragment, later_fragment, long] {
            let (w, v) = offer_all(&mut c, &[a[0].build(), odd.clone()]);
            assert_eq!(v, [Verdict::Absorbed, Verdict::Alone]);
            assert_eq!(w, [plain(&a[0].build()), Write::Alone(odd)]);
        }
        // A later fragment has no ports: every flow between its addresses goes first.
        let other = Tcp { sport: 1, ..a[0].clone() }.build();
        let mut later_fragment = a[0].build();
        later_fragment[7] = 0x10;
        let stranger = Tcp { ip: Ip { src: [1, 2, 3, 4], ..Ip::default() }, ..a[0].clone() }.build();
        let mut c = Coalescer::new(4, 4);
        let (w, _) = offer_all(&mut c, &[a[0].build(), other.clone(), stranger.clone(), later_fragment.clone()]);
        assert_eq!(w, [plain(&a[0].build()), plain(&other), Write::Alone(later_fragment), plain(&stranger)]);
    }

    #[test]
    fn a_super_packet_stays_within_64k() {
        let a = run(&Tcp::default(), 50, 1400);
        let mut c = Coalescer::new(4, 4);
        let (w, _) = offer_all(&mut c, &built(&a));
        // 20 + 32 + 46 × 1400 = 64452; a 47th would pass 65535.
        assert_eq!(w, [Write::Emitted(expected_super(&a[..46])), Write::Emitted(expected_super(&a[46..]))]);
    }

    #[test]
    fn buffers_run_out_and_come_back() {
        let a = run(&Tcp::default(), 2, 100);
        let b = run(&Tcp { sport: 7, ..Tcp::default() }, 2, 100);
        let mut c = Coalescer::new(4, 1);
        let mut emitted = Vec::new();
        assert_eq!(c.offer(&a[0].build(), &mut |e| emitted.push(e)), Verdict::Absorbed);
        assert_eq!(c.offer(&b[0].build(), &mut |e| emitted.push(e)), Verdict::Alone);
        c.flush(&mut |e| emitted.push(e));
        assert_eq!(c.offer(&b[1].build(), &mut |e| emitted.push(e)), Verdict::Alone);
        let buf = emitted.pop().unwrap();
        let ptr = buf.as_ptr();
        // Foreign and surplus buffers are not kept.
        c.recycle(Vec::new());
        c.recycle(buf);
        c.recycle(Vec::with_capacity(BUF_CAPACITY));
        assert_eq!(c.spare.len(), 1);
        assert_eq!(c.offer(&b[1].build(), &mut |e| emitted.push(e)), Verdict::Absorbed);
        assert_eq!(c.pending[0].buf.as_ptr(), ptr);
    }

    #[test]
    fn steady_state_reuses_the_same_buffers() {
        let mut c = Coalescer::new(3, 6);
        let mut seen = std::collections::HashSet::new();
        let flows: Vec<Tcp> = (0..4).map(|i| Tcp { sport: 2000 + i, ..Tcp::default() }).collect();
        let mut seq = [0u32; 4];
        for round in 0..200u32 {
            let mut out = Vec::new();
            for i in 0..40 {
                let f = (i * 7 + round as usize) % 4;
                let t = Tcp {
                    seq: flows[f].seq.wrapping_add(seq[f]),
                    payload: vec![round as u8; 1200],
                    ..flows[f].clone()
                };
                seq[f] = seq[f].wrapping_add(1200);
                c.offer(&t.build(), &mut |b| out.push(b));
            }
            c.flush(&mut |b| out.push(b));
            for b in out {
                assert_eq!(b.capacity(), BUF_CAPACITY);
                seen.insert(b.as_ptr() as usize);
                c.recycle(b);
            }
        }
        assert!(seen.len() <= 6, "{} distinct buffers", seen.len());
        assert_eq!(c.pending.capacity(), 3);
        assert_eq!(c.spare.capacity(), 6);
    }
}
