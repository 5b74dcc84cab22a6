//! The gateway's control plane as a sans-IO state machine: no sockets, no
//! threads, no clock reads. It owns every connection's protocol state (HTTP
//! login → awaiting a password verdict → CSTP tunnel), the sessions, the
//! address pool, the timers, cluster adoption and the DTLS hand-off to the
//! shards.
//!
//! # Call order
//!
//! The driver ([`crate::gateway::Gateway`], or a test) owns sockets, TLS and
//! the clock, and after each of these calls drains
//! [`poll_effect`](Core::poll_effect) until it returns `None`:
//!
//! * [`handle_conn_open`](Core::handle_conn_open) when a TCP connection is
//!   accepted (or dialled back through a relay), then
//!   [`handle_tls_established`](Core::handle_tls_established) once its TLS
//!   handshake is done (or [`handle_tls_failure`](Core::handle_tls_failure)
//!   before `handle_conn_closed` when TLS failed), [`handle_conn_data`](Core::handle_conn_data) with
//!   each read's plaintext, [`handle_conn_blocked`](Core::handle_conn_blocked)
//!   when its socket fills or drains, and
//!   [`handle_conn_closed`](Core::handle_conn_closed) when it ends;
//! * [`handle_verdict`](Core::handle_verdict) for each password check it
//!   asked for with [`Effect::CheckPassword`];
//! * [`handle_dataplane`](Core::handle_dataplane) when the shards have
//!   events (the core takes them from its [`DataplanePort`]);
//! * [`handle_flow_request`](Core::handle_flow_request) for a relay's
//!   Allocate, [`handle_revocation`](Core::handle_revocation) for its
//!   Revoke (another cluster node's cookie ended);
//! * [`handle_tick`](Core::handle_tick) every [`TICK`] or so, after
//!   [`set_wall_clock`](Core::set_wall_clock).
//!
//! Messages to shards go straight to the port (it never blocks); the rest
//! comes back as [`Effect`]s. [`unban`](Core::unban) may be called at any
//! time (an operator's command).
//!
//! The defences against guessing and floods (docs/security.md) live here
//! too, as protocol logic: ban scores per source ([`bans`]), the login pace
//! and verdict delays ([`throttle`]), the pre-auth caps and deadlines.

mod bans;
mod counters;
mod effect;
mod handoff;
mod login;
mod reload;
mod revocation;
mod throttle;
mod tunnel;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::cstp::Deframer;
use proto::grant::SessionId;
use proto::http::Limits;
use service::revocations::Revocations;

pub use bans::{BanEntry, Misbehaviour, Source};
pub use counters::ControlCounters;
pub use effect::{CheckId, ConnId, Effect, FlowRequest, SessionEnd, TlsFacts, Verdict};
pub use reload::ReloadOutcome;

use crate::config::Config;
use crate::pool::AddressPool;
use crate::port::DataplanePort;
use crate::session::{EndReason, Sessions};

/// How often the driver should call [`Core::handle_tick`].
pub const TICK: Duration = Duration::from_millis(250);
/// Plaintext held for a connection that has not formed a request yet: a
/// little above the HTTP parser's own head + body limits.
pub const MAX_PENDING_PLAINTEXT: usize = 96 * 1024;

/// How a connection came in: through which relay link. Sessions that
/// CONNECT over it get the relay's DTLS port and an App-ID that routes
/// back here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayRoute {
    pub link: usize,
    pub route: u32,
    /// The relay's UDP port for devices; 0: the relay carries no DTLS.
    pub dtls_port: u16,
}

/// What a connection is doing.
#[derive(Debug)]
enum Phase {
    /// HTTP: login and CONNECT.
    Http,
    /// After CONNECT: CSTP frames for this session.
    Tunnel { session: SessionId, deframer: Deframer },
}

