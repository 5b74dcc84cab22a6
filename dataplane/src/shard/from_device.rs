//! Device → network: a UDP datagram becomes TUN writes, a DPD reply, or an
//! event for control. Records are opened in the receive slot and the inner
//! packet is written to the TUN from that same slot.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

use dtls::record::Record;
use dtls::{ContentType, OpenError};
use proto::cstp::PacketType;
use proto::grant::{Refusal, SessionId};
use proto::offload::{GsoType, Verdict, VnetHdr, VNET_HDR_LEN};

use super::sessions::Session;
use super::Shard;
use crate::counters::ShardCounters;
use crate::io::TxBuf;
use crate::messages::FromShard;
use crate::messages::TUN_WRITE_HEADROOM;
use crate::sys::RawSockAddr;

/// What one record asks for; ranges are relative to the record's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordAction {
    /// Nothing to send (absorbed or dropped); go on with the next record.
    Done,
    /// Write this inner IP packet to the TUN.
    WriteTun(Range<usize>),
    /// Send this sealed record back to the peer.
    Reply(Range<usize>),
    /// The device said goodbye: tell control to end this session.
    Disconnect(SessionId),
}

/// Passes an opened DTLS DATA packet through the session's admission rule,
/// [`Policy::admit`](proto::grant::Policy::admit) (control applies the same
/// to CSTP packets), counting a refusal under the drop counter named for
/// it. Returns the packet's length by its header.
pub(super) fn admit(packet: &[u8], session: &Session, counters: &mut ShardCounters) -> Option<usize> {
    match session.policy.admit(session.address, packet) {
        Ok(admitted) => Some(admitted.total_len),
        Err(refusal) => {
            let counter = match refusal {
                Refusal::NotIpv4 => &mut counters.drop_not_ipv4,
                Refusal::Malformed => &mut counters.drop_malformed,
                Refusal::SpoofedSource => &mut counters.drop_spoofed_source,
                Refusal::Denied => &mut counters.drop_policy,
                Refusal::ToGateway => &mut counters.drop_to_gateway,
                Refusal::ClientToClient => &mut counters.drop_client_to_client,
            };
            *counter += 1;
            None
        }
    }
}

/// Opens the record at the start of `rec` and decides what it asks for.
pub(super) fn open_record(
    rec: &mut [u8],
    session: &mut Session,
    counters: &mut ShardCounters,
    now: Instant,
) -> RecordAction {
    let opened = match session.record.open_in_place(rec) {
        Ok(o) => o,
        Err(e) => {
            // RFC 6347 §4.1.2.7: invalid records are silently discarded.
            match e {
                OpenError::Malformed => counters.drop_malformed += 1,
                OpenError::WrongEpoch => counters.drop_wrong_epoch += 1,
                OpenError::Replayed => counters.drop_replay += 1,
                OpenError::BadRecordMac => counters.drop_bad_mac += 1,
            }
            return RecordAction::Done;
        }
    };
    counters.rx_records += 1;
    session.last_rx = now;
    if opened.content_type != ContentType::APPLICATION_DATA {
        // Alerts (a disconnecting openconnect sends close_notify) and
        // post-handshake messages are authentic but carry no packet; the
        // session's end comes over CSTP or as a DTLS DISCONNECT.
        counters.rx_alerts += 1;
        return RecordAction::Done;
    }
    let plain = opened.payload_range();
    let kind = opened.payload().first().copied().map(PacketType);
    match kind {
        Some(PacketType::DATA) => {
            let inner = plain.start + 1..plain.end;
            // Only DATA counts as traffic (idle timeout, ctl): DPD and
            // keepalives keep a channel up, not a session busy.
            session.rx.add(inner.len());
            match rec.get(inner.clone()).and_then(|p| admit(p, session, counters)) {
                Some(len) => RecordAction::WriteTun(inner.start..inner.start + len),
                None => RecordAction::Done,
            }
        }
        Some(PacketType::DPD_REQ) => {
            // Echo the payload as DPD-RESP (openconnect-protocol.md §4.2: the
            // client sizes its MTU probes with it), sealed where the request
            // was: its header, nonce and tag occupy exactly the same bytes.
            if let Some(t) = rec.get_mut(plain.start) {
                *t = PacketType::DPD_RESP.0;
            }
            match session.record.seal_in_place(ContentType::APPLICATION_DATA, rec, plain.len()) {
                Ok(n) => {
                    counters.dpd_answered += 1;
                    RecordAction::Reply(0..n)
                }
                Err(_) => {
                    counters.seal_errors += 1;
                    RecordAction::Done
                }
            }
        }
        Some(PacketType::KEEPALIVE) => {
            counters.keepalives += 1;
            RecordAction::Done
        }
        Some(PacketType::DPD_RESP) => RecordAction::Done,
        Some(PacketType::DISCONNECT) => RecordAction::Disconnect(session.id),
        _ => {
            counters.drop_malformed += 1;
            RecordAction::Done
        }
    }
}

