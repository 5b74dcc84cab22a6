//! What can end a session, and what a caller is told.

use core::fmt;
use std::net::Ipv4Addr;

use proto::auth::ServerAuthError;
use proto::connect::ConnectResponseError;
use proto::cstp::CstpError;
use proto::http_response::ResponseError;

/// A fatal problem: the session is over once one is reported (in
/// [`DisconnectReason::Error`]). Dropped input is counted in
/// [`Stats`](crate::Stats) instead.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceError {
    /// TLS failed (handshake, certificate, a bad record).
    Tls(rustls::Error),
    /// The gateway's HTTP response did not parse (§2.1).
    Http(ResponseError),
    /// The gateway's auth document is unusable (§2.4).
    AuthXml(ServerAuthError),
    /// The CONNECT answer is unusable (§3.2).
    Tunnel(ConnectResponseError),
    /// The CSTP stream broke framing (§4.1).
    Cstp(CstpError),
    /// The TLS exporter refused the DTLS PSK label (§5.3).
    Exporter(rustls::Error),
    /// The DTLS client configuration was refused.
    DtlsConfig(dtls::ConfigError),
    /// The gateway closed (or announced it would close) the connection while
    /// the flow needs another request on it; this session does not reconnect.
    ConnectionNotKept,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::Http(e) => write!(f, "HTTP: {e}"),
            Self::AuthXml(e) => write!(f, "auth XML: {e}"),
            Self::Tunnel(e) => write!(f, "{e}"),
            Self::Cstp(e) => write!(f, "CSTP: {e}"),
            Self::Exporter(e) => write!(f, "TLS exporter: {e}"),
            Self::DtlsConfig(e) => write!(f, "DTLS config: {e}"),
            Self::ConnectionNotKept => f.write_str("gateway closed the connection mid-flow"),
        }
    }
}

impl std::error::Error for DeviceError {}

/// Why the session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DisconnectReason {
    /// The gateway sent DISCONNECT or TERMINATE (§4.4), with its text.
    ByGateway(String),
    /// CONNECT answered with something other than `HTTP/1.1 200` (§3.2):
    /// 401 means the cookie was refused.
    ConnectRefused {
        status: u16,
        reason: String,
    },
    /// Nothing received on CSTP for twice the DPD interval (§6.1).
    DpdTimeout,
    /// The TLS stream ended (close_notify, EOF, or the caller reported the
    /// TCP connection lost).
    TlsClosed,
    /// A reconnect's CONNECT was answered 401 or 403: the gateway no longer
    /// knows the cookie (expired, logged out elsewhere, gateway restarted).
    /// The session is over; log in again with a new
    /// [`DeviceSession`](crate::DeviceSession) (§6.6).
    CookieRejected {
        status: u16,
        reason: String,
    },
    /// A reconnect was given another address than the tunnel had; like
    /// openconnect, the session ends rather than renumber (§3.2, §6.6).
    AddressChanged {
        previous: Ipv4Addr,
        offered: Ipv4Addr,
    },
    /// No reconnect succeeded within
    /// [`DeviceConfig::reconnect_timeout`](crate::DeviceConfig::reconnect_timeout).
    ReconnectTimeout,
    /// [`DeviceSession::disconnect`](crate::DeviceSession::disconnect).
    Logout,
    /// [`DeviceSession::pause`](crate::DeviceSession::pause), with its reason code.
    Paused(String),
    /// The login was refused; [`Event::AuthFailed`](crate::Event::AuthFailed)
    /// came just before with the gateway's message.
    AuthFailed,
    Error(DeviceError),
}

/// Which channel carried something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// CSTP frames inside TLS.
    Cstp,
    Dtls,
}

/// Why [`DeviceSession::send_packet`](crate::DeviceSession::send_packet)
/// refused. Copy and allocation-free: it is on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No tunnel yet, or it ended.
    NotConnected,
    /// Larger than a CSTP frame or DTLS record can carry.
    TooLarge,
    /// rustls' send buffer is full: drain [`poll_tls`](crate::DeviceSession::poll_tls).
    Backpressure,
}

/// Why [`DeviceSession::reconnect`](crate::DeviceSession::reconnect) did
/// not start an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum ReconnectError {
    /// The session is not in [`Phase::Detached`](crate::Phase::Detached):
    /// still connected, or over. Nothing changed.
    NotDetached,
    /// rustls refused to start a connection; the session is over (a
    /// [`Disconnected`](crate::Event::Disconnected) event follows).
    Tls(rustls::Error),
}

impl fmt::Display for ReconnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotDetached => f.write_str("the session is not waiting to reconnect"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for ReconnectError {}
