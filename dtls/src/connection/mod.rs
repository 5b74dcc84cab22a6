//! A DTLS 1.2 association as a sans-IO state machine.
//!
//! # Call order
//!
//! The caller owns the socket, the buffers and the clock:
//!
//! 1. Create the connection: [`Connection::client`], or on the server side
//!    hand every datagram from an unknown address to an [`Acceptor`], which
//!    answers cookie exchanges statelessly and returns a [`Connection`] once a
//!    client proved its address.
//! 2. Feed it: [`handle_datagram`](Connection::handle_datagram) for every
//!    datagram from the peer, [`handle_timeout`](Connection::handle_timeout)
//!    when the instant from [`poll_timeout`](Connection::poll_timeout) has passed.
//! 3. After every call, drain [`poll_transmit`](Connection::poll_transmit)
//!    (send each datagram to the peer) and [`poll_event`](Connection::poll_event),
//!    then re-read `poll_timeout`.
//!
//! Once [`Event::Connected`] arrives, application data can go through
//! [`send`](Connection::send) / [`Event::ApplicationData`], or the record state
//! can be handed to a data plane with [`export_session`](Connection::export_session).
//!
//! Nothing here reads a clock; `now` is always an argument.

mod client;
mod engine;
mod server;

use std::sync::Arc;
use std::time::Instant;

pub use server::{Accept, AcceptDrop, Acceptor, PeekedClientHello};

use crate::codec::Reader;
use crate::config::{ClientConfig, ConfigError};
use crate::handshake::msg::Fragment;
use crate::handshake::reassembly::{Inserted, Message};
use crate::protection::{Role, SessionKeys};
use crate::record::{Record, Records};
use crate::types::{AlertDescription, AlertLevel, CipherSuite, ContentType, HandshakeType};
use crate::Error;

use self::engine::{Core, Status};

/// What a completed handshake agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeInfo {
    pub suite: CipherSuite,
    pub extended_master_secret: bool,
    pub psk_identity: Vec<u8>,
    /// The server's PSK identity hint, if it sent one.
    pub psk_identity_hint: Option<Vec<u8>>,
    /// The OpenConnect App-ID the client presented (server side), or sent.
    pub app_id: Vec<u8>,
}

/// Why the association ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer sent close_notify.
    PeerClosed,
    /// [`Connection::close`] was called.
    LocalClose,
    /// The peer sent a fatal alert.
    PeerAlert(AlertDescription),
    /// We failed the association; the matching alert was sent.
    Error(Error),
}

/// Something the caller should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed.
    Connected(HandshakeInfo),
    /// A record of application data arrived (before any hand-off).
    ApplicationData(Vec<u8>),
    /// The peer sent a warning alert (other than close_notify).
    Alert { level: AlertLevel, description: AlertDescription },
    /// The association is over; no more events follow.
    Closed(CloseReason),
}

/// Counters of everything that was dropped instead of failing the
/// association, and of retransmissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// Bytes that were not a record, or handshake fragments that did not parse.
    pub malformed: u64,
    /// Records that failed authentication.
    pub bad_record_mac: u64,
    /// Records already received or older than the replay window.
    pub replayed: u64,
    /// Records of an epoch we have no keys for (or plaintext when keys are on).
    pub wrong_epoch: u64,
    /// Records valid in form but not acceptable now (data before the
    /// handshake completed, fragments too far ahead…).
    pub unexpected: u64,
    /// Flights we sent again.
    pub retransmits: u64,
    /// Renegotiation attempts we refused.
    pub renegotiations_refused: u64,
    /// Handshake fragments that carried only part of a message.
    pub partial_fragments: u64,
    /// Epoch-1 records held until the peer's ChangeCipherSpec arrived.
    pub early_epoch1: u64,
}

/// Why [`Connection::send`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The handshake has not completed.
    NotConnected,
    /// The association ended, or its keys were handed off.
    Closed,
    /// More than 2^14 bytes in one record.
    TooLong,
}

#[derive(Debug)]
enum RoleState {
    Client(client::State),
    Server(server::State),
}

/// A DTLS 1.2 client or server association. See the module docs for the call order.
#[derive(Debug)]
pub struct Connection {
    core: Core,
    state: RoleState,
}

impl Connection {
    /// Starts a client handshake; the first ClientHello is ready in
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn client(config: Arc<ClientConfig>, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut core = Core::new(Role::Client, config.common.clone(), now, 0, 0);
        let state = client::start(&mut core, config, now)
            .map_err(|_| ConfigError { field: "suites", fix: "the crypto provider rejected the configuration" })?;
        Ok(Self { core, state: RoleState::Client(state) })
    }

    pub(crate) fn from_parts(core: Core, state: server::State) -> Self {
        Self { core, state: RoleState::Server(state) }
    }

