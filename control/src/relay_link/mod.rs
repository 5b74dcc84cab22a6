//! The gateway's links to its relays (`[[relay]]` in the configuration):
//! it dials out to each relay on TCP 3101, proves the token of the name it
//! registers, and then does what the relay asks over that link: dial a new
//! stream back for each device connection (the device's TLS then runs over
//! it, end to end) and bind a relay UDP port for each device's DTLS flow.
//! Nothing ever connects in to the gateway. A link that drops is dialled
//! again with exponential back-off. See [`proto::relay`] for the frames.
//!
//! In a `[cluster]` the links also carry cookie revocations both ways: the
//! core's ([`RelayLinks::revoke`]) go to every live link and are kept, to
//! be sent again to each relay as its link comes up (the relay may have
//! restarted and forgotten them, or the link was down when they happened);
//! the relay's come back as [`LinkEvent::Revoke`].
//!
//! The link runs over TLS 1.3 with the relay's certificate pinned
//! ([`tls`]); the streams dialled back for devices do not: each carries
//! the device's own TLS, end to end.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use proto::relay::{self as link, Frame, Nonce, RevocationTag};
use service::revocations::{Added, Cursor, Revocations};

pub mod tls;

pub use tls::RelayTrust;

/// Link tokens: `LINK_TOKEN_BASE + index` (the gateway's fixed tokens are
/// below, its connections above).
pub const LINK_TOKEN_BASE: usize = 4;
/// How many relays a gateway may have (the token range between).
pub const MAX_RELAYS: usize = 12;

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a dial or the authentication may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(10);
/// A link silent this long is dead (the relay pings as often as we do).
const SILENCE: Duration = Duration::from_secs(30);
/// How long an attaching stream may take to connect.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams being dialled back at once; more Opens are declined, so a relay
/// cannot make the gateway hold unbounded half-open sockets.
const MAX_ATTACHING: usize = 1024;
/// Revocations sent again to a link that came up, per turn: 2048 frames
/// are 55 KiB, and a turn sends them only while the outbox holds under a
/// quarter of [`MAX_OUTBOX`], so a long list never outgrows it.
const REPLAY_BATCH: usize = 2048;

/// One relay of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// The relay's gateway port (TCP 3101 by convention).
    pub address: SocketAddr,
    /// The name devices ask the relay for (the SNI of their TLS).
    pub name: String,
    pub token: Vec<u8>,
    /// How the relay's link certificate is checked.
    pub trust: RelayTrust,
}

pub use crate::core::RelayRoute;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not connected; dial at `retry_at`.
    Waiting,
    Connecting,
    /// Hello sent.
    AwaitChallenge,
    /// Auth sent.
    AwaitWelcome,
    Up {
        route: u32,
        dtls_port: u16,
    },
}

#[derive(Debug)]
struct GatewayLink {
    target: RelayTarget,
    /// `None`: the configuration could not be built (logged at start);
    /// the link is never dialled.
    tls_config: Option<Arc<rustls::ClientConfig>>,
    /// The link's TLS, from the moment its TCP connection is up.
    tls: Option<tls::LinkTls>,
    token: Token,
    state: State,
    stream: Option<TcpStream>,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    backoff: Duration,
    retry_at: Instant,
    since: Instant,
    last_rx: Instant,
    last_ping: Instant,
    /// The route this relay gave us last: asked for again on redial, so
    /// App-IDs handed out before a drop still route.
    route_hint: u32,
    /// Where sending this gateway's revocations again stands after the
    /// link came up; `None`: done.
    replay: Option<Cursor>,
}

/// A stream being dialled back to the relay for a device.
#[derive(Debug)]
struct Attaching {
    stream: TcpStream,
    link: usize,
    id: u64,
    nonce: Nonce,
    device: SocketAddr,
    since: Instant,
}

