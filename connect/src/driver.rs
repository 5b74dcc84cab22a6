//! The client's loop: one mio poll over the TCP connection, the DTLS UDP
//! socket, the TUN and a signal pipe, with the session's own timer. Every
//! input goes into the [`DeviceSession`]; after each, what it queued goes
//! out (TLS bytes, datagrams) and its events are acted on.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream as StdTcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::{Duration, Instant};

use device::{DeviceConfig, DeviceSession, DisconnectReason, Event, Phase};
use mio::net::{TcpStream, UdpSocket, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use proto::connect::TunnelConfig;
use rustls::pki_types::ServerName;

use crate::apps::AppTunnel;
use crate::netlink::{Monitor, Netlink};
use crate::status::Status;
use crate::trusted::{Detector, PAUSED_PROBE_EVERY};
use crate::tunnel::{add_routes, open_tun, remove_routes, Tunnel};
use crate::{Ended, Options};

const TCP: Token = Token(0);
const UDP: Token = Token(1);
const TUN: Token = Token(2);
const SIGNALS: Token = Token(3);
const MONITOR: Token = Token(4);

/// How long a TCP connect may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A TUN read or a datagram: the largest IPv4 packet.
const BUF: usize = 65_536;

pub(crate) struct Client {
    options: Options,
    /// For a fresh login when a paused session's cookie expired meanwhile.
    config: DeviceConfig,
    /// Trusted-network detection (the user's, else the gateway's).
    trusted: Option<Detector>,
    /// When to look next whether the device is on the trusted network.
    probe: Option<Instant>,
    /// What `--status` shows, and when to write it next.
    status: Status,
    status_due: Instant,
    gateway: SocketAddr,
    session: DeviceSession,
    poll: Poll,
    tcp: Option<TcpStream>,
    /// TLS bytes the socket has not taken yet.
    tcp_out: Vec<u8>,
    udp: Option<UdpSocket>,
    tunnel: Option<Tunnel>,
    /// The TUN, created before the login (so a name in use stops the
    /// client before the gateway holds a session for it), until the
    /// tunnel's configuration arrives.
    tun: Option<File>,
    signals: UnixStream,
    /// Address, route and link changes: the way to the gateway may have moved.
    monitor: Option<Monitor>,
    /// The user asked to stop: the logout is on its way.
    stopping: bool,
    ended: Option<Result<Ended, String>>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl Client {
    pub(crate) fn start(options: Options) -> Result<Self, String> {
        let gateway = (options.host.as_str(), options.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", options.host))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| format!("{} has no IPv4 address", options.host))?;
        let tls = crate::trust::client_config(&options.trust)?;
        let name = match options.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(options.host.clone()).map_err(|e| format!("{}: {e}", options.host))?,
        };
        let host =
            if options.port == 443 { options.host.clone() } else { format!("{}:{}", options.host, options.port) };
        let mut config = match (&options.user, &options.password) {
            (Some(user), Some(password)) => DeviceConfig::new(tls, name, &host, user, password),
            (Some(user), None) => DeviceConfig::new(tls, name, &host, user, ""),
            _ => DeviceConfig::with_certificate(tls, name, &host),
        };
        config.dtls = options.dtls;
        config.reconnect_timeout = options.reconnect_timeout;
        let session = match &options.cookie {
            Some(cookie) => DeviceSession::with_cookie(config.clone(), cookie),
            None => DeviceSession::new(config.clone()),
        }
        .map_err(|e| e.to_string())?;
        let trusted = match (&options.trusted, options.no_trusted_network) {
            (Some(t), false) => Some(Detector::new(t)?),
            _ => None,
        };

        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let (read, write) = StdUnixStream::pair().map_err(|e| format!("signal pipe: {e}"))?;
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let w = write.try_clone().map_err(|e| format!("signal pipe: {e}"))?;
            signal_hook::low_level::pipe::register(signal, w).map_err(|e| format!("signal {signal}: {e}"))?;
        }
        read.set_nonblocking(true).map_err(|e| format!("signal pipe: {e}"))?;
        let mut signals = UnixStream::from_std(read);
        poll.registry().register(&mut signals, SIGNALS, Interest::READABLE).map_err(|e| e.to_string())?;

        let monitor = match Monitor::open() {
            Ok(m) => {
                let raw = m.as_raw_fd();
                poll.registry()
                    .register(&mut SourceFd(&raw), MONITOR, Interest::READABLE)
                    .map_err(|e| e.to_string())?;
                Some(m)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no netlink notifications: a network change is noticed only when the connection fails");
                None
            }
        };
        let options_interface = options.interface.clone();
        let authenticate_only = options.authenticate_only;
        let status = Status {
            pid: std::process::id(),
            interface: options.interface.clone(),
            gateway: gateway.to_string(),
            state: "connecting".into(),
            ..Status::default()
        };
        let mut client = Self {
            status,
            status_due: Instant::now(),
            config,
            trusted,
            probe: None,
            options,
            gateway,
            session,
            poll,
            tcp: None,
            tcp_out: Vec::new(),
            udp: None,
            tunnel: None,
            tun: if authenticate_only { None } else { Some(open_tun(&options_interface)?) },
            signals,
            monitor,
            stopping: false,
            ended: None,
            buf: vec![0; BUF],
            scratch: Vec::new(),
        };
        client.connect_tcp()?;
        tracing::info!(gateway = %client.gateway, "connected; logging in");
        Ok(client)
    }

    pub(crate) fn run(mut self) -> Result<Ended, String> {
        let mut events = Events::with_capacity(64);
        self.pump(Instant::now());
        while self.ended.is_none() {
            let now = Instant::now();
            let due = [self.session.poll_timeout(), self.session.reconnect_at(), self.probe, Some(self.status_due)]
                .into_iter()
                .flatten()
                .min();
            let timeout = due.map(|d| d.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    return self.finish(Err(format!("poll: {e}")));
                }
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    TCP => self.on_tcp(now, ev.is_readable() || ev.is_read_closed(), ev.is_writable()),
                    UDP => self.on_udp(now),
                    TUN => self.on_tun(now),
                    SIGNALS => self.on_signal(now),
                    MONITOR if self.monitor.as_mut().is_some_and(Monitor::drain) => {
                        self.check_path(now);
                        if self.trusted.is_some() {
                            self.probe = Some(now);
                        }
                    }
                    _ => {}
                }
            }
            if self.session.poll_timeout().is_some_and(|t| t <= now) {
                self.session.handle_timeout(now);
            }
            // The events first: a loss's Disconnected must be acted on
            // before a reconnect opens the connection it would drop.
            self.pump(now);
            if self.probe.is_some_and(|t| t <= now) && self.ended.is_none() {
                self.check_trusted(now);
                self.pump(now);
            }
            if self.ended.is_none() && self.session.reconnect_at().is_some_and(|t| t <= now) && self.tcp.is_none() {
                self.reconnect(now);
                self.pump(now);
            }
            if self.status_due <= now && !self.options.authenticate_only {
                self.status.write();
                self.status_due = now + crate::status::REFRESH;
            }
        }
        let ended = self.ended.take().unwrap_or(Ok(Ended::ByUser));
        self.finish(ended)
    }

    /// Restores what the client changed and hands back how it ended.
    fn finish(mut self, ended: Result<Ended, String>) -> Result<Ended, String> {
        self.status.remove();
        // Ending on an error of ours with the tunnel up: log out first, so
        // the gateway does not hold the session for its cookie grace.
        let authenticated = matches!(ended, Ok(Ended::Authenticated { .. }));
        if matches!(self.session.phase(), Phase::Tunnel) && !authenticated {
            self.session.disconnect(Instant::now());
        }
        if !authenticated {
            while self.session.poll_tls(&mut self.tcp_out) {}
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut events = Events::with_capacity(8);
        while !self.tcp_out.is_empty() && self.tcp.is_some() && Instant::now() < deadline {
            self.flush_tcp(Instant::now());
            let _ = self.poll.poll(&mut events, Some(deadline.saturating_duration_since(Instant::now())));
        }
        if let Some(t) = self.tunnel.take() {
            remove_routes(&t);
            tracing::info!(interface = %t.name, "tunnel interface removed");
        }
        ended
    }

    fn connect_tcp(&mut self) -> Result<(), String> {
        let s = StdTcpStream::connect_timeout(&self.gateway, CONNECT_TIMEOUT)
            .map_err(|e| format!("connecting to {}: {e}", self.gateway))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut s = TcpStream::from_std(s);
        self.poll
            .registry()
            .register(&mut s, TCP, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| e.to_string())?;
        self.tcp = Some(s);
        self.tcp_out.clear();
        Ok(())
    }

    fn reconnect(&mut self, now: Instant) {
        let started = self.session.reconnect(now);
        match (started, self.connect_tcp()) {
            (Ok(()), Ok(())) => tracing::info!(gateway = %self.gateway, "reconnecting with the cookie"),
            (Ok(()), Err(e)) => {
                tracing::warn!(error = %e, "reconnect failed; trying again");
                self.session.handle_connection_lost(now);
            }
            (Err(e), _) => self.ended = Some(Err(format!("reconnect: {e:?}"))),
        }
    }

    fn drop_tcp(&mut self) {
        if let Some(mut s) = self.tcp.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        if let Some(mut u) = self.udp.take() {
            let _ = self.poll.registry().deregister(&mut u);
        }
        self.tcp_out.clear();
    }

    fn on_tcp(&mut self, now: Instant, readable: bool, writable: bool) {
        if writable {
            self.flush_tcp(now);
        }
        if !readable {
            return;
        }
        loop {
            let Some(s) = self.tcp.as_mut() else { return };
            match s.read(&mut self.buf) {
                Ok(0) => {
                    self.drop_tcp();
                    self.session.handle_tls_eof();
                    return;
                }
                Ok(n) => self.session.handle_tls(now, self.buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.connection_lost(now, &e),
            }
        }
    }

    /// The TCP connection failed: the session detaches (and reconnects) or ends.
    fn connection_lost(&mut self, now: Instant, e: &std::io::Error) {
        tracing::warn!(error = %e, "TLS connection lost");
        self.drop_tcp();
        self.session.handle_connection_lost(now);
    }

    fn flush_tcp(&mut self, now: Instant) {
        while !self.tcp_out.is_empty() {
            let Some(s) = self.tcp.as_mut() else { return };
            match s.write(&self.tcp_out) {
                Ok(n) => {
                    self.tcp_out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.connection_lost(now, &e),
            }
        }
    }

    fn on_udp(&mut self, now: Instant) {
        loop {
            let Some(u) = self.udp.as_ref() else { return };
            match u.recv(&mut self.buf) {
                Ok(n) => self.session.handle_datagram(now, self.buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // ICMP port unreachable and the like: DTLS's own timers decide.
                Err(_) => return,
            }
        }
    }

    fn on_tun(&mut self, now: Instant) {
        loop {
            let Some(t) = self.tunnel.as_mut() else { return };
            match t.file.read(&mut self.buf) {
                Ok(0) => return,
                Ok(n) => {
                    let packet = self.buf.get(..n).unwrap_or_default();
                    // Not connected (reconnecting) or too large: dropped, as
                    // a link drops what it cannot carry.
                    if self.session.send_packet(now, packet).is_ok() {
                        self.status.packets_out += 1;
                        self.status.bytes_out += n as u64;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.ended = Some(Err(format!("reading the TUN: {e}")));
                    return;
                }
            }
        }
    }

    /// After a network change: when a new connection to the gateway would
    /// leave from another address than the current one (the address went,
    /// or the route moved), the current one is as good as lost. Reconnect
    /// now with the cookie (same tunnel address, a new DTLS handshake from
    /// the new address) rather than wait for dead-peer detection.
    fn check_path(&mut self, now: Instant) {
        if !matches!(self.session.phase(), Phase::Tunnel | Phase::Connecting) {
            return;
        }
        let Some(local) = self.tcp.as_ref().and_then(|s| s.local_addr().ok()) else { return };
        let IpAddr::V4(gateway) = self.gateway.ip() else { return };
        let now_from = Netlink::open().and_then(|mut nl| nl.lookup(gateway)).ok().and_then(|l| l.source);
        if now_from.is_some_and(|s| IpAddr::V4(s) == local.ip()) {
            return;
        }
        match now_from {
            Some(new) => {
                tracing::warn!(was = %local.ip(), now = %new, "network changed: the gateway is reached from another address; reconnecting")
            }
            None => {
                tracing::warn!(was = %local.ip(), "network changed: no route to the gateway now; reconnecting when there is")
            }
        }
        self.drop_tcp();
        self.session.handle_connection_lost(now);
    }

    /// On the trusted network with the tunnel up: pause it (the gateway
    /// keeps the session) and take the TUN and routes away. Paused and no
    /// longer on it: bring the tunnel back with the cookie.
    fn check_trusted(&mut self, now: Instant) {
        self.probe = None;
        let Some(detector) = &self.trusted else { return };
        let paused = self.session.is_paused();
        let inside = detector.inside(self.tunnel.as_ref().map(|t| t.index));
        match (paused, inside) {
            (false, true) if self.session.phase() == Phase::Tunnel => {
                tracing::info!(
                    event = "paused",
                    reason_code = "trusted_network",
                    url = detector.url(),
                    "on the trusted network: tunnel paused"
                );
                self.session.pause(now, "trusted_network");
                self.probe = Some(now + PAUSED_PROBE_EVERY);
            }
            (true, false) => {
                tracing::info!(
                    event = "resumed",
                    url = detector.url(),
                    "left the trusted network: bringing the tunnel back"
                );
                self.session.resume(now);
            }
            (true, true) => self.probe = Some(now + PAUSED_PROBE_EVERY),
            _ => {}
        }
    }

    fn on_signal(&mut self, now: Instant) {
        let mut sink = [0u8; 64];
        while matches!(self.signals.read(&mut sink), Ok(n) if n > 0) {}
        if self.stopping {
            // A second signal: do not wait for the logout to be written.
            self.ended = Some(Ok(Ended::ByUser));
            return;
        }
        self.stopping = true;
        tracing::info!("stopping: logging out");
        match self.session.phase() {
            Phase::Tunnel => self.session.disconnect(now),
            _ => self.ended = Some(Ok(Ended::ByUser)),
        }
    }

    /// Acts on the session's events, then sends what it queued (the events
    /// first: after an `authenticate_only` login the CONNECT queued behind
    /// it must not leave).
    fn pump(&mut self, now: Instant) {
        while let Some(event) = self.session.poll_event() {
            self.on_event(now, event);
        }
        if matches!(self.ended, Some(Ok(Ended::Authenticated { .. }))) {
            return;
        }
        while self.session.poll_tls(&mut self.tcp_out) {}
        self.flush_tcp(now);
        while self.session.poll_datagram(&mut self.scratch) {
            if let Some(u) = self.udp.as_ref() {
                // A full socket buffer drops the datagram, as the network would.
                let _ = u.send(&self.scratch);
            }
            self.scratch.clear();
        }
        while let Some(event) = self.session.poll_event() {
            self.on_event(now, event);
        }
        if self.stopping && self.session.phase() == Phase::Closed && self.tcp_out.is_empty() {
            self.ended.get_or_insert(Ok(Ended::ByUser));
        }
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::LoggedIn if self.options.authenticate_only => {
                let cookie = self.session.cookie().map(|c| zeroize::Zeroizing::new(c.to_owned()));
                let fingerprint = self.session.server_certificate().as_deref().and_then(crate::trust::pin_of);
                self.ended = Some(match (cookie, fingerprint) {
                    (Some(cookie), Some(fingerprint)) => {
                        Ok(Ended::Authenticated { cookie, fingerprint, gateway: self.gateway })
                    }
                    _ => Err("logged in, but no cookie or no gateway certificate to show".to_owned()),
                });
            }
            Event::LoggedIn => tracing::info!("logged in"),
            Event::TunnelUp { address, mtu, dtls_port, .. } => {
                if self.tunnel.is_none() {
                    let config = self.session.tunnel().cloned();
                    match config.ok_or_else(|| "no tunnel configuration".to_owned()).and_then(|c| self.open_tunnel(&c))
                    {
                        Ok(t) => {
                            self.tunnel = Some(t);
                            if std::mem::take(&mut self.options.notify_up) {
                                println!("up");
                                let _ = std::io::Write::flush(&mut std::io::stdout());
                            }
                        }
                        Err(e) => {
                            self.session.disconnect(now);
                            self.ended = Some(Err(e));
                            return;
                        }
                    }
                }
                if self.trusted.is_none() && !self.options.no_trusted_network {
                    if let Some(t) = self.session.tunnel().and_then(|c| c.trusted.clone()) {
                        match Detector::new(&t) {
                            Ok(d) => self.trusted = Some(d),
                            Err(e) => tracing::warn!(error = %e, "the gateway's trusted network is unusable; ignored"),
                        }
                    }
                }
                if self.trusted.is_some() {
                    self.probe = Some(now);
                }
                let via = if self.options.dtls && dtls_port.is_some() { "CSTP, DTLS starting" } else { "CSTP" };
                tracing::info!(event = "tunnel_up", %address, mtu, via, "tunnel up");
                self.status.state = "tunnel".into();
                self.status.address = Some(address);
                self.status.channel = Some("cstp".into());
                self.status.cipher = None;
                self.status.since = Some(crate::status::now_unix());
                self.status_due = now;
                if let Some(port) = dtls_port {
                    self.open_udp(port);
                }
            }
            Event::DtlsUp { suite } => {
                tracing::info!(event = "dtls_up", ?suite, "DTLS up: packets go over DTLS");
                (self.status.channel, self.status.cipher) = (Some("dtls".into()), Some(format!("{suite:?}")));
                self.status_due = now;
            }
            Event::DtlsDown => {
                tracing::warn!(event = "dtls_down", "DTLS down: packets go over CSTP");
                (self.status.channel, self.status.cipher) = (Some("cstp".into()), None);
                self.status_due = now;
            }
            Event::Packet(p) => {
                self.status.packets_in += 1;
                self.status.bytes_in += p.len() as u64;
                if let Some(t) = self.tunnel.as_mut() {
                    // A full TUN queue drops the packet; TCP inside recovers.
                    let _ = t.file.write(&p);
                }
            }
            Event::DpdResponse(_) => {}
            Event::AuthFailed(message) => {
                self.ended = Some(Err(format!("login refused: {}", message.trim())));
            }
            Event::Disconnected(reason) => self.on_disconnected(now, reason),
        }
    }

    fn on_disconnected(&mut self, now: Instant, reason: DisconnectReason) {
        self.status.state = match reason {
            DisconnectReason::Paused(_) => "paused",
            _ => "reconnecting",
        }
        .into();
        (self.status.channel, self.status.cipher) = (None, None);
        self.status.last_teardown = Some(describe(&reason));
        self.status_due = now;
        // What the session wrote last (a logout's BYE) leaves before the
        // connection is dropped.
        while self.session.poll_tls(&mut self.tcp_out) {}
        self.flush_tcp(now);
        self.drop_tcp();
        if self.ended.is_some() {
            return;
        }
        if let DisconnectReason::Paused(_) = reason {
            if let Some(t) = self.tunnel.take() {
                remove_routes(&t);
            }
            return;
        }
        // A paused session whose cookie expired meanwhile: log in afresh.
        if matches!(reason, DisconnectReason::CookieRejected { .. }) && self.trusted.is_some() {
            match DeviceSession::new(self.config.clone()) {
                Ok(s) => {
                    tracing::info!("the paused session's cookie has expired: logging in again");
                    self.session = s;
                    if let Err(e) = self.connect_tcp() {
                        self.ended = Some(Err(e));
                    }
                    return;
                }
                Err(e) => {
                    self.ended = Some(Err(e.to_string()));
                    return;
                }
            }
        }
        if let Some(at) = self.session.reconnect_at() {
            let wait = at.saturating_duration_since(Instant::now());
            tracing::warn!(reason = %describe(&reason), ?wait, "connection lost; reconnecting with the cookie");
            return;
        }
        self.ended = Some(match reason {
            DisconnectReason::Logout if self.stopping => Ok(Ended::ByUser),
            DisconnectReason::AuthFailed => Err("login refused".to_owned()),
            DisconnectReason::Error(e) => Err(error_text(&e)),
            other => Ok(Ended::ByGateway(describe(&other))),
        });
    }

    fn open_udp(&mut self, port: u16) {
        if let Some(mut old) = self.udp.take() {
            let _ = self.poll.registry().deregister(&mut old);
        }
        let opened = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|s| s.connect((self.gateway.ip(), port)).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s));
        match opened {
            Ok(s) => {
                let mut s = UdpSocket::from_std(s);
                match self.poll.registry().register(&mut s, UDP, Interest::READABLE) {
                    Ok(()) => self.udp = Some(s),
                    Err(e) => tracing::warn!(error = %e, "no DTLS: cannot watch its socket"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "no DTLS: cannot open its socket; CSTP only"),
        }
    }

    /// Creates and configures the TUN and the routes of `config`.
    fn open_tunnel(&mut self, config: &TunnelConfig) -> Result<Tunnel, String> {
        let name = self.options.interface.clone();
        let file = match self.tun.take() {
            Some(f) => f,
            None => open_tun(&name)?,
        };
        let prefix = config.netmask.map_or(32, |m| u32::from(m).leading_ones() as u8);
        dataplane::tun::configure_interface(&name, config.address, prefix, config.mtu)
            .map_err(|e| format!("configuring {name}: {e}"))?;
        let index = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("{name} has no interface index"))?;
        let raw = file.as_raw_fd();
        self.poll.registry().register(&mut SourceFd(&raw), TUN, Interest::READABLE).map_err(|e| e.to_string())?;
        let mut tunnel = Tunnel { name, file, index, address: config.address, added: Vec::new(), apps: None };
        match crate::apps::effective(config.apps.as_deref(), &self.options.apps)? {
            None => tracing::info!("every app uses the tunnel"),
            Some(apps) => {
                tunnel.apps = Some(AppTunnel::start(&tunnel.name, &apps)?);
                tracing::info!(apps = %apps.join(","), interface = %tunnel.name, "per-app selection: only these apps use the tunnel; start one with `corridor app -- CMD`");
            }
        }
        if let Err(e) = add_routes(&mut tunnel, config, self.gateway) {
            remove_routes(&tunnel);
            return Err(e);
        }
        if !config.dns.is_empty() {
            let dns: Vec<String> = config.dns.iter().map(Ipv4Addr::to_string).collect();
            tracing::info!(dns = %dns.join(","), domain = config.default_domain.as_deref().unwrap_or(""), "DNS servers pushed (not configured by corridor connect)");
        }
        if let Some(b) = &config.banner {
            tracing::info!(banner = %b.trim(), "the gateway's banner");
        }
        tracing::info!(interface = %tunnel.name, address = %tunnel.address, prefix, mtu = config.mtu, "tunnel interface up");
        Ok(tunnel)
    }
}

fn describe(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::ByGateway(text) => format!("ended by the gateway: {}", text.trim()),
        DisconnectReason::ConnectRefused { status, reason } => format!("CONNECT refused ({status}): {reason}"),
        DisconnectReason::DpdTimeout => "the gateway stopped answering (dead-peer detection)".to_owned(),
        DisconnectReason::TlsClosed => "the TLS connection closed".to_owned(),
        DisconnectReason::CookieRejected { status, reason } => {
            format!("the gateway no longer knows this session ({status}): {reason}")
        }
        DisconnectReason::AddressChanged { previous, offered } => {
            format!("reconnect offered {offered} instead of {previous}")
        }
        DisconnectReason::ReconnectTimeout => "could not reconnect in time".to_owned(),
        DisconnectReason::Logout => "logged out".to_owned(),
        DisconnectReason::Paused(code) => format!("paused ({code})"),
        DisconnectReason::AuthFailed => "login refused".to_owned(),
        DisconnectReason::Error(e) => error_text(e),
    }
}

/// The error as a person reads it: rustls shows an application's own
/// certificate error (a pin mismatch) by its Debug form, so that one is
/// spelled out.
fn error_text(e: &device::DeviceError) -> String {
    use rustls::{CertificateError, Error};
    match e {
        device::DeviceError::Tls(Error::InvalidCertificate(CertificateError::Other(other))) => {
            format!("TLS: the gateway's certificate is refused: {}", other.0)
        }
        e => e.to_string(),
    }
}
