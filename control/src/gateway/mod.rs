//! The gateway's driver: one mio loop on the control thread over the TLS
//! listener, the device connections, the relay links, the data plane's
//! event queue, the password verifiers' verdicts and the admin thread's
//! questions (answered in `answers.rs`; the admin sockets are that
//! thread's, [`crate::admin`]). It accepts, reads and
//! writes through rustls, and feeds everything to the [`Core`], whose
//! effects it carries out. What anything *means* is decided in the core.

mod answers;
mod conn;
mod drain;
mod metrics;
mod reload;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dataplane::{Dataplane, DataplaneConfig};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use proto::ip::Ipv4Net;
use service::CounterSet;

use crate::config::Config;
pub use crate::core::ControlCounters;
use crate::core::{ConnId, Core, Effect, FlowRequest, Verdict, TICK};
use crate::keeper::{Keeper, KeeperCredentials, RemoteKey};
use crate::passwd::PasswordFile;
use crate::relay_link::{LinkEvent, RelayLinks};
use crate::verifier::{self, CheckResult, Credentials, PendingCheck, Verifiers};
use conn::{Input, TlsConn};

const LISTENER: Token = Token(0);
const DATAPLANE: Token = Token(1);
/// Rung by the admin thread when it has a question.
const ADMIN: Token = Token(2);
/// Woken by the password verifiers when a verdict is ready.
const VERIFIERS: Token = Token(3);
const FIRST_CONN: usize = 16;

pub use service::StartError;

pub struct Gateway {
    core: Core<Dataplane>,
    tls: Arc<rustls::ServerConfig>,
    poll: Poll,
    listener: TcpListener,
    conns: HashMap<ConnId, TlsConn>,
    /// Password checks in flight, by connection: dropping one (the
    /// connection closed) tells the verifiers to skip it.
    checks: HashMap<ConnId, PendingCheck>,
    next_token: usize,
    /// `None` without a password file: the core then refuses password logins.
    verifiers: Option<Verifiers>,
    /// The admin thread, whose questions wake `ADMIN`.
    admin: crate::admin::AdminHandle,
    relays: RelayLinks,
    /// The process holding the key and the password file, when separated.
    keeper: Option<Arc<Keeper>>,
    /// The SIGHUP flag and the configuration file a reload rereads.
    reload: Option<(Arc<AtomicBool>, std::path::PathBuf)>,
    /// The service manager (systemd): reloading, ready, stopping, watchdog.
    notify: service::notify::Notifier,
    started: Instant,
}

/// Where the server key and the password file are.
#[derive(Debug)]
pub enum Secrets {
    /// In this process, read from the configured files (an in-process
    /// gateway: tests, tools).
    Local,
    /// In the keeper process ([`crate::keeper`]): `corridor gateway`.
    Keeper(Arc<Keeper>),
}

impl core::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gateway")
            .field("sessions", &self.core.sessions().len())
            .field("conns", &self.conns.len())
            .finish()
    }
}