/// What the links ask of the gateway.
#[derive(Debug)]
pub enum LinkEvent {
    /// A stream to the relay that carries a device's TLS: serve it like an
    /// accepted connection (it is registered under `token` already).
    Stream { token: Token, stream: TcpStream, device: SocketAddr, via: RelayRoute },
    /// The relay opened `port` for a device whose ClientHello carried
    /// `app_id`: bind it ([`link::Bind`]) from the DTLS port, or refuse it.
    Allocate { link: usize, flow: u64, relay: SocketAddr, nonce: Nonce, app_id: Vec<u8>, device: SocketAddr },
    /// Another gateway of the cluster revoked a cookie: hand it to the
    /// core ([`crate::core::Core::handle_revocation`]).
    Revoke { tag: RevocationTag, expires: u64 },
}

service::counters! {
    /// Counters of the relay links, for /metrics.
    pub struct LinkCounters {
        metric_prefix: "corridor_relay_",
        /// relay links authenticated
        links_up,
        /// relay links that dropped after coming up
        links_lost,
        /// relay links the relay refused (name or token)
        links_refused,
        /// relay links refused here: the relay's certificate matched neither pin_sha256 nor ca_file
        links_bad_certificate,
        /// relay links whose TLS failed otherwise (a record that did not authenticate, a failed handshake)
        links_tls_failed,
        /// device streams dialled back to a relay
        streams_attached,
        /// device streams that could not be dialled back
        streams_failed,
        /// device streams declined: server.max_connections reached
        streams_declined,
        /// relay DTLS flows refused: no session had the App-ID
        flows_refused,
        /// cookie revocation frames sent to relays (each revocation once per live link, again as a link comes up)
        revocations_sent,
        /// cookie revocation frames received from relays
        revocations_received,
    }
}

#[derive(Debug)]
pub struct RelayLinks {
    links: Vec<GatewayLink>,
    attaching: std::collections::HashMap<Token, Attaching>,
    /// Connections the gateway can still take, as of the last event.
    room: usize,
    /// The revocations this gateway made, until their cookies expire:
    /// sent again to every relay whose link comes up.
    revoked: Revocations,
    /// The gateway drains: every link says so ([`Frame::Drain`]), now and
    /// when it comes up.
    draining: bool,
    pub counters: LinkCounters,
}

/// `d` stretched by up to a quarter at random, so gateways that lost one
/// relay together do not redial in lockstep.
fn jittered(d: Duration) -> Duration {
    let mut b = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut b);
    d + d.mul_f64(f64::from(b[0]) / 1024.0)
}

pub use service::link::{write_out, MAX_OUTBOX};

impl GatewayLink {
    fn send(&mut self, f: &Frame) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(tls) => tls.seal(&f.to_vec(), &mut self.outbox),
            None => return Err(io::ErrorKind::NotConnected.into()),
        }
        self.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        let Some(s) = self.stream.as_mut() else { return Err(io::ErrorKind::NotConnected.into()) };
        write_out(s, &mut self.outbox)
    }

    fn route(&self) -> Option<(u32, u16)> {
        match self.state {
            State::Up { route, dtls_port } => Some((route, dtls_port)),
            _ => None,
        }
    }
}

impl RelayLinks {
    pub fn new(targets: &[RelayTarget], now: Instant) -> Self {
        let links = targets
            .iter()
            .enumerate()
            .map(|(i, t)| GatewayLink {
                target: t.clone(),
                tls_config: tls::client_config(t.address, &t.trust)
                    .inspect_err(|e| tracing::error!(relay = %t.address, error = %e, "relay link TLS cannot be set up; not dialling it"))
                    .ok(),
                tls: None,
                token: Token(LINK_TOKEN_BASE + i),
                state: State::Waiting,
                stream: None,
                inbox: Vec::new(),
                outbox: Vec::new(),
                backoff: BACKOFF_MIN,
                retry_at: now,
                since: now,
                last_rx: now,
                last_ping: now,
                route_hint: 0,
                replay: None,
            })
            .collect();
        Self {
            links,
            attaching: std::collections::HashMap::new(),
            room: MAX_ATTACHING,
            revoked: Revocations::default(),
            draining: false,
            counters: LinkCounters::default(),
        }
    }

