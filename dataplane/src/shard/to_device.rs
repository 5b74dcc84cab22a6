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
//!
//! With offloads the TUN read starts with a `virtio_net_hdr` (in the last
//! bytes of the headroom) and may be a TSO/USO super-packet of up to 64 KiB.
//! Each packet, or each MTU-sized segment of a super-packet, is then sealed
//! straight into the peer's GSO batch ([`super::transmit`]) and the batches
//! leave at the end of the loop turn, one `sendmsg` per peer.

use dtls::protection::MAX_HEADROOM;
use dtls::{ContentType, RecordProtection};
use proto::cstp::PacketType;
use proto::grant::SessionId;
use proto::ip::{IpError, Ipv4Packet};
use proto::offload::{complete_checksum, GsoType, Segments, VnetHdr, VNET_HDR_LEN};

use super::sessions::Session;
use super::transmit::Transmit;
use super::Shard;
use crate::counters::ShardCounters;
use crate::io::TxBuf;
use crate::messages::{CrossPacket, FromShard};

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

/// Where a network → device packet goes.
enum Route {
    /// A session on this shard, at this table slot.
    Local(u32),
    /// No DTLS session: control sends it over CSTP.
    Cstp(SessionId),
    /// The shard with this owner tag holds the session.
    Other(u16),
    /// Dropped (counted).
    Drop,
}

/// A heap frame for a packet crossing to another shard, laid out like a
/// TUN slot (packet at `PACKET_AT`, room for the tag behind).
fn cross_frame(packet: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; PACKET_AT + packet.len() + TAILROOM];
    if let Some(dst) = frame.get_mut(PACKET_AT..PACKET_AT + packet.len()) {
        dst.copy_from_slice(packet);
    }
    frame
}

/// Seals each packet of a vnet-header read (one, or the segments of a
/// super-packet) into `session`'s batch. False if no batch buffer was free
/// for the first packet (nothing was taken: the caller may send it alone).
fn seal_read(
    tx: &mut Transmit,
    s: u32,
    session: &mut Session,
    counters: &mut ShardCounters,
    hdr: &VnetHdr,
    packet: &[u8],
) -> bool {
    if hdr.gso_type.kind() == GsoType::NONE {
        let len = packet.len();
        return tx.seal(s, session, counters, len, |room| {
            let room = room.get_mut(..len)?;
            room.copy_from_slice(packet);
            complete_checksum(hdr, room).ok().map(|()| len)
        });
    }
    let mut segments = match Segments::new(hdr, packet) {
        Ok(seg) => seg,
        Err(_) => {
            counters.drop_offload += 1;
            return true;
        }
    };
    let (count, most) = (segments.count(), segments.segment_len());
    counters.tun_super_packets += 1;
    for i in 0..count {
        let sealed = tx.seal(s, session, counters, most, |room| match segments.next_into(room) {
            Some(Ok(n)) => Some(n),
            _ => None,
        });
        if !sealed {
            // No buffer for the rest of this super-packet: TCP retransmits.
            counters.batch_fallbacks += 1;
            counters.queue_full += (count - i) as u64;
            break;
        }
    }
    true
}

impl Shard {
    /// The route for a packet to `dst`.
    fn route(&mut self, dst: std::net::Ipv4Addr) -> Route {
        let Some(offset) = self.pool.offset_of(dst) else {
            self.counters.drop_no_session += 1;
            return Route::Drop;
        };
        let owner = self.owners.get(offset as usize).map_or(0, |o| o.load(core::sync::atomic::Ordering::Acquire));
        match (owner, self.sessions.slot_by_offset(offset)) {
            (o, Some(s)) if o == self.owner_tag => Route::Local(s),
            (0, _) => Route::Cstp(SessionId(offset)),
            (o, _) if o != self.owner_tag => Route::Other(o),
            // Owner table says this shard but the session is gone: a revoke
            // is racing this packet.
            _ => {
                self.counters.drop_no_session += 1;
                Route::Drop
            }
        }
    }

    pub(super) fn on_tun_packet(&mut self, bid: u16, len: usize) {
        self.counters.tun_reads += 1;
        self.counters.tun_read_bytes += len as u64;
        // With a vnet header the read starts that many bytes before PACKET_AT.
        let (at, hdr) = if self.vnet {
            let at = PACKET_AT - VNET_HDR_LEN;
            let Some(read) = self.engine.tun_slot(bid).and_then(|b| b.get(at..at + len)) else {
                self.counters.drop_oversize += 1;
                return;
            };
            match VnetHdr::parse(read) {
                Some((hdr, _)) => (PACKET_AT, hdr),
                None => {
                    self.counters.drop_malformed += 1;
                    return;
                }
            }
        } else {
            (PACKET_AT, VnetHdr::NONE)
        };
        let len = if self.vnet { len.saturating_sub(VNET_HDR_LEN) } else { len };
        let Some(packet) = self.engine.tun_slot(bid).and_then(|b| b.get(at..at + len)) else {
            self.counters.drop_oversize += 1;
            return;
        };
        let dst = match Ipv4Packet::new_checked(packet) {
            Ok(ip) => ip.dst(),
            Err(IpError::Truncated) if hdr.gso_type.kind() == GsoType::NONE => {
                self.counters.drop_oversize += 1;
                return;
            }
            // A super-packet's header may say 0 or less than the read; the
            // segmenter checks it.
            Err(IpError::Truncated) => match proto::ip::ipv4_dst(packet) {
                Some(dst) => dst,
                None => {
                    self.counters.drop_malformed += 1;
                    return;
                }
            },
            Err(_) => {
                self.counters.drop_malformed += 1;
                return;
            }
        };
        match self.route(dst) {
            Route::Local(s) if !self.vnet => self.send_in_place(s, bid, len),
            Route::Local(s) => {
                let Self { engine, sessions, counters, tx, .. } = self;
                let Some(packet) = engine.tun_slot(bid).and_then(|b| b.get(at..at + len)) else { return };
                let Some(session) = sessions.get_mut(s) else { return };
                let sealed = seal_read(tx, s, session, counters, &hdr, packet);
                sessions.touch(s);
                if !sealed {
                    self.counters.batch_fallbacks += 1;
                    if complete_checksum(
                        &hdr,
                        self.engine.tun_slot(bid).and_then(|b| b.get_mut(at..at + len)).unwrap_or_default(),
                    )
                    .is_ok()
                    {
                        self.send_in_place(s, bid, len);
                    }
                }
            }
            Route::Cstp(session) => self.forward_to_cstp(session, bid, at, len, hdr),
            Route::Other(o) => {
                let Some(packet) = self.engine.tun_slot(bid).and_then(|b| b.get(at..at + len)) else { return };
                let frame = cross_frame(packet);
                self.hand_to(o, CrossPacket { dst, frame, len, hdr });
            }
            Route::Drop => {}
        }
    }

