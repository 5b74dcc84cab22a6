//! DTLS handshakes for tunnel sessions (PSK-NEGOTIATE,
//! openconnect-protocol.md §5.3), run by the shard whose socket the
//! device's datagrams reach — the kernel's reuseport hash keeps a peer on
//! one shard. Control hands every shard an [`Authorization`] per session at
//! CONNECT (its App-ID, the TLS-exporter PSK, its address and policy); a
//! ClientHello naming an authorised App-ID meets a stateless cookie exchange
//! and then a `dtls::Connection` keyed by that session's PSK alone. A
//! finished handshake becomes a [`SessionGrant`] the shard installs before
//! it sends the final flight, so the device's first record always finds its
//! session. Sans-IO: datagrams and `now` in, datagrams and grants out.
//!
//! The hand-off thus runs one way, control → shard: nothing of a handshake
//! is copied to control, and nothing waits for a confirmation.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtls::{
    Accept, Acceptor, CloseReason, Connection, Event, HandshakeInfo, PeekedClientHello, Psk, PskRequest, PskResolver,
    ServerConfig,
};
use proto::grant::{Policy, SessionGrant, SessionId};

mod limit;
pub use limit::{SourceLimit, SOURCE_BURST, SOURCE_RATE, SOURCE_SLOTS};

/// How long a finished handshake is kept to resend its final flight when
/// the client shows it lost it (RFC 6347 §4.2.4).
const LINGER: Duration = Duration::from_secs(30);

/// Handshakes in progress at once on one shard; beyond this new
/// ClientHellos are dropped. Finished handshakes lingering for [`LINGER`]
/// do not count: there is one per established session at most.
pub const MAX_PENDING: usize = 4096;

/// What a shard needs to accept one session's DTLS handshake and install
/// the session it yields. Sent by control to every shard at CONNECT; a
/// later one for the same session (a reconnect's new key, a new App-ID)
/// replaces it.
#[derive(Clone)]
pub struct Authorization {
    pub session: SessionId,
    /// The App-ID the CONNECT answer gave the device (≤ 32 bytes).
    pub app_id: Vec<u8>,
    /// The TLS exporter's 32 bytes for this session's current connection.
    pub psk: Psk,
    pub address: Ipv4Addr,
    pub policy: Policy,
    pub mtu: u16,
}

impl core::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Authorization")
            .field("session", &self.session)
            .field("address", &self.address)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

/// One connection's key: openconnect always sends identity `psk`; the
/// App-ID already chose the session (and so this key) before the handshake
/// began.
#[derive(Debug)]
struct AuthorizedKey(Psk);

impl PskResolver for AuthorizedKey {
    fn resolve(&self, r: &PskRequest<'_>) -> Option<Psk> {
        (r.identity == b"psk").then(|| self.0.clone())
    }
}

/// Handshake outcomes, published with the shard's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeCounters {
    pub established: u64,
    pub failed: u64,
    pub refused: u64,
    pub hello_verify_requests: u64,
    pub unknown_app_id: u64,
    pub not_client_hello: u64,
    pub overloaded: u64,
    pub rate_limited: u64,
}

#[derive(Debug)]
struct Pending {
    conn: Connection,
    session: SessionId,
    /// When its ClientHello passed the cookie round.
    started: Instant,
    done_at: Option<Instant>,
}

/// A handshake that completed: install `grant`, then send `final_flight`
/// to its peer.
#[derive(Debug)]
pub struct Established {
    pub grant: SessionGrant,
    pub info: HandshakeInfo,
    /// Our ChangeCipherSpec and Finished. The device sends data the moment
    /// it reads them, so they leave after the session is installed. Later
    /// copies (the device lost these and resent its own flight) go out at
    /// once from the lingering handshake.
    pub final_flight: Vec<Vec<u8>>,
}

/// One shard's handshakes and the authorisations they are checked against.
#[derive(Debug)]
pub struct Handshakes {
    acceptor: Acceptor,
    authorized: HashMap<Vec<u8>, Authorization>,
    /// Session → its App-ID in `authorized`.
    app_id_of: HashMap<SessionId, Vec<u8>>,
    pending: HashMap<SocketAddr, Pending>,
    /// Entries of `pending` that finished and linger.
    lingering: usize,
    max_pending: usize,
    /// Handshake datagrams per source address, checked before parsing.
    limit: SourceLimit,
    pub counters: HandshakeCounters,
    /// How long established handshakes took, from the ClientHello that
    /// passed the cookie round to the device's Finished.
    pub latency: crate::latency::HandshakeLatency,
}