impl Shard {
    pub(super) fn on_datagram(
        &mut self,
        bid: u16,
        peer: Option<SocketAddr>,
        payload: Range<usize>,
        truncated: bool,
        segment: Option<u16>,
        now: Instant,
    ) {
        // Once per receive, however many datagrams GRO coalesced into it.
        self.counters.rx_bytes += payload.len() as u64;
        let Some(peer) = peer else {
            self.counters.rx_datagrams += 1;
            self.counters.drop_malformed += 1;
            return;
        };
        if truncated {
            self.counters.rx_datagrams += 1;
            self.counters.drop_oversize += 1;
            return;
        }
        match segment.map(usize::from) {
            // UDP GRO: several datagrams of one peer back to back.
            Some(size) if size > 0 && size < payload.len() => {
                self.counters.gro_receives += 1;
                self.counters.gro_datagrams += payload.len().div_ceil(size) as u64;
                // Every datagram of a GRO receive is from one peer: one
                // session lookup for all of them. (Without a session each
                // goes to the handshake, which may grant one midway.) Only
                // authenticated records count as activity: a forger must not
                // keep an idle session alive.
                let mut slot = self.sessions.slot_by_peer(&peer);
                let opened_before = self.counters.rx_records;
                let mut at = payload.start;
                while at < payload.end {
                    let end = (at + size).min(payload.end);
                    self.counters.rx_datagrams += 1;
                    let handshake = match slot {
                        Some(s) => self.open_records(bid, s, peer, at..end, now),
                        None => {
                            self.run_handshake(bid, peer, at..end, now);
                            true
                        }
                    };
                    if handshake {
                        slot = self.sessions.slot_by_peer(&peer);
                    }
                    at = end;
                }
                if let Some(s) = slot.filter(|_| self.counters.rx_records != opened_before) {
                    self.sessions.touch(s);
                }
            }
            _ => {
                self.counters.rx_datagrams += 1;
                match self.sessions.slot_by_peer(&peer) {
                    Some(slot) => {
                        let opened_before = self.counters.rx_records;
                        let _ = self.open_records(bid, slot, peer, payload, now);
                        if self.counters.rx_records != opened_before {
                            self.sessions.touch(slot);
                        }
                    }
                    None => self.run_handshake(bid, peer, payload, now),
                }
            }
        }
    }

    /// Walks the records of a granted peer's datagram (RFC 6347 §4.1.1: a
    /// datagram may carry several), acting on each in the receive slot.
    /// True when the rest of the datagram went to the handshake (which
    /// may have granted the peer a new session: look it up again).
    fn open_records(&mut self, bid: u16, slot: u32, peer: SocketAddr, payload: Range<usize>, now: Instant) -> bool {
        let mut at = payload.start;
        while at < payload.end {
            let Some(buf) = self.engine.udp_slot(bid) else { return false };
            let Some(rec) = buf.get_mut(at..payload.end) else { return false };
            let (epoch, record_len) = match Record::new_checked(&*rec) {
                Ok(r) => (r.epoch(), r.total_len()),
                Err(_) => {
                    self.counters.drop_malformed += 1;
                    return false;
                }
            };
            if epoch == 0 {
                // The client is retransmitting its final flight, or starts
                // anew from the same address: the handshake answers it.
                self.run_handshake(bid, peer, at..payload.end, now);
                return true;
            }
            let Some(session) = self.sessions.get_mut(slot) else { return false };
            let action = open_record(rec, session, &mut self.counters, now);
            let peer_raw = session.peer_raw;
            match action {
                RecordAction::Done => {}
                RecordAction::WriteTun(r) => self.write_inner(bid, at + r.start..at + r.end),
                RecordAction::Reply(r) => {
                    let submitted = self.engine.send_to(TxBuf::Udp(bid), at + r.start..at + r.end, &peer_raw, None);
                    self.count_refused(submitted);
                }
                RecordAction::Disconnect(session) => self.emit(FromShard::Disconnect { session }),
            }
            at += record_len;
        }
        false
    }

