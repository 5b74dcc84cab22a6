//! What client and server connections share: record I/O around the
//! handshake, flights and their retransmission, events and counters.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Common;
use crate::handshake::msg::{put_header, transcript_bytes, HS_HEADER_LEN};
use crate::handshake::reassembly::Reassembler;
use crate::keys::DirectionKeys;
use crate::protection::{seal_to_vec, RecordProtection, Role, SessionKeys};
use crate::record::{RecordHeaderRepr, HEADER_LEN};
use crate::replay::ReplayWindow;
use crate::types::{AlertDescription, AlertLevel, CipherSuite, ContentType, HandshakeType, ProtocolVersion};
use crate::Error;

use super::{CloseReason, Event, HandshakeInfo, Stats};

/// Epoch-1 records that arrive before the peer's ChangeCipherSpec are kept
/// (reordering is normal); beyond this many they are dropped.
pub(crate) const MAX_EARLY_RECORDS: usize = 8;

#[derive(Debug, Clone)]
pub(crate) enum FlightItem {
    Handshake { msg_type: HandshakeType, message_seq: u16, epoch: u16, body: Vec<u8> },
    ChangeCipherSpec,
}

/// The epoch-1 keys once derived, and their raw form for the hand-off.
#[derive(Debug)]
pub(crate) struct EpochKeys {
    pub(crate) protection: RecordProtection,
    pub(crate) write: DirectionKeys,
    pub(crate) read: DirectionKeys,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Handshaking,
    Established,
    HandedOff,
    Closed,
}

#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) role: Role,
    pub(crate) common: Common,
    pub(crate) status: Status,
    epoch0_seq: u64,
    next_msg_seq: u16,
    pub(crate) keys: Option<EpochKeys>,
    pub(crate) write_active: bool,
    pub(crate) read_active: bool,
    pub(crate) reasm: Reassembler,
    pub(crate) early: Vec<Vec<u8>>,
    pub(crate) ccs_received: bool,
    flight: Vec<FlightItem>,
    /// The final flight, frozen as sent: retransmitting the same bytes never
    /// reuses an epoch-1 sequence number with different plaintext, even
    /// after the keys were handed off.
    final_flight: Option<Vec<Vec<u8>>>,
    retransmit_at: Option<Instant>,
    rto: Duration,
    handshake_deadline: Option<Instant>,
    last_reactive_retransmit: Option<Instant>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    pub(crate) transcript: Vec<u8>,
    pub(crate) stats: Stats,
    pub(crate) info: Option<HandshakeInfo>,
    pub(crate) scratch: Vec<u8>,
}

