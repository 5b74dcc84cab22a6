//! [`DeviceSession`]: login, CONNECT, CSTP and DTLS for one device.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtls::CipherSuite;
use proto::auth;
use proto::connect::TunnelConfig;
use proto::cstp::{self, Deframer, PacketType};
use rustls::pki_types::ServerName;
use zeroize::Zeroizing;

use crate::error::{Channel, DeviceError, DisconnectReason, ReconnectError, SendError};
use crate::liveness::{Due, Liveness};
use crate::reconnect::Backoff;

/// The label of the DTLS PSK exporter (§5.3).
const PSK_LABEL: &[u8] = b"EXPORTER-openconnect-psk";

/// The PSK identity openconnect sends (§5.3).
const PSK_IDENTITY: &[u8] = b"psk";

/// `X-CSTP-Hostname`: a simulated device has no host name of its own.
const HOSTNAME: &str = "device";

/// The logout payload of a client DISCONNECT (§4.4).
const LOGOUT: &[u8] = b"\xb0Client logged out";

/// How a device logs in and what it asks for.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// rustls on the aws-lc-rs provider, TLS 1.2/1.3, trusting the gateway;
    /// built `with_client_auth_cert` for certificate login (§2.7).
    pub tls: Arc<rustls::ClientConfig>,
    /// Checked against the gateway certificate (SNI for names).
    pub server_name: ServerName<'static>,
    /// `Host:` and the `group-access` URL (`https://{host}/`).
    pub host: String,
    /// Answers text inputs; empty: the device has none to give.
    pub username: String,
    /// Answers password inputs; empty: the device has none to give.
    pub password: Zeroizing<String>,
    pub user_agent: String,
    /// `X-CSTP-Base-MTU` (§7.1).
    pub base_mtu: u16,
    /// Offer PSK-NEGOTIATE DTLS on CONNECT.
    pub dtls: bool,
    /// Asked back with `X-CSTP-Address` on the first CONNECT (an address
    /// held by an earlier session, §6.6); a reconnect asks for the
    /// tunnel's own address without it.
    pub previous_address: Option<Ipv4Addr>,
    /// Wait before a new DTLS handshake after one failed or died (§8: 60 s).
    pub dtls_retry: Duration,
    /// How long after losing the TLS connection the session keeps trying
    /// to reconnect with its cookie (openconnect's `--reconnect-timeout`,
    /// 300 s; §6.6). Zero: a lost connection ends the session.
    pub reconnect_timeout: Duration,
    /// The wait after the first failed reconnect attempt; it grows by this
    /// much per failure, up to ten times it (openconnect: 10 s).
    pub reconnect_interval: Duration,
}

impl DeviceConfig {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
        host: &str,
        username: &str,
        password: &str,
    ) -> Self {
        Self {
            tls,
            server_name,
            host: host.to_string(),
            username: username.to_string(),
            password: Zeroizing::new(password.to_string()),
            user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
            base_mtu: 1500,
            dtls: true,
            previous_address: None,
            dtls_retry: Duration::from_secs(60),
            reconnect_timeout: Duration::from_secs(300),
            reconnect_interval: Duration::from_secs(10),
        }
    }

    /// A device that logs in with the client certificate in `tls` alone
    /// (§2.7): `tls` must be built `with_client_auth_cert`. A gateway that
    /// accepts the certificate answers the `init` POST with success and the
    /// cookie at once (ocserv `auth = "certificate"`, corridor with
    /// `client_ca`); one that shows a form instead fails the login with
    /// [`Event::AuthFailed`], as there is no user name or password to give.
    /// For certificate *and* password, use [`new`](Self::new) with such a
    /// `tls`.
    pub fn with_certificate(tls: Arc<rustls::ClientConfig>, server_name: ServerName<'static>, host: &str) -> Self {
        Self::new(tls, server_name, host, "", "")
    }
}