/// Every session holds a TCP socket: raise the soft open-file limit to the
/// hard one, and say so when even that cannot hold `server.max_connections`.
fn raise_open_file_limit(max_connections: usize) {
    let Some(limit) = service::fd_limit::raise_open_file_limit() else { return };
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
    pub fn start(config: Config, secrets: Secrets) -> Result<Self, StartError> {
        let (tls, credentials): (_, Option<Arc<dyn Credentials>>) = match &secrets {
            Secrets::Local => {
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
                if let Some(p) = &passwords {
                    // `--check-config` refuses this; at run time those users' logins are refused.
                    if let Err(e) = config.check_password_groups(p) {
                        tracing::warn!("{e}");
                    }
                }
                (tls, passwords.map(|p| Arc::new(p) as Arc<dyn Credentials>))
            }
            Secrets::Keeper(keeper) => {
                let chain = crate::tls::load_chain(&config.cert).map_err(StartError::Config)?;
                let key = RemoteKey::signing_key(keeper.clone(), keeper.facts().clone());
                let client_ca = config
                    .client_ca
                    .as_deref()
                    .map(crate::tls::load_client_ca)
                    .transpose()
                    .map_err(StartError::Config)?;
                let tls = crate::tls::server_config_with_key(crate::tls::provider(), chain, key, client_ca)
                    .map_err(StartError::Config)?;
                let credentials = keeper
                    .facts()
                    .passwords
                    .then(|| Arc::new(KeeperCredentials::new(keeper.clone())) as Arc<dyn Credentials>);
                (tls, credentials)
            }
        };
        let poll = Poll::new().map_err(|e| StartError::Io("creating the event loop", e))?;
        let verifiers = match credentials {
            Some(credentials) => {
                let waker = Waker::new(poll.registry(), VERIFIERS)
                    .map_err(|e| StartError::Io("creating the password verifiers' waker", e))?;
                let threads = verifier::threads_for(config.verify_threads);
                tracing::info!(threads, queue = config.verify_queue, "password verifiers started");
                Some(
                    Verifiers::start(credentials, threads, config.verify_queue, Arc::new(waker))
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
            batch_wait: config.batch_wait,
        })
        .map_err(|e| StartError::Io("starting the data plane (TUN, UDP, io_uring)", e))?;
        let efd = dataplane.event_fd();
        poll.registry()
            .register(&mut SourceFd(&efd), DATAPLANE, Interest::READABLE)
            .map_err(|e| StartError::Io("registering the data plane", e))?;
        // The admin thread: `[admin] listen` and the ctl socket.
        let mut admin = crate::admin::start(config.admin_listen, &config.ctl_socket)?;
        poll.registry()
            .register(admin.link.bell(), ADMIN, Interest::READABLE)
            .map_err(|e| StartError::Io("registering the admin wake-up pipe", e))?;
        // Everything listens now: scripts and tests wait for this line.
        metrics::log_start(&config, &dataplane, crate::tls::fips(&tls));
        raise_open_file_limit(config.max_connections);
        let now = Instant::now();
        let relays = RelayLinks::new(&config.relays, now);
        let core = Core::new(Arc::new(config), dataplane, now, service::unix_now());
        Ok(Self {
            core,
            tls,
            poll,
            listener,
            conns: HashMap::new(),
            checks: HashMap::new(),
            next_token: FIRST_CONN,
            verifiers,
            admin,
            relays,
            keeper: match secrets {
                Secrets::Keeper(k) => Some(k),
                Secrets::Local => None,
            },
            reload: None,
            notify: service::notify::Notifier::disabled(),
            started: now,
        })
    }

    pub fn dataplane(&self) -> &Dataplane {
        self.core.port()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn session_count(&self) -> usize {
        self.core.sessions().len()
    }

    /// The ctl socket (`[admin] ctl_socket`), made at start by root with
    /// mode 0660: what a privilege drop after start hands to the service's
    /// group.
    pub fn ctl_socket_path(&self) -> &std::path::Path {
        self.admin.ctl_socket_path()
    }

    /// Tells `notifier`'s service manager about reloads (`RELOADING=1`,
    /// then `READY=1`), the shutdown (`STOPPING=1`) and that the control
    /// loop turns (`WATCHDOG=1`). `READY=1` at start is the caller's, once
    /// privileges are dropped.
    #[must_use]
    pub fn notify_to(mut self, notifier: service::notify::Notifier) -> Self {
        self.notify = notifier;
        self
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
            // A dead shard's sessions are dark, and nothing brings them
            // back in this process: end it, so the service manager
            // restarts the gateway (docs/security.md, "Shard faults").
            if self.keeper.as_ref().is_some_and(|k| !k.alive()) {
                tracing::error!("the keeper process ended (it holds the key and the passwords); exiting so the gateway is restarted");
                return Err(io::Error::other("the keeper process ended"));
            }
            if let Some(shard) = self.core.port().dead_shard() {
                tracing::error!(%shard, "data-plane shard died (its thread ended); exiting so the gateway is restarted");
                return Err(io::Error::other(format!("data-plane {shard} died")));
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(now),
                    DATAPLANE => self.core.handle_dataplane(now),
                    ADMIN => self.on_admin(now),
                    VERIFIERS => self.on_verdicts(now),
                    t if self.relays.owns(t) => self.on_relay(t, now),
                    t => self.on_conn(ConnId(t.0), now, ev.is_readable()),
                }
                self.carry_out(now);
            }
            if now.saturating_duration_since(last_tick) >= TICK {
                last_tick = now;
                self.on_tick(now);
            }
            self.reload_if_asked(now);
            // Pinged from this loop alone: a stalled loop goes quiet and
            // the manager restarts the gateway.
            self.notify.watchdog(now);
        }
        self.notify.stopping();
        let now = Instant::now();
        if self.drains_on_stop() {
            self.drain(now);
        }
        self.core.shutdown();
        self.carry_out(now);
        if let Some(v) = self.verifiers.as_mut() {
            v.shutdown();
        }
        let counters = *self.core.counters();
        for (i, c) in self.core.port().counters().iter().enumerate() {
            let line: Vec<String> =
                c.counters().filter(|(_, v)| *v > 0).map(|(counter, v)| format!("{}={v}", counter.field)).collect();
            tracing::info!(shard = i, "shard counters {}", line.join(" "));
        }
        tracing::info!(?counters, "gateway stopped");
        self.core.into_port().shutdown();
        Ok(counters)
    }

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if !self.core.handle_conn_open(ConnId(token.0), peer, None, now) {
                        // Dropping the stream closes it; existing tunnels keep working.
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.set_user_timeout(&stream);
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    {
                        tracing::warn!(%peer, error = %e, "could not register connection");
                        self.core.handle_conn_closed(ConnId(token.0), now, "could not register");
                        continue;
                    }
                    self.adopt_stream(token, stream, peer, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    /// Wraps a registered stream the core has taken in TLS.
    fn adopt_stream(&mut self, token: Token, stream: TcpStream, peer: SocketAddr, now: Instant) -> bool {
        match TlsConn::new(stream, peer, self.tls.clone()) {
            Ok(c) => {
                self.conns.insert(ConnId(token.0), c);
                true
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "TLS setup failed");
                self.core.handle_conn_closed(ConnId(token.0), now, "TLS setup failed");
                false
            }
        }
    }

    /// Readiness on a relay link or a stream being dialled back to a relay.
    fn on_relay(&mut self, token: Token, now: Instant) {
        let mut events = Vec::new();
        let room = self.core.connection_room();
        self.relays.on_event(token, now, self.poll.registry(), &mut self.next_token, room, &mut events);
        for e in events {
            match e {
                LinkEvent::Stream { token, mut stream, device, via } => {
                    if !self.core.handle_conn_open(ConnId(token.0), device, Some(via), now) {
                        let _ = self.poll.registry().deregister(&mut stream);
                        tracing::debug!(%device, "relayed stream refused (banned source or connection caps)");
                        continue;
                    }
                    self.set_user_timeout(&stream);
                    // The device's ClientHello may be waiting already.
                    if self.adopt_stream(token, stream, device, now) {
                        self.on_conn(ConnId(token.0), now, true);
                    }
                }
                LinkEvent::Allocate { link, flow, relay, nonce, app_id, device } => {
                    self.core.handle_flow_request(FlowRequest { link, flow, relay, nonce, app_id, device });
                }
                LinkEvent::Revoke { tag, expires } => self.core.handle_revocation(tag, expires, now),
            }
        }
    }

    /// `TCP_USER_TIMEOUT` (`limits.tcp_user_timeout`): a connection whose
    /// writes go unacknowledged that long is reset by the kernel, so a
    /// tunnel to a vanished device does not hold its buffers for the
    /// kernel's ~15 minutes of retransmissions. Set on every device
    /// connection at accept, as any of them may become a tunnel.
    fn set_user_timeout(&self, stream: &TcpStream) {
        let t = self.core.config().limits.tcp_user_timeout;
        if t.is_zero() {
            return;
        }
        let ms = u32::try_from(t.as_millis()).unwrap_or(u32::MAX);
        if let Err(e) = nix::sys::socket::setsockopt(stream, nix::sys::socket::sockopt::TcpUserTimeout, &ms) {
            tracing::debug!(error = %e, "TCP_USER_TIMEOUT refused");
        }
    }

    fn on_conn(&mut self, id: ConnId, now: Instant, readable: bool) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        let mut closed = None;
        if readable {
            let core = &mut self.core;
            let outcome = c.read(&mut |input| match input {
                Input::Established(facts) => core.handle_tls_established(id, facts),
                Input::Plaintext(p) => core.handle_conn_data(id, now, p),
            });
            if outcome.bytes {
                // TLS records without plaintext still show the peer is alive.
                self.core.handle_conn_data(id, now, &[]);
            }
            if outcome.tls_failed {
                self.core.handle_tls_failure(id, now);
            }
            closed = outcome.closed;
        }
        self.carry_out(now);
        self.settle(id, closed, now);
    }
}

