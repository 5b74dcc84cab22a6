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
mod tests;