/// Nothing resolves through the acceptor's own configuration: every
/// connection gets its session's key (`accept_with_resolver`).
#[derive(Debug)]
struct NoKeys;

impl PskResolver for NoKeys {
    fn resolve(&self, _: &PskRequest<'_>) -> Option<Psk> {
        None
    }
}

impl Handshakes {
    pub fn new(now: Instant) -> Result<Self, dtls::ConfigError> {
        let mut cfg = ServerConfig::new(Arc::new(NoKeys));
        // openconnect handles HelloVerifyRequest; the cookie keeps us from
        // holding state for spoofed sources.
        cfg.cookies = true;
        cfg.common.timers.initial_retransmit = Duration::from_millis(400);
        cfg.common.timers.handshake_timeout = Duration::from_secs(30);
        Ok(Self {
            acceptor: Acceptor::new(Arc::new(cfg), now)?,
            authorized: HashMap::new(),
            app_id_of: HashMap::new(),
            pending: HashMap::new(),
            lingering: 0,
            max_pending: MAX_PENDING,
            limit: SourceLimit::new(now, SOURCE_RATE, SOURCE_BURST, SOURCE_SLOTS),
            counters: HandshakeCounters::default(),
            latency: crate::latency::HandshakeLatency::default(),
        })
    }

    /// As [`new`](Self::new), with room for only `max_pending` handshakes
    /// in progress (tests of the limit).
    pub fn with_max_pending(now: Instant, max_pending: usize) -> Result<Self, dtls::ConfigError> {
        Ok(Self { max_pending, ..Self::new(now)? })
    }

    /// As [`new`](Self::new), with a per-source limit of `rate` handshake
    /// datagrams a second and `burst` at once (tests of the limit).
    pub fn with_source_limit(now: Instant, rate: u32, burst: u32) -> Result<Self, dtls::ConfigError> {
        Ok(Self { limit: SourceLimit::new(now, rate, burst, SOURCE_SLOTS), ..Self::new(now)? })
    }

    /// Accepts handshakes for `a.session` under `a.app_id` from now on,
    /// replacing what the session was authorised with before.
    pub fn authorize(&mut self, a: Authorization) {
        self.deauthorize(a.session);
        self.app_id_of.insert(a.session, a.app_id.clone());
        self.authorized.insert(a.app_id.clone(), a);
    }

    /// A later handshake of `session` installs it with `policy`.
    pub fn repolicy(&mut self, session: SessionId, policy: &Policy) {
        if let Some(a) = self.app_id_of.get(&session).and_then(|id| self.authorized.get_mut(id)) {
            a.policy = policy.clone();
        }
    }

    /// The session ended: no new handshake for it.
    pub fn deauthorize(&mut self, session: SessionId) {
        if let Some(app_id) = self.app_id_of.remove(&session) {
            self.authorized.remove(&app_id);
        }
    }

    pub fn is_authorized(&self, app_id: &[u8]) -> bool {
        self.authorized.contains_key(app_id)
    }

