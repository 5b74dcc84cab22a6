//! The per-packet admission rule on its own (`Policy::admit`, as the shard
//! and control call it): header check, source, destination.

use std::hint::black_box;
use std::net::Ipv4Addr;

use proto::grant::Policy;
use proto::ip::Ipv4Net;

use crate::measured;

const PACKETS: usize = 1000;
const SOURCE: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

/// A group's allowed networks; the last one matches most traffic, so the
/// scan walks the whole list for it. The implicit deny as control fills it
/// in: the gateway's TUN and listen addresses, the pool.
fn policy() -> Policy {
    let net = |a, b, c, d, prefix| Ipv4Net::new(Ipv4Addr::new(a, b, c, d), prefix).expect("prefix ≤ 32");
    Policy {
        allowed: vec![net(192, 168, 10, 0, 24), net(172, 16, 0, 0, 12), net(10, 20, 0, 0, 16), net(10, 0, 0, 0, 8)],
        gateway: vec![Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(203, 0, 113, 5)],
        pool: Some(net(10, 9, 0, 0, 24)),
        client_to_client: false,
    }
}

/// A `total_len`-byte IPv4 (TCP, zero payload) packet from `src` to `dst`.
pub(crate) fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, total_len: u16) -> Vec<u8> {
    let mut p = vec![0u8; usize::from(total_len)];
    let header: [u8; 20] = {
        let [l0, l1] = total_len.to_be_bytes();
        let [s0, s1, s2, s3] = src.octets();
        let [d0, d1, d2, d3] = dst.octets();
        [0x45, 0, l0, l1, 0, 0, 0x40, 0, 64, 6, 0, 0, s0, s1, s2, s3, d0, d1, d2, d3]
    };
    if let Some(h) = p.get_mut(..20) {
        h.copy_from_slice(&header);
    }
    p
}

/// Packet `i` of the fixed mix: mostly allowed, every 8th to a network the
/// policy does not allow, every 16th (of the rest) with a spoofed source.
fn packet(i: usize) -> (Vec<u8>, bool) {
    let [_, _, hi, lo] = u32::try_from(i).unwrap_or(0).to_be_bytes();
    let (src, dst, admitted) = if i % 8 == 7 {
        (SOURCE, Ipv4Addr::new(8, 8, hi, lo), false)
    } else if i % 16 == 3 {
        (Ipv4Addr::new(10, 9, 0, 3), Ipv4Addr::new(10, 1, hi, lo), false)
    } else {
        (SOURCE, Ipv4Addr::new(10, 1, hi, lo), true)
    };
    (ipv4(src, dst, 40), admitted)
}

pub(crate) fn ipv4_1000() -> u64 {
    let policy = policy();
    let (packets, expected): (Vec<Vec<u8>>, Vec<bool>) = (0..PACKETS).map(packet).unzip();
    let admitted = measured(|| {
        let mut admitted = 0u64;
        for p in &packets {
            if policy.admit(SOURCE, black_box(p.as_slice())).is_ok() {
                admitted += 1;
            }
        }
        admitted
    });
    assert_eq!(admitted, expected.iter().filter(|a| **a).count() as u64, "the fixed mix classifies as built");
    admitted
}
