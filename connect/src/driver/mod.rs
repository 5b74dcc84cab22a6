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

use device::{DeviceConfig, DeviceSession, Phase};
use mio::net::{TcpStream, UdpSocket, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;

use crate::netlink::Monitor;
use crate::status::Status;
use crate::trusted::Detector;
use crate::tunnel::{open_tun, remove_routes, Tunnel};
use crate::{Ended, Options};

mod events;

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
    /// Per-app machinery kept through a pause (its cgroup and apps).
    suspended_apps: Option<crate::apps::AppTunnel>,
    /// Coming back from a pause: a refused cookie then means it expired
    /// meanwhile, and the client logs in afresh rather than end.
    resuming: bool,
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
        if !options.authenticate_only {
            crate::dns::restore_leftover(&options.interface);
            if let Some(command) = &options.script {
                // Before the TUN exists, as openconnect does (the script
                // may load the tun module or make /dev/net/tun).
                crate::script::Script::new(command).run("pre-init")?;
            }
        }
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
            suspended_apps: None,
            resuming: false,
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
        if let Some(a) = self.suspended_apps.take() {
            a.stop();
        }
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
}
