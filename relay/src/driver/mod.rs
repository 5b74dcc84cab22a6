//! The relay's driver: one mio thread over the devices' TLS listener and
//! DTLS socket, the gateways' listener, their links and streams, one UDP
//! port per device flow, and the admin listener. It accepts, reads,
//! writes, splices and batches datagrams; what any of it means is the
//! core's ([`crate::core::RelayCore`]), which it feeds and whose effects it
//! carries out.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};

use crate::config::Config;
use crate::core::{ConnId, Counters, Effect, FlowId, RelayCore, TICK};

mod datagrams;
pub mod link_tls;
pub mod splice;
mod tcp;
pub mod udp;

use splice::Splice;

const DEVICE_LISTENER: Token = Token(0);
const GATEWAY_LISTENER: Token = Token(1);
const DTLS: Token = Token(2);
const ADMIN: Token = Token(3);
const FIRST_DYNAMIC: usize = 16;

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

pub use service::StartError;

/// Every device stream is two sockets (the device's and its gateway's),
/// every flow a port: raise the soft open-file limit to the hard one, and
/// say so when even that cannot hold what `[limits]` allows.
fn raise_open_file_limit(config: &Config) {
    let Some(limit) = service::fd_limit::raise_open_file_limit() else { return };
    let l = &config.limits;
    // The listeners, the DTLS socket, links and the event loop.
    let needed = (2 * l.max_connections + l.max_flows + l.max_unauthenticated) as u64 + 64;
    if limit < needed {
        tracing::warn!(
            open_files = limit,
            needed,
            "the open-file limit cannot hold limits.max_connections, max_flows and max_unauthenticated; \
             raise it (LimitNOFILE= in the unit, ulimit -Hn) or lower those limits"
        );
    }
}

/// What a dynamic token's socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A TCP connection the core reads (its id is its token).
    Conn(ConnId),
    /// Either side of the splice of device connection `.0`.
    Splice(ConnId),
    /// A flow's UDP port.
    Flow(FlowId),
}

/// A TCP connection and the link frames not yet written to it.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    outbox: Vec<u8>,
    /// A link's TLS, once its first bytes were a ClientHello.
    tls: Option<Box<link_tls::LinkTls>>,
}

/// A splice and the tokens of its two sides.
#[derive(Debug)]
struct Spliced {
    splice: Splice,
    device: Token,
    gateway: Token,
}

#[derive(Debug)]
struct FlowPort {
    token: Token,
    socket: UdpSocket,
}

