//! The control thread: one mio loop over the TLS listener, the device
//! connections, the data plane's event queue and the password verifiers'
//! verdicts (PBKDF2 runs on their threads, never here). It authenticates, answers
//! CONNECT, carries CSTP, runs DTLS handshakes, hands established sessions
//! to shards, and ends sessions when they are no longer wanted.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::{Dataplane, DataplaneConfig, FromShard, ShardId, ToShard};
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use proto::auth::{self, AuthDocType, AuthForm, FieldKind, FormField};
use proto::connect::{self, DtlsParams, TunnelParams};
use proto::cstp::{self, Deframer, PacketType};
use proto::grant::{Policy, SessionGrant, SessionId};
use proto::http::{self, Limits, Parsed, Request};
use proto::ip::{Ipv4Net, Ipv4Packet};

use crate::cluster::CookieClaims;
use crate::config::Config;
use crate::conn::{Phase, ReadOutcome, TlsConn};
use crate::handshakes::{Established, Handshakes};
use crate::passwd::PasswordFile;
use crate::pool::AddressPool;
use crate::relay_link::{LinkEvent, RelayLinks};
use crate::session::{random_bytes, random_hex, DtlsState, EndReason, Session, Sessions};
use crate::verifier::{self, CheckResult, PendingCheck, SubmitError, Verdict, Verifiers};

const LISTENER: Token = Token(0);
const DATAPLANE: Token = Token(1);
const ADMIN: Token = Token(2);
/// Woken by the password verifiers when a verdict is ready.
const VERIFIERS: Token = Token(3);
const FIRST_CONN: usize = 16;

/// How long a connection may take to log in and CONNECT.
const AUTH_TIMEOUT: Duration = Duration::from_secs(60);
/// How often timers are checked.
const TICK: Duration = Duration::from_millis(250);
/// How long a finished handshake's last flight waits for its shard to
/// confirm the grant. Past it the flight goes anyway: there is no
/// confirmation when the shard's event queue is full or it refused the
/// grant, and a device must never be left mid-handshake for want of one.
const FINAL_FLIGHT_HOLD: Duration = Duration::from_millis(200);

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    Config(crate::config::ConfigError),
    Io(&'static str, io::Error),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::Config(e) => e.fmt(f),
            StartError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Counters for the whole control plane.
#[derive(Debug, Default, Clone, Copy)]
pub struct ControlCounters {
    pub tls_accepted: u64,
    pub connections_refused: u64,
    pub logins_ok: u64,
    pub logins_failed: u64,
    /// Logins answered "busy": the password verifiers' queue was full.
    pub logins_busy: u64,
    /// Verdicts that came back for a connection that had closed (or no
    /// longer waited for that check).
    pub verdicts_discarded: u64,
    pub bad_requests: u64,
    pub connects: u64,
    pub connect_rejected: u64,
    pub cstp_frames_in: u64,
    pub cstp_frames_out: u64,
    pub cstp_dropped_blocked: u64,
    pub cstp_protocol_errors: u64,
    pub drop_spoofed_source: u64,
    pub drop_policy: u64,
    pub drop_not_ipv4: u64,
    pub sessions_ended: u64,
    /// Sessions another cluster node began that reconnected here.
    pub sessions_adopted: u64,
    /// Final DTLS flights sent after [`FINAL_FLIGHT_HOLD`] with no word
    /// from the shard that its grant was installed.
    pub final_flights_released_by_timer: u64,
}

/// A finished handshake's last flight (ChangeCipherSpec, Finished), held
/// until `shard` reports the grant for `peer` installed: the device sends
/// data as soon as it reads the flight, and the shard takes records from a
/// peer it holds no grant for as handshake traffic, which is lost.
#[derive(Debug)]
struct HeldFlight {
    shard: ShardId,
    peer: SocketAddr,
    datagrams: Vec<Vec<u8>>,
    since: Instant,
}

/// Sends datagrams to a device from the data plane's UDP port, as every
/// handshake datagram is. Best effort: a lost one is a lost datagram, which
/// DTLS retransmission covers.
fn send_datagrams(sender: &std::net::UdpSocket, peer: SocketAddr, datagrams: &[Vec<u8>]) {
    for d in datagrams {
        let _ = sender.send_to(d, peer);
    }
}

pub struct Gateway {
    config: Arc<Config>,
    tls: Arc<rustls::ServerConfig>,
    poll: Poll,
    listener: TcpListener,
    conns: HashMap<Token, TlsConn>,
    next_token: usize,
    sessions: Sessions,
    pool: AddressPool,
    /// `None` without a password file: password logins then fail, as
    /// there is nothing to check them against.
    verifiers: Option<Verifiers>,
    dataplane: Dataplane,
    handshakes: Handshakes,
    held_flights: HashMap<SessionId, HeldFlight>,
    pub counters: ControlCounters,
    limits: Limits,
    admin: Option<std::net::TcpListener>,
    relays: RelayLinks,
}

impl core::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gateway").field("sessions", &self.sessions.len()).field("conns", &self.conns.len()).finish()
    }
}

/// Every session holds a TCP socket: raise the soft open-file limit to the
/// hard one, and say so when even that cannot hold `server.max_connections`.
fn raise_open_file_limit(max_connections: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    // The listeners, TUN queues, UDP sockets, rings and event fds.
    let needed = max_connections as u64 + 256;
    if limit < needed {
        tracing::warn!(
            open_files = limit,
            needed,
            "the open-file limit cannot hold server.max_connections; raise it (LimitNOFILE= in the unit, \
             ulimit -Hn) or lower server.max_connections"
        );
    }
}

