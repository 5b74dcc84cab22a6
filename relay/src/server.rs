//! The relay's event loop: one mio thread over the devices' TLS listener
//! and DTLS socket, the gateways' listener, their links and streams, and one
//! UDP port per device flow.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use proto::relay::{self as link, Bind, Frame};
use proto::sni::{self, Sniffed};
use service::random_bytes as random;

use crate::config::Config;
use crate::counters::Counters;
use crate::flows::{self, Flow, Flows, QUEUE_BEFORE_BIND};
use crate::links::{Link, LinkState};
use crate::splice::Splice;
use crate::udp;

const DEVICE_LISTENER: Token = Token(0);
const GATEWAY_LISTENER: Token = Token(1);
const DTLS: Token = Token(2);
const ADMIN: Token = Token(3);
const FIRST_DYNAMIC: usize = 16;

const TICK: Duration = Duration::from_millis(250);
/// How long a flow may wait for its gateway's bind.
const BIND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a gateway connection may take to say what it is.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a device stays with the gateway it was given, after its last
/// connection: its login, CONNECT and reconnects must reach the gateway
/// that holds its cookie.
const AFFINITY: Duration = Duration::from_secs(600);
/// The largest datagram the relay carries.
const MAX_DATAGRAM: usize = 65_535;
/// Socket buffers of the devices' DTLS socket, which carries every flow,
/// and of each flow's port: a burst from a gateway's GSO batch must fit.
const DTLS_SOCKET_BUFFER: usize = 8 << 20;
const FLOW_SOCKET_BUFFER: usize = 2 << 20;

/// Asks for `bytes` of send and receive buffer; the kernel caps it at
/// net.core.[rw]mem_max, and a smaller buffer only costs drops under bursts.
fn size_buffers(s: &UdpSocket, bytes: usize) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = setsockopt(s, sockopt::RcvBuf, &bytes);
    let _ = setsockopt(s, sockopt::SndBuf, &bytes);
}

/// Why the relay could not start.
#[derive(Debug)]
pub struct StartError(pub &'static str, pub io::Error);

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.0, self.1)
    }
}

impl std::error::Error for StartError {}

/// A device stream before its gateway attached.
#[derive(Debug)]
struct DeviceConn {
    token: Token,
    stream: TcpStream,
    peer: SocketAddr,
    /// What the device sent so far: its ClientHello, forwarded first.
    hello: Vec<u8>,
    since: Instant,
    waiting: Option<Waiting>,
}

/// The link that was asked to open the stream.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    link: Token,
    nonce: link::Nonce,
}

/// A connection on the gateway port before its first frame says whether
/// it is a link or a stream.
#[derive(Debug)]
struct Inbound {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    since: Instant,
}

#[derive(Debug)]
struct SpliceEntry {
    splice: Splice,
    device_token: Token,
    gateway_token: Token,
    device_peer: SocketAddr,
    link: Token,
}

/// Which table a token's socket lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A device stream, pending (`devices`) or spliced (`splices`).
    Device(u64),
    /// The gateway side of a splice.
    GatewaySide(u64),
    Inbound,
    Link,
    Flow,
}

pub struct Relay {
    config: Config,
    poll: Poll,
    device_listener: TcpListener,
    gateway_listener: TcpListener,
    dtls: Option<UdpSocket>,
    admin: Option<std::net::TcpListener>,
    owners: HashMap<Token, Owner>,
    next_token: usize,
    next_stream: u64,
    devices: HashMap<u64, DeviceConn>,
    per_source: HashMap<IpAddr, usize>,
    splices: HashMap<u64, SpliceEntry>,
    inbound: HashMap<Token, Inbound>,
    links: HashMap<Token, Link>,
    routes: HashMap<u32, Token>,
    flows: Flows,
    affinity: HashMap<(String, IpAddr), (u32, Instant)>,
    pub counters: Counters,
    buf: Vec<u8>,
    /// The devices' socket's receive batch and the runs made of it.
    batch: udp::RecvBatch,
    runs: udp::Runs,
    run_out: Vec<u8>,
}

impl core::fmt::Debug for Relay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Relay").field("links", &self.links.len()).field("flows", &self.flows.len()).finish()
    }
}