    /// Writes the opened inner packet at `range` of UDP slot `bid` to the
    /// TUN: as it lies, or with offloads through the coalescer, or alone
    /// behind a plain vnet header put where the record header was.
    fn write_inner(&mut self, bid: u16, range: Range<usize>) {
        if !self.vnet {
            let submitted = self.engine.write_tun(TxBuf::Udp(bid), range);
            self.count_refused(submitted);
            return;
        }
        let Self { engine, coalescer, emitted, .. } = self;
        let Some(slot) = engine.udp_slot(bid) else { return };
        let verdict = match (coalescer.as_mut(), slot.get(range.clone())) {
            (Some(c), Some(packet)) => c.offer(packet, &mut |v| emitted.push(v)),
            _ => Verdict::Alone,
        };
        self.write_emitted();
        if matches!(verdict, Verdict::Absorbed) {
            return;
        }
        // The record's header and nonce sit in front of the packet (at
        // least 14 bytes), already consumed: room for the vnet header.
        let Some(start) = range.start.checked_sub(VNET_HDR_LEN) else { return };
        let Some(head) = self.engine.udp_slot(bid).and_then(|b| b.get_mut(start..range.start)) else { return };
        head.copy_from_slice(&VnetHdr::NONE.to_bytes());
        let submitted = self.engine.write_tun(TxBuf::Udp(bid), start..range.end);
        self.count_refused(submitted);
    }

    /// Writes what the coalescer finished (vnet header + packet each).
    pub(super) fn write_emitted(&mut self) {
        let mut emitted = core::mem::take(&mut self.emitted);
        for buf in emitted.drain(..) {
            if let Some((hdr, packet)) = VnetHdr::parse(&buf).filter(|(h, _)| h.gso_type != GsoType::NONE) {
                self.counters.tun_super_writes += 1;
                let data = packet.len().saturating_sub(usize::from(hdr.hdr_len));
                self.counters.tun_super_segments += data.div_ceil(usize::from(hdr.gso_size).max(1)) as u64;
            }
            let len = buf.len();
            let submitted = self.engine.write_tun(TxBuf::Owned(buf), 0..len);
            self.count_refused(submitted);
        }
        self.emitted = emitted;
    }

    /// A datagram from a peer with no session here (or the epoch-0 rest of
    /// one from a peer that has: the device resending its final flight)
    /// goes to this shard's handshakes. A completed handshake's session is
    /// installed before its final flight leaves, so the device's first
    /// record finds it.
    fn run_handshake(&mut self, bid: u16, peer: SocketAddr, range: Range<usize>, now: Instant) {
        let Self { engine, handshakes, .. } = self;
        let Some(datagram) = engine.udp_slot(bid).and_then(|b| b.get(range)) else { return };
        let mut replies = Vec::new();
        let established = handshakes.on_datagram(now, peer, datagram, &mut |d| replies.push(d.to_vec()));
        let peer_raw = RawSockAddr::new(peer);
        for r in replies {
            self.send_owned(r, &peer_raw);
        }
        if let Some(e) = established {
            let (session, suite) = (e.grant.session, e.info.suite);
            self.on_grant(e.grant, now);
            for d in e.final_flight {
                self.send_owned(d, &peer_raw);
            }
            self.emit(FromShard::Established { shard: self.id, session, peer, suite });
        }
    }

    /// Sends a datagram the shard built (handshake flights, a relay bind).
    pub(super) fn send_owned(&mut self, datagram: Vec<u8>, to: &RawSockAddr) {
        let len = datagram.len();
        let submitted = self.engine.send_to(TxBuf::Owned(datagram), 0..len, to, None);
        self.count_refused(submitted);
    }

    /// Handshake retransmissions and clean-up.
    pub(super) fn handshake_timers(&mut self, now: Instant) {
        let mut out = Vec::new();
        self.handshakes.on_timeout(now, &mut |to, d| out.push((to, d.to_vec())));
        for (to, d) in out {
            self.send_owned(d, &RawSockAddr::new(to));
        }
    }

    /// A device packet that arrived over CSTP. Control admitted and
    /// trimmed it (see [`ToShard::TunWrite`](crate::ToShard::TunWrite)): it
    /// is written as given.
    pub(super) fn on_cstp_packet(&mut self, mut frame: Vec<u8>) {
        let len = frame.len();
        let range = if self.vnet {
            // Every write to a vnet queue starts with the header: it goes
            // in the room control left in front of the packet.
            let Some(room) = frame.get_mut(..VNET_HDR_LEN) else { return };
            room.copy_from_slice(&VnetHdr::NONE.to_bytes());
            0..len
        } else {
            TUN_WRITE_HEADROOM.min(len)..len
        };
        let submitted = self.engine.write_tun(TxBuf::Owned(frame), range);
        self.count_refused(submitted);
    }
}