impl Gateway {
    /// Binds the listener, creates the TUN and starts the shards.
    pub fn start(config: Config) -> Result<Self, StartError> {
        let tls = crate::tls::server_config(&config.cert, &config.key, config.client_ca.as_deref())
            .map_err(StartError::Config)?;
        let passwords = match &config.password_file {
            Some(p) => Some(PasswordFile::load(p).map_err(|e| {
                StartError::Config(crate::config::ConfigError {
                    field: "auth.password_file".into(),
                    problem: e.to_string(),
                    fix: "create or repair it with `corridor passwd`".into(),
                })
            })?),
            None => None,
        };
        let poll = Poll::new().map_err(|e| StartError::Io("creating the event loop", e))?;
        let verifiers = match passwords {
            Some(p) => {
                let waker = Waker::new(poll.registry(), VERIFIERS)
                    .map_err(|e| StartError::Io("creating the password verifiers' waker", e))?;
                let threads = match config.verify_threads {
                    0 => verifier::auto_threads(std::thread::available_parallelism().map_or(1, |n| n.get())),
                    n => n,
                };
                tracing::info!(threads, queue = config.verify_queue, "password verifiers started");
                Some(
                    Verifiers::start(Arc::new(p), threads, config.verify_queue, Arc::new(waker))
                        .map_err(|e| StartError::Io("starting the password verifier threads", e))?,
                )
            }
            None => None,
        };
        let mut listener = TcpListener::bind(config.listen).map_err(|e| StartError::Io("binding server.listen", e))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| StartError::Io("registering the listener", e))?;
        let udp_listen = SocketAddr::new(config.listen.ip(), config.dtls_port.unwrap_or(0));
        let dataplane = Dataplane::start(DataplaneConfig {
            shards: config.shards,
            udp_listen,
            tun_name: config.tun_name.clone(),
            tun_address: Ipv4Net { addr: config.gateway_address, prefix: config.pool.prefix },
            tun_mtu: crate::mtu_for(&config),
            pool: config.pool,
            pin_cores: config.pin_cores,
            ring_entries: config.ring_entries,
            offloads: config.offloads,
            io: config.io,
            steering: config.steering,
        })
        .map_err(|e| StartError::Io("starting the data plane (TUN, UDP, io_uring)", e))?;
        let efd = dataplane.event_fd();
        poll.registry()
            .register(&mut SourceFd(&efd), DATAPLANE, Interest::READABLE)
            .map_err(|e| StartError::Io("registering the data plane", e))?;
        let handshakes = Handshakes::new(Instant::now())
            .map_err(|e| StartError::Io("DTLS configuration", io::Error::other(e.to_string())))?;
        tracing::info!(
            listen = %config.listen,
            dtls_port = ?config.dtls_port,
            tun = %config.tun_name,
            pool = %config.pool,
            shards = dataplane.shard_count(),
            offloads = %describe_offloads(dataplane.info(), config.offloads),
            io = %describe_io(dataplane.info()),
            steering = %match &dataplane.info().steering {
                Ok(()) => "ebpf (TUN reads go to the owner shard's queue)".to_owned(),
                Err(why) => format!("flow hash ({why})"),
            },
            fips = aws_lc_rs::try_fips_mode().is_ok(),
            relays = ?config.relays.iter().map(|r| format!("{}@{}", r.name, r.address)).collect::<Vec<_>>(),
            "gateway started"
        );
        let admin = match config.admin_listen {
            Some(a) => {
                let l = std::net::TcpListener::bind(a).map_err(|e| StartError::Io("binding admin.listen", e))?;
                l.set_nonblocking(true).map_err(|e| StartError::Io("admin listener", e))?;
                let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
                poll.registry()
                    .register(&mut SourceFd(&fd), ADMIN, Interest::READABLE)
                    .map_err(|e| StartError::Io("registering the admin listener", e))?;
                Some(l)
            }
            None => None,
        };
        raise_open_file_limit(config.max_connections);
        let pool = AddressPool::new(config.pool);
        let relays = RelayLinks::new(&config.relays, Instant::now());
        Ok(Self {
            config: Arc::new(config),
            tls,
            poll,
            listener,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
            sessions: Sessions::default(),
            pool,
            verifiers,
            dataplane,
            handshakes,
            held_flights: HashMap::new(),
            counters: ControlCounters::default(),
            limits: Limits::default(),
            admin,
            relays,
        })
    }

    pub fn dataplane(&self) -> &Dataplane {
        &self.dataplane
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until `stop` is set; then ends every session and stops the shards.
    pub fn run(mut self, stop: &AtomicBool) -> io::Result<ControlCounters> {
        let mut events = Events::with_capacity(256);
        let mut last_tick = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.poll.poll(&mut events, Some(TICK)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(now),
                    DATAPLANE => self.on_dataplane(now),
                    ADMIN => self.on_admin(),
                    VERIFIERS => self.on_verdicts(now),
                    t if self.relays.owns(t) => self.on_relay(t, now),
                    t => self.on_conn(t, now, ev.is_readable()),
                }
            }
            if now.saturating_duration_since(last_tick) >= TICK {
                last_tick = now;
                self.on_tick(now);
            }
        }
        for id in self.sessions.ids() {
            self.end_session(id, EndReason::Shutdown);
        }
        if let Some(v) = self.verifiers.as_mut() {
            v.shutdown();
        }
        let counters = self.counters;
        for (i, c) in self.dataplane.counters().iter().enumerate() {
            let line: Vec<String> = c.named().iter().filter(|(_, v)| *v > 0).map(|(k, v)| format!("{k}={v}")).collect();
            tracing::info!(shard = i, "shard counters {}", line.join(" "));
        }
        tracing::info!(?counters, "gateway stopped");
        self.dataplane.shutdown();
        Ok(counters)
    }

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= self.config.max_connections {
                        // Dropping the stream closes it; existing tunnels keep working.
                        self.counters.connections_refused += 1;
                        tracing::debug!(%peer, "connection limit reached; refused");
                        continue;
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    let _ = stream.set_nodelay(true);
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    {
                        tracing::warn!(%peer, error = %e, "could not register connection");
                        continue;
                    }
                    match TlsConn::new(token, stream, peer, self.tls.clone(), now) {
                        Ok(c) => {
                            self.counters.tls_accepted += 1;
                            self.conns.insert(token, c);
                        }
                        Err(e) => tracing::warn!(%peer, error = %e, "TLS setup failed"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    /// Readiness on a relay link or a stream being dialled back to a relay.
    fn on_relay(&mut self, token: Token, now: Instant) {
        let mut events = Vec::new();
        let room = self.config.max_connections.saturating_sub(self.conns.len());
        self.relays.on_event(token, now, self.poll.registry(), &mut self.next_token, room, &mut events);
        for e in events {
            match e {
                LinkEvent::Stream { token, mut stream, device, via } => {
                    if self.conns.len() >= self.config.max_connections {
                        self.counters.connections_refused += 1;
                        let _ = self.poll.registry().deregister(&mut stream);
                        tracing::debug!(%device, "connection limit reached; relayed stream refused");
                        continue;
                    }
                    match TlsConn::new(token, stream, device, self.tls.clone(), now) {
                        Ok(mut c) => {
                            self.counters.tls_accepted += 1;
                            c.via = Some(via);
                            self.conns.insert(token, c);
                            // The device's ClientHello may be waiting already.
                            self.on_conn(token, now, true);
                        }
                        Err(e) => tracing::warn!(%device, error = %e, "TLS setup failed"),
                    }
                }
                LinkEvent::Allocate { link, flow, relay, nonce, app_id, device } => {
                    if self.handshakes.keys().has(&app_id) {
                        let bind = proto::relay::Bind { flow, nonce }.to_bytes();
                        // The bind leaves from the shards' port: the relay's
                        // replies to it are then "established" for the
                        // firewall, and the shards see the device as `relay`.
                        if self.dataplane.udp_sender().send_to(&bind, relay).is_ok() {
                            self.relays.counters.flows_bound += 1;
                            tracing::debug!(%device, %relay, flow, "relay flow bound");
                        }
                    } else {
                        tracing::info!(%device, %relay, flow, "relay flow for an App-ID no session has; refused");
                        self.relays.refuse(link, flow);
                    }
                }
            }
        }
    }

    fn on_conn(&mut self, token: Token, now: Instant, readable: bool) {
        let Some(mut c) = self.conns.remove(&token) else { return };
        let mut closed: Option<&'static str> = None;
        if readable {
            if let ReadOutcome::Closed(why) = c.read(now) {
                closed = Some(why);
            }
            // Handle what arrived even if the peer closed right after it.
            self.process(&mut c, now);
        }
        self.settle(c, closed, now);
    }

    /// Puts a connection back after work on it: writes what it queued, and
    /// drops it if it is done.
    fn settle(&mut self, mut c: TlsConn, mut closed: Option<&'static str>, now: Instant) {
        if c.flush().is_err() {
            closed = Some("write failed");
        }
        if closed.is_none() && c.closing && c.drained() {
            closed = Some("closed by gateway");
        }
        match closed {
            Some(why) => self.drop_conn(c, why, now),
            None => {
                self.conns.insert(c.token, c);
            }
        }
    }

    fn drop_conn(&mut self, mut c: TlsConn, why: &str, now: Instant) {
        let _ = self.poll.registry().deregister(c.stream_mut());
        if let Some(id) = c.session() {
            if let Some(s) = self.sessions.get_mut(id) {
                if s.conn == Some(c.token) {
                    s.conn = None;
                    s.detached_at = Some(now);
                    tracing::info!(session = %id, user = %s.user, reason = %why, "CSTP connection lost; waiting for reconnect");
                }
            }
        }
    }

    /// Consumes the connection's plaintext: HTTP requests, then CSTP frames.
    fn process(&mut self, c: &mut TlsConn, now: Instant) {
        loop {
            match &mut c.phase {
                Phase::Http => {
                    // Requests behind a login wait for its verdict, as they
                    // would behind an inline check.
                    if c.closing || c.check.is_some() {
                        return;
                    }
                    let buf = std::mem::take(&mut c.plaintext);
                    let consumed = match http::parse_request(&buf, &self.limits) {
                        Ok(Parsed::Complete { request, consumed }) => {
                            self.on_request(c, &request, now);
                            consumed
                        }
                        Ok(Parsed::Partial) => {
                            c.plaintext = buf;
                            return;
                        }
                        Err(e) => {
                            self.counters.bad_requests += 1;
                            tracing::info!(peer = %c.peer, error = %e, "bad HTTP request; closing");
                            let mut out = Vec::new();
                            http::write_response(
                                &mut out,
                                e.status(),
                                reason_phrase(e.status()),
                                &[("Connection", "close")],
                                b"",
                            );
                            let _ = c.send(&out);
                            c.closing = true;
                            return;
                        }
                    };
                    c.plaintext = buf.get(consumed..).unwrap_or_default().to_vec();
                    if c.plaintext.is_empty() && matches!(c.phase, Phase::Http) {
                        return;
                    }
                }
                Phase::Tunnel { session, deframer } => {
                    let session = *session;
                    deframer.push(&c.plaintext);
                    c.plaintext.clear();
                    let mut frames = Vec::new();
                    let mut broken = false;
                    while let Some(f) = deframer.next_frame() {
                        match f {
                            Ok(f) => frames.push(f),
                            Err(e) => {
                                tracing::info!(session = %session, error = ?e, "CSTP framing error; closing the connection");
                                broken = true;
                                break;
                            }
                        }
                    }
                    for f in frames {
                        self.on_frame(c, session, f.packet_type, &f.payload, now);
                    }
                    if broken {
                        self.counters.cstp_protocol_errors += 1;
                        c.closing = true;
                    }
                    return;
                }
            }
        }
    }

    fn respond(&mut self, c: &mut TlsConn, status: u16, reason: &str, extra: &[(&str, &str)], body: &[u8]) {
        let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "text/xml"), ("X-Transcend-Version", "1")];
        headers.extend_from_slice(extra);
        let mut out = Vec::new();
        http::write_response(&mut out, status, reason, &headers, body);
        let _ = c.send(&out);
    }

    fn login_form(&self, error: Option<&str>) -> String {
        auth::auth_request_xml(&AuthForm {
            message: "Please enter your username and password.".into(),
            error: error.map(str::to_string),
            action: "/auth".into(),
            fields: vec![
                FormField { kind: FieldKind::Text, name: "username".into(), label: "Username:".into(), value: None },
                FormField {
                    kind: FieldKind::Password,
                    name: "password".into(),
                    label: "Password:".into(),
                    value: None,
                },
            ],
            groups: Vec::new(),
        })
    }

    fn on_request(&mut self, c: &mut TlsConn, req: &Request<'_>, now: Instant) {
        if req.method == "CONNECT" {
            self.on_connect(c, req, now);
            return;
        }
        if req.method != "POST" && req.method != "GET" {
            self.counters.bad_requests += 1;
            self.respond(c, 405, "Method Not Allowed", &[("Connection", "close")], b"");
            c.closing = true;
            return;
        }
        // A verified client certificate logs in at once (ocserv's
        // `auth = certificate` behaviour, openconnect-protocol.md §2.7).
        if self.config.client_ca.is_some() {
            if let Some(user) =
                c.tls.peer_certificates().and_then(|chain| chain.first()).and_then(crate::tls::certificate_user)
            {
                self.login_ok(c, &user, None, now, "certificate");
                return;
            }
        }
        let doc = if req.method == "POST" && !req.body.is_empty() {
            match auth::parse_client_auth(req.body) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.counters.bad_requests += 1;
                    tracing::info!(peer = %c.peer, error = ?e, "malformed auth document");
                    self.respond(c, 400, "Bad Request", &[("Connection", "close")], b"");
                    c.closing = true;
                    return;
                }
            }
        } else {
            None
        };
        let creds = doc
            .as_ref()
            .filter(|d| d.doc_type == AuthDocType::AuthReply)
            .and_then(|d| Some((d.username.clone()?, d.password.clone()?)));
        let Some((user, password)) = creds else {
            let form = self.login_form(None);
            self.respond(c, 200, "OK", &[("Connection", "keep-alive")], form.as_bytes());
            return;
        };
        // The check runs on a verifier thread; the connection waits for
        // its verdict in `on_verdicts`.
        let Some(verifiers) = self.verifiers.as_mut() else {
            self.login_failed(c, &user);
            return;
        };
        match verifiers.submit(c.token, &user, password) {
            Ok(pending) => c.check = Some(pending),
            Err(e) => {
                // A temporary refusal, not a wrong password: it does not
                // count against max_login_attempts. openconnect shows the
                // form's error and asks again (openconnect-protocol.md §2.4).
                self.counters.logins_busy += 1;
                if e == SubmitError::Stopped {
                    tracing::warn!(peer = %c.peer, user = %user, "password verifiers are gone; login refused");
                } else {
                    tracing::info!(peer = %c.peer, user = %user, "password verifiers busy; login refused for now");
                }
                let form = self.login_form(Some("The gateway is busy; try again."));
                self.respond(c, 200, "OK", &[("Connection", "keep-alive")], form.as_bytes());
            }
        }
    }

    /// Verdicts from the password verifiers: each connection still waiting
    /// for its check goes on as an inline check would have, then handles
    /// whatever requests queued up behind it.
    fn on_verdicts(&mut self, now: Instant) {
        while let Some(CheckResult { id, verdict }) = self.verifiers.as_mut().and_then(Verifiers::try_result) {
            let Some(mut c) = self.conns.remove(&id.conn) else {
                self.counters.verdicts_discarded += 1;
                continue;
            };
            let Some(pending) = PendingCheck::claim(&mut c.check, id) else {
                self.counters.verdicts_discarded += 1;
                self.conns.insert(id.conn, c);
                continue;
            };
            let user = &pending.user;
            match verdict {
                Verdict::Accepted { group } => self.login_ok(&mut c, user, group.as_deref(), now, "password"),
                Verdict::Rejected => self.login_failed(&mut c, user),
                // Only a check whose PendingCheck was dropped, or one left
                // at shutdown, is abandoned: not one a connection still
                // waits for. Should it happen, the device may try again.
                Verdict::Abandoned => {
                    self.counters.logins_busy += 1;
                    let form = self.login_form(Some("The gateway is busy; try again."));
                    self.respond(&mut c, 200, "OK", &[("Connection", "keep-alive")], form.as_bytes());
                }
            }
            self.process(&mut c, now);
            self.settle(c, None, now);
        }
    }

    fn login_failed(&mut self, c: &mut TlsConn, user: &str) {
        self.counters.logins_failed += 1;
        c.login_failures += 1;
        tracing::info!(peer = %c.peer, user = %user, failures = c.login_failures, "login failed");
        if c.login_failures >= self.config.max_login_attempts {
            self.respond(c, 401, "Unauthorized", &[("Connection", "close")], b"");
            c.closing = true;
        } else {
            let form = self.login_form(Some("Login failed."));
            self.respond(c, 200, "OK", &[("Connection", "keep-alive")], form.as_bytes());
        }
    }

    fn login_ok(&mut self, c: &mut TlsConn, user: &str, group: Option<&str>, now: Instant, method: &str) {
        let config = self.config.clone();
        // A cluster node hands out fresh addresses from its share only.
        let allocated = match &config.cluster {
            Some(cl) => self.pool.allocate_where(|i| cl.owns_offset(i)),
            None => self.pool.allocate(),
        };
        let Some(id) = allocated else {
            tracing::warn!(user = %user, "address pool exhausted; login refused");
            let form = self.login_form(Some("No addresses left; try again later."));
            self.respond(c, 200, "OK", &[("Connection", "keep-alive")], form.as_bytes());
            return;
        };
        let group = self.config.group(group).name.clone();
        let address = self.pool.address(id);
        let cookie = match &config.cluster {
            Some(cl) => cl.mint(
                &CookieClaims {
                    user: user.to_string(),
                    group: group.clone(),
                    address,
                    issued: unix_now(),
                    node: cl.node,
                },
                &random_bytes::<16>(),
            ),
            None => random_hex::<32>(),
        };
        let s = Session::new(id, user.to_string(), group.clone(), cookie.clone(), address, now, now);
        tracing::info!(session = %id, user = %user, group = %group, method = %method, address = %s.address, peer = %c.peer, "login");
        self.sessions.insert(s);
        self.counters.logins_ok += 1;
        let body = auth::auth_success_xml(self.config.banner.as_deref());
        let set_cookie = format!("webvpn={cookie}; Secure; HttpOnly");
        self.respond(c, 200, "OK", &[("Connection", "keep-alive"), ("Set-Cookie", &set_cookie)], body.as_bytes());
    }

    fn on_connect(&mut self, c: &mut TlsConn, req: &Request<'_>, now: Instant) {
        let reject = |g: &mut Self, c: &mut TlsConn, status: u16, reason: &str| {
            g.counters.connect_rejected += 1;
            let _ = c.send(&connect::connect_error(status, reason));
            c.closing = true;
        };
        let cr = match connect::parse_connect(req) {
            Ok(cr) => cr,
            Err(e) => {
                tracing::info!(peer = %c.peer, error = ?e, "bad CONNECT");
                return reject(self, c, 400, "Bad CONNECT request");
            }
        };
        let known = cr.cookie.as_deref().and_then(|k| self.sessions.by_cookie(k));
        let Some(id) = known.or_else(|| self.adopt(cr.cookie.as_deref()?, now)) else {
            tracing::info!(peer = %c.peer, "CONNECT with an unknown cookie");
            return reject(self, c, 401, "Cookie is not acceptable");
        };
        let Some(psk) = crate::tls::dtls_psk(&c.tls) else {
            return reject(self, c, 503, "Cannot derive the DTLS key");
        };
        // A reconnect takes the session over from any older connection.
        let old_conn = self.sessions.get(id).and_then(|s| s.conn);
        if let Some(old) = old_conn.filter(|t| *t != c.token) {
            if let Some(mut oc) = self.conns.remove(&old) {
                oc.phase = Phase::Http;
                oc.closing = true;
                let _ = oc.flush();
                self.drop_conn(oc, "replaced by a reconnect", now);
            }
        }
        let config = self.config.clone();
        let Some(s) = self.sessions.get_mut(id) else { return };
        if let Some(prev) = cr.previous_ipv4 {
            if prev != s.address {
                tracing::info!(session = %id, requested = %prev, assigned = %s.address, "reconnect asked for another address");
            }
        }
        // Through a relay the device sends DTLS to the relay's port, with an
        // App-ID that names this gateway's link there.
        let dtls_port = match c.via {
            Some(v) => config.dtls_port.and((v.dtls_port != 0).then_some(v.dtls_port)),
            None => config.dtls_port,
        };
        if let Some(v) = c.via {
            let mut tagged = s.app_id;
            proto::relay::tag_app_id(&mut tagged, v.route);
            if tagged != s.app_id {
                self.handshakes.keys().remove(&s.app_id);
                self.sessions.replace_app_id(id, tagged);
            }
        }
        let Some(s) = self.sessions.get_mut(id) else { return };
        let dtls_on = dtls_port.is_some() && cr.psk_negotiate;
        let (base_mtu, mtu) = if dtls_on {
            proto::mtu::tunnel_mtu(config.link_mtu, cr.base_mtu, proto::mtu::DTLS_AES_GCM_OVERHEAD)
        } else {
            proto::mtu::cstp_only(config.link_mtu, cr.base_mtu)
        };
        s.mtu = mtu;
        s.conn = Some(c.token);
        s.detached_at = None;
        let group = config.group(Some(&s.group));
        let elapsed = now.saturating_duration_since(s.created).as_secs();
        let params = TunnelParams {
            server_name: config.server_name.clone(),
            hostname: cr.hostname.clone(),
            address: s.address,
            netmask: config.pool.mask(),
            dns: config.dns.clone(),
            default_domain: config.default_domain.clone(),
            split_include: group.split_include.clone(),
            split_exclude: group.split_exclude.clone(),
            base_mtu,
            mtu,
            dpd_secs: secs(config.timers.dpd),
            keepalive_secs: secs(config.timers.keepalive),
            idle_timeout_secs: config.timers.idle_timeout.map(secs),
            session_timeout_secs: config
                .timers
                .session_timeout
                .map(|t| secs(t).saturating_sub(u32::try_from(elapsed).unwrap_or(u32::MAX))),
            rekey: None,
            banner: config.banner.clone(),
            dtls: dtls_on.then(|| DtlsParams {
                port: dtls_port.unwrap_or(0),
                app_id: s.app_id.to_vec(),
                dpd_secs: secs(config.timers.dpd),
                keepalive_secs: secs(config.timers.keepalive),
            }),
        };
        if dtls_on {
            self.handshakes.keys().set(&s.app_id, psk);
        }
        tracing::info!(session = %id, user = %s.user, address = %s.address, mtu, dtls = dtls_on, peer = %c.peer, via = %c.via.map_or("direct".to_owned(), |v| format!("relay route {:08x}", v.route)), "tunnel up (CSTP)");
        // The header block is its own record; frames follow in records of their own.
        let _ = c.send(&connect::connect_response(&params));
        c.phase = Phase::Tunnel { session: id, deframer: Deframer::new() };
        self.counters.connects += 1;
    }

    /// A cookie another node of the cluster minted: its session moves
    /// here, with the address it had (openconnect gives up on any other).
    fn adopt(&mut self, cookie: &str, now: Instant) -> Option<SessionId> {
        let cluster = self.config.cluster.as_ref()?;
        let claims = cluster.verify(cookie)?;
        if claims.node == cluster.node {
            // Ours, and no longer live here: that session has ended.
            return None;
        }
        let age = unix_now().saturating_sub(claims.issued);
        if claims.issued > unix_now() + 300 {
            tracing::warn!(user = %claims.user, "cluster cookie issued in the future; check the nodes' clocks");
            return None;
        }
        if self.config.timers.session_timeout.is_some_and(|t| age >= t.as_secs()) {
            tracing::info!(user = %claims.user, "cluster cookie past the session timeout");
            return None;
        }
        let id = self.pool.id_of(claims.address)?;
        if !self.pool.take(id) {
            tracing::warn!(user = %claims.user, address = %claims.address, "cluster cookie for an address in use here; refused");
            return None;
        }
        let group = self.config.group(Some(&claims.group)).name.clone();
        tracing::info!(session = %id, user = %claims.user, group = %group, address = %claims.address, age_s = age, "session adopted from a cluster peer");
        let created = now.checked_sub(Duration::from_secs(age)).unwrap_or(now);
        self.sessions.insert(Session::new(id, claims.user, group, cookie.to_owned(), claims.address, created, now));
        self.counters.sessions_adopted += 1;
        Some(id)
    }

    fn send_frame(&mut self, c: &mut TlsConn, t: PacketType, payload: &[u8]) {
        let mut f = Vec::with_capacity(cstp::HEADER_LEN + payload.len());
        if cstp::write_frame(&mut f, t, payload).is_ok() && c.send(&f).is_ok() {
            self.counters.cstp_frames_out += 1;
        }
    }

    fn on_frame(&mut self, c: &mut TlsConn, id: SessionId, t: PacketType, payload: &[u8], now: Instant) {
        self.counters.cstp_frames_in += 1;
        match t {
            PacketType::DATA => self.device_packet(id, payload, now),
            // Echo the payload: openconnect probes MTU with DPD (§7.3).
            PacketType::DPD_REQ => self.send_frame(c, PacketType::DPD_RESP, payload),
            PacketType::DPD_RESP | PacketType::KEEPALIVE => {}
            PacketType::DISCONNECT => {
                if payload.first() == Some(&cstp::DISCONNECT_LOGOUT) {
                    c.phase = Phase::Http;
                    c.closing = true;
                    self.end_session(id, EndReason::Logout);
                } else {
                    tracing::info!(session = %id, "client disconnected temporarily");
                    c.closing = true;
                }
            }
            other => {
                self.counters.cstp_protocol_errors += 1;
                tracing::debug!(session = %id, packet_type = ?other, "unexpected CSTP packet type dropped");
            }
        }
    }

    /// A packet from a device over CSTP: same checks as the shards apply to DTLS.
    fn device_packet(&mut self, id: SessionId, packet: &[u8], now: Instant) {
        let Some(s) = self.sessions.get_mut(id) else { return };
        let ip = match Ipv4Packet::new_checked(packet) {
            Ok(ip) => ip,
            // IPv6 is not carried yet; clients still send router solicitations.
            Err(proto::ip::IpError::NotIpv4) => {
                self.counters.drop_not_ipv4 += 1;
                return;
            }
            Err(_) => {
                self.counters.cstp_protocol_errors += 1;
                return;
            }
        };
        if ip.src() != s.address {
            s.drops_spoofed += 1;
            self.counters.drop_spoofed_source += 1;
            return;
        }
        let policy = Policy { allowed: self.config.group(Some(&s.group)).allowed.clone() };
        if !policy.allows(ip.dst()) {
            s.drops_policy += 1;
            self.counters.drop_policy += 1;
            return;
        }
        s.cstp_rx_packets += 1;
        s.last_data = now;
        // A device whose final flight is still held has not finished its
        // handshake, so CSTP is where its data belongs: no fallback.
        let handshake_finishing = self.held_flights.contains_key(&id);
        // The write goes through the queue of the shard holding the grant when
        // there is one: a revoke queued there first is then in force before
        // the packet reaches the network, so the reply cannot leave over the
        // DTLS channel the device has given up.
        let mut target = ShardId(u16::try_from(id.0 as usize % self.dataplane.shard_count().max(1)).unwrap_or(0));
        if let (DtlsState::Granted { shard, peer }, false) = (s.dtls, handshake_finishing) {
            target = shard;
            // The device sends data over CSTP only when its DTLS channel is
            // down (openconnect-protocol.md §8): stop sending over DTLS too,
            // until it completes a new handshake.
            let _ = self.dataplane.send(shard, ToShard::Revoke(id));
            s.dtls = DtlsState::None;
            tracing::info!(session = %id, user = %s.user, %peer, "device fell back to CSTP; DTLS grant revoked");
        }
        let total = ip.total_len();
        let packet = packet.get(..total).unwrap_or(packet).to_vec();
        if self.dataplane.send(target, ToShard::TunWrite { session: id, packet }).is_err() {
            tracing::debug!(session = %id, "shard queue full; CSTP packet dropped");
        }
    }

    fn on_dataplane(&mut self, now: Instant) {
        self.dataplane.ack_events();
        let mut events = Vec::new();
        self.dataplane.drain_events(&mut events);
        let mut done = Vec::new();
        for e in events {
            match e {
                FromShard::Handshake { shard, peer, datagram } => {
                    let sender = self.dataplane.udp_sender();
                    let mut send = |to: SocketAddr, d: &[u8]| {
                        let _ = sender.send_to(d, to);
                    };
                    self.handshakes.on_datagram(now, shard, peer, &datagram, &mut send, &mut done);
                }
                FromShard::Granted { shard, session, peer } => self.release_final_flight(shard, session, peer),
                FromShard::CstpPacket { session, packet } => self.send_over_cstp(session, &packet, now),
                FromShard::Disconnect { session } => {
                    tracing::info!(session = %session, "DTLS DISCONNECT from client");
                }
                FromShard::Activity { session, last_rx: _, rx_packets, tx_packets } => {
                    if let Some(s) = self.sessions.get_mut(session) {
                        if rx_packets > s.dtls_rx_packets || tx_packets > s.dtls_tx_packets {
                            s.last_data = now;
                        }
                        s.dtls_rx_packets = rx_packets;
                        s.dtls_tx_packets = tx_packets;
                    }
                }
            }
        }
        self.grant(done, now);
    }

    fn send_over_cstp(&mut self, id: SessionId, packet: &[u8], now: Instant) {
        let Some(token) = self.sessions.get(id).and_then(|s| s.conn) else { return };
        let Some(mut c) = self.conns.remove(&token) else { return };
        if c.blocked {
            self.counters.cstp_dropped_blocked += 1;
        } else {
            self.send_frame(&mut c, PacketType::DATA, packet);
            if let Some(s) = self.sessions.get_mut(id) {
                s.cstp_tx_packets += 1;
                s.last_data = now;
            }
            if c.flush().is_err() {
                c.closing = true;
            }
        }
        self.conns.insert(token, c);
    }

    /// Finished DTLS handshakes become session grants on the shard that
    /// received the client's datagrams; their final flights wait for the
    /// grant to be installed (see [`HeldFlight`]).
    fn grant(&mut self, done: Vec<Established>, now: Instant) {
        for e in done {
            let Some(id) = self.sessions.by_app_id(&e.info.app_id) else { continue };
            let config = self.config.clone();
            let Some(s) = self.sessions.get_mut(id) else { continue };
            if let DtlsState::Granted { shard, .. } = s.dtls {
                let _ = self.dataplane.send(shard, ToShard::Revoke(id));
            }
            let grant = SessionGrant {
                session: id,
                peer: e.peer,
                address: s.address,
                policy: Policy { allowed: config.group(Some(&s.group)).allowed.clone() },
                keys: e.keys,
                mtu: s.mtu,
            };
            match self.dataplane.send(e.shard, ToShard::Grant(Box::new(grant))) {
                Ok(()) => {
                    s.dtls = DtlsState::Granted { shard: e.shard, peer: e.peer };
                    tracing::info!(session = %id, user = %s.user, suite = ?e.info.suite, peer = %e.peer, shard = e.shard.0, "DTLS established; session handed to shard");
                    // A flight still held from an earlier handshake of this
                    // session answers a DTLS session that no longer exists.
                    self.held_flights
                        .insert(id, HeldFlight { shard: e.shard, peer: e.peer, datagrams: e.final_flight, since: now });
                }
                Err(_) => {
                    tracing::warn!(session = %id, "shard queue full; DTLS grant dropped, traffic stays on CSTP");
                    // No grant will be confirmed; holding the flight would
                    // only delay the device, as before this hold existed.
                    send_datagrams(self.dataplane.udp_sender(), e.peer, &e.final_flight);
                }
            }
        }
    }

    /// `shard` installed the grant of `session` for `peer`: the device may
    /// have its final flight. A confirmation of an older grant (another
    /// shard or peer, since replaced) releases nothing.
    fn release_final_flight(&mut self, shard: ShardId, session: SessionId, peer: SocketAddr) {
        if !self.held_flights.get(&session).is_some_and(|f| f.shard == shard && f.peer == peer) {
            return;
        }
        if let Some(f) = self.held_flights.remove(&session) {
            send_datagrams(self.dataplane.udp_sender(), f.peer, &f.datagrams);
        }
    }

    /// Sends the final flights whose grant confirmation is overdue.
    fn release_overdue_final_flights(&mut self, now: Instant) {
        let overdue: Vec<SessionId> = self
            .held_flights
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.since) >= FINAL_FLIGHT_HOLD)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            let Some(f) = self.held_flights.remove(&id) else { continue };
            self.counters.final_flights_released_by_timer += 1;
            tracing::debug!(session = %id, peer = %f.peer, shard = f.shard.0, "no grant confirmation from the shard; final DTLS flight sent anyway");
            send_datagrams(self.dataplane.udp_sender(), f.peer, &f.datagrams);
        }
    }

    fn on_tick(&mut self, now: Instant) {
        self.relays.on_tick(now, self.poll.registry());
        // Events are drained on every tick too, so even a lost doorbell
        // could delay a shard's events by one tick, never strand them.
        self.on_dataplane(now);
        // Verdicts whose wake-up was lost still get answered.
        self.on_verdicts(now);
        let sender = self.dataplane.udp_sender();
        let mut send = |to: SocketAddr, d: &[u8]| {
            let _ = sender.send_to(d, to);
        };
        let mut done = Vec::new();
        self.handshakes.on_tick(now, &mut send, &mut done);
        self.grant(done, now);
        self.release_overdue_final_flights(now);

        let t = self.config.timers;
        let mut ending = Vec::new();
        for id in self.sessions.ids() {
            let Some(s) = self.sessions.get(id) else { continue };
            let reason = if t.session_timeout.is_some_and(|d| now.saturating_duration_since(s.created) >= d) {
                Some(EndReason::SessionTimeout)
            } else if t.idle_timeout.is_some_and(|d| now.saturating_duration_since(s.last_data) >= d) {
                Some(EndReason::IdleTimeout)
            } else if s.detached_at.is_some_and(|d| now.saturating_duration_since(d) >= t.cookie_grace) {
                Some(EndReason::ReconnectWindowExpired)
            } else {
                None
            };
            if let Some(r) = reason {
                ending.push((id, r));
            }
        }
        for (id, r) in ending {
            self.end_session(id, r);
        }
        // Connections that never logged in, or whose CSTP went silent for
        // three DPD periods (ocserv's rule, §6.2).
        let dead: Vec<Token> = self
            .conns
            .values()
            .filter(|c| match c.phase {
                Phase::Http => now.saturating_duration_since(c.opened) >= AUTH_TIMEOUT && !c.closing,
                Phase::Tunnel { .. } => now.saturating_duration_since(c.last_rx) >= t.dpd * 3,
            })
            .map(|c| c.token)
            .collect();
        for token in dead {
            if let Some(c) = self.conns.remove(&token) {
                let why =
                    if c.session().is_some() { "CSTP dead-peer detection timeout" } else { "authentication timeout" };
                self.drop_conn(c, why, now);
            }
        }
        // Close connections that finished writing after being marked.
        let finished: Vec<Token> = self.conns.values().filter(|c| c.closing && c.drained()).map(|c| c.token).collect();
        for token in finished {
            if let Some(c) = self.conns.remove(&token) {
                self.drop_conn(c, "closed by gateway", now);
            }
        }
    }

    /// Ends a session: tell the device (CSTP DISCONNECT), revoke its shard
    /// grant, forget its key and cookie, return its address.
    fn end_session(&mut self, id: SessionId, reason: EndReason) {
        let Some(s) = self.sessions.remove(id) else { return };
        self.held_flights.remove(&id);
        if let DtlsState::Granted { shard, .. } = s.dtls {
            let _ = self.dataplane.send(shard, ToShard::Revoke(id));
        }
        self.handshakes.keys().remove(&s.app_id);
        if let Some(token) = s.conn {
            if let Some(mut c) = self.conns.remove(&token) {
                if reason != EndReason::Logout {
                    self.send_frame(&mut c, PacketType::DISCONNECT, &[]);
                }
                c.phase = Phase::Http;
                c.closing = true;
                let _ = c.flush();
                self.conns.insert(token, c);
            }
        }
        self.pool.release(id);
        self.counters.sessions_ended += 1;
        tracing::info!(
            session = %id,
            user = %s.user,
            address = %s.address,
            reason = %reason,
            cstp_rx = s.cstp_rx_packets,
            cstp_tx = s.cstp_tx_packets,
            dtls_rx = s.dtls_rx_packets,
            dtls_tx = s.dtls_tx_packets,
            "session ended"
        );
    }

    fn on_admin(&mut self) {
        use crate::admin::{self, AdminRequest};
        loop {
            let Some(listener) = self.admin.as_ref() else { return };
            let mut stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(_) => return,
            };
            let _ = stream.set_nonblocking(false);
            match admin::read_request(&mut stream) {
                AdminRequest::Metrics => admin::respond(&mut stream, "200 OK", &self.metrics()),
                AdminRequest::Sessions => admin::respond(&mut stream, "200 OK", &self.session_lines()),
                AdminRequest::Kill(id) => {
                    if self.sessions.get(SessionId(id)).is_some() {
                        self.end_session(SessionId(id), EndReason::AdminKill);
                        admin::respond(&mut stream, "200 OK", "killed\n");
                    } else {
                        admin::respond(&mut stream, "404 Not Found", "no such session\n");
                    }
                }
                AdminRequest::NotFound => admin::respond(
                    &mut stream,
                    "404 Not Found",
                    "GET /metrics, GET /sessions, POST /sessions/ID/kill\n",
                ),
                AdminRequest::BadRequest => admin::respond(&mut stream, "400 Bad Request", ""),
            }
        }
    }

    fn metrics(&self) -> String {
        let mut m = crate::admin::Metrics::default();
        let c = &self.counters;
        let r = &self.relays.counters;
        for (name, help, v) in [
            ("corridor_tls_accepted_total", "TLS connections accepted", c.tls_accepted),
            (
                "corridor_connections_refused_total",
                "TCP connections closed at accept (server.max_connections)",
                c.connections_refused,
            ),
            ("corridor_logins_total", "successful logins", c.logins_ok),
            ("corridor_login_failures_total", "failed logins", c.logins_failed),
            (
                "corridor_logins_busy_total",
                "logins answered busy: the password verifiers' queue (auth.verify_queue) was full",
                c.logins_busy,
            ),
            (
                "corridor_password_verdicts_discarded_total",
                "password checks answered after their connection had closed",
                c.verdicts_discarded,
            ),
            ("corridor_bad_requests_total", "malformed HTTP requests", c.bad_requests),
            ("corridor_connects_total", "tunnels set up with CONNECT", c.connects),
            ("corridor_connects_rejected_total", "CONNECTs refused", c.connect_rejected),
            ("corridor_cstp_frames_in_total", "CSTP frames received", c.cstp_frames_in),
            ("corridor_cstp_frames_out_total", "CSTP frames sent", c.cstp_frames_out),
            (
                "corridor_cstp_dropped_blocked_total",
                "CSTP packets dropped on a full TLS connection",
                c.cstp_dropped_blocked,
            ),
            ("corridor_cstp_protocol_errors_total", "CSTP framing errors and bad packets", c.cstp_protocol_errors),
            (
                "corridor_cstp_drop_spoofed_source_total",
                "CSTP packets whose source was not the session address",
                c.drop_spoofed_source,
            ),
            ("corridor_cstp_drop_policy_total", "CSTP packets to destinations the group may not reach", c.drop_policy),
            ("corridor_cstp_drop_not_ipv4_total", "CSTP packets that were not IPv4", c.drop_not_ipv4),
            ("corridor_sessions_ended_total", "sessions ended", c.sessions_ended),
            (
                "corridor_sessions_adopted_total",
                "sessions another cluster node began, reconnected here",
                c.sessions_adopted,
            ),
            (
                "corridor_dtls_final_flight_released_by_timer_total",
                "final DTLS handshake flights sent without the shard confirming the grant",
                c.final_flights_released_by_timer,
            ),
            ("corridor_relay_links_up_total", "relay links authenticated", r.links_up),
            ("corridor_relay_links_lost_total", "relay links that dropped after coming up", r.links_lost),
            ("corridor_relay_links_refused_total", "relay links the relay refused (name or token)", r.links_refused),
            ("corridor_relay_streams_attached_total", "device streams dialled back to a relay", r.streams_attached),
            ("corridor_relay_streams_failed_total", "device streams that could not be dialled back", r.streams_failed),
            (
                "corridor_relay_streams_declined_total",
                "device streams declined: server.max_connections reached",
                r.streams_declined,
            ),
            ("corridor_relay_flows_bound_total", "relay DTLS flows bound from the shards' port", r.flows_bound),
            (
                "corridor_relay_flows_refused_total",
                "relay DTLS flows refused: no session had the App-ID",
                r.flows_refused,
            ),
        ] {
            m.counter(name, help, "", v);
        }
        m.gauge("corridor_relay_links", "relay links up", self.relays.up() as u64);
        let h = &self.handshakes.counters;
        for (name, v) in [
            ("established", h.established),
            ("failed", h.failed),
            ("refused", h.refused),
            ("hello_verify_request", h.hello_verify_requests),
            ("unknown_app_id", h.unknown_app_id),
            ("not_client_hello", h.not_client_hello),
            ("overloaded", h.overloaded),
        ] {
            m.counter("corridor_dtls_handshakes_total", "DTLS handshake outcomes", &format!("result=\"{name}\""), v);
        }
        for (i, s) in self.dataplane.counters().iter().enumerate() {
            let l = format!("shard=\"{i}\"");
            for (name, v) in s.named() {
                m.counter(&format!("corridor_shard_{name}_total"), "data-plane shard counter", &l, v);
            }
        }
        for (i, l) in self.dataplane.latency().iter().enumerate() {
            let cumulative: Vec<(Option<f64>, u64)> =
                l.cumulative().iter().map(|(b, n)| (b.map(|ns| ns as f64 / 1e9), *n)).collect();
            m.histogram(
                "corridor_shard_turn_seconds",
                "time from harvesting a shard loop turn's completions to submitting all it produced: an upper bound \
                 on each of its packets' time inside the shard",
                &format!("shard=\"{i}\""),
                &cumulative,
                l.sum_ns as f64 / 1e9,
            );
        }
        m.gauge("corridor_sessions", "live sessions", self.sessions.len() as u64);
        m.gauge("corridor_pool_addresses_in_use", "client addresses handed out", self.pool.in_use() as u64);
        m.gauge("corridor_dtls_handshakes_pending", "DTLS handshakes in progress", self.handshakes.pending() as u64);
        m.gauge(
            "corridor_password_checks_pending",
            "password checks queued or running on the verifier threads",
            self.verifiers.as_ref().map_or(0, Verifiers::in_flight) as u64,
        );
        m.into_string()
    }

    fn session_lines(&self) -> String {
        let mut ids = self.sessions.ids();
        ids.sort();
        let mut out = String::new();
        for id in ids {
            let Some(s) = self.sessions.get(id) else { continue };
            let dtls = match s.dtls {
                DtlsState::None => "none".to_string(),
                DtlsState::Granted { shard, peer } => format!("shard{}:{peer}", shard.0),
            };
            out.push_str(&format!(
                "{id} user={} group={} address={} cstp={} dtls={dtls} cstp_rx={} cstp_tx={} dtls_rx={} dtls_tx={} drop_spoofed={} drop_policy={}\n",
                s.user,
                s.group,
                s.address,
                if s.conn.is_some() { "up" } else { "down" },
                s.cstp_rx_packets,
                s.cstp_tx_packets,
                s.dtls_rx_packets,
                s.dtls_tx_packets,
                s.drops_spoofed,
                s.drops_policy,
            ));
        }
        out
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

/// RFC 9110 reason phrases for the errors the HTTP parser reports.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Bad Request",
    }
}