    /// A datagram from `peer`, which has no installed session (or the
    /// epoch-0 rest of one that has: the client resending its final
    /// flight). `send` transmits to `peer`.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        datagram: &[u8],
        send: &mut dyn FnMut(&[u8]),
    ) -> Option<Established> {
        // Before anything is parsed: a flooding source costs one lookup.
        if !self.limit.allow(now, peer.ip()) {
            self.counters.rate_limited += 1;
            return None;
        }
        if let Some(p) = self.pending.get_mut(&peer) {
            // A new ClientHello from a peer whose last handshake finished is
            // a new DTLS session (the client redid it after DPD death).
            let restart = p.done_at.is_some()
                && PeekedClientHello::parse(datagram).is_ok_and(|h| h.message_seq == 0 && h.hello.cookie.is_empty());
            if !restart {
                p.conn.handle_datagram(now, datagram);
                return self.drive(now, peer, send);
            }
            self.remove(&peer);
        }
        let authorization = match PeekedClientHello::parse(datagram) {
            Ok(h) => self.authorized.get(h.hello.app_id()),
            Err(_) => {
                self.counters.not_client_hello += 1;
                return None;
            }
        };
        let Some(a) = authorization else {
            self.counters.unknown_app_id += 1;
            return None;
        };
        if self.pending.len() - self.lingering >= self.max_pending {
            self.counters.overloaded += 1;
            return None;
        }
        let (session, key) = (a.session, Arc::new(AuthorizedKey(a.psk.clone())));
        let mut out = Vec::new();
        let cookie_key = peer.to_string();
        match self.acceptor.accept_with_resolver(now, cookie_key.as_bytes(), datagram, &mut out, key) {
            Accept::HelloVerifyRequest => {
                self.counters.hello_verify_requests += 1;
                send(&out);
                None
            }
            Accept::Refused(_) => {
                // Counted, not logged: a shard never blocks on a log.
                self.counters.refused += 1;
                send(&out);
                None
            }
            Accept::Drop(_) => {
                self.counters.not_client_hello += 1;
                None
            }
            Accept::Connection(c) => {
                self.pending.insert(peer, Pending { conn: *c, session, started: now, done_at: None });
                self.drive(now, peer, send)
            }
        }
    }

    fn drive(&mut self, now: Instant, peer: SocketAddr, send: &mut dyn FnMut(&[u8])) -> Option<Established> {
        let p = self.pending.get_mut(&peer)?;
        // Events before transmits: both were queued by the same call, and
        // a completion decides where the datagrams queued with it go.
        let mut completed = None;
        let mut remove = false;
        while let Some(e) = p.conn.poll_event() {
            match e {
                Event::Connected(info) => match p.conn.export_session() {
                    Some(keys) => completed = Some((info, keys)),
                    None => remove = true,
                },
                Event::Closed(CloseReason::Error(_)) => {
                    self.counters.failed += 1;
                    remove = true;
                }
                Event::Closed(_) => remove = true,
                Event::ApplicationData(_) | Event::Alert { .. } => {}
            }
        }
        let mut buf = Vec::new();
        let mut final_flight = Vec::new();
        while p.conn.poll_transmit(&mut buf) {
            if completed.is_some() {
                final_flight.push(core::mem::take(&mut buf));
            } else {
                send(&buf);
            }
        }
        let (session, started) = (p.session, p.started);
        let mut done = None;
        if let Some((info, keys)) = completed {
            p.done_at = Some(now);
            self.lingering += 1;
            // The session may have ended meanwhile: then nothing is granted.
            match self.app_id_of.get(&session).and_then(|id| self.authorized.get(id)) {
                Some(a) => {
                    self.counters.established += 1;
                    let took = now.saturating_duration_since(started).as_nanos();
                    self.latency.record(u64::try_from(took).unwrap_or(u64::MAX));
                    let grant =
                        SessionGrant { session, peer, address: a.address, policy: a.policy.clone(), keys, mtu: a.mtu };
                    done = Some(Established { grant, info, final_flight });
                }
                None => remove = true,
            }
        }
        if remove {
            self.remove(&peer);
        }
        done
    }

    /// Retransmission timers and clean-up. `send` transmits to a peer.
    pub fn on_timeout(&mut self, now: Instant, send: &mut dyn FnMut(SocketAddr, &[u8])) {
        let due: Vec<SocketAddr> = self
            .pending
            .iter()
            .filter(|(_, p)| p.conn.poll_timeout().is_some_and(|t| t <= now))
            .map(|(a, _)| *a)
            .collect();
        for peer in due {
            if let Some(p) = self.pending.get_mut(&peer) {
                p.conn.handle_timeout(now);
            }
            // A timeout completes nothing: only the client's Finished does.
            let _ = self.drive(now, peer, &mut |d| send(peer, d));
        }
        self.pending
            .retain(|_, p| !p.conn.is_closed() && p.done_at.is_none_or(|t| now.saturating_duration_since(t) < LINGER));
        self.lingering = self.pending.values().filter(|p| p.done_at.is_some()).count();
    }

    /// When [`on_timeout`](Self::on_timeout) has work next (a retransmission,
    /// a lingering handshake to forget).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .filter_map(|p| match p.done_at {
                Some(t) => Some(t + LINGER),
                None => p.conn.poll_timeout(),
            })
            .min()
    }

    fn remove(&mut self, peer: &SocketAddr) {
        if self.pending.remove(peer).is_some_and(|p| p.done_at.is_some()) {
            self.lingering = self.lingering.saturating_sub(1);
        }
    }

    /// Handshakes in progress (finished ones lingering not counted).
    pub fn pending(&self) -> usize {
        self.pending.len() - self.lingering
    }
}

#[cfg(test)]
mod tests;