impl Gateway {
    /// Carries out everything the core asked for, then flushes the
    /// connections it wrote to or closed.
    fn carry_out(&mut self, now: Instant) {
        let mut touched = HashSet::new();
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Write { conn, bytes } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        // rustls buffers without limit; the core drops DATA
                        // frames itself while the socket is reported full.
                        let _ = c.send(&bytes);
                        touched.insert(conn);
                    }
                }
                Effect::Close { conn, reason } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        tracing::debug!(peer = %c.peer, reason, "closing connection");
                        c.closing.get_or_insert(now);
                        touched.insert(conn);
                    }
                    // A check still out for it is no longer wanted.
                    self.checks.remove(&conn);
                }
                Effect::CheckPassword { check, user, password } => {
                    let submitted = match self.verifiers.as_mut() {
                        Some(v) => v.submit(check, &user, password),
                        None => Err(verifier::SubmitError::Stopped),
                    };
                    match submitted {
                        Ok(pending) => {
                            self.checks.insert(check.conn, pending);
                        }
                        Err(e) => {
                            if e == verifier::SubmitError::Stopped {
                                tracing::warn!(user = %user, "password verifiers are gone; login refused");
                            }
                            self.core.handle_verdict(check, Verdict::Busy, now);
                        }
                    }
                }
                Effect::RefuseFlow { link, flow } => self.relays.refuse(link, flow),
                Effect::RevokeCookie { tag, expires } => self.relays.revoke(tag, expires, service::unix_now()),
                Effect::SessionEnded(e) => tracing::info!(
                    event = "session_end",
                    session = %e.session,
                    user = %e.user,
                    group = %e.group,
                    address = %e.address,
                    peer = e.peer.map(tracing::field::display),
                    reason_code = e.reason.code(),
                    reason = %e.reason,
                    bytes_in = e.traffic.rx().bytes,
                    bytes_out = e.traffic.tx().bytes,
                    packets_in = e.traffic.rx().packets,
                    packets_out = e.traffic.tx().packets,
                    dtls_packets_in = e.traffic.dtls().0.packets,
                    dtls_packets_out = e.traffic.dtls().1.packets,
                    "session ended"
                ),
            }
        }
        for conn in touched {
            self.settle(conn, None, now);
        }
    }

    /// Writes what a connection has queued, tells the core when its socket
    /// fills or drains, and drops it when it is done.
    fn settle(&mut self, id: ConnId, mut closed: Option<&'static str>, now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        match c.flush() {
            Err(_) => closed = closed.or(Some("write failed")),
            Ok(blocked) if blocked != c.blocked => {
                c.blocked = blocked;
                self.core.handle_conn_blocked(id, blocked);
            }
            Ok(_) => {}
        }
        if closed.is_none() && c.closing.is_some() && c.drained() {
            closed = Some("closed by gateway");
        }
        if let Some(why) = closed {
            self.drop_conn(id, why, now);
        }
    }

    fn drop_conn(&mut self, id: ConnId, why: &'static str, now: Instant) {
        let Some(mut c) = self.conns.remove(&id) else { return };
        let _ = self.poll.registry().deregister(c.stream_mut());
        self.checks.remove(&id);
        self.core.handle_conn_closed(id, now, why);
        self.carry_out(now);
    }

    /// Verdicts from the password verifiers, for the connections still
    /// waiting on them (the core discards the rest).
    fn on_verdicts(&mut self, now: Instant) {
        while let Some(CheckResult { id, verdict }) = self.verifiers.as_mut().and_then(Verifiers::try_result) {
            if self.checks.get(&id.conn).is_some_and(|p| p.id == id) {
                self.checks.remove(&id.conn);
            }
            let verdict = match verdict {
                verifier::Verdict::Accepted { group } => Verdict::Accepted { group },
                verifier::Verdict::Rejected => Verdict::Rejected,
                // Only a check whose connection went away, or one left at
                // shutdown, is abandoned; should it happen, the device may try again.
                verifier::Verdict::Abandoned => Verdict::Busy,
            };
            self.core.handle_verdict(id, verdict, now);
            self.carry_out(now);
            self.settle(id.conn, None, now);
        }
    }

    fn on_tick(&mut self, now: Instant) {
        self.relays.on_tick(now, self.poll.registry());
        // Verdicts whose wake-up was lost still get answered.
        self.on_verdicts(now);
        let unix_now = service::unix_now();
        self.relays.expire_revocations(unix_now);
        self.core.set_wall_clock(now, unix_now);
        self.core.handle_tick(now);
        self.carry_out(now);
        // Connections that finished writing after being closed, and those
        // whose peer stopped reading before they could (`limits.close_timeout`).
        let close_timeout = self.core.config().limits.close_timeout;
        let done: Vec<(ConnId, &'static str)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| {
                let since = c.closing?;
                if c.drained() {
                    Some((*id, "closed by gateway"))
                } else if now.saturating_duration_since(since) >= close_timeout {
                    Some((*id, "close deadline passed with writes pending"))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in done {
            self.drop_conn(id, why, now);
        }
    }
}