/// The core's view of one TLS connection.
#[derive(Debug)]
struct Connection {
    peer: SocketAddr,
    via: Option<RelayRoute>,
    opened: Instant,
    last_rx: Instant,
    tls: TlsFacts,
    /// The TLS handshake completed.
    established: bool,
    /// Counted against the pre-auth caps: not yet carrying a tunnel.
    preauth: bool,
    phase: Phase,
    /// Plaintext not yet formed into a request (HTTP phase).
    plaintext: Vec<u8>,
    login_failures: u32,
    /// The password check in flight and the user it is for. Requests that
    /// arrive meanwhile wait in `plaintext`, as they would behind an inline check.
    check: Option<(CheckId, String)>,
    /// The driver reported the socket full: DATA frames are dropped.
    blocked: bool,
}

/// Wall-clock time, for cluster cookies: another node's `Instant` means
/// nothing here. The driver sets it every tick; between ticks it advances
/// with `now`.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    at: Instant,
    unix_secs: u64,
}

/// The control plane's state. See the [module documentation](self) for the
/// call order.
#[derive(Debug)]
pub struct Core<P: DataplanePort> {
    config: Arc<Config>,
    port: P,
    conns: HashMap<ConnId, Connection>,
    sessions: Sessions,
    pool: AddressPool,
    effects: VecDeque<Effect>,
    counters: ControlCounters,
    limits: Limits,
    /// Whether there is a password file to check logins against.
    passwords: bool,
    next_check: u64,
    wall: WallClock,
    bans: bans::Bans,
    throttle: throttle::Throttle,
    /// Pre-auth connections per source (their total is `preauth_total`).
    preauth: HashMap<Source, usize>,
    preauth_total: usize,
    /// Cluster cookies revoked here or at a peer, until they expire.
    revoked: Revocations,
    /// [`Core::drain`] was called: no new logins or tunnels.
    draining: bool,
}

impl<P: DataplanePort> Core<P> {
    /// A core with no connections and no sessions. `unix_secs` is the wall
    /// clock at `now`.
    pub fn new(config: Arc<Config>, port: P, now: Instant, unix_secs: u64) -> Self {
        let pool = AddressPool::new(config.pool);
        Self {
            passwords: config.password_file.is_some(),
            config,
            port,
            conns: HashMap::new(),
            sessions: Sessions::default(),
            pool,
            effects: VecDeque::new(),
            counters: ControlCounters::default(),
            limits: Limits::default(),
            next_check: 0,
            wall: WallClock { at: now, unix_secs },
            bans: bans::Bans::default(),
            throttle: throttle::Throttle::default(),
            preauth: HashMap::new(),
            preauth_total: 0,
            revoked: Revocations::default(),
            draining: false,
        }
    }

