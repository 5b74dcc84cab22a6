//! The TUN offload arithmetic (`proto::offload`) over arbitrary bytes.
//!
//! Network → device: the input is a TUN read (vnet header and packet);
//! every segment produced must be an IPv4 packet with a valid header
//! checksum and a total length equal to what was written.
//!
//! Device → network: the input after the first byte is a run of
//! `len(2) ‖ packet`, offered to a coalescer. The first byte's bits make the
//! packets reachable for coalescing, which random checksums never are:
//! bit 0 fixes their IPv4 and TCP/UDP checksums (and a UDP length), bit 1
//! chains sequence numbers and IP IDs as consecutive segments of one flow
//! would be, bit 2 turns UDP coalescing on. Every emitted write, cut the way
//! the kernel cuts it, must give packets whose IPv4 and TCP/UDP checksums
//! are valid: coalescing never turns bad data into good.
#![no_main]

use proto::offload::checksum::{fold, pseudo_header_v4, sum};
use proto::offload::{complete_checksum, Coalescer, GsoType, Segments, Verdict, VnetHdr, VNET_HDR_LEN};
use std::net::Ipv4Addr;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tun_read(data);
    device_packets(data);
});

fn tun_read(data: &[u8]) {
    let Some((hdr, packet)) = VnetHdr::parse(data) else { return };
    let mut owned = packet.to_vec();
    let _ = complete_checksum(&hdr, &mut owned);
    if let Ok(segments) = Segments::new(&hdr, packet) {
        check_segments(segments, false);
    }
}

/// Cuts every segment into a 64 KiB buffer and checks it; with `tcp_valid`
/// the TCP checksum must be right too. Returns how many there were.
fn check_segments(mut segments: Segments<'_>, tcp_valid: bool) -> usize {
    let (count, segment_len) = (segments.count(), segments.segment_len());
    let mut out = vec![0u8; 65535];
    let mut seen = 0;
    while let Some(r) = segments.next_into(&mut out) {
        let Ok(n) = r else { break };
        seen += 1;
        assert!(n <= out.len() && n <= segment_len, "segment of {n} bytes, segment_len {segment_len}");
        let seg = &out[..n];
        let ip = proto::ip::Ipv4Packet::new_checked(seg).expect("a segment is IPv4");
        assert_eq!(ip.total_len(), n);
        assert_eq!(fold(sum(&seg[..ip.header_len()], 0)), 0xffff, "IPv4 header checksum");
        if tcp_valid {
            assert!(l4_checksum_ok(seg), "TCP/UDP checksum of a segment");
        }
    }
    assert!(seen <= count);
    seen
}

fn device_packets(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let mut coalescer = Coalescer::new(3, 4).with_udp(mode & 4 != 0);
    let mut prev: Option<(u32, u16)> = None;
    let mut emitted = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        rest = tail;
        let mut packet = packet.to_vec();
        if mode & 2 != 0 {
            prev = chain(&mut packet, prev);
        }
        if mode & 1 != 0 {
            fix_checksums(&mut packet);
        }
        let verdict = coalescer.offer(&packet, &mut |b| emitted.push(b));
        let good = l4_checksum_ok(&packet);
        assert!(verdict == Verdict::Alone || good, "a packet with a bad checksum was absorbed");
        for b in emitted.drain(..) {
            check_write(&b);
            coalescer.recycle(b);
        }
    }
    coalescer.flush(&mut |b| emitted.push(b));
    for b in emitted.drain(..) {
        check_write(&b);
    }
}

fn check_write(buf: &[u8]) {
    let (hdr, packet) = VnetHdr::parse(buf).expect("a vnet header");
    if hdr == VnetHdr::NONE {
        assert!(l4_checksum_ok(packet), "a plain write was a valid TCP segment or UDP datagram");
        return;
    }
    assert!(hdr.gso_type == GsoType::TCPV4 || hdr.gso_type == GsoType::UDP_L4, "{hdr:?}");
    assert_eq!(buf.len(), VNET_HDR_LEN + usize::from(u16::from_be_bytes([packet[2], packet[3]])));
    let segments = Segments::new(&hdr, packet).expect("a coalesced write segments");
    assert!(check_segments(segments, true) >= 2);
}

/// Whether `p` is IPv4 carrying TCP, or UDP with a checksum, and that
/// checksum is right.
fn l4_checksum_ok(p: &[u8]) -> bool {
    let Ok(ip) = proto::ip::Ipv4Packet::new_checked(p) else { return false };
    let Ok(len) = u16::try_from(ip.payload().len()) else { return false };
    let proto = if ip.protocol() == proto::ip::IpProtocol::TCP {
        6
    } else if ip.protocol() == proto::ip::IpProtocol::UDP && ip.payload().get(6..8).is_some_and(|c| c != [0, 0]) {
        17
    } else {
        return false;
    };
    fold(sum(ip.payload(), pseudo_header_v4(ip.src(), ip.dst(), proto, len))) == 0xffff
}

/// Gives `p` the sequence number and IP ID that follow `prev`, if it looks
/// like IPv4/TCP; returns its own for the next.
fn chain(p: &mut [u8], prev: Option<(u32, u16)>) -> Option<(u32, u16)> {
    let ihl = usize::from(p.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes(p.get(2..4)?.try_into().ok()?)).min(p.len());
    let thl = usize::from(p.get(ihl + 12)? >> 4) * 4;
    let payload = total.checked_sub(ihl + thl)?;
    if let Some((seq, id)) = prev {
        p.get_mut(ihl + 4..ihl + 8)?.copy_from_slice(&seq.to_be_bytes());
        p.get_mut(4..6)?.copy_from_slice(&id.to_be_bytes());
    }
    let seq = u32::from_be_bytes(p.get(ihl + 4..ihl + 8)?.try_into().ok()?);
    let id = u16::from_be_bytes(p.get(4..6)?.try_into().ok()?);
    Some((seq.wrapping_add(payload as u32), id.wrapping_add(1)))
}

/// Recomputes the IPv4 header and TCP checksums of whatever `p` claims to be.
fn fix_checksums(p: &mut [u8]) {
    let Some(ihl) = p.first().map(|b| usize::from(b & 0x0f) * 4) else { return };
    let Some(total) = p.get(2..4).map(|t| usize::from(u16::from_be_bytes([t[0], t[1]]))) else { return };
    if ihl < 20 || total < ihl || total > p.len() {
        return;
    }
    p[10..12].copy_from_slice(&[0, 0]);
    let c = proto::ip::internet_checksum(&p[..ihl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let l4_len = total - ihl;
    let at = if p[9] == 17 { 6 } else { 16 };
    if l4_len < at + 2 {
        return;
    }
    if p[9] == 17 {
        p[ihl + 4..ihl + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    p[ihl + at..ihl + at + 2].copy_from_slice(&[0, 0]);
    let c = !fold(sum(&p[ihl..total], pseudo_header_v4(src, dst, p[9], l4_len as u16)));
    let c = if c == 0 && p[9] == 17 { 0xffff } else { c };
    p[ihl + at..ihl + at + 2].copy_from_slice(&c.to_be_bytes());
}