    /// Whether `token` is a link's or an attaching stream's.
    pub fn owns(&self, token: Token) -> bool {
        (LINK_TOKEN_BASE..LINK_TOKEN_BASE + self.links.len()).contains(&token.0) || self.attaching.contains_key(&token)
    }

    pub fn up(&self) -> usize {
        self.links.iter().filter(|l| matches!(l.state, State::Up { .. })).count()
    }

    /// Each relay and where its link stands (`corridor ctl status`).
    pub fn views(&self) -> Vec<crate::ctl::RelayView> {
        self.links
            .iter()
            .map(|l| crate::ctl::RelayView {
                address: l.target.address,
                name: l.target.name.clone(),
                state: match l.state {
                    State::Up { route, dtls_port } => format!("up (route {route:08x}, dtls port {dtls_port})"),
                    State::Waiting => "waiting".to_owned(),
                    State::Connecting => "connecting".to_owned(),
                    State::AwaitChallenge => "await_challenge".to_owned(),
                    State::AwaitWelcome => "await_welcome".to_owned(),
                },
            })
            .collect()
    }

    /// The relay a stream came from, with its current route.
    pub fn route_of(&self, link: usize) -> Option<RelayRoute> {
        let (route, dtls_port) = self.links.get(link)?.route()?;
        Some(RelayRoute { link, route, dtls_port })
    }

    /// Readiness on one of our tokens. `room`: connections the gateway may
    /// still take (server.max_connections less those it holds); Opens past
    /// it are declined.
    pub fn on_event(
        &mut self,
        token: Token,
        now: Instant,
        registry: &Registry,
        next_token: &mut usize,
        room: usize,
        events: &mut Vec<LinkEvent>,
    ) {
        self.room = room;
        if let Some(a) = self.attaching.remove(&token) {
            return self.on_attaching(token, a, registry, events);
        }
        let Some(i) = token.0.checked_sub(LINK_TOKEN_BASE).filter(|i| *i < self.links.len()) else { return };
        if let Err(why) = self.drive(i, now, registry, next_token, events) {
            self.lost(i, &why, now, registry);
        }
    }