/// The relay: the core and the sockets it is driven by.
pub struct Relay {
    core: RelayCore,
    link_tls: std::sync::Arc<rustls::ServerConfig>,
    poll: Poll,
    device_listener: TcpListener,
    gateway_listener: TcpListener,
    dtls: Option<UdpSocket>,
    admin: Option<std::net::TcpListener>,
    owners: HashMap<Token, Owner>,
    next_token: usize,
    conns: HashMap<ConnId, Conn>,
    /// Spliced streams by their device connection.
    splices: HashMap<ConnId, Spliced>,
    flow_ports: HashMap<FlowId, FlowPort>,
    /// A flow port's receive buffer (a whole GRO batch).
    buf: Vec<u8>,
    /// The devices' socket's receive batch and the runs made of it.
    batch: udp::RecvBatch,
    runs: udp::Runs,
    run_out: Vec<u8>,
    /// The service manager (systemd): stopping, watchdog.
    notify: service::notify::Notifier,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("links", &self.core.links_up())
            .field("flows", &self.core.flow_count())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Binds the listeners and the DTLS socket.
    pub fn start(config: Config) -> Result<Self, StartError> {
        let (link_tls, pin) = link_tls::server_config(&config).map_err(StartError::Config)?;
        raise_open_file_limit(&config);
        let poll = Poll::new().map_err(|e| StartError::Io("creating the event loop", e))?;
        let mut device_listener =
            TcpListener::bind(config.listen).map_err(|e| StartError::Io("binding relay.listen", e))?;
        let mut gateway_listener =
            TcpListener::bind(config.gateway_listen).map_err(|e| StartError::Io("binding relay.gateway_listen", e))?;
        poll.registry()
            .register(&mut device_listener, DEVICE_LISTENER, Interest::READABLE)
            .map_err(|e| StartError::Io("registering relay.listen", e))?;
        poll.registry()
            .register(&mut gateway_listener, GATEWAY_LISTENER, Interest::READABLE)
            .map_err(|e| StartError::Io("registering relay.gateway_listen", e))?;
        let dtls = match config.dtls_port {
            Some(port) => {
                let mut s = UdpSocket::bind(SocketAddr::new(config.listen.ip(), port))
                    .map_err(|e| StartError::Io("binding relay.dtls_port", e))?;
                // No GRO here: [`udp::RecvBatch`] slots hold one datagram each.
                size_buffers(&s, DTLS_SOCKET_BUFFER);
                poll.registry()
                    .register(&mut s, DTLS, Interest::READABLE)
                    .map_err(|e| StartError::Io("registering the DTLS socket", e))?;
                Some(s)
            }
            None => None,
        };
        let admin = match config.admin_listen {
            Some(a) => {
                let l = std::net::TcpListener::bind(a).map_err(|e| StartError::Io("binding admin.listen", e))?;
                l.set_nonblocking(true).map_err(|e| StartError::Io("admin listener", e))?;
                let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
                poll.registry()
                    .register(&mut mio::unix::SourceFd(&fd), ADMIN, Interest::READABLE)
                    .map_err(|e| StartError::Io("registering the admin listener", e))?;
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
            link_pin_sha256 = %pin,
            "relay started"
        );
        Ok(Self {
            core: RelayCore::new(config, Instant::now(), service::unix_now()),
            link_tls,
            poll,
            device_listener,
            gateway_listener,
            dtls,
            admin,
            owners: HashMap::new(),
            next_token: FIRST_DYNAMIC,
            conns: HashMap::new(),
            splices: HashMap::new(),
            flow_ports: HashMap::new(),
            buf: vec![0u8; MAX_DATAGRAM],
            batch: udp::RecvBatch::default(),
            runs: udp::Runs::default(),
            run_out: Vec::new(),
            notify: service::notify::Notifier::disabled(),
        })
    }

    pub fn local_addrs(&self) -> io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.device_listener.local_addr()?, self.gateway_listener.local_addr()?))
    }

    /// Tells `notifier`'s service manager that the loop turns
    /// (`WATCHDOG=1`) and when it stops (`STOPPING=1`); `READY=1` at start
    /// is the caller's.
    #[must_use]
    pub fn notify_to(mut self, notifier: service::notify::Notifier) -> Self {
        self.notify = notifier;
        self
    }

    /// Runs until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) -> io::Result<Counters> {
        let mut events = Events::with_capacity(512);
        while !stop.load(Ordering::Relaxed) {
            let wait = self.core.poll_timeout().saturating_duration_since(Instant::now()).min(TICK);
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // One clock read per turn: every event of the turn shares it.
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
            if now >= self.core.poll_timeout() {
                self.core.set_wall_clock(now, service::unix_now());
                self.core.handle_timeout(now);
                self.carry_out(now);
            }
            // Pinged from this loop alone: a stalled loop goes quiet and
            // the manager restarts the relay.
            self.notify.watchdog(now);
        }
        self.notify.stopping();
        let counters = *self.core.counters();
        tracing::info!(counters = ?counters, "relay stopped");
        Ok(counters)
    }

    fn token(&mut self) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        t
    }

    fn on_token(&mut self, token: Token, now: Instant) {
        match self.owners.get(&token).copied() {
            Some(Owner::Conn(conn)) => self.on_conn(conn, now),
            Some(Owner::Splice(device)) => self.pump(device),
            Some(Owner::Flow(flow)) => self.on_flow_port(flow, now),
            None => {}
        }
    }

    /// Carries out the core's effects, in order, until there are none.
    fn carry_out(&mut self, now: Instant) {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Write { conn, bytes } => self.write(conn, &bytes, now),
                Effect::StartTls { conn, initial } => self.start_tls(conn, &initial, now),
                Effect::Close { conn, reason } => self.close(conn, reason),
                Effect::Splice { device, gateway, initial } => self.splice(device, gateway, &initial),
                Effect::OpenFlowPort { flow, ip } => self.open_flow_port(flow, ip, now),
                Effect::SendDatagram { flow, to, bytes, segment } => self.send_from_flow(flow, to, &bytes, segment),
                Effect::CloseFlowPort { flow } => self.close_flow_port(flow),
            }
        }
    }

    fn on_admin(&mut self) {
        use service::admin::{read_request_line, respond};
        loop {
            let Some(listener) = self.admin.as_ref() else { return };
            let Ok((mut stream, _)) = listener.accept() else { return };
            let _ = stream.set_nonblocking(false);
            match read_request_line(&mut stream) {
                Some((m, p)) if m == "GET" && p == "/metrics" => {
                    respond(&mut stream, "200 OK", &self.core.metrics_page());
                }
                Some((m, p)) if m == "GET" && p == "/links" => {
                    respond(&mut stream, "200 OK", &self.core.links_page());
                }
                Some(_) => respond(&mut stream, "404 Not Found", "GET /metrics, GET /links\n"),
                None => respond(&mut stream, "400 Bad Request", ""),
            }
        }
    }
}