    /// Seals the plain packet at `PACKET_AT` of TUN slot `bid` where it
    /// lies and sends it alone.
    fn send_in_place(&mut self, s: u32, bid: u16, len: usize) {
        let Some(session) = self.sessions.get_mut(s) else { return };
        let Some(slot) = self.engine.tun_slot(bid) else { return };
        let Some(range) = seal_data(&mut session.record, slot, len, &mut self.counters) else { return };
        session.tx.add(len);
        let peer = session.peer_raw;
        self.sessions.touch(s);
        let submitted = self.engine.send_to(TxBuf::Tun(bid), range, &peer, None);
        self.count_refused(submitted);
    }

    /// A packet for a session without DTLS goes to control whole: a
    /// super-packet as its segments, each checksummed.
    fn forward_to_cstp(&mut self, session: SessionId, bid: u16, at: usize, len: usize, hdr: VnetHdr) {
        let Some(packet) = self.engine.tun_slot(bid).and_then(|b| b.get_mut(at..at + len)) else { return };
        if hdr.gso_type.kind() == GsoType::NONE {
            if complete_checksum(&hdr, packet).is_err() {
                self.counters.drop_offload += 1;
                return;
            }
            let packet = packet.to_vec();
            self.emit(FromShard::CstpPacket { session, packet });
            return;
        }
        let packet: &[u8] = packet;
        let Ok(mut segments) = Segments::new(&hdr, packet) else {
            self.counters.drop_offload += 1;
            return;
        };
        self.counters.tun_super_packets += 1;
        let mut out = Vec::with_capacity(segments.count());
        let mut buf = vec![0u8; segments.segment_len()];
        while let Some(Ok(n)) = segments.next_into(&mut buf) {
            out.push(buf.get(..n).map(<[u8]>::to_vec).unwrap_or_default());
        }
        for packet in out {
            self.emit(FromShard::CstpPacket { session, packet });
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
        let CrossPacket { dst, mut frame, len, hdr } = p;
        let Some(s) = self.pool.offset_of(dst).and_then(|o| self.sessions.slot_by_offset(o)) else {
            self.counters.drop_no_session += 1;
            return;
        };
        if self.vnet {
            let Self { sessions, counters, tx, .. } = self;
            let Some(session) = sessions.get_mut(s) else { return };
            let Some(packet) = frame.get(PACKET_AT..PACKET_AT + len) else { return };
            if seal_read(tx, s, session, counters, &hdr, packet) {
                sessions.touch(s);
                return;
            }
            self.counters.batch_fallbacks += 1;
            if hdr.gso_type.kind() != GsoType::NONE
                || complete_checksum(&hdr, frame.get_mut(PACKET_AT..PACKET_AT + len).unwrap_or_default()).is_err()
            {
                self.counters.queue_full += 1;
                return;
            }
        }
        let Some(session) = self.sessions.get_mut(s) else { return };
        let Some(range) = seal_data(&mut session.record, &mut frame, len, &mut self.counters) else { return };
        session.tx.add(len);
        let peer = session.peer_raw;
        self.sessions.touch(s);
        let submitted = self.engine.send_to(TxBuf::Owned(frame), range, &peer, None);
        self.count_refused(submitted);
    }

    /// Moves every batch sealed this turn to the ready list and sends them.
    pub(super) fn send_batches(&mut self) {
        let Self { sessions, tx, .. } = self;
        tx.close_all(sessions);
        self.send_ready();
    }

    /// Hands the ready batches to the engine.
    pub(super) fn send_ready(&mut self) {
        let mut ready = core::mem::take(&mut self.tx.ready);
        for (peer, batch) in ready.drain(..) {
            let datagrams = batch.datagrams() as u64;
            let (buf, used, segment) = batch.into_send();
            match self.engine.send_to(TxBuf::Owned(buf), 0..used, &peer, segment) {
                Ok(()) => {
                    if segment.is_some() {
                        self.counters.gso_sends += 1;
                    }
                    self.counters.tx_batches += 1;
                    self.counters.tx_records += datagrams;
                }
                Err(e) => {
                    self.tx.buffers.lost();
                    self.counters.queue_full += datagrams;
                    self.count_refused(Err(e));
                }
            }
        }
        self.tx.ready = ready;
    }
}