/// Seconds since the Unix epoch: cluster cookies carry wall-clock time,
/// since another node's `Instant` means nothing here.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// What the start-up log says of the data plane's offloads, and why.
fn describe_offloads(info: &dataplane::DataplaneInfo, asked: bool) -> String {
    match info.shards.first().and_then(|s| s.tun_offloads) {
        None if !asked => "off (dataplane.offloads = false)".to_owned(),
        None => "off (the kernel refused IFF_VNET_HDR on the TUN)".to_owned(),
        Some(o) => {
            let on: Vec<&str> = [(o.csum, "csum"), (o.tso, "tso"), (o.uso, "uso")]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
            let tun = if on.is_empty() { "none (TUNSETOFFLOAD refused)".to_owned() } else { on.join("+") };
            let gro = if info.shards.first().is_some_and(|s| s.udp_gro) { "+gro" } else { "" };
            format!("tun:{tun} udp:gso{gro}")
        }
    }
}

/// The I/O engine of the shards, why it was chosen, its set-up.
fn describe_io(info: &dataplane::DataplaneInfo) -> String {
    let Some(s) = info.shards.first() else { return "no shards".to_owned() };
    let setup = match s.ring_setup {
        Some(r) => {
            let fixed = match (s.fixed_files, s.fixed_buffers) {
                (true, true) => ", fixed files+buffers",
                (true, false) => ", fixed files",
                (false, true) => ", fixed buffers",
                (false, false) => "",
            };
            format!("{r:?}{fixed}, tun reads {:?}", s.tun_reads)
        }
        None => "one read per TUN packet".to_owned(),
    };
    let why = s.io_fallback.as_ref().map(|w| format!(" (fallback: {w})")).unwrap_or_default();
    format!("{}{why}; {setup}; {}+{} buffers", s.io, s.buffers, s.tun_buffers)
}