impl Core {
    pub(crate) fn new(role: Role, common: Common, now: Instant, next_msg_seq: u16, next_recv_seq: u16) -> Self {
        let rto = common.timers.initial_retransmit;
        let deadline = now.checked_add(common.timers.handshake_timeout);
        Self {
            role,
            common,
            status: Status::Handshaking,
            epoch0_seq: 0,
            next_msg_seq,
            keys: None,
            write_active: false,
            read_active: false,
            reasm: Reassembler::new(next_recv_seq),
            early: Vec::new(),
            ccs_received: false,
            flight: Vec::new(),
            final_flight: None,
            retransmit_at: None,
            rto,
            handshake_deadline: deadline,
            last_reactive_retransmit: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            transcript: Vec::new(),
            stats: Stats::default(),
            info: None,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn set_epoch0_seq(&mut self, seq: u64) {
        self.epoch0_seq = seq;
    }

    pub(crate) fn push_event(&mut self, e: Event) {
        self.events.push_back(e);
    }

    pub(crate) fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(crate) fn pop_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        match self.transmits.pop_front() {
            Some(d) => {
                out.clear();
                out.extend_from_slice(&d);
                true
            }
            None => false,
        }
    }

    pub(crate) fn push_transmit(&mut self, d: Vec<u8>) {
        self.stats.datagrams_out += 1;
        self.transmits.push_back(d);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let hs = if self.status == Status::Handshaking { self.handshake_deadline } else { None };
        match (self.retransmit_at, hs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts a new outgoing flight; the previous one stops being retransmitted.
    pub(crate) fn begin_flight(&mut self) {
        self.flight.clear();
        self.retransmit_at = None;
        self.rto = self.common.timers.initial_retransmit;
    }

    /// Adds a handshake message to the current flight and the transcript.
    pub(crate) fn push_handshake(&mut self, msg_type: HandshakeType, epoch: u16, body: Vec<u8>) {
        let message_seq = self.next_msg_seq;
        self.next_msg_seq = self.next_msg_seq.wrapping_add(1);
        transcript_bytes(&mut self.transcript, msg_type, message_seq, &body);
        self.flight.push(FlightItem::Handshake { msg_type, message_seq, epoch, body });
    }

    pub(crate) fn push_change_cipher_spec(&mut self) {
        self.flight.push(FlightItem::ChangeCipherSpec);
    }

    /// Sends the current flight. A flight that expects an answer is
    /// retransmitted on a timer; a final flight is frozen and only resent
    /// when the peer shows it missed it (RFC 6347 §4.2.4).
    pub(crate) fn send_flight(&mut self, now: Instant, final_flight: bool) -> Result<(), Error> {
        let datagrams = self.build_flight()?;
        if final_flight {
            self.final_flight = Some(datagrams.clone());
            self.retransmit_at = None;
        } else {
            self.retransmit_at = now.checked_add(self.rto);
        }
        for d in datagrams {
            self.push_transmit(d);
        }
        Ok(())
    }

    /// Resends our last flight: new record sequence numbers for a flight
    /// being waited on, the same bytes for a frozen final flight.
    pub(crate) fn retransmit(&mut self) -> Result<(), Error> {
        self.stats.retransmits += 1;
        let datagrams = match &self.final_flight {
            Some(f) => f.clone(),
            None if !self.flight.is_empty() => self.build_flight()?,
            None => return Ok(()),
        };
        for d in datagrams {
            self.push_transmit(d);
        }
        Ok(())
    }

    /// The peer resent its flight, so ours was lost (RFC 6347 §4.2.4).
    /// Answering every copy would let two endpoints (or a duplicating path)
    /// drive each other into a storm, so at most one answer per half of the
    /// initial timer.
    pub(crate) fn retransmit_on_peer_retransmission(&mut self, now: Instant) -> Result<(), Error> {
        let gap = self.common.timers.initial_retransmit / 2;
        if self.last_reactive_retransmit.is_some_and(|t| now.saturating_duration_since(t) < gap) {
            return Ok(());
        }
        self.last_reactive_retransmit = Some(now);
        self.retransmit()
    }

    /// Timer expiry: retransmit with back-off, or give up.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if self.status == Status::Handshaking && self.handshake_deadline.is_some_and(|d| now >= d) {
            return Err(Error::HandshakeTimeout);
        }
        if self.retransmit_at.is_some_and(|t| now >= t) {
            self.retransmit()?;
            // RFC 6347 §4.2.4.1: double the timer, up to the maximum.
            self.rto = (self.rto * 2).min(self.common.timers.max_retransmit);
            self.retransmit_at = now.checked_add(self.rto);
        }
        Ok(())
    }

    pub(crate) fn stop_retransmit(&mut self) {
        self.retransmit_at = None;
    }

    fn epoch0_record(
        &mut self,
        content_type: ContentType,
        version: ProtocolVersion,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let repr = RecordHeaderRepr {
            content_type,
            version,
            epoch: 0,
            sequence: self.epoch0_seq,
            length: u16::try_from(payload.len()).unwrap_or(u16::MAX),
        };
        self.epoch0_seq += 1;
        out.extend_from_slice(&repr.to_bytes());
        out.extend_from_slice(payload);
    }

    fn epoch1_record(&mut self, content_type: ContentType, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let keys = self.keys.as_mut().ok_or(Error::Internal)?;
        seal_to_vec(&mut keys.protection, content_type, payload, out).map_err(|e| match e {
            crate::protection::SealError::SequenceExhausted => Error::SequenceExhausted,
            _ => Error::Internal,
        })
    }

    /// Turns the flight into records, fragmenting handshake messages to the
    /// datagram size, and packs records into as few datagrams as fit.
    fn build_flight(&mut self) -> Result<Vec<Vec<u8>>, Error> {
        let max = self.common.max_datagram_size;
        let expansion = self.keys.as_ref().map_or(0, |k| k.protection.overhead() - HEADER_LEN);
        let mut records: Vec<Vec<u8>> = Vec::new();
        let items = core::mem::take(&mut self.flight);
        let mut result = Ok(());
        for item in &items {
            match item {
                FlightItem::ChangeCipherSpec => {
                    let mut r = Vec::new();
                    self.epoch0_record(ContentType::CHANGE_CIPHER_SPEC, ProtocolVersion::DTLS1_2, &[1], &mut r);
                    records.push(r);
                }
                FlightItem::Handshake { msg_type, message_seq, epoch, body } => {
                    let per_record = if *epoch == 0 { 0 } else { expansion };
                    let room = max.saturating_sub(HEADER_LEN + HS_HEADER_LEN + per_record).max(1);
                    let version = if *msg_type == HandshakeType::CLIENT_HELLO {
                        // What OpenSSL and GnuTLS clients put on ClientHello
                        // records, so that any server version accepts them.
                        ProtocolVersion::DTLS1_0
                    } else {
                        ProtocolVersion::DTLS1_2
                    };
                    let mut offset = 0;
                    loop {
                        let chunk = body.get(offset..(offset + room).min(body.len())).unwrap_or_default();
                        let mut frag = Vec::with_capacity(HS_HEADER_LEN + chunk.len());
                        put_header(&mut frag, *msg_type, body.len(), *message_seq, offset, chunk.len());
                        frag.extend_from_slice(chunk);
                        let mut r = Vec::new();
                        if *epoch == 0 {
                            self.epoch0_record(ContentType::HANDSHAKE, version, &frag, &mut r);
                        } else if let Err(e) = self.epoch1_record(ContentType::HANDSHAKE, &frag, &mut r) {
                            result = Err(e);
                        }
                        records.push(r);
                        offset += chunk.len();
                        if offset >= body.len() {
                            break;
                        }
                    }
                }
            }
        }
        self.flight = items;
        result?;
        let mut datagrams: Vec<Vec<u8>> = Vec::new();
        for r in records {
            match datagrams.last_mut() {
                Some(d) if d.len() + r.len() <= max => d.extend_from_slice(&r),
                _ => datagrams.push(r),
            }
        }
        Ok(datagrams)
    }

    /// Queues an alert, protected once our epoch-1 write keys are active.
    pub(crate) fn send_alert(&mut self, level: AlertLevel, description: AlertDescription) {
        let body = [level.0, description.0];
        let mut d = Vec::new();
        if self.write_active && self.status != Status::HandedOff {
            if self.epoch1_record(ContentType::ALERT, &body, &mut d).is_err() {
                return;
            }
        } else if self.status == Status::HandedOff {
            // The shard owns the epoch-1 sequence space now; we must not use it.
            return;
        } else {
            self.epoch0_record(ContentType::ALERT, ProtocolVersion::DTLS1_2, &body, &mut d);
        }
        self.push_transmit(d);
    }

    /// Ends the association: alert (for our own errors), event, no timers.
    pub(crate) fn close(&mut self, reason: CloseReason) {
        if self.status == Status::Closed {
            return;
        }
        if let CloseReason::Error(e) = reason {
            if e != Error::HandshakeTimeout {
                self.send_alert(AlertLevel::FATAL, e.alert());
            }
        }
        self.status = Status::Closed;
        self.retransmit_at = None;
        self.handshake_deadline = None;
        self.events.push_back(Event::Closed(reason));
    }

    /// Seals application data into one datagram.
    pub(crate) fn send_application_data(&mut self, data: &[u8]) -> Result<(), Error> {
        let mut d = Vec::with_capacity(data.len() + 64);
        self.epoch1_record(ContentType::APPLICATION_DATA, data, &mut d)?;
        self.push_transmit(d);
        Ok(())
    }

    /// Installs the epoch-1 keys (not yet active in either direction).
    pub(crate) fn install_keys(
        &mut self,
        suite: CipherSuite,
        write: DirectionKeys,
        read: DirectionKeys,
    ) -> Result<(), Error> {
        let keys = SessionKeys {
            suite,
            role: self.role,
            epoch: 1,
            write: write.clone(),
            read: read.clone(),
            next_send_seq: 0,
            replay: ReplayWindow::new(self.common.replay_window),
        };
        let protection = RecordProtection::new(keys).map_err(|_| Error::Internal)?;
        self.keys = Some(EpochKeys { protection, write, read });
        Ok(())
    }

    pub(crate) fn export(&self) -> Option<SessionKeys> {
        let k = self.keys.as_ref()?;
        Some(k.protection.export(self.role, k.write.clone(), k.read.clone()))
    }
}