/// Something the caller should know about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The gateway accepted the credentials; CONNECT is on its way.
    LoggedIn,
    /// CONNECT succeeded; packets can flow over CSTP. Comes again after
    /// each successful [`reconnect`](DeviceSession::reconnect), with the
    /// same address and a fresh App-ID and DTLS port to use.
    TunnelUp {
        address: Ipv4Addr,
        netmask: Option<Ipv4Addr>,
        mtu: u16,
        /// The UDP port for DTLS, on the gateway's address; `None` when DTLS
        /// was not offered (or not asked for).
        dtls_port: Option<u16>,
        app_id: Option<Vec<u8>>,
    },
    /// The DTLS handshake completed; packets now go over DTLS.
    DtlsUp { suite: CipherSuite },
    /// DTLS failed or died; packets go over CSTP until a retry succeeds.
    DtlsDown,
    /// An IP packet from the gateway.
    Packet(Vec<u8>),
    /// The answer to a DPD request we sent.
    DpdResponse(Channel),
    /// The login was refused: the gateway's message.
    AuthFailed(String),
    /// The TLS connection ended. If [`DeviceSession::reconnect_at`] is now
    /// `Some` ([`Phase::Detached`]), the session outlived it: drop the TCP
    /// and UDP sockets and call [`DeviceSession::reconnect`] on a new TCP
    /// connection (§6.6). Otherwise ([`Phase::Closed`]) the session is over
    /// and no more events follow.
    Disconnected(DisconnectReason),
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// POSTing the auth documents.
    Authenticating,
    /// CONNECT sent, waiting for its answer.
    Connecting,
    /// CSTP up (DTLS may be too).
    Tunnel,
    /// The TLS connection was lost; the cookie and the address are kept
    /// for [`DeviceSession::reconnect`] (§6.6).
    Detached,
    Closed,
}

/// Input that was dropped rather than failing the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub cstp_frames_in: u64,
    pub cstp_frames_out: u64,
    pub dtls_records_in: u64,
    pub dtls_records_out: u64,
    /// Frames or records of a type a device does not handle (COMPRESSED,
    /// unknown codes) and empty DTLS records.
    pub dropped_unknown: u64,
    /// Datagrams that arrived while no DTLS connection existed.
    pub dropped_datagrams: u64,
    pub dtls_handshakes: u64,
    /// IP packets delivered, by the channel that carried them.
    pub cstp_packets_in: u64,
    pub dtls_packets_in: u64,
    /// Reconnects started, and those that brought the tunnel back (§6.6).
    pub reconnect_attempts: u64,
    pub reconnects: u64,
}

enum Dtls {
    /// Not offered, not asked for, or the session is over.
    Off,
    /// Waiting before the next handshake attempt.
    Retry {
        at: Instant,
    },
    Handshaking(Box<dtls::Connection>),
    Up {
        conn: Box<dtls::Connection>,
        liveness: Liveness,
    },
}

/// Auth-phase memory: cookies collected so far and what was answered.
#[derive(Default)]
struct Login {
    /// Every cookie the gateway set, replayed during login (ocserv ties a
    /// two-step login together with `webvpncontext`, Appendix A.1).
    cookies: Vec<(String, String)>,
    password_sent: bool,
}

/// One simulated device. See the crate documentation for the call order.
pub struct DeviceSession {
    config: DeviceConfig,
    tls: rustls::ClientConnection,
    phase: Phase,
    login: Login,
    /// The `webvpn` cookie (a bearer token).
    cookie: Option<Zeroizing<String>>,
    /// Plaintext read during the HTTP phases, not yet a whole response.
    http_in: Vec<u8>,
    tunnel: Option<TunnelConfig>,
    deframer: Deframer,
    cstp: Option<Liveness>,
    dtls: Dtls,
    events: VecDeque<Event>,
    /// Reused for framing outgoing packets.
    scratch: Vec<u8>,
    stats: Stats,
    /// The current outage: `Some` from a lost connection until a reconnect
    /// brings the tunnel back.
    reconnect: Option<Backoff>,
    /// Paused by the caller ([`pause`](Self::pause)): detached, and no
    /// reconnect until [`resume`](Self::resume).
    paused: bool,
    /// The latest `now` handed in, for [`handle_tls_eof`](Self::handle_tls_eof).
    last_now: Option<Instant>,
}