impl Relay {
    /// Binds the listeners and the DTLS socket.
    pub fn start(config: Config) -> Result<Self, StartError> {
        let poll = Poll::new().map_err(|e| StartError("creating the event loop", e))?;
        let mut device_listener =
            TcpListener::bind(config.listen).map_err(|e| StartError("binding relay.listen", e))?;
        let mut gateway_listener =
            TcpListener::bind(config.gateway_listen).map_err(|e| StartError("binding relay.gateway_listen", e))?;
        poll.registry()
            .register(&mut device_listener, DEVICE_LISTENER, Interest::READABLE)
            .map_err(|e| StartError("registering relay.listen", e))?;
        poll.registry()
            .register(&mut gateway_listener, GATEWAY_LISTENER, Interest::READABLE)
            .map_err(|e| StartError("registering relay.gateway_listen", e))?;
        let dtls = match config.dtls_port {
            Some(port) => {
                let mut s = UdpSocket::bind(SocketAddr::new(config.listen.ip(), port))
                    .map_err(|e| StartError("binding relay.dtls_port", e))?;
                // No GRO here: [`udp::RecvBatch`] slots hold one datagram each.
                size_buffers(&s, DTLS_SOCKET_BUFFER);
                poll.registry()
                    .register(&mut s, DTLS, Interest::READABLE)
                    .map_err(|e| StartError("registering the DTLS socket", e))?;
                Some(s)
            }
            None => None,
        };
        let admin = match config.admin_listen {
            Some(a) => {
                let l = std::net::TcpListener::bind(a).map_err(|e| StartError("binding admin.listen", e))?;
                l.set_nonblocking(true).map_err(|e| StartError("admin listener", e))?;
                let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
                poll.registry()
                    .register(&mut mio::unix::SourceFd(&fd), ADMIN, Interest::READABLE)
                    .map_err(|e| StartError("registering the admin listener", e))?;
                Some(l)
            }
            None => None,
        };
        let mut names: Vec<&String> = config.tokens.keys().collect();
        names.sort();
        tracing::info!(
            listen = %config.listen,
            dtls_port = ?config.dtls_port,
            gateway_listen = %config.gateway_listen,
            names = ?names,
            default_name = ?config.default_name,
            "relay started"
        );
        Ok(Self {
            config,
            poll,
            device_listener,
            gateway_listener,
            dtls,
            admin,
            owners: HashMap::new(),
            next_token: FIRST_DYNAMIC,
            next_stream: 0,
            devices: HashMap::new(),
            per_source: HashMap::new(),
            splices: HashMap::new(),
            inbound: HashMap::new(),
            links: HashMap::new(),
            routes: HashMap::new(),
            flows: Flows::default(),
            affinity: HashMap::new(),
            counters: Counters::default(),
            buf: vec![0u8; MAX_DATAGRAM],
            batch: udp::RecvBatch::default(),
            runs: udp::Runs::default(),
            run_out: Vec::new(),
        })
    }

