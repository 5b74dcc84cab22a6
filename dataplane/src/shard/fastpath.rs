//! The device → network step of a shard, one record at a time, on memory.
//!
//! A shard's receive loop finds the session by peer address, checks the
//! record header (epoch 0 goes to control's handshake driver), then calls
//! [`open_record`] and acts on the [`RecordAction`] with a TUN write, a UDP
//! send or an event. This module exposes that middle step unchanged, so that
//! benchmarks and tests run exactly the code the shard runs, with the ring,
//! the sockets and the TUN replaced by the caller's buffers.
//!
//! Call order per record, as the shard does it:
//! [`dtls::record::Record::new_checked`] on the datagram (drop if malformed,
//! hand epoch 0 to the handshake), then [`open_record`] on the bytes from
//! the record's start, then act on the returned [`RecordAction`] and step
//! forward by the header's total length.

use std::time::Instant;

use dtls::crypto::CryptoError;
use dtls::RecordProtection;
use proto::grant::SessionGrant;

pub use super::from_device::RecordAction;
use super::sessions::Session;
use crate::counters::ShardCounters;
use crate::messages::Tally;
use crate::sys::RawSockAddr;

/// A granted session as a shard holds it, outside any shard.
#[derive(Debug)]
pub struct DeviceSession(Session);

impl DeviceSession {
    /// The session a shard would install for `grant` at `now` (the shard
    /// also checks the address against its pool, which has no meaning here).
    pub fn new(grant: SessionGrant, now: Instant) -> Result<Self, CryptoError> {
        let record = RecordProtection::new(grant.keys)?;
        Ok(Self(Session {
            id: grant.session,
            peer: grant.peer,
            peer_raw: RawSockAddr::new(grant.peer),
            address: grant.address,
            policy: grant.policy,
            record,
            rx: Tally::default(),
            tx: Tally::default(),
            last_rx: now,
            active: false,
            batch: None,
        }))
    }

    /// Records opened (authenticated) for this session.
    pub fn rx_packets(&self) -> u64 {
        self.0.rx.packets
    }

    /// What [`ToShard::Repolicy`](crate::ToShard::Repolicy) does to an
    /// installed session.
    pub fn set_policy(&mut self, policy: proto::grant::Policy) {
        self.0.policy = policy;
    }
}

/// Opens the record at the start of `record` in place and decides what it
/// asks for; drops are counted in `counters`, as on the shard. Ranges in the
/// result are relative to `record`.
#[inline]
pub fn open_record(
    record: &mut [u8],
    session: &mut DeviceSession,
    counters: &mut ShardCounters,
    now: Instant,
) -> RecordAction {
    super::from_device::open_record(record, &mut session.0, counters, now)
}

/// The admission step of a DATA record as the shard takes it:
/// [`Policy::admit`](proto::grant::Policy::admit) with the session's address
/// and policy, a refusal counted in `counters`. Returns the packet's length
/// by its header.
#[inline]
pub fn admit(packet: &[u8], session: &DeviceSession, counters: &mut ShardCounters) -> Option<usize> {
    super::from_device::admit(packet, &session.0, counters)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::net::{Ipv4Addr, SocketAddr};

    use dtls::keys::DirectionKeys;
    use dtls::replay::ReplayWindow;
    use dtls::{CipherSuite, ContentType, Role, SessionKeys};
    use proto::cstp::PacketType;
    use proto::grant::{Policy, SessionId};
    use proto::ip::Ipv4Net;

    use super::*;

    const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

    fn keys(role: Role) -> SessionKeys {
        let a = DirectionKeys::new(&[7u8; 32], &[9u8; 4]).unwrap();
        let b = DirectionKeys::new(&[8u8; 32], &[10u8; 4]).unwrap();
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

    fn session() -> DeviceSession {
        let grant = SessionGrant {
            session: SessionId(2),
            peer: SocketAddr::from(([192, 0, 2, 1], 4433)),
            address: ADDRESS,
            policy: Policy::allowing(vec![Ipv4Net::new(Ipv4Addr::new(10, 1, 0, 0), 16).unwrap()]),
            keys: keys(Role::Server),
            mtu: 1400,
        };
        DeviceSession::new(grant, Instant::now()).unwrap()
    }

    /// A device record carrying `kind` and, for DATA, a 40-byte IPv4 packet to `dst`.
    fn sealed(client: &mut RecordProtection, kind: PacketType, dst: Ipv4Addr) -> Vec<u8> {
        let mut payload = vec![kind.0];
        if kind == PacketType::DATA {
            let mut ip = [0u8; 40];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&40u16.to_be_bytes());
            ip[12..16].copy_from_slice(&ADDRESS.octets());
            ip[16..20].copy_from_slice(&dst.octets());
            payload.extend_from_slice(&ip);
        }
        let mut buf = vec![0u8; client.headroom() + payload.len() + client.tailroom()];
        buf[client.headroom()..][..payload.len()].copy_from_slice(&payload);
        let n = client.seal_in_place(ContentType::APPLICATION_DATA, &mut buf, payload.len()).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn data_record_to_an_allowed_destination_is_written_to_the_tun() {
        let mut client: RecordProtection = RecordProtection::new(keys(Role::Client)).unwrap();
        let mut s = session();
        let mut counters = ShardCounters::default();
        let mut rec = sealed(&mut client, PacketType::DATA, Ipv4Addr::new(10, 1, 2, 3));
        let action = open_record(&mut rec, &mut s, &mut counters, Instant::now());
        let RecordAction::WriteTun(inner) = action else { panic!("{action:?}") };
        assert_eq!(inner.len(), 40);
        assert_eq!(&rec[inner.start..inner.start + 4], &[0x45, 0, 0, 40]);
        assert_eq!((counters.rx_records, s.rx_packets()), (1, 1));
    }

    #[test]
    fn data_record_outside_the_policy_is_dropped_and_counted() {
        let mut client: RecordProtection = RecordProtection::new(keys(Role::Client)).unwrap();
        let mut s = session();
        let mut counters = ShardCounters::default();
        let mut rec = sealed(&mut client, PacketType::DATA, Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(open_record(&mut rec, &mut s, &mut counters, Instant::now()), RecordAction::Done);
        assert_eq!((counters.rx_records, counters.drop_policy), (1, 1));
    }

    #[test]
    fn replayed_record_is_dropped_and_counted() {
        let mut client: RecordProtection = RecordProtection::new(keys(Role::Client)).unwrap();
        let mut s = session();
        let mut counters = ShardCounters::default();
        let rec = sealed(&mut client, PacketType::KEEPALIVE, Ipv4Addr::UNSPECIFIED);
        let now = Instant::now();
        assert_eq!(open_record(&mut rec.clone(), &mut s, &mut counters, now), RecordAction::Done);
        assert_eq!(open_record(&mut rec.clone(), &mut s, &mut counters, now), RecordAction::Done);
        assert_eq!((counters.keepalives, counters.drop_replay), (1, 1));
    }
}