impl core::fmt::Debug for DeviceSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceSession")
            .field("host", &self.config.host)
            .field("user", &self.config.username)
            .field("phase", &self.phase)
            .field("tunnel", &self.tunnel)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl DeviceSession {
    /// Starts the TLS handshake with the `init` POST queued behind it (§2.3).
    pub fn new(config: DeviceConfig) -> Result<Self, DeviceError> {
        let mut s = Self::unstarted(config)?;
        let init = auth::init_xml(&format!("https://{}/", s.config.host));
        s.post("/", init.as_bytes())?;
        Ok(s)
    }

    /// Starts with the `webvpn` cookie of a login made earlier (the
    /// two-step flow of openconnect's `--authenticate` then
    /// `--cookie-on-stdin`): the TLS handshake with CONNECT queued behind
    /// it, no login (§3.1). A gateway that no longer knows the cookie
    /// answers 401: [`DisconnectReason::ConnectRefused`].
    pub fn with_cookie(config: DeviceConfig, cookie: &str) -> Result<Self, DeviceError> {
        let mut s = Self::unstarted(config)?;
        let cookie = Zeroizing::new(cookie.to_owned());
        s.cookie = Some(cookie.clone());
        s.phase = Phase::Connecting;
        s.send_connect(&cookie, s.config.previous_address);
        Ok(s)
    }

    /// The `webvpn` cookie, once the login gave one: a bearer token that
    /// reconnects this session (what `--authenticate` prints).
    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref().map(String::as_str)
    }

    /// The certificate the gateway presented, once the TLS handshake is done.
    pub fn server_certificate(&self) -> Option<rustls::pki_types::CertificateDer<'static>> {
        self.tls.peer_certificates().and_then(|c| c.first()).map(|c| c.clone().into_owned())
    }

    fn unstarted(config: DeviceConfig) -> Result<Self, DeviceError> {
        let tls =
            rustls::ClientConnection::new(config.tls.clone(), config.server_name.clone()).map_err(DeviceError::Tls)?;
        Ok(Self {
            config,
            tls,
            phase: Phase::Authenticating,
            login: Login::default(),
            cookie: None,
            http_in: Vec::new(),
            tunnel: None,
            deframer: Deframer::new(),
            cstp: None,
            dtls: Dtls::Off,
            events: VecDeque::new(),
            scratch: Vec::new(),
            stats: Stats::default(),
            reconnect: None,
            paused: false,
            last_now: None,
        })
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// What CONNECT configured, once the tunnel is up (while detached: what
    /// the lost connection had).
    pub fn tunnel(&self) -> Option<&TunnelConfig> {
        self.tunnel.as_ref()
    }

    /// While [`Phase::Detached`]: when to open the next TCP connection and
    /// call [`reconnect`](Self::reconnect) (at once after a loss, then
    /// backing off after failed attempts). `None` in every other phase.
    pub fn reconnect_at(&self) -> Option<Instant> {
        match (self.phase, &self.reconnect) {
            (Phase::Detached, Some(b)) if !self.paused => Some(b.next_attempt()),
            _ => None,
        }
    }

    /// Starts a reconnect (§6.6): forgets the lost TLS connection and queues
    /// a new handshake with, behind it, CONNECT carrying the `webvpn` cookie
    /// and the tunnel's address in `X-CSTP-Address`; no login. Connect TCP
    /// to the gateway and drive the session as at the start. It ends in
    /// [`Event::TunnelUp`] (same address; DTLS follows with a key from the
    /// new connection's exporter), or [`Event::Disconnected`] again: a
    /// failed attempt ([`reconnect_at`](Self::reconnect_at) says when to
    /// try next), [`DisconnectReason::CookieRejected`] (log in again), or
    /// [`DisconnectReason::ReconnectTimeout`].
    pub fn reconnect(&mut self, now: Instant) -> Result<(), ReconnectError> {
        if self.phase != Phase::Detached || self.reconnect.is_none() {
            return Err(ReconnectError::NotDetached);
        }
        let Some(cookie) = self.cookie.clone() else {
            return Err(ReconnectError::NotDetached);
        };
        self.last_now = Some(now);
        self.tls = match rustls::ClientConnection::new(self.config.tls.clone(), self.config.server_name.clone()) {
            Ok(tls) => tls,
            Err(e) => {
                self.fail(DeviceError::Tls(e.clone()));
                return Err(ReconnectError::Tls(e));
            }
        };
        self.stats.reconnect_attempts += 1;
        self.phase = Phase::Connecting;
        let previous_address = self.tunnel.as_ref().map(|t| t.address).or(self.config.previous_address);
        self.send_connect(&cookie, previous_address);
        Ok(())
    }

    pub fn is_dtls_up(&self) -> bool {
        matches!(self.dtls, Dtls::Up { .. })
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The DTLS connection's own counters, while one exists.
    pub fn dtls_stats(&self) -> Option<dtls::Stats> {
        match &self.dtls {
            Dtls::Handshaking(c) | Dtls::Up { conn: c, .. } => Some(*c.stats()),
            Dtls::Off | Dtls::Retry { .. } => None,
        }
    }

    /// Bytes read from the TCP socket.
    pub fn handle_tls(&mut self, now: Instant, mut bytes: &[u8]) {
        self.last_now = Some(now);
        while !bytes.is_empty() && self.on_connection() {
            match self.tls.read_tls(&mut bytes) {
                Ok(0) => break,
                Ok(_) => {}
                // rustls' own buffer is full: process and try again.
                Err(e) if e.kind() == ErrorKind::Other => {}
                Err(_) => break,
            }
            if let Err(e) = self.tls.process_new_packets() {
                // What came before the failing record still counts: ocserv
                // answers an unknown cookie with `401` and, right behind it,
                // a fatal access_denied alert; both often arrive in one read.
                self.drain_buffered_plaintext(now);
                if self.on_connection() {
                    self.connection_lost(now, DisconnectReason::Error(DeviceError::Tls(e)));
                }
                return;
            }
            self.drain_plaintext(now);
        }
    }

    /// The TCP connection reached EOF. Dated by the latest `now` handed
    /// in; [`handle_connection_lost`](Self::handle_connection_lost) takes
    /// the time itself.
    pub fn handle_tls_eof(&mut self) {
        match self.last_now {
            Some(now) => self.handle_connection_lost(now),
            None => self.close(DisconnectReason::TlsClosed),
        }
    }

    /// The TCP connection is gone at `now`: EOF, reset, a failed connect,
    /// or dropped by the caller. While the tunnel is up (or a CONNECT is
    /// pending) this detaches the session for a reconnect (§6.6);
    /// otherwise it ends it.
    pub fn handle_connection_lost(&mut self, now: Instant) {
        self.last_now = Some(now);
        if self.on_connection() {
            self.connection_lost(now, DisconnectReason::TlsClosed);
        }
    }

    /// TLS bytes to write to the TCP socket, appended to `out`; `false`
    /// when there are none.
    pub fn poll_tls(&mut self, out: &mut Vec<u8>) -> bool {
        let before = out.len();
        while self.tls.wants_write() {
            if self.tls.write_tls(out).is_err() {
                break;
            }
        }
        out.len() > before
    }

    /// One UDP datagram from the gateway's DTLS port.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        match &mut self.dtls {
            Dtls::Handshaking(conn) | Dtls::Up { conn, .. } => conn.handle_datagram(now, datagram),
            Dtls::Off | Dtls::Retry { .. } => {
                self.stats.dropped_datagrams += 1;
                return;
            }
        }
        self.drain_dtls(now);
    }

    /// The next datagram to send to the gateway's DTLS port, written into
    /// `out` (cleared first); `false` when there is none.
    pub fn poll_datagram(&mut self, out: &mut Vec<u8>) -> bool {
        match &mut self.dtls {
            Dtls::Handshaking(conn) | Dtls::Up { conn, .. } => conn.poll_transmit(out),
            Dtls::Off | Dtls::Retry { .. } => false,
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.phase, &self.reconnect) {
            // Past it, an outage ends the session (a pending attempt too).
            (Phase::Detached | Phase::Connecting, Some(b)) => return Some(b.deadline()),
            (Phase::Tunnel, _) => {}
            _ => return None,
        }
        let cstp = self.cstp.as_ref().and_then(Liveness::next_deadline);
        let dtls = match &self.dtls {
            Dtls::Off => None,
            Dtls::Retry { at } => Some(*at),
            Dtls::Handshaking(conn) => conn.poll_timeout(),
            Dtls::Up { conn, liveness } => [conn.poll_timeout(), liveness.next_deadline()].into_iter().flatten().min(),
        };
        [cstp, dtls].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        if let Some(b) = &self.reconnect {
            if matches!(self.phase, Phase::Detached | Phase::Connecting) && now >= b.deadline() {
                return self.close(DisconnectReason::ReconnectTimeout);
            }
        }
        if self.phase != Phase::Tunnel {
            return;
        }
        let due = self.cstp.as_ref().map_or(Due::Nothing, |l| l.due(now));
        match due {
            Due::Nothing => {}
            Due::DpdRequest => {
                self.write_frame(now, PacketType::DPD_REQ, &[]);
                if let Some(l) = self.cstp.as_mut() {
                    l.dpd_sent(now);
                }
            }
            Due::Keepalive => {
                self.write_frame(now, PacketType::KEEPALIVE, &[]);
            }
            // §6.1: a dead CSTP channel means reconnecting (§6.6).
            Due::Dead => return self.connection_lost(now, DisconnectReason::DpdTimeout),
        }
        match &mut self.dtls {
            Dtls::Off => {}
            Dtls::Retry { at } => {
                if now >= *at {
                    self.start_dtls(now);
                }
            }
            Dtls::Handshaking(conn) => conn.handle_timeout(now),
            Dtls::Up { conn, liveness } => {
                conn.handle_timeout(now);
                match liveness.due(now) {
                    Due::Nothing => {}
                    Due::DpdRequest => {
                        let _ = conn.send(&[PacketType::DPD_REQ.0]);
                        liveness.dpd_sent(now);
                    }
                    Due::Keepalive => {
                        let _ = conn.send(&[PacketType::KEEPALIVE.0]);
                        liveness.sent(now);
                    }
                    // §6.1: a dead DTLS channel falls back to CSTP and retries.
                    Due::Dead => self.dtls_down(now),
                }
            }
        }
        self.drain_dtls(now);
    }

    /// Sends one IP packet: over DTLS when it is up (type byte 0x00 + the
    /// packet in one record, §5.1), else as a CSTP DATA frame (§4.3).
    pub fn send_packet(&mut self, now: Instant, packet: &[u8]) -> Result<Channel, SendError> {
        if self.phase != Phase::Tunnel {
            return Err(SendError::NotConnected);
        }
        if let Dtls::Up { conn, liveness } = &mut self.dtls {
            self.scratch.clear();
            self.scratch.push(PacketType::DATA.0);
            self.scratch.extend_from_slice(packet);
            match conn.send(&self.scratch) {
                Ok(()) => {
                    liveness.sent(now);
                    self.stats.dtls_records_out += 1;
                    return Ok(Channel::Dtls);
                }
                Err(dtls::SendError::TooLong) => return Err(SendError::TooLarge),
                // Closed under us: the next drain reports it; use CSTP now.
                Err(dtls::SendError::NotConnected | dtls::SendError::Closed) => {}
            }
        }
        if packet.len() > cstp::MAX_PAYLOAD {
            return Err(SendError::TooLarge);
        }
        if self.write_frame(now, PacketType::DATA, packet) {
            Ok(Channel::Cstp)
        } else {
            Err(SendError::Backpressure)
        }
    }

    /// Logs out: DISCONNECT with the logout code (§4.4), close_notify on
    /// both channels.
    pub fn disconnect(&mut self, now: Instant) {
        if self.phase == Phase::Tunnel {
            self.write_frame(now, PacketType::DISCONNECT, LOGOUT);
        }
        self.close(DisconnectReason::Logout);
    }

    /// Whether bytes of the current TLS connection still mean something.
    fn on_connection(&self) -> bool {
        matches!(self.phase, Phase::Authenticating | Phase::Connecting | Phase::Tunnel)
    }

    /// The TLS connection is gone. The session outlives it, detached, when
    /// it holds a cookie, was connecting or tunnelling, and may reconnect
    /// (§6.6); DTLS goes too, as its key came from that connection (§5.3).
    fn connection_lost(&mut self, now: Instant, reason: DisconnectReason) {
        let eligible = matches!(self.phase, Phase::Connecting | Phase::Tunnel)
            && self.cookie.is_some()
            && !self.config.reconnect_timeout.is_zero();
        if !eligible {
            return self.close(reason);
        }
        let go_on = match self.reconnect.as_mut() {
            Some(b) => b.attempt_failed(now),
            None => {
                self.reconnect = Some(Backoff::new(now, self.config.reconnect_timeout, self.config.reconnect_interval));
                true
            }
        };
        if !go_on {
            return self.close(DisconnectReason::ReconnectTimeout);
        }
        self.detach();
        self.events.push_back(Event::Disconnected(reason));
    }

    /// Forgets the connection (and DTLS over it), keeping the cookie and
    /// the tunnel's configuration.
    fn detach(&mut self) {
        self.phase = Phase::Detached;
        if let Dtls::Handshaking(conn) | Dtls::Up { conn, .. } = &mut self.dtls {
            conn.close();
        }
        self.dtls = Dtls::Off;
        self.cstp = None;
        self.deframer = Deframer::new();
        self.http_in.clear();
    }

    fn close(&mut self, reason: DisconnectReason) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.reconnect = None;
        if let Dtls::Handshaking(conn) | Dtls::Up { conn, .. } = &mut self.dtls {
            conn.close();
        }
        self.tls.send_close_notify();
        self.events.push_back(Event::Disconnected(reason));
    }

    fn fail(&mut self, e: DeviceError) {
        self.close(DisconnectReason::Error(e));
    }

    /// One CSTP frame in one TLS record (§4.3). `false` if rustls' buffer
    /// refused it.
    fn write_frame(&mut self, now: Instant, t: PacketType, payload: &[u8]) -> bool {
        self.scratch.clear();
        if cstp::write_frame(&mut self.scratch, t, payload).is_err() {
            return false;
        }
        // One `write` call per frame: rustls makes one record of it.
        let ok = matches!(self.tls.writer().write(&self.scratch), Ok(n) if n == self.scratch.len());
        if ok {
            self.stats.cstp_frames_out += 1;
            if let Some(l) = self.cstp.as_mut() {
                l.sent(now);
            }
        }
        ok
    }

    fn drain_frames(&mut self, now: Instant) {
        while self.phase == Phase::Tunnel {
            let frame = match self.deframer.next_frame() {
                None => return,
                Some(Ok(f)) => f,
                Some(Err(e)) => return self.fail(DeviceError::Cstp(e)),
            };
            self.stats.cstp_frames_in += 1;
            if let Some(l) = self.cstp.as_mut() {
                l.received(now);
            }
            match frame.packet_type {
                PacketType::DATA => {
                    self.stats.cstp_packets_in += 1;
                    self.events.push_back(Event::Packet(frame.payload));
                }
                PacketType::DPD_REQ => {
                    self.write_frame(now, PacketType::DPD_RESP, &frame.payload);
                }
                PacketType::DPD_RESP => self.events.push_back(Event::DpdResponse(Channel::Cstp)),
                PacketType::KEEPALIVE => {}
                PacketType::DISCONNECT | PacketType::TERMINATE => {
                    let text = String::from_utf8_lossy(&frame.payload).into_owned();
                    self.close(DisconnectReason::ByGateway(text));
                }
                _ => self.stats.dropped_unknown += 1,
            }
        }
    }
}

mod channel;
mod http;
mod pause;

#[cfg(test)]
mod tests;