    pub fn local_addrs(&self) -> io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.device_listener.local_addr()?, self.gateway_listener.local_addr()?))
    }

    /// Runs until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) -> io::Result<Counters> {
        let mut events = Events::with_capacity(512);
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
                    DEVICE_LISTENER => self.accept_devices(now),
                    GATEWAY_LISTENER => self.accept_gateways(now),
                    DTLS => self.on_dtls(now),
                    ADMIN => self.on_admin(),
                    t => self.on_token(t, now),
                }
            }
            if now.saturating_duration_since(last_tick) >= TICK {
                last_tick = now;
                self.on_tick(now);
            }
        }
        tracing::info!(counters = ?self.counters, "relay stopped");
        Ok(self.counters)
    }

    fn token(&mut self, owner: Owner) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        self.owners.insert(t, owner);
        t
    }

    fn accept_devices(&mut self, now: Instant) {
        loop {
            let (mut stream, peer) = match self.device_listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "device accept failed");
                    return;
                }
            };
            let from_source = self.per_source.get(&peer.ip()).copied().unwrap_or(0);
            let total = self.devices.len() + self.splices.len();
            if total >= self.config.limits.max_connections {
                self.counters.refused_max_connections += 1;
                tracing::debug!(%peer, "relay connection limit reached; refused");
                continue;
            }
            if from_source >= self.config.limits.max_connections_per_source {
                self.counters.refused_per_source += 1;
                tracing::info!(%peer, limit = self.config.limits.max_connections_per_source, "too many connections from one source; refused");
                continue;
            }
            self.next_stream += 1;
            let id = self.next_stream;
            let token = self.token(Owner::Device(id));
            let _ = stream.set_nodelay(true);
            if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
                tracing::warn!(%peer, error = %e, "could not register a device connection");
                self.owners.remove(&token);
                continue;
            }
            *self.per_source.entry(peer.ip()).or_insert(0) += 1;
            self.counters.device_connections += 1;
            self.devices.insert(id, DeviceConn { token, stream, peer, hello: Vec::new(), since: now, waiting: None });
        }
    }

    fn accept_gateways(&mut self, now: Instant) {
        loop {
            let (mut stream, peer) = match self.gateway_listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "gateway accept failed");
                    return;
                }
            };
            if self.inbound.len() >= self.config.limits.max_pending_streams {
                self.counters.refused_inbound += 1;
                continue;
            }
            let token = self.token(Owner::Inbound);
            let _ = stream.set_nodelay(true);
            if self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_err() {
                self.owners.remove(&token);
                continue;
            }
            self.inbound.insert(token, Inbound { stream, peer, buf: Vec::new(), since: now });
        }
    }

    fn on_token(&mut self, token: Token, now: Instant) {
        match self.owners.get(&token).copied() {
            Some(Owner::Device(id)) if self.devices.contains_key(&id) => self.on_device_hello(id, now),
            Some(Owner::Device(id) | Owner::GatewaySide(id)) => self.pump(id),
            Some(Owner::Inbound) => self.on_inbound(token, now),
            Some(Owner::Link) => self.on_link(token, now),
            Some(Owner::Flow) => self.on_flow(token, now),
            None => {}
        }
    }

    // ---- device streams -------------------------------------------------

    fn on_device_hello(&mut self, id: u64, now: Instant) {
        let Some(d) = self.devices.get_mut(&id) else { return };
        if d.waiting.is_some() {
            // Bytes before the gateway answered stay in the socket; a close
            // is noticed when the splice starts or the attach times out.
            return;
        }
        let mut buf = [0u8; 4096];
        let mut eof = false;
        loop {
            match d.stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    d.hello.extend_from_slice(buf.get(..n).unwrap_or_default());
                    if d.hello.len() >= sni::MAX_CLIENT_HELLO_BYTES {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let peer = d.peer;
        match sni::sniff(&d.hello) {
            Ok(Sniffed::NeedMore) if eof => self.close_device(id, "closed before its ClientHello"),
            Ok(Sniffed::NeedMore) => {}
            Err(e) => {
                self.counters.drop_bad_client_hello += 1;
                tracing::info!(%peer, error = %e, "not a TLS ClientHello; dropped");
                self.close_device(id, "bad ClientHello");
            }
            Ok(Sniffed::Hello { server_name }) => {
                let name = match server_name.or_else(|| self.config.default_name.clone()) {
                    Some(n) => n,
                    None => {
                        self.counters.drop_no_sni += 1;
                        tracing::info!(%peer, "ClientHello without SNI and no relay.default_name; dropped");
                        return self.close_device(id, "no SNI");
                    }
                };
                if !self.config.tokens.contains_key(&name) {
                    self.counters.drop_unknown_name += 1;
                    tracing::info!(%peer, name = %name, "ClientHello for a name no gateway registers; dropped");
                    return self.close_device(id, "unknown SNI");
                }
                self.open_stream(id, &name, peer, now);
            }
        }
    }

    /// Asks a live gateway of `name` to dial a stream back for device `id`.
    fn open_stream(&mut self, id: u64, name: &str, peer: SocketAddr, now: Instant) {
        let waiting = self.devices.values().filter(|d| d.waiting.is_some()).count();
        if waiting >= self.config.limits.max_pending_streams {
            self.counters.drop_pending_streams += 1;
            tracing::info!(%peer, name, "too many streams waiting for their gateway; dropped");
            return self.close_device(id, "pending stream limit");
        }
        let Some(link_token) = self.choose_link(name, peer.ip(), now) else {
            self.counters.drop_no_gateway += 1;
            tracing::info!(%peer, name, "no gateway of that name is connected; dropped");
            return self.close_device(id, "no live gateway");
        };
        let nonce = random::<16>();
        let Some(l) = self.links.get_mut(&link_token) else { return };
        let sent = l.send(&Frame::Open { stream: id, nonce, device: peer });
        l.streams_opened += 1;
        l.active_streams += 1;
        let route = l.route();
        if sent.is_err() {
            self.drop_link(link_token, "write failed");
            return self.close_device(id, "gateway link failed");
        }
        if let Some(d) = self.devices.get_mut(&id) {
            d.waiting = Some(Waiting { link: link_token, nonce });
            d.since = now;
        }
        tracing::debug!(%peer, name, stream = id, route = ?route, "stream requested from the gateway");
    }

    /// The link for a new device stream: the gateway the device had, while
    /// it lives, else the live one with the fewest active streams.
    fn choose_link(&mut self, name: &str, ip: IpAddr, now: Instant) -> Option<Token> {
        let key = (name.to_owned(), ip);
        if let Some((route, _)) = self.affinity.get(&key) {
            if let Some(t) = self.routes.get(route).copied() {
                self.affinity.insert(key, (*route, now));
                return Some(t);
            }
        }
        let (token, route) = self
            .links
            .values()
            .filter(|l| l.name == name)
            .filter_map(|l| Some((l.active_streams, l.streams_opened, l.token, l.route()?)))
            .min()
            .map(|(_, _, t, r)| (t, r))?;
        self.affinity.insert(key, (route, now));
        Some(token)
    }

    fn close_device(&mut self, id: u64, why: &str) {
        let Some(mut d) = self.devices.remove(&id) else { return };
        let _ = self.poll.registry().deregister(&mut d.stream);
        self.owners.remove(&d.token);
        self.release_source(d.peer.ip());
        if let Some(w) = d.waiting {
            if let Some(l) = self.links.get_mut(&w.link) {
                l.active_streams = l.active_streams.saturating_sub(1);
            }
        }
        tracing::debug!(peer = %d.peer, stream = id, reason = why, "device connection closed");
    }

    fn release_source(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_source.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&ip);
            }
        }
    }

    // ---- the gateway port: links and attached streams ---------------------

    fn on_inbound(&mut self, token: Token, now: Instant) {
        let Some(mut c) = self.inbound.remove(&token) else { return };
        let mut buf = [0u8; 2048];
        let mut closed = false;
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => c.buf.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            if c.buf.len() > link::HEADER_LEN + link::MAX_BODY {
                break;
            }
        }
        match link::next_frame(&c.buf) {
            Ok(None) if !closed && c.buf.len() <= link::HEADER_LEN + link::MAX_BODY => {
                self.inbound.insert(token, c);
            }
            Ok(Some((Frame::Hello { version, route_hint, name }, used))) => {
                let leftover = c.buf.get(used..).unwrap_or_default().to_vec();
                self.on_hello(token, c, version, route_hint, &name, &leftover, now);
            }
            Ok(Some((Frame::Attach { stream, nonce }, used))) => {
                let leftover = c.buf.get(used..).unwrap_or_default().to_vec();
                self.on_attach(token, c, stream, nonce, &leftover);
            }
            other => {
                self.counters.drop_bad_gateway_frame += 1;
                tracing::info!(peer = %c.peer, frame = ?other.map(|f| f.map(|(f, _)| f)), "gateway port: not a link or stream; closed");
                self.forget(token, c.stream);
            }
        }
    }

    fn forget(&mut self, token: Token, mut stream: TcpStream) {
        let _ = self.poll.registry().deregister(&mut stream);
        self.owners.remove(&token);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_hello(
        &mut self,
        token: Token,
        c: Inbound,
        version: u8,
        route_hint: u32,
        name: &str,
        leftover: &[u8],
        now: Instant,
    ) {
        let name = name.to_ascii_lowercase();
        if version != link::VERSION || !self.config.tokens.contains_key(&name) {
            self.counters.links_refused += 1;
            let reason = if version != link::VERSION {
                format!("link version {version} is not spoken here (this relay speaks {})", link::VERSION)
            } else {
                format!("no [[gateway]] named `{name}` on this relay")
            };
            tracing::warn!(peer = %c.peer, name = %name, reason = %reason, "gateway link refused");
            let mut l = Link::new(token, c.stream, c.peer, c.peer, name, 0, [0; 32], &[], now);
            let _ = l.send(&Frame::Refused { reason });
            return self.forget(token, l.stream);
        }
        let local = c.stream.local_addr().unwrap_or(self.config.gateway_listen);
        let nonce = random::<32>();
        let mut l = Link::new(token, c.stream, c.peer, local, name, route_hint, nonce, leftover, now);
        if l.send(&Frame::Challenge { nonce }).is_err() {
            return self.forget(token, l.stream);
        }
        self.owners.insert(token, Owner::Link);
        self.links.insert(token, l);
        // Auth may have arrived with the Hello.
        self.on_link(token, now);
    }

    fn on_attach(&mut self, token: Token, c: Inbound, stream: u64, nonce: link::Nonce, leftover: &[u8]) {
        let valid = self.devices.get(&stream).and_then(|d| d.waiting).filter(|w| {
            // The nonce went only to that link's gateway; it must attach from there.
            aws_lc_rs::constant_time::verify_slices_are_equal(&w.nonce, &nonce).is_ok()
                && self.links.get(&w.link).is_some_and(|l| l.peer.ip() == c.peer.ip())
        });
        let Some(w) = valid else {
            self.counters.drop_bad_attach += 1;
            tracing::info!(peer = %c.peer, stream, "attach for no stream waiting for it; closed");
            return self.forget(token, c.stream);
        };
        if !leftover.is_empty() {
            // A gateway sends nothing before the device's ClientHello.
            self.counters.drop_bad_attach += 1;
            tracing::info!(peer = %c.peer, stream, "gateway stream sent bytes before the device did; closed");
            self.close_device(stream, "bad attach");
            return self.forget(token, c.stream);
        }
        let Some(d) = self.devices.remove(&stream) else { return };
        self.owners.insert(token, Owner::GatewaySide(stream));
        let splice = Splice::new(d.stream, c.stream, &d.hello);
        self.counters.streams_spliced += 1;
        tracing::debug!(device = %d.peer, gateway = %c.peer, stream, "stream spliced");
        self.splices.insert(
            stream,
            SpliceEntry { splice, device_token: d.token, gateway_token: token, device_peer: d.peer, link: w.link },
        );
        self.pump(stream);
    }

    fn pump(&mut self, id: u64) {
        let Some(e) = self.splices.get_mut(&id) else { return };
        let done = match e.splice.pump() {
            Ok(false) => return,
            Ok(true) => "closed",
            Err(_) => "reset",
        };
        let Some(mut e) = self.splices.remove(&id) else { return };
        let (up, down) = e.splice.bytes();
        self.counters.stream_bytes_to_gateway += up;
        self.counters.stream_bytes_to_device += down;
        let _ = self.poll.registry().deregister(&mut e.splice.device);
        let _ = self.poll.registry().deregister(&mut e.splice.gateway);
        self.owners.remove(&e.device_token);
        self.owners.remove(&e.gateway_token);
        self.release_source(e.device_peer.ip());
        if let Some(l) = self.links.get_mut(&e.link) {
            l.active_streams = l.active_streams.saturating_sub(1);
        }
        tracing::debug!(device = %e.device_peer, stream = id, up, down, how = done, "stream ended");
    }

    fn on_link(&mut self, token: Token, now: Instant) {
        let Some(l) = self.links.get_mut(&token) else { return };
        if l.flush().is_err() {
            return self.drop_link(token, "write failed");
        }
        let read = l.read(now);
        for f in read.frames {
            if !self.on_link_frame(token, f, now) {
                return;
            }
        }
        if let Some(end) = read.ended {
            if matches!(end, crate::links::LinkEnd::Broken(_)) {
                self.counters.drop_bad_gateway_frame += 1;
            }
            self.drop_link(token, &end.to_string());
        }
    }

    /// Handles one frame from a link; `false` when the link was dropped.
    fn on_link_frame(&mut self, token: Token, f: Frame, now: Instant) -> bool {
        let Some(l) = self.links.get_mut(&token) else { return false };
        match (l.state, f) {
            (LinkState::Challenged { nonce }, Frame::Auth { mac }) => {
                let ok = self
                    .config
                    .tokens
                    .get(&l.name)
                    .is_some_and(|secret| link::verify_link_mac(secret, &nonce, &l.name, &mac));
                if !ok {
                    self.counters.links_refused += 1;
                    tracing::warn!(peer = %l.peer, name = %l.name, "gateway link refused: wrong token");
                    let _ = l.send(&Frame::Refused { reason: "authentication failed".into() });
                    self.drop_link(token, "authentication failed");
                    return false;
                }
                let hint = l.route_hint;
                let route = if hint != 0 && !self.routes.contains_key(&hint) {
                    hint
                } else {
                    loop {
                        let r = u32::from_be_bytes(random::<4>());
                        if r != 0 && !self.routes.contains_key(&r) {
                            break r;
                        }
                    }
                };
                let Some(l) = self.links.get_mut(&token) else { return false };
                l.state = LinkState::Up { route };
                l.up_since = Some(now);
                self.routes.insert(route, token);
                self.counters.links_up += 1;
                tracing::info!(peer = %l.peer, name = %l.name, route = format_args!("{route:08x}"), kept_route = route == hint, "gateway link up");
                let dtls_port = self.config.dtls_port.unwrap_or(0);
                if l.send(&Frame::Welcome { route, dtls_port }).is_err() {
                    self.drop_link(token, "write failed");
                    return false;
                }
            }
            (LinkState::Up { .. }, Frame::Decline { stream }) => {
                let waiting_here = self.devices.get(&stream).and_then(|d| d.waiting).is_some_and(|w| w.link == token);
                if waiting_here {
                    self.counters.streams_declined += 1;
                    self.close_device(stream, "declined by the gateway");
                }
            }
            (LinkState::Up { route }, Frame::Refuse { flow }) => {
                if self.flows.get_mut(flow).is_some_and(|f| f.route == route) {
                    self.counters.flows_refused += 1;
                    self.close_flow(flow, "refused by the gateway: unknown App-ID");
                }
            }
            (_, Frame::Ping { token: t }) => {
                if l.send(&Frame::Pong { token: t }).is_err() {
                    self.drop_link(token, "write failed");
                    return false;
                }
            }
            (_, Frame::Pong { .. }) => {}
            (state, other) => {
                self.counters.drop_bad_gateway_frame += 1;
                tracing::warn!(peer = %l.peer, ?state, frame = ?other, "unexpected frame on a gateway link; dropped the link");
                self.drop_link(token, "protocol error");
                return false;
            }
        }
        true
    }

    /// A link is gone: its waiting device streams are closed (their
    /// devices retry); spliced streams and bound flows carry on, since they
    /// are connections of their own to the gateway.
    fn drop_link(&mut self, token: Token, why: &str) {
        let Some(mut l) = self.links.remove(&token) else { return };
        let _ = self.poll.registry().deregister(&mut l.stream);
        self.owners.remove(&token);
        if let Some(route) = l.route() {
            self.routes.remove(&route);
            self.counters.links_lost += 1;
            tracing::warn!(peer = %l.peer, name = %l.name, route = format_args!("{route:08x}"), reason = why, "gateway link lost");
        }
        let waiting: Vec<u64> = self
            .devices
            .iter()
            .filter(|(_, d)| d.waiting.is_some_and(|w| w.link == token))
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.close_device(id, "gateway link lost");
        }
        let pending: Vec<u64> = self
            .flows
            .iter()
            .filter(|f| f.gateway.is_none() && l.route().is_some_and(|r| r == f.route))
            .map(|f| f.id)
            .collect();
        for id in pending {
            self.close_flow(id, "gateway link lost before the bind");
        }
    }

    // ---- DTLS ------------------------------------------------------------

    /// Devices' datagrams, [`udp::BATCH`] per receive; a device's run of
    /// same-sized datagrams is handled (and forwarded) as one GSO buffer.
    /// A ClientHello always goes alone: it may start a new flow.
    fn on_dtls(&mut self, now: Instant) {
        loop {
            let Some(sock) = self.dtls.as_ref() else { return };
            let n = match self.batch.recv(sock) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            for i in 0..n {
                let Some((d, from)) = self.batch.get(i) else { break };
                let Some(from) = from else {
                    self.counters.drop_udp_truncated += 1;
                    continue;
                };
                let alone = flows::is_client_hello(d);
                if !alone && self.runs.push(from, d) {
                    continue;
                }
                self.flush_run(now);
                let Some((d, _)) = self.batch.get(i) else { break };
                if alone || !self.runs.push(from, d) {
                    let d = d.to_vec();
                    self.on_device_datagrams(udp::Received { len: d.len(), from, segment: None }, &d, now);
                }
            }
            // Until the socket would block: mio reports edges only.
            self.flush_run(now);
        }
    }

    fn flush_run(&mut self, now: Instant) {
        let mut out = std::mem::take(&mut self.run_out);
        if let Some(r) = self.runs.take(&mut out) {
            self.on_device_datagrams(r, out.get(..r.len).unwrap_or_default(), now);
        }
        self.run_out = out;
    }

    /// Datagrams from one device: one, or several coalesced by GRO (then
    /// of `r.segment` bytes each), forwarded the same way.
    fn on_device_datagrams(&mut self, r: udp::Received, d: &[u8], now: Instant) {
        let from = r.from;
        self.counters.udp_from_devices += r.datagrams();
        let first = r.segment.and_then(|s| d.get(..s)).unwrap_or(d);
        let hello = flows::is_client_hello(first);
        // The ClientHello is parsed once: its App-ID routes it and, for a
        // new flow, goes to the gateway in the Allocate.
        let app_id =
            hello.then(|| dtls::PeekedClientHello::parse(first).ok()).flatten().map(|p| p.hello.app_id().to_vec());
        let route = app_id.as_deref().and_then(link::app_id_route);
        if let Some(id) = self.flows.of_device(from) {
            let Some(f) = self.flows.get_mut(id) else { return };
            // A ClientHello for another gateway (the device reconnected
            // elsewhere) starts a new flow; anything else follows this one.
            if !(hello && route.is_some() && route != Some(f.route)) {
                f.last_active = now;
                match f.gateway {
                    Some(gw) => match udp::send(&f.socket, d, r.segment, gw) {
                        Ok(n) => {
                            self.counters.udp_to_gateways += n;
                            self.counters.udp_bytes_to_gateways += d.len() as u64;
                        }
                        Err(_) => self.counters.drop_udp_send_failed += r.datagrams(),
                    },
                    None if f.queue.len() < QUEUE_BEFORE_BIND => f.queue.push((d.to_vec(), r.segment)),
                    None => self.counters.drop_udp_queue_full += r.datagrams(),
                }
                return;
            }
            self.close_flow(id, "the device began a handshake with another gateway");
        }
        if !hello {
            self.counters.drop_udp_unknown_peer += 1;
            return;
        }
        let Some(route) = route else {
            self.counters.drop_udp_unknown_app_id += 1;
            tracing::debug!(%from, "DTLS ClientHello without a relay route in its App-ID; dropped");
            return;
        };
        let Some(link_token) = self.routes.get(&route).copied() else {
            self.counters.drop_udp_unknown_route += 1;
            tracing::debug!(%from, route = format_args!("{route:08x}"), "DTLS ClientHello for a route no link holds; dropped");
            return;
        };
        if self.flows.len() >= self.config.limits.max_flows {
            self.counters.drop_udp_max_flows += 1;
            return;
        }
        if self.flows.pending() >= self.config.limits.max_pending_flows {
            self.counters.drop_udp_pending_flows += 1;
            return;
        }
        self.allocate(link_token, route, r, d, app_id.unwrap_or_default(), now);
    }

    /// Opens a relay port for a device's flow and asks the link's gateway to bind it.
    fn allocate(
        &mut self,
        link_token: Token,
        route: u32,
        r: udp::Received,
        first: &[u8],
        app_id: Vec<u8>,
        now: Instant,
    ) {
        let (device, segment) = (r.from, r.segment);
        let Some(l) = self.links.get(&link_token) else { return };
        let (local_ip, gateway_ip) = (l.local.ip(), l.peer.ip());
        let mut socket = match UdpSocket::bind(SocketAddr::new(local_ip, 0)) {
            Ok(s) => s,
            Err(e) => {
                self.counters.drop_udp_socket_failed += 1;
                tracing::warn!(error = %e, "could not open a relay UDP port for a flow");
                return;
            }
        };
        size_buffers(&socket, FLOW_SOCKET_BUFFER);
        udp::enable_gro(&socket);
        let Ok(port) = socket.local_addr().map(|a| a.port()) else { return };
        let id = self.flows.next_id();
        let token = self.token(Owner::Flow);
        if self.poll.registry().register(&mut socket, token, Interest::READABLE).is_err() {
            self.owners.remove(&token);
            return;
        }
        let nonce = random::<16>();
        let sent =
            self.links.get_mut(&link_token).map(|l| l.send(&Frame::Allocate { flow: id, port, nonce, device, app_id }));
        if !matches!(sent, Some(Ok(()))) {
            let _ = self.poll.registry().deregister(&mut socket);
            self.owners.remove(&token);
            self.drop_link(link_token, "write failed");
            return;
        }
        self.counters.flows_allocated += 1;
        tracing::debug!(%device, flow = id, port, route = format_args!("{route:08x}"), "flow allocated");
        self.flows.insert(Flow {
            id,
            token,
            socket,
            device,
            route,
            nonce,
            gateway: None,
            gateway_ip,
            queue: vec![(first.to_vec(), segment)],
            created: now,
            last_active: now,
        });
    }

    fn on_flow(&mut self, token: Token, now: Instant) {
        let Some(id) = self.flows.of_token(token) else { return };
        loop {
            let Some(f) = self.flows.get_mut(id) else { return };
            let r = match udp::recv(&f.socket, &mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let (n, from) = (r.len, r.from);
            let d = self.buf.get(..n).unwrap_or_default();
            match f.gateway {
                Some(gw) if gw == from => {
                    f.last_active = now;
                    // A gateway's GSO batch arrives whole (GRO) and leaves
                    // whole (GSO): one receive and one send per batch.
                    match self.dtls.as_ref().map(|s| udp::send(s, d, r.segment, f.device)) {
                        Some(Ok(k)) => {
                            self.counters.udp_to_devices += k;
                            self.counters.udp_bytes_to_devices += n as u64;
                        }
                        _ => self.counters.drop_udp_send_failed += r.datagrams(),
                    }
                }
                Some(_) => self.counters.drop_udp_stranger += r.datagrams(),
                None if r.segment.is_some() => self.counters.drop_udp_stranger += r.datagrams(),
                None => match Bind::parse(d) {
                    Some(b)
                        if b.flow == id
                            && from.ip() == f.gateway_ip
                            && aws_lc_rs::constant_time::verify_slices_are_equal(&b.nonce, &f.nonce).is_ok() =>
                    {
                        f.gateway = Some(from);
                        f.last_active = now;
                        self.counters.flows_bound += 1;
                        for (q, segment) in std::mem::take(&mut f.queue) {
                            if let Ok(k) = udp::send(&f.socket, &q, segment, from) {
                                self.counters.udp_to_gateways += k;
                                self.counters.udp_bytes_to_gateways += q.len() as u64;
                            }
                        }
                        tracing::debug!(device = %f.device, gateway = %from, flow = id, "flow bound");
                    }
                    _ => self.counters.drop_udp_stranger += 1,
                },
            }
        }
    }

    fn close_flow(&mut self, id: u64, why: &str) {
        let Some(mut f) = self.flows.remove(id) else { return };
        let _ = self.poll.registry().deregister(&mut f.socket);
        self.owners.remove(&f.token);
        self.counters.flows_closed += 1;
        tracing::debug!(device = %f.device, flow = id, reason = why, "flow closed");
    }

    // ---- timers ------------------------------------------------------------

    fn on_tick(&mut self, now: Instant) {
        let lim = self.config.limits;
        let late = |since: Instant, limit: Duration| now.saturating_duration_since(since) >= limit;
        let expired: Vec<(u64, bool)> = self
            .devices
            .iter()
            .filter(|(_, d)| late(d.since, if d.waiting.is_some() { lim.attach_timeout } else { lim.hello_timeout }))
            .map(|(id, d)| (*id, d.waiting.is_some()))
            .collect();
        for (id, waiting) in expired {
            if waiting {
                self.counters.drop_attach_timeout += 1;
                self.close_device(id, "the gateway did not attach in time");
            } else {
                self.counters.drop_hello_timeout += 1;
                self.close_device(id, "no ClientHello in time");
            }
        }
        let slow: Vec<Token> =
            self.inbound.iter().filter(|(_, c)| late(c.since, FIRST_FRAME_TIMEOUT)).map(|(t, _)| *t).collect();
        for t in slow {
            if let Some(c) = self.inbound.remove(&t) {
                self.counters.drop_bad_gateway_frame += 1;
                self.forget(t, c.stream);
            }
        }
        let stale: Vec<(u64, &'static str)> = self
            .flows
            .iter()
            .filter_map(|f| match f.gateway {
                None if late(f.created, BIND_TIMEOUT) => Some((f.id, "the gateway did not bind it")),
                _ if late(f.last_active, lim.flow_idle_timeout) => Some((f.id, "idle")),
                _ => None,
            })
            .collect();
        for (id, why) in stale {
            if why == "idle" {
                self.counters.flows_idle += 1;
            } else {
                self.counters.flows_unbound += 1;
            }
            self.close_flow(id, why);
        }
        let ping_every = lim.link_timeout / 3;
        let mut dead = Vec::new();
        for l in self.links.values_mut() {
            if late(l.last_rx, lim.link_timeout) {
                dead.push(l.token);
            } else if late(l.last_ping, ping_every) && l.route().is_some() {
                l.last_ping = now;
                if l.send(&Frame::Ping { token: 0 }).is_err() {
                    dead.push(l.token);
                }
            }
        }
        for t in dead {
            self.drop_link(t, "silent past limits.link_timeout");
        }
        self.affinity.retain(|_, (_, at)| now.saturating_duration_since(*at) < AFFINITY);
    }

    // ---- admin -------------------------------------------------------------

    fn on_admin(&mut self) {
        loop {
            let Some(listener) = self.admin.as_ref() else { return };
            let Ok((mut stream, _)) = listener.accept() else { return };
            let _ = stream.set_nonblocking(false);
            match service::admin::read_request_line(&mut stream) {
                Some((m, p)) if m == "GET" && p == "/metrics" => {
                    service::admin::respond(&mut stream, "200 OK", &self.metrics());
                }
                Some((m, p)) if m == "GET" && p == "/links" => {
                    service::admin::respond(&mut stream, "200 OK", &self.link_lines());
                }
                Some(_) => service::admin::respond(&mut stream, "404 Not Found", "GET /metrics, GET /links\n"),
                None => service::admin::respond(&mut stream, "400 Bad Request", ""),
            }
        }
    }

    fn metrics(&self) -> String {
        let mut m = service::Metrics::default();
        self.counters.render(&mut m);
        m.gauge("corridor_relay_links", "gateway links up", self.routes.len() as u64);
        m.gauge("corridor_relay_streams", "device streams spliced to a gateway", self.splices.len() as u64);
        m.gauge(
            "corridor_relay_streams_pending",
            "device streams waiting for their ClientHello or their gateway",
            self.devices.len() as u64,
        );
        m.gauge("corridor_relay_flows", "DTLS flows (relay UDP ports)", self.flows.len() as u64);
        m.gauge(
            "corridor_relay_flows_pending",
            "DTLS flows not yet bound by their gateway",
            self.flows.pending() as u64,
        );
        m.into_string()
    }

    fn link_lines(&self) -> String {
        let mut lines: Vec<String> = self
            .links
            .values()
            .map(|l| {
                format!(
                    "{} peer={} route={} streams_opened={} streams_active={} flows={}\n",
                    l.name,
                    l.peer,
                    l.route().map_or("-".to_owned(), |r| format!("{r:08x}")),
                    l.streams_opened,
                    l.active_streams,
                    l.route().map_or(0, |r| self.flows.on_route(r)),
                )
            })
            .collect();
        lines.sort();
        lines.concat()
    }
}
