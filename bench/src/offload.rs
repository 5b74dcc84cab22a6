//! The offload arithmetic of the fast path: a TSO super-packet from the TUN
//! cut into MTU-sized packets and each sealed as a DTLS record (what a shard
//! does per segment before the GSO send), and device TCP segments coalesced
//! into one TUN super-packet.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};

use dtls::{ContentType, RecordProtection};
use proto::offload::{checksum, Coalescer, GsoType, Segments, Verdict, VnetFlags, VnetHdr};

use crate::measured;
use crate::record::session_keys;

/// TCP payload per segment: a 1400-byte tunnel MTU less 40 bytes of headers.
const MSS: usize = 1360;
/// Segments in the super-packet: 48 × 1360 + 40 = 65 320 bytes, under 64 KiB.
const SEGMENTS: usize = 48;

const SRC: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 99, 2);

/// An IPv4/TCP packet (20 + 20 bytes of headers, fixed ports, `flags`)
/// with `payload`, its checksums either complete or, for a super-packet
/// written by the kernel, the TCP field holding the pseudo-header sum.
fn tcp_packet(seq: u32, id: u16, flags: u8, payload: &[u8], partial: bool) -> Vec<u8> {
    let total = u16::try_from(40 + payload.len()).expect("under 64 KiB");
    let mut ip = Vec::with_capacity(20);
    ip.extend_from_slice(&[0x45, 0]);
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&id.to_be_bytes());
    ip.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]); // DF, TTL 64, TCP, checksum below
    ip.extend_from_slice(&SRC.octets());
    ip.extend_from_slice(&DST.octets());
    let ip_sum = !checksum::fold(checksum::sum(&ip, 0));
    ip.splice(10..12, ip_sum.to_be_bytes());
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&5201u16.to_be_bytes());
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&7u32.to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, flags]);
    tcp.extend_from_slice(&512u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum below, urgent pointer
    tcp.extend_from_slice(payload);
    let pseudo = checksum::pseudo_header_v4(SRC, DST, 6, total - 20);
    let field = if partial { checksum::fold(pseudo) } else { !checksum::fold(checksum::sum(&tcp, pseudo)) };
    tcp.splice(16..18, field.to_be_bytes());
    ip.extend_from_slice(&tcp);
    ip
}

/// The TCP checksum of an IPv4/TCP packet with a 20-byte IP header verifies.
fn tcp_checksum_ok(packet: &[u8]) -> bool {
    let Some(tcp) = packet.get(20..) else { return false };
    let Ok(len) = u16::try_from(tcp.len()) else { return false };
    checksum::fold(checksum::sum(tcp, checksum::pseudo_header_v4(SRC, DST, 6, len))) == 0xffff
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// One 48-segment TSO super-packet: segmented (headers, checksums) and each
/// segment sealed as a DATA record into one batch buffer.
pub(crate) fn tso_segment_seal_48() -> u64 {
    let payload = pattern(SEGMENTS * MSS);
    let packet = tcp_packet(1000, 1, 0x18, &payload, true);
    let hdr = VnetHdr {
        flags: VnetFlags::NEEDS_CSUM,
        gso_type: GsoType::TCPV4,
        hdr_len: 40,
        gso_size: MSS as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    let (client, server) = session_keys();
    let mut tx: RecordProtection = RecordProtection::new(server).expect("server record keys");
    let mut rx: RecordProtection = RecordProtection::new(client).expect("client record keys");
    let (head, record_len) = (tx.headroom(), tx.overhead() + 1 + 40 + MSS);
    let mut batch = vec![0u8; SEGMENTS * record_len];
    let used = measured(|| {
        let Ok(mut segments) = Segments::new(&hdr, black_box(&packet)) else { return 0 };
        let mut used = 0;
        while let Some(room) = batch.get_mut(used..used + record_len) {
            let Some(Ok(len)) = room.get_mut(head + 1..).and_then(|r| segments.next_into(r)) else { break };
            if let Some(t) = room.get_mut(head) {
                *t = 0; // OpenConnect DATA
            }
            let Ok(n) = tx.seal_in_place(ContentType::APPLICATION_DATA, room, len + 1) else { break };
            used += n;
        }
        used
    });
    assert_eq!(used, SEGMENTS * record_len, "every segment sealed");
    // Each record opens to an IPv4/TCP packet whose checksum verifies.
    let mut delivered = 0u64;
    for record in batch.chunks_mut(record_len) {
        let opened = rx.open_in_place(record).expect("the device opens each record");
        let inner = opened.payload().get(1..).unwrap_or_default();
        assert!(tcp_checksum_ok(inner), "TCP checksum");
        delivered += inner.len().saturating_sub(40) as u64;
    }
    assert_eq!(delivered, (SEGMENTS * MSS) as u64);
    delivered
}

/// 48 consecutive device UDP datagrams of one flow (1360-byte payloads, as
/// `corridor bench bulk` sends them, with checksums) coalesced into one TUN
/// `UDP_L4` super-packet (checks of each datagram's checksums included).
pub(crate) fn udp_coalesce_48() -> u64 {
    let payload = pattern(SEGMENTS * MSS);
    let packets: Vec<Vec<u8>> = payload
        .chunks(MSS)
        .map(|chunk| {
            let mut p = Vec::new();
            proto::ip::emit_ipv4_udp(SocketAddrV4::new(DST, 40_000), SocketAddrV4::new(SRC, 9000), chunk, &mut p);
            p
        })
        .collect();
    coalesce_into_one(Coalescer::new(4, 4).with_udp(true), &packets, GsoType::UDP_L4, 28, &payload)
}

/// Offers `packets` to `coalescer` (the measured part) and checks they made
/// one super-packet of `gso_type` whose payload after `headers` bytes is
/// `payload`; returns its length.
fn coalesce_into_one(
    mut coalescer: Coalescer,
    packets: &[Vec<u8>],
    gso_type: GsoType,
    headers: usize,
    payload: &[u8],
) -> u64 {
    let mut written: Vec<Vec<u8>> = Vec::with_capacity(4);
    let absorbed = measured(|| {
        let mut absorbed = 0u64;
        for p in packets {
            if matches!(coalescer.offer(black_box(p), &mut |v| written.push(v)), Verdict::Absorbed) {
                absorbed += 1;
            }
        }
        coalescer.flush(&mut |v| written.push(v));
        absorbed
    });
    assert_eq!(absorbed, packets.len() as u64, "every packet joins");
    assert_eq!(written.len(), 1, "one super-packet");
    let (hdr, packet) = written.first().and_then(|w| VnetHdr::parse(w)).expect("vnet header");
    assert_eq!((hdr.gso_type, usize::from(hdr.gso_size)), (gso_type, MSS));
    assert_eq!(packet.get(headers..), Some(payload), "payload in order");
    packet.len() as u64
}

/// 48 consecutive device TCP segments of one flow coalesced into one TUN
/// super-packet (checks of each segment's checksums included).
pub(crate) fn tcp_coalesce_48() -> u64 {
    let payload = pattern(SEGMENTS * MSS);
    // ACK on every segment, PSH on the last, as a bulk sender does.
    let packets: Vec<Vec<u8>> = payload
        .chunks(MSS)
        .enumerate()
        .map(|(i, chunk)| {
            let flags = if i + 1 == SEGMENTS { 0x18 } else { 0x10 };
            tcp_packet(1000 + (i * MSS) as u32, 1 + i as u16, flags, chunk, false)
        })
        .collect();
    coalesce_into_one(Coalescer::new(4, 4), &packets, GsoType::TCPV4, 40, &payload)
}
