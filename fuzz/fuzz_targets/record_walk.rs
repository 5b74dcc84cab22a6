//! A shard's record walk over a granted session (`dataplane::fastpath`):
//! what a device's datagram goes through once its peer has a session.
//!
//! The input builds one datagram at a time from ops, so the fuzzer reaches
//! past the AEAD with the session's real keys (aws-lc-rs):
//! - `0`: `len(1) ‖ bytes` — raw bytes (forged or broken records);
//! - `1`: `kind(1) ‖ len(2) ‖ plaintext` — a record the device seals with
//!   its keys; `kind` picks the content type (bits 0–1), a replay of the
//!   last sealed record after it (bit 2), and (bit 3) an inner IPv4 header
//!   made to pass the source check (version, length, the session's address);
//! - `2`: the datagram is walked as the shard walks it and a new one begun.
//!
//! Each step stays inside its record; a packet written to the TUN lies in
//! the record and comes from the session's address; a DPD reply, sealed in
//! place, has the request's length and opens at the device as DPD_RESP.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use dataplane::fastpath::{open_record, DeviceSession, RecordAction};
use dataplane::ShardCounters;
use dtls::keys::DirectionKeys;
use dtls::record::Record;
use dtls::replay::ReplayWindow;
use dtls::{CipherSuite, ContentType, RecordProtection, Role, SessionKeys};
use proto::cstp::PacketType;
use proto::grant::{Policy, SessionGrant, SessionId};
use proto::ip::Ipv4Net;

const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const TYPES: [ContentType; 4] =
    [ContentType::APPLICATION_DATA, ContentType::ALERT, ContentType::HANDSHAKE, ContentType::CHANGE_CIPHER_SPEC];

fn keys(role: Role) -> SessionKeys {
    let a = DirectionKeys::new(&[7u8; 32], &[9u8; 4]).expect("key");
    let b = DirectionKeys::new(&[8u8; 32], &[10u8; 4]).expect("key");
    let (write, read) = if role == Role::Client { (a, b) } else { (b, a) };
    SessionKeys {
        suite: CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384,
        role,
        epoch: 1,
        write,
        read,
        next_send_seq: 1,
        replay: ReplayWindow::new(1024),
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let grant = SessionGrant {
        session: SessionId(2),
        peer: SocketAddr::from(([192, 0, 2, 1], 4433)),
        address: ADDRESS,
        // The implicit deny too: the pool's other addresses and the gateway's.
        policy: Policy {
            gateway: vec![Ipv4Addr::new(10, 1, 0, 1)],
            pool: Some(Ipv4Net::new(Ipv4Addr::new(10, 1, 0, 0), 16).expect("prefix")),
            ..Policy::allowing(vec![Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8).expect("prefix")])
        },
        keys: keys(Role::Server),
        mtu: 1400,
    };
    let mut session = DeviceSession::new(grant, now).expect("session");
    let mut device: RecordProtection = RecordProtection::new(keys(Role::Client)).expect("device");
    let mut counters = ShardCounters::default();
    let mut datagram = Vec::new();
    let mut last_sealed: Vec<u8> = Vec::new();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 3 {
            0 => {
                let Some((&len, tail)) = rest.split_first() else { break };
                let (bytes, tail) = tail.split_at(usize::from(len).min(tail.len()));
                datagram.extend_from_slice(bytes);
                rest = tail;
            }
            1 => {
                let Some((&[kind, hi, lo], tail)) = rest.split_first_chunk::<3>().map(|(h, t)| (h, t)) else { break };
                let len = usize::from(u16::from_be_bytes([hi, lo])).min(tail.len()).min(4096);
                let (plain, tail) = tail.split_at(len);
                rest = tail;
                let mut plain = plain.to_vec();
                if kind & 8 != 0 && plain.len() >= 21 {
                    let total = u16::try_from(plain.len() - 1).expect("≤ 4096");
                    plain[1] = 0x45;
                    plain[3..5].copy_from_slice(&total.to_be_bytes());
                    plain[13..17].copy_from_slice(&ADDRESS.octets());
                }
                let mut buf = vec![0u8; device.headroom() + plain.len() + device.tailroom()];
                buf[device.headroom()..][..plain.len()].copy_from_slice(&plain);
                let ct = TYPES[usize::from(kind & 3)];
                let n = device.seal_in_place(ct, &mut buf, plain.len()).expect("seal");
                buf.truncate(n);
                datagram.extend_from_slice(&buf);
                if kind & 4 != 0 && !last_sealed.is_empty() {
                    datagram.extend_from_slice(&last_sealed);
                }
                last_sealed = buf;
            }
            _ => walk(&mut std::mem::take(&mut datagram), &mut session, &mut device, &mut counters, now),
        }
    }
    walk(&mut datagram, &mut session, &mut device, &mut counters, now);
    // Only DATA records are traffic; DPD, keepalives and alerts are not.
    assert!(session.rx_packets() <= counters.rx_records, "{} > {}", session.rx_packets(), counters.rx_records);
});

/// The shard's loop over one datagram (`Shard::open_records`).
fn walk(
    datagram: &mut [u8],
    session: &mut DeviceSession,
    device: &mut RecordProtection,
    counters: &mut ShardCounters,
    now: Instant,
) {
    let mut at = 0;
    while at < datagram.len() {
        let rec = &mut datagram[at..];
        let (epoch, record_len) = match Record::new_checked(&*rec) {
            Ok(r) => (r.epoch(), r.total_len()),
            Err(_) => return,
        };
        assert!(record_len <= rec.len());
        if epoch == 0 {
            return; // the handshake's, not the session's
        }
        let (packets, records) = (session.rx_packets(), counters.rx_records);
        let action = open_record(rec, session, counters, now);
        assert!(session.rx_packets() - packets <= counters.rx_records - records, "a packet without a record");
        match action {
            RecordAction::Done | RecordAction::Disconnect(SessionId(2)) => {}
            RecordAction::Disconnect(other) => panic!("a disconnect for {other:?}"),
            RecordAction::Reply(_) | RecordAction::WriteTun(_) if counters.rx_records == records => {
                panic!("an action for a record that did not open")
            }
            RecordAction::WriteTun(inner) => {
                // A DATA record: one packet of traffic.
                assert_eq!(session.rx_packets(), packets + 1, "the packet written is counted");
                assert!(inner.start < inner.end && inner.end <= record_len, "{inner:?} of {record_len}");
                let ip = proto::ip::Ipv4Packet::new_checked(&rec[inner.clone()]).expect("an IPv4 packet");
                assert_eq!((ip.src(), ip.total_len()), (ADDRESS, inner.len()));
            }
            RecordAction::Reply(r) => {
                assert_eq!(r, 0..record_len, "the reply is sealed where the request was");
                let mut reply = rec[r].to_vec();
                let opened = device.open_in_place(&mut reply).expect("the device opens the DPD reply");
                assert_eq!(opened.payload().first(), Some(&PacketType::DPD_RESP.0));
            }
        }
        at += record_len;
    }
}