    /// The next thing the driver must do, oldest first.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    pub fn set_wall_clock(&mut self, now: Instant, unix_secs: u64) {
        self.wall = WallClock { at: now, unix_secs };
    }

    /// Seconds since the Unix epoch at `now`, by the wall clock the driver
    /// last set.
    pub fn unix_now(&self, now: Instant) -> u64 {
        self.wall.unix_secs + now.saturating_duration_since(self.wall.at).as_secs()
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn port(&self) -> &P {
        &self.port
    }

    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    /// Gives the port back (to shut the data plane down).
    pub fn into_port(self) -> P {
        self.port
    }

    pub fn counters(&self) -> &ControlCounters {
        &self.counters
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn addresses_in_use(&self) -> usize {
        self.pool.in_use()
    }

    /// Connections the core still takes before `server.max_connections`.
    pub fn connection_room(&self) -> usize {
        self.config.max_connections.saturating_sub(self.conns.len())
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Connections not yet carrying a tunnel.
    pub fn preauth_count(&self) -> usize {
        self.preauth_total
    }

    /// Sources refused at accept now (the `corridor_banned_sources` gauge).
    pub fn banned_sources(&self, now: Instant) -> usize {
        self.bans.banned(now)
    }

    /// Every source with points or a ban in force (`corridor ctl bans`).
    pub fn bans(&self, now: Instant) -> Vec<BanEntry> {
        self.bans.entries(now)
    }

    /// Lifts the ban and forgets the score of `addr`'s source (its /64 for
    /// IPv6); whether it was banned. The operator's way out of a ban; the
    /// `corridor ctl unban` command that calls it belongs to the ctl socket.
    pub fn unban(&mut self, addr: IpAddr, now: Instant) -> bool {
        let s = Source::of(addr);
        let was = self.bans.unban(s, now);
        if was {
            self.counters.unbans += 1;
            tracing::warn!(source = %s, "source unbanned by the operator");
        }
        was
    }

    /// `peer` did something that costs points; past the threshold its
    /// source is banned and its other connections still logging in are
    /// closed (`except` handles its own end).
    pub(super) fn misbehaved(&mut self, peer: SocketAddr, what: Misbehaviour, except: ConnId, now: Instant) {
        let s = Source::of(peer.ip());
        let Some(score) = self.bans.add(s, what, &self.config.limits, now) else { return };
        self.counters.bans += 1;
        let ban_s = self.config.limits.ban_time.as_secs();
        tracing::warn!(source = %s, score, ban_s, last = ?what, "source banned: refused at accept until the ban ends");
        let doomed: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(id, c)| **id != except && c.preauth && Source::of(c.peer.ip()) == s)
            .map(|(id, _)| *id)
            .collect();
        for id in doomed {
            self.close(id, "source banned", now);
        }
    }

    /// The connection's TLS failed (a bad handshake or record); the driver
    /// calls [`handle_conn_closed`](Self::handle_conn_closed) next.
    pub fn handle_tls_failure(&mut self, conn: ConnId, now: Instant) {
        let Some(peer) = self.conns.get(&conn).map(|c| c.peer) else { return };
        self.counters.tls_failures += 1;
        self.misbehaved(peer, Misbehaviour::TlsFailure, conn, now);
    }

    /// Forgets a connection, keeping the pre-auth counts.
    fn remove_conn(&mut self, conn: ConnId) -> Option<Connection> {
        let c = self.conns.remove(&conn)?;
        if c.preauth {
            self.leave_preauth(c.peer);
        }
        Some(c)
    }

    fn leave_preauth(&mut self, peer: SocketAddr) {
        let s = Source::of(peer.ip());
        self.preauth_total = self.preauth_total.saturating_sub(1);
        if let Some(n) = self.preauth.get_mut(&s) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.preauth.remove(&s);
            }
        }
    }

    /// The connection carries a tunnel now: it no longer counts as pre-auth.
    pub(super) fn authenticated(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if std::mem::replace(&mut c.preauth, false) {
            let peer = c.peer;
            self.leave_preauth(peer);
        }
    }

    // ----- connections ---------------------------------------------------

    /// A new TCP connection (`via` a relay link, or direct). `false`: refused
    /// (a banned source, `server.max_connections`, the pre-auth caps of
    /// `[limits]`); the driver closes it and calls nothing else.
    pub fn handle_conn_open(&mut self, conn: ConnId, peer: SocketAddr, via: Option<RelayRoute>, now: Instant) -> bool {
        let source = Source::of(peer.ip());
        if self.bans.is_banned(source, now) {
            self.counters.connections_refused_banned += 1;
            tracing::debug!(%peer, "banned source; refused");
            return false;
        }
        if self.conns.len() >= self.config.max_connections || self.conns.contains_key(&conn) {
            self.counters.connections_refused += 1;
            tracing::debug!(%peer, "connection limit reached; refused");
            return false;
        }
        let l = &self.config.limits;
        if self.preauth_total >= l.max_preauth
            || self.preauth.get(&source).is_some_and(|n| *n >= l.max_preauth_per_source)
        {
            self.counters.connections_refused_preauth += 1;
            tracing::debug!(%peer, total = self.preauth_total, "pre-auth connection cap reached; refused");
            return false;
        }
        *self.preauth.entry(source).or_insert(0) += 1;
        self.preauth_total += 1;
        self.counters.tls_accepted += 1;
        self.conns.insert(
            conn,
            Connection {
                peer,
                via,
                opened: now,
                last_rx: now,
                tls: TlsFacts::default(),
                established: false,
                preauth: true,
                phase: Phase::Http,
                plaintext: Vec::new(),
                login_failures: 0,
                check: None,
                blocked: false,
            },
        );
        true
    }

    /// The connection's TLS handshake completed with these facts.
    pub fn handle_tls_established(&mut self, conn: ConnId, facts: TlsFacts) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.tls = facts;
            c.established = true;
        }
    }

    /// Plaintext read from the connection (possibly empty: the read carried
    /// only TLS records, which still shows the peer is alive).
    pub fn handle_conn_data(&mut self, conn: ConnId, now: Instant, plaintext: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.last_rx = now;
        match &mut c.phase {
            Phase::Http => {
                c.plaintext.extend_from_slice(plaintext);
                if c.plaintext.len() > MAX_PENDING_PLAINTEXT {
                    let peer = c.peer;
                    self.counters.bad_requests += 1;
                    self.misbehaved(peer, Misbehaviour::Malformed, conn, now);
                    self.close(conn, "request too large", now);
                    return;
                }
            }
            Phase::Tunnel { deframer, .. } => deframer.push(plaintext),
        }
        self.process(conn, now);
    }

    /// The driver's socket for the connection filled up (`true`) or drained.
    pub fn handle_conn_blocked(&mut self, conn: ConnId, blocked: bool) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.blocked = blocked;
        }
    }

    /// The connection ended on the driver's side (peer closed, TLS or socket
    /// error). A tunnel's session waits for a reconnect with its cookie.
    pub fn handle_conn_closed(&mut self, conn: ConnId, now: Instant, why: &str) {
        if let Some(c) = self.remove_conn(conn) {
            self.detach(conn, c, now, why);
        }
    }

    /// Forgets `conn` and asks the driver to close it once its queue is
    /// written. A tunnel's session is detached and waits for a reconnect.
    fn close(&mut self, conn: ConnId, reason: &'static str, now: Instant) {
        if let Some(c) = self.remove_conn(conn) {
            self.detach(conn, c, now, reason);
            self.effects.push_back(Effect::Close { conn, reason });
        }
    }

    /// As [`close`](Self::close), leaving any session alone: it ended, or
    /// another connection carries it now.
    fn close_quietly(&mut self, conn: ConnId, reason: &'static str) {
        if self.remove_conn(conn).is_some() {
            self.effects.push_back(Effect::Close { conn, reason });
        }
    }

    fn detach(&mut self, conn: ConnId, c: Connection, now: Instant, why: &str) {
        let Phase::Tunnel { session, .. } = c.phase else { return };
        if let Some(s) = self.sessions.get_mut(session) {
            if s.conn == Some(conn) {
                s.conn = None;
                s.detached_at = Some(now);
                tracing::info!(session = %session, user = %s.user, reason = %why, "CSTP connection lost; waiting for reconnect");
            }
        }
    }

    /// Consumes the connection's input: HTTP requests, then (after CONNECT,
    /// which may be followed by frames in the same read) CSTP frames.
    fn process(&mut self, conn: ConnId, now: Instant) {
        loop {
            let Some(c) = self.conns.get(&conn) else { return };
            match c.phase {
                Phase::Http => {
                    if !self.next_request(conn, now) {
                        return;
                    }
                }
                Phase::Tunnel { .. } => return self.drain_frames(conn, now),
            }
        }
    }

    fn write(&mut self, conn: ConnId, bytes: Vec<u8>) {
        self.effects.push_back(Effect::Write { conn, bytes });
    }

    // ----- timers --------------------------------------------------------

    /// Timers: session and connection deadlines. Shard events are taken
    /// too, so a lost wake-up delays them by one tick at most.
    pub fn handle_tick(&mut self, now: Instant) {
        self.handle_dataplane(now);
        self.release_deferred(now);
        let l = self.config.limits;
        if self.bans.prune(&l, now) > 0 {
            tracing::debug!("ban scores expired");
        }
        self.throttle.prune(&l, now);
        self.expire_revocations(now);
        let t = self.config.timers;
        let mut ending = Vec::new();
        for s in self.sessions.iter() {
            let reason =
                if !s.connected && s.detached_at.is_some_and(|d| now.saturating_duration_since(d) >= t.connect_grace) {
                    Some(EndReason::NeverConnected)
                } else if t.session_timeout.is_some_and(|d| now.saturating_duration_since(s.created) >= d) {
                    Some(EndReason::SessionTimeout)
                } else if t.idle_timeout.is_some_and(|d| now.saturating_duration_since(s.last_data) >= d) {
                    Some(EndReason::IdleTimeout)
                } else if s.detached_at.is_some_and(|d| now.saturating_duration_since(d) >= t.cookie_grace) {
                    Some(EndReason::ReconnectWindowExpired)
                } else {
                    None
                };
            if let Some(r) = reason {
                ending.push((s.id, r));
            }
        }
        for (id, r) in ending {
            self.end_session(id, r);
        }
        // Connections that never finished TLS or never logged in, or whose
        // CSTP went silent for three DPD periods (ocserv's rule,
        // openconnect-protocol.md §6.2).
        let dead: Vec<(ConnId, &'static str)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| match c.phase {
                Phase::Http if !c.established && now.saturating_duration_since(c.opened) >= l.tls_handshake_timeout => {
                    Some((*id, "TLS handshake timeout"))
                }
                Phase::Http if now.saturating_duration_since(c.opened) >= l.auth_timeout => {
                    Some((*id, "authentication timeout"))
                }
                Phase::Tunnel { .. } if now.saturating_duration_since(c.last_rx) >= t.dpd * 3 => {
                    Some((*id, "CSTP dead-peer detection timeout"))
                }
                _ => None,
            })
            .collect();
        for (id, why) in dead {
            match why {
                "TLS handshake timeout" => self.counters.tls_handshake_timeouts += 1,
                "authentication timeout" => self.counters.auth_timeouts += 1,
                _ => {}
            }
            self.close(id, why, now);
        }
    }

    // ----- sessions ------------------------------------------------------

    /// An administrator ends session `id` and revokes its cookie; `false`
    /// if there is none. A node-local cookie dies with its session; a
    /// cluster cookie is revoked here and at every peer
    /// ([`revocation`]), wherever it was minted.
    pub fn kill(&mut self, id: SessionId) -> bool {
        if self.sessions.get(id).is_none() {
            return false;
        }
        self.end_session(id, EndReason::AdminKill);
        true
    }

    /// Stops taking logins and tunnels (each gets 503 and is closed) and
    /// ends every session *without* DISCONNECT, so that its device
    /// reconnects with its cookie — through a relay, to another gateway of
    /// the name, which adopts the session with its address. Cookies are not
    /// revoked. Returns the sessions ended.
    pub fn drain(&mut self) -> usize {
        self.draining = true;
        let ids = self.sessions.ids();
        for id in &ids {
            self.end_session(*id, EndReason::Drained);
        }
        ids.len()
    }

    /// Whether [`drain`](Self::drain) was called.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Ends every session (the gateway is stopping).
    pub fn shutdown(&mut self) {
        for id in self.sessions.ids() {
            self.end_session(id, EndReason::Shutdown);
        }
    }

    /// Ends a session: tell the device (CSTP DISCONNECT, except after its
    /// own logout), take its DTLS authorisation and channel from the
    /// shards, forget its cookie (and revoke it across the cluster, when
    /// the end is for good), return its address.
    fn end_session(&mut self, id: SessionId, reason: EndReason) {
        let Some(s) = self.sessions.remove(id) else { return };
        self.revoke_cookie_of(&s, reason);
        self.deauthorize_dtls(id);
        if let Some(conn) = s.conn {
            if reason != EndReason::Logout && reason != EndReason::Drained {
                self.send_frame(conn, proto::cstp::PacketType::DISCONNECT, &[]);
            }
            self.close_quietly(conn, "session ended");
        }
        self.pool.release(id);
        self.counters.sessions_ended += 1;
        self.effects.push_back(Effect::SessionEnded(SessionEnd {
            session: id,
            user: s.user,
            group: s.group,
            address: s.address,
            peer: s.peer,
            reason,
            traffic: s.traffic,
        }));
    }
}

/// Whole seconds of `d`, saturating.
fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}
