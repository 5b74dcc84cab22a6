//! Network → device: a TUN packet becomes a sealed DTLS record sent to the
//! session's peer, a packet for the shard that owns the session, or a
//! CSTP packet for control.
//!
//! Buffer layout (a TUN slot, or a cross-shard frame):
//!
//! ```text
//! | pad | record header | explicit nonce | type | IP packet … | tag |
//!       |<------ record headroom ------->|      ^PACKET_AT    |<-TAILROOM->|
//! ```
//!
//! The kernel reads the packet to `PACKET_AT`; the type byte goes right in
//! front of it and the record is sealed in place from `PACKET_AT - 1 -
//! headroom` (the pad is non-zero only for suites without an explicit nonce).

use dtls::protection::MAX_HEADROOM;
use dtls::{ContentType, RecordProtection};
use proto::cstp::PacketType;
use proto::grant::SessionId;
use proto::ip::{IpError, Ipv4Packet};

use super::Shard;
use crate::counters::ShardCounters;
use crate::messages::{CrossPacket, FromShard};
use crate::uring::TxBuf;

/// Where the IP packet starts in a TUN slot or cross-shard frame.
pub(crate) const PACKET_AT: usize = MAX_HEADROOM + 1;
/// Room behind the packet for the AEAD tag.
pub(crate) const TAILROOM: usize = dtls::protection::TAILROOM;

/// Seals the `len`-byte packet at `buf[PACKET_AT..]` as a DATA record in
/// place; returns the record's range in `buf`.
fn seal_data(
    record: &mut RecordProtection,
    buf: &mut [u8],
    len: usize,
    counters: &mut ShardCounters,
) -> Option<core::ops::Range<usize>> {
    let start = PACKET_AT - 1 - record.headroom();
    *buf.get_mut(PACKET_AT - 1)? = PacketType::DATA.0;
    match record.seal_in_place(ContentType::APPLICATION_DATA, buf.get_mut(start..)?, len + 1) {
        Ok(n) => Some(start..start + n),
        Err(dtls::SealError::BufferTooSmall | dtls::SealError::PayloadTooLong) => {
            counters.drop_oversize += 1;
            None
        }
        Err(_) => {
            counters.seal_errors += 1;
            None
        }
    }
}

impl Shard {
    pub(super) fn on_tun_packet(&mut self, bid: u16, len: usize) {
        self.counters.tun_reads += 1;
        let Some(slot) = self.engine.tun_slot(bid) else { return };
        let Some(packet) = slot.get(PACKET_AT..PACKET_AT + len) else {
            self.counters.drop_oversize += 1;
            return;
        };
        let dst = match Ipv4Packet::new_checked(packet) {
            Ok(ip) => ip.dst(),
            Err(IpError::Truncated) => {
                self.counters.drop_oversize += 1;
                return;
            }
            Err(_) => {
                self.counters.drop_malformed += 1;
                return;
            }
        };
        let Some(offset) = self.pool.offset_of(dst) else {
            self.counters.drop_no_session += 1;
            return;
        };
        let owner = self.owners.get(offset as usize).map_or(0, |o| o.load(core::sync::atomic::Ordering::Acquire));
        let local = self.sessions.slot_by_offset(offset);
        match (owner, local) {
            (o, Some(s)) if o == self.owner_tag => {
                let Some(session) = self.sessions.get_mut(s) else { return };
                let Some(slot) = self.engine.tun_slot(bid) else { return };
                let Some(range) = seal_data(&mut session.record, slot, len, &mut self.counters) else { return };
                session.tx_packets += 1;
                let peer = session.peer_raw;
                self.sessions.touch(s);
                let submitted = self.engine.send_to(TxBuf::Tun(bid), range, &peer);
                self.count_refused(submitted);
            }
            (0, _) => {
                let packet = packet.to_vec();
                self.emit(FromShard::CstpPacket { session: SessionId(offset), packet });
            }
            (o, _) if o != self.owner_tag => {
                let mut frame = vec![0u8; PACKET_AT + len + TAILROOM];
                if let Some(dst) = frame.get_mut(PACKET_AT..PACKET_AT + len) {
                    dst.copy_from_slice(packet);
                }
                self.hand_to(o, CrossPacket { offset, frame, len });
            }
            // Owner table says this shard but the session is gone: a revoke
            // is racing this packet.
            _ => self.counters.drop_no_session += 1,
        }
    }

    /// Queues a packet for the shard whose owner tag is `owner`.
    fn hand_to(&mut self, owner: u16, packet: CrossPacket) {
        let Some(target) = self.all.get(usize::from(owner) - 1) else {
            self.counters.drop_no_session += 1;
            return;
        };
        if target.cross.push(packet).is_ok() {
            target.doorbell.ring();
            self.counters.cross_shard += 1;
        } else {
            self.counters.queue_full += 1;
        }
    }

    /// A packet another shard read from its TUN queue for a session here.
    pub(super) fn on_cross_packet(&mut self, p: CrossPacket) {
        let CrossPacket { offset, mut frame, len } = p;
        let Some(s) = self.sessions.slot_by_offset(offset) else {
            self.counters.drop_no_session += 1;
            return;
        };
        let Some(session) = self.sessions.get_mut(s) else { return };
        let Some(range) = seal_data(&mut session.record, &mut frame, len, &mut self.counters) else { return };
        session.tx_packets += 1;
        let peer = session.peer_raw;
        self.sessions.touch(s);
        let submitted = self.engine.send_to(TxBuf::Owned(frame), range, &peer);
        self.count_refused(submitted);
    }
}
