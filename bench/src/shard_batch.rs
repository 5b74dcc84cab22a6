//! A receive batch through the shard's device → network step, with the ring
//! replaced by memory: each datagram's header is checked as the shard checks
//! it, then `dataplane::fastpath::open_record` (the shard's own function)
//! opens it, reads the type byte, applies the policy and decides.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use dataplane::fastpath::{self, DeviceSession, RecordAction};
use dataplane::ShardCounters;
use dtls::record::Record;
use dtls::{ContentType, RecordProtection};
use proto::cstp::PacketType;
use proto::grant::{Policy, SessionGrant, SessionId};
use proto::ip::Ipv4Net;

use crate::classify::ipv4;
use crate::measured;
use crate::record::session_keys;

const BATCH: usize = 64;
const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
/// Inner packet sizes cycle through these: full-size, ACK, mid, full-size.
const SIZES: [u16; 4] = [1400, 40, 576, 1400];

pub(crate) fn batch_64() -> u64 {
    let (client, server) = session_keys();
    let mut device: RecordProtection = RecordProtection::new(client).expect("device record keys");
    let now = Instant::now();
    let grant = SessionGrant {
        session: SessionId(2),
        peer: SocketAddr::from(([192, 0, 2, 1], 40000)),
        address: ADDRESS,
        policy: Policy::allowing(vec![Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8).expect("prefix ≤ 32")]),
        keys: server,
        mtu: 1400,
    };
    let mut session = DeviceSession::new(grant, now).expect("session record keys");
    let mut datagrams: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| {
            let size = SIZES.get(i % SIZES.len()).copied().unwrap_or(40);
            let [_, _, hi, lo] = u32::try_from(i).unwrap_or(0).to_be_bytes();
            let mut payload = vec![PacketType::DATA.0];
            payload.extend_from_slice(&ipv4(ADDRESS, Ipv4Addr::new(10, 1, hi, lo), size));
            let head = device.headroom();
            let mut buf = vec![0u8; head + payload.len() + device.tailroom()];
            if let Some(p) = buf.get_mut(head..head + payload.len()) {
                p.copy_from_slice(&payload);
            }
            let n = device.seal_in_place(ContentType::APPLICATION_DATA, &mut buf, payload.len()).expect("seal");
            buf.truncate(n);
            buf
        })
        .collect();
    let mut counters = ShardCounters::default();
    let tun_bytes = measured(|| {
        let mut tun_bytes = 0u64;
        for datagram in &mut datagrams {
            // The shard's header step: malformed is dropped, epoch 0 is the handshake's.
            match Record::new_checked(&*datagram) {
                Ok(r) if r.epoch() != 0 => {}
                _ => continue,
            }
            if let RecordAction::WriteTun(inner) =
                fastpath::open_record(black_box(datagram.as_mut_slice()), &mut session, &mut counters, now)
            {
                tun_bytes += black_box(datagram.get(inner)).map_or(0, <[u8]>::len) as u64;
            }
        }
        tun_bytes
    });
    let expected: u64 = (0..BATCH).map(|i| u64::from(SIZES.get(i % SIZES.len()).copied().unwrap_or(40))).sum();
    assert_eq!(tun_bytes, expected, "every inner packet is admitted whole");
    assert_eq!((counters.rx_records, session.rx_packets()), (BATCH as u64, BATCH as u64));
    tun_bytes
}