    pub fn role(&self) -> Role {
        self.core.role
    }

    /// Whether the handshake completed and the association is open.
    pub fn is_established(&self) -> bool {
        matches!(self.core.status, Status::Established | Status::HandedOff)
    }

    pub fn is_closed(&self) -> bool {
        self.core.status == Status::Closed
    }

    /// What the handshake agreed on, once it completed.
    pub fn handshake_info(&self) -> Option<&HandshakeInfo> {
        self.core.info.as_ref()
    }

    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    /// The next datagram to send, written into `out` (cleared first).
    /// Returns `false` when there is nothing to send.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        self.core.pop_transmit(out)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.pop_event()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.core.status == Status::Closed {
            return;
        }
        if let Err(e) = self.core.on_timeout(now) {
            self.fail(e);
        }
    }

    /// Sends one record of application data.
    pub fn send(&mut self, data: &[u8]) -> Result<(), SendError> {
        match self.core.status {
            Status::Handshaking => return Err(SendError::NotConnected),
            Status::Closed | Status::HandedOff => return Err(SendError::Closed),
            Status::Established => {}
        }
        if data.len() > crate::record::MAX_PLAINTEXT {
            return Err(SendError::TooLong);
        }
        if let Err(e) = self.core.send_application_data(data) {
            self.fail(e);
            return Err(SendError::Closed);
        }
        Ok(())
    }

    /// Sends close_notify and ends the association.
    pub fn close(&mut self) {
        if self.core.status == Status::Closed {
            return;
        }
        self.core.send_alert(AlertLevel::WARNING, AlertDescription::CLOSE_NOTIFY);
        self.core.close(CloseReason::LocalClose);
    }

    /// Hands the established record state to the caller (the session grant
    /// for a data-plane shard). From then on this connection never seals
    /// another epoch-1 record: `send` fails, and the only thing it still does
    /// is resend its frozen final flight if the peer shows it missed it.
    /// Returns `None` before the handshake completed or after a hand-off.
    pub fn export_session(&mut self) -> Option<SessionKeys> {
        if self.core.status != Status::Established {
            return None;
        }
        let keys = self.core.export()?;
        self.core.status = Status::HandedOff;
        Some(keys)
    }

    /// Feeds one datagram from the peer. Never fails: bad records are
    /// dropped and counted in [`stats`](Self::stats); fatal problems end the
    /// association with an [`Event::Closed`].
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        self.core.stats.datagrams_in += 1;
        if self.core.status == Status::Closed {
            return;
        }
        let mut peer_retransmitted = false;
        let mut records = Records::new(datagram);
        for rec in records.by_ref() {
            if self.core.status == Status::Closed {
                return;
            }
            self.handle_record(now, rec, &mut peer_retransmitted);
        }
        if records.malformed() {
            self.core.stats.malformed += 1;
        }
        if peer_retransmitted && self.core.status != Status::Closed {
            // RFC 6347 §4.2.4: the peer resending its flight means ours was lost.
            if let Err(e) = self.core.retransmit_on_peer_retransmission(now) {
                self.fail(e);
            }
        }
    }

    fn handle_record(&mut self, now: Instant, rec: Record<&[u8]>, peer_retransmitted: &mut bool) {
        match (rec.epoch(), rec.content_type()) {
            (0, ContentType::HANDSHAKE) => self.handle_fragments(now, 0, rec.fragment(), peer_retransmitted),
            (0, ContentType::CHANGE_CIPHER_SPEC) => self.handle_ccs(now, rec.fragment()),
            (0, ContentType::ALERT) if !self.core.read_active => self.handle_alert(rec.fragment()),
            (1, _) if self.core.read_active => self.open_epoch1(now, rec.into_inner(), peer_retransmitted),
            (1, _) if self.core.keys.is_some() || self.core.status == Status::Handshaking => {
                if self.core.early.len() < engine::MAX_EARLY_RECORDS {
                    self.core.stats.early_epoch1 += 1;
                    self.core.early.push(rec.into_inner().get(..rec.total_len()).unwrap_or_default().to_vec());
                } else {
                    self.core.stats.unexpected += 1;
                }
            }
            _ => self.core.stats.wrong_epoch += 1,
        }
    }

    fn open_epoch1(&mut self, now: Instant, bytes: &[u8], peer_retransmitted: &mut bool) {
        let Some(keys) = self.core.keys.as_mut() else {
            self.core.stats.wrong_epoch += 1;
            return;
        };
        let mut scratch = core::mem::take(&mut self.core.scratch);
        scratch.clear();
        scratch.extend_from_slice(bytes);
        let opened = keys.protection.open_in_place(&mut scratch);
        let (content_type, range) = match opened {
            Ok(o) => (o.content_type, o.payload_range()),
            Err(e) => {
                use crate::protection::OpenError;
                let s = &mut self.core.stats;
                match e {
                    OpenError::Malformed => s.malformed += 1,
                    OpenError::WrongEpoch => s.wrong_epoch += 1,
                    OpenError::Replayed => s.replayed += 1,
                    OpenError::BadRecordMac => s.bad_record_mac += 1,
                }
                self.core.scratch = scratch;
                return;
            }
        };
        let payload = scratch.get(range).unwrap_or_default().to_vec();
        self.core.scratch = scratch;
        match content_type {
            ContentType::HANDSHAKE => self.handle_fragments(now, 1, &payload, peer_retransmitted),
            ContentType::ALERT => self.handle_alert(&payload),
            ContentType::APPLICATION_DATA if self.core.status == Status::Established => {
                self.core.push_event(Event::ApplicationData(payload));
            }
            _ => self.core.stats.unexpected += 1,
        }
    }

    fn handle_fragments(&mut self, now: Instant, epoch: u16, bytes: &[u8], peer_retransmitted: &mut bool) {
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            let Ok(f) = Fragment::read(&mut r) else {
                self.core.stats.malformed += 1;
                return;
            };
            if self.is_established() && epoch == 1 && self.is_renegotiation(f.msg_type) {
                // We never renegotiate: refuse politely (RFC 5246 §7.2.2).
                self.core.stats.renegotiations_refused += 1;
                self.core.send_alert(AlertLevel::WARNING, AlertDescription::NO_RENEGOTIATION);
                continue;
            }
            if !f.is_complete() {
                self.core.stats.partial_fragments += 1;
            }
            match self.core.reasm.insert(epoch, &f) {
                Inserted::Accepted => {}
                Inserted::Old => *peer_retransmitted = true,
                Inserted::Dropped => self.core.stats.unexpected += 1,
            }
            while let Some(msg) = self.core.reasm.pop() {
                if let Err(e) = self.on_message(now, msg) {
                    self.fail(e);
                    return;
                }
                if self.core.status == Status::Closed {
                    return;
                }
                self.activate_read_if_ready(now);
            }
        }
    }

    fn is_renegotiation(&self, t: HandshakeType) -> bool {
        match self.core.role {
            Role::Client => t == HandshakeType::HELLO_REQUEST,
            Role::Server => t == HandshakeType::CLIENT_HELLO,
        }
    }

    fn on_message(&mut self, now: Instant, msg: Message) -> Result<(), Error> {
        if self.is_established() {
            // Everything after the handshake was either refused above or is
            // a duplicate; RFC 6347 leaves no other messages here.
            self.core.stats.unexpected += 1;
            return Ok(());
        }
        match &mut self.state {
            RoleState::Client(s) => client::on_message(s, &mut self.core, now, msg),
            RoleState::Server(s) => server::on_message(s, &mut self.core, now, msg),
        }
    }

    fn handle_ccs(&mut self, now: Instant, body: &[u8]) {
        if body != [1] {
            self.core.stats.malformed += 1;
            return;
        }
        if self.core.read_active || self.is_established() {
            return; // A duplicate.
        }
        self.core.ccs_received = true;
        self.activate_read_if_ready(now);
    }

    /// Once we have the keys and the peer's ChangeCipherSpec, epoch-1 records
    /// can be read, including any that arrived early.
    fn activate_read_if_ready(&mut self, now: Instant) {
        let ready = match &self.state {
            RoleState::Client(s) => s.expects_ccs(),
            RoleState::Server(s) => s.expects_ccs(),
        };
        if !(ready && self.core.ccs_received && self.core.keys.is_some()) {
            return;
        }
        self.core.read_active = true;
        match &mut self.state {
            RoleState::Client(s) => s.on_ccs(),
            RoleState::Server(s) => s.on_ccs(),
        }
        let early = core::mem::take(&mut self.core.early);
        let mut peer_retransmitted = false;
        for rec in early {
            if self.core.status == Status::Closed {
                return;
            }
            self.open_epoch1(now, &rec, &mut peer_retransmitted);
        }
    }

    fn handle_alert(&mut self, body: &[u8]) {
        let [level, description] = body else {
            self.core.stats.malformed += 1;
            return;
        };
        let (level, description) = (AlertLevel(*level), AlertDescription(*description));
        if description == AlertDescription::CLOSE_NOTIFY {
            // RFC 5246 §7.2.1: answer close_notify with close_notify.
            self.core.send_alert(AlertLevel::WARNING, AlertDescription::CLOSE_NOTIFY);
            self.core.close(CloseReason::PeerClosed);
        } else if level == AlertLevel::FATAL {
            self.core.close(CloseReason::PeerAlert(description));
        } else {
            self.core.push_event(Event::Alert { level, description });
        }
    }

    fn fail(&mut self, e: Error) {
        self.core.close(CloseReason::Error(e));
    }
}