    fn on_attaching(&mut self, token: Token, mut a: Attaching, registry: &Registry, events: &mut Vec<LinkEvent>) {
        match a.stream.take_error() {
            Ok(None) => {}
            _ => return self.attach_failed(a, registry, "connect failed"),
        }
        match a.stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.attaching.insert(token, a);
                return;
            }
            Err(_) => return self.attach_failed(a, registry, "connect failed"),
        }
        // 27 bytes into an empty socket buffer: one write takes them all.
        let frame = Frame::Attach { stream: a.id, nonce: a.nonce }.to_vec();
        match a.stream.write(&frame) {
            Ok(n) if n == frame.len() => {}
            _ => return self.attach_failed(a, registry, "writing the attach failed"),
        }
        let Some(via) = self.route_of(a.link) else {
            return self.attach_failed(a, registry, "the link went down meanwhile");
        };
        self.counters.streams_attached += 1;
        events.push(LinkEvent::Stream { token, stream: a.stream, device: a.device, via });
    }

    fn attach_failed(&mut self, mut a: Attaching, registry: &Registry, why: &str) {
        self.counters.streams_failed += 1;
        let _ = registry.deregister(&mut a.stream);
        tracing::info!(device = %a.device, stream = a.id, reason = why, "could not dial a stream back to the relay");
    }

    /// Moves a link along: connect, authenticate, then serve its frames.
    fn drive(
        &mut self,
        i: usize,
        now: Instant,
        registry: &Registry,
        next_token: &mut usize,
        events: &mut Vec<LinkEvent>,
    ) -> Result<(), String> {
        let Some(l) = self.links.get_mut(i) else { return Ok(()) };
        if l.state == State::Connecting {
            let Some(s) = l.stream.as_mut() else { return Err("no socket".into()) };
            if let Ok(Some(e)) | Err(e) = s.take_error() {
                return Err(format!("connect failed: {e}"));
            }
            match s.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect failed: {e}")),
            }
            let Some(config) = l.tls_config.as_ref() else { return Err("no TLS configuration".into()) };
            let tls = tls::LinkTls::new(config, l.target.address, &mut l.outbox).map_err(|e| format!("TLS: {e}"))?;
            l.tls = Some(tls);
            l.state = State::AwaitChallenge;
            // Held by rustls until the handshake has checked the relay.
            let hello = Frame::Hello { version: link::VERSION, route_hint: l.route_hint, name: l.target.name.clone() };
            l.send(&hello).map_err(|e| format!("write failed: {e}"))?;
        }
        l.flush().map_err(|e| format!("write failed: {e}"))?;
        let mut closed = None;
        if let (Some(s), Some(tls)) = (l.stream.as_mut(), l.tls.as_mut()) {
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        closed = Some("closed by the relay".to_owned());
                        break;
                    }
                    Ok(n) => {
                        l.last_rx = now;
                        let received = tls.receive(buf.get(..n).unwrap_or_default(), &mut l.inbox, &mut l.outbox);
                        // The alert, or the handshake's next flight.
                        let _ = write_out(s, &mut l.outbox);
                        if let Err(e) = received {
                            if matches!(e, rustls::Error::InvalidCertificate(_)) {
                                self.counters.links_bad_certificate += 1;
                                // A configuration matter, like a refusal: retry slowly.
                                l.backoff = BACKOFF_MAX;
                            } else {
                                self.counters.links_tls_failed += 1;
                            }
                            return Err(format!("TLS: {e}"));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        closed = Some(format!("read failed: {e}"));
                        break;
                    }
                }
            }
        }
        loop {
            let Some(l) = self.links.get_mut(i) else { return Ok(()) };
            let (frame, used) = match link::next_frame(&l.inbox) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(format!("bad frame from the relay: {e}")),
            };
            l.inbox.drain(..used);
            self.on_frame(i, frame, now, registry, next_token, events)?;
        }
        match closed {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn on_frame(
        &mut self,
        i: usize,
        f: Frame,
        now: Instant,
        registry: &Registry,
        next_token: &mut usize,
        events: &mut Vec<LinkEvent>,
    ) -> Result<(), String> {
        let Some(l) = self.links.get_mut(i) else { return Ok(()) };
        match (l.state, f) {
            (State::AwaitChallenge, Frame::Challenge { nonce }) => {
                let mac = link::link_mac(&l.target.token, &nonce, &l.target.name);
                l.state = State::AwaitWelcome;
                l.send(&Frame::Auth { mac }).map_err(|e| format!("write failed: {e}"))?;
            }
            (State::AwaitWelcome, Frame::Welcome { route, dtls_port }) => {
                l.state = State::Up { route, dtls_port };
                l.backoff = BACKOFF_MIN;
                l.route_hint = route;
                l.last_ping = now;
                self.counters.links_up += 1;
                tracing::info!(
                    relay = %l.target.address,
                    name = %l.target.name,
                    route = format_args!("{route:08x}"),
                    dtls_port,
                    "relay link up"
                );
                if self.draining {
                    l.send(&Frame::Drain).map_err(|e| format!("write failed: {e}"))?;
                }
                l.replay = Some(Cursor::default());
                self.replay(i).map_err(|e| format!("write failed: {e}"))?;
            }
            (_, Frame::Refused { reason }) => {
                self.counters.links_refused += 1;
                // A refusal is a configuration matter: retry slowly.
                l.backoff = BACKOFF_MAX;
                tracing::error!(relay = %l.target.address, name = %l.target.name, reason = %reason, "the relay refused the link; check [[relay]] name and token against the relay's [[gateway]]");
                return Err(format!("refused: {reason}"));
            }
            (State::Up { .. }, Frame::Open { stream, nonce, device }) => {
                self.open(i, stream, nonce, device, now, registry, next_token);
            }
            (State::Up { .. }, Frame::Allocate { flow, port, nonce, device, app_id }) => {
                let Some(s) = l.stream.as_ref() else { return Ok(()) };
                let relay_ip: IpAddr = s.peer_addr().map_or(l.target.address.ip(), |a| a.ip());
                events.push(LinkEvent::Allocate {
                    link: i,
                    flow,
                    relay: SocketAddr::new(relay_ip, port),
                    nonce,
                    app_id,
                    device,
                });
            }
            (State::Up { .. }, Frame::Revoke { tag, expires }) => {
                self.counters.revocations_received += 1;
                events.push(LinkEvent::Revoke { tag, expires });
            }
            (_, Frame::Ping { token }) => l.send(&Frame::Pong { token }).map_err(|e| format!("write failed: {e}"))?,
            (_, Frame::Pong { .. }) => {}
            (state, other) => return Err(format!("unexpected {other:?} in state {state:?}")),
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        i: usize,
        id: u64,
        nonce: Nonce,
        device: SocketAddr,
        now: Instant,
        registry: &Registry,
        next_token: &mut usize,
    ) {
        let Some(l) = self.links.get_mut(i) else { return };
        if self.attaching.len() >= self.room.min(MAX_ATTACHING) {
            self.counters.streams_declined += 1;
            let _ = l.send(&Frame::Decline { stream: id });
            return;
        }
        let addr = l.stream.as_ref().and_then(|s| s.peer_addr().ok()).unwrap_or(l.target.address);
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                self.counters.streams_failed += 1;
                tracing::info!(relay = %addr, error = %e, "could not dial a stream back to the relay");
                let _ = l.send(&Frame::Decline { stream: id });
                return;
            }
        };
        let token = Token(*next_token);
        *next_token += 1;
        if registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_err() {
            self.counters.streams_failed += 1;
            let _ = l.send(&Frame::Decline { stream: id });
            return;
        }
        let _ = stream.set_nodelay(true);
        self.attaching.insert(token, Attaching { stream, link: i, id, nonce, device, since: now });
    }

    /// Tells the relay no session has the flow's App-ID.
    pub fn refuse(&mut self, link: usize, flow: u64) {
        self.counters.flows_refused += 1;
        if let Some(l) = self.links.get_mut(link) {
            let _ = l.send(&Frame::Refuse { flow });
        }
    }

    /// The core revoked a cookie: every live link is told now, and each
    /// link that comes up later is told on its Welcome, until `expires`.
    /// A link whose write fails is left to notice it on its next event.
    pub fn revoke(&mut self, tag: RevocationTag, expires: u64, unix_now: u64) {
        if !matches!(self.revoked.insert(tag, expires, unix_now), Added::New { .. }) {
            return;
        }
        for l in self.links.iter_mut().filter(|l| matches!(l.state, State::Up { .. })) {
            if l.send(&Frame::Revoke { tag, expires }).is_ok() {
                self.counters.revocations_sent += 1;
            }
        }
    }

    /// The gateway drains: tells every relay (and every relay whose link
    /// comes up later) to send it no new device.
    pub fn drain(&mut self) {
        self.draining = true;
        for l in self.links.iter_mut().filter(|l| matches!(l.state, State::Up { .. })) {
            if let Err(e) = l.send(&Frame::Drain) {
                tracing::warn!(relay = %l.target.address, "telling the relay the gateway drains: {e}");
            }
        }
    }

    /// Forgets the revocations whose cookies have expired.
    pub fn expire_revocations(&mut self, unix_now: u64) {
        self.revoked.expire(unix_now);
    }

    /// Sends link `i` the next part of this gateway's revocations, if it
    /// is being told them and its outbox has room.
    fn replay(&mut self, i: usize) -> io::Result<()> {
        let Some(l) = self.links.get_mut(i) else { return Ok(()) };
        let Some(mut cursor) = l.replay else { return Ok(()) };
        if l.outbox.len() > MAX_OUTBOX / 4 {
            return Ok(());
        }
        let batch = self.revoked.next_batch(&mut cursor, REPLAY_BATCH);
        l.replay = (batch.len() == REPLAY_BATCH).then_some(cursor);
        if batch.is_empty() {
            return Ok(());
        }
        let mut frames = Vec::with_capacity(batch.len() * 27);
        for (tag, expires) in &batch {
            Frame::Revoke { tag: *tag, expires: *expires }.write(&mut frames);
        }
        self.counters.revocations_sent += batch.len() as u64;
        let Some(tls) = l.tls.as_mut() else { return Err(io::ErrorKind::NotConnected.into()) };
        tls.seal(&frames, &mut l.outbox);
        l.flush()
    }

    fn lost(&mut self, i: usize, why: &str, now: Instant, registry: &Registry) {
        let Some(l) = self.links.get_mut(i) else { return };
        if let Some(mut s) = l.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        if matches!(l.state, State::Up { .. }) {
            self.counters.links_lost += 1;
        }
        let was_up = matches!(l.state, State::Up { .. });
        l.state = State::Waiting;
        l.tls = None;
        l.inbox.clear();
        l.outbox.clear();
        let wait = jittered(l.backoff);
        l.retry_at = now + wait;
        l.backoff = (l.backoff * 2).min(BACKOFF_MAX);
        l.replay = None;
        if was_up {
            tracing::warn!(relay = %l.target.address, name = %l.target.name, reason = why, retry_in = ?wait, "relay link lost; redialling");
        } else {
            tracing::info!(relay = %l.target.address, name = %l.target.name, reason = why, retry_in = ?wait, "relay link not established; redialling");
        }
    }

    /// Dials links that are due, pings live ones, drops silent ones.
    pub fn on_tick(&mut self, now: Instant, registry: &Registry) {
        for i in 0..self.links.len() {
            let Some(l) = self.links.get_mut(i) else { continue };
            match l.state {
                State::Waiting if now >= l.retry_at && l.tls_config.is_some() => {
                    let mut s = match TcpStream::connect(l.target.address) {
                        Ok(s) => s,
                        Err(e) => {
                            let why = format!("connect failed: {e}");
                            self.lost(i, &why, now, registry);
                            continue;
                        }
                    };
                    if registry.register(&mut s, l.token, Interest::READABLE | Interest::WRITABLE).is_err() {
                        self.lost(i, "could not register the socket", now, registry);
                        continue;
                    }
                    let _ = s.set_nodelay(true);
                    l.stream = Some(s);
                    l.state = State::Connecting;
                    l.since = now;
                    l.last_rx = now;
                }
                State::Waiting => {}
                State::Up { .. } => {
                    if now.saturating_duration_since(l.last_rx) >= SILENCE {
                        self.lost(i, "silent for 30 s", now, registry);
                        continue;
                    }
                    if now.saturating_duration_since(l.last_ping) >= PING_EVERY {
                        l.last_ping = now;
                        if l.send(&Frame::Ping { token: 0 }).is_err() {
                            self.lost(i, "write failed", now, registry);
                            continue;
                        }
                    }
                    if self.replay(i).is_err() {
                        self.lost(i, "write failed", now, registry);
                    }
                }
                _ => {
                    if now.saturating_duration_since(l.since) >= HANDSHAKE_TIMEOUT {
                        self.lost(i, "no answer to the link handshake", now, registry);
                    }
                }
            }
        }
        let late: Vec<Token> = self
            .attaching
            .iter()
            .filter(|(_, a)| now.saturating_duration_since(a.since) >= ATTACH_TIMEOUT)
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            if let Some(a) = self.attaching.remove(&t) {
                self.attach_failed(a, registry, "connect timed out");
            }
        }
    }
}
