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
    assert_eq!(w, [Write::Alone(other_ack), Write::Alone(udp), Write::Alone(b"junk".to_vec()), plain(&a[0].build())]);
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
    assert_eq!(emitted, [expected_super(&a[..3]), expected_super(&a[3..5]), [&[0; 10][..], &a[5].build()].concat()]);
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
            let t =
                Tcp { seq: flows[f].seq.wrapping_add(seq[f]), payload: vec![round as u8; 1200], ..flows[f].clone() };
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
