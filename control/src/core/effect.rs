//! What goes into the control core besides bytes, and what comes out of it.

use std::net::{Ipv4Addr, SocketAddr};

use proto::grant::SessionId;
use zeroize::Zeroizing;

use crate::session::{EndReason, Traffic};

/// A device's TLS connection, as the driver names it. The core never sees
/// the socket or the TLS state behind it, only the plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub usize);

impl core::fmt::Display for ConnId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// One password check: the connection that asked, and which of its checks
/// this is (a connection may log in again after a failure, and only the
/// verdict of its latest check counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckId {
    pub conn: ConnId,
    pub seq: u64,
}

/// What a password check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The password opens the account; `group` is the one the account names.
    Accepted {
        group: Option<String>,
    },
    Rejected,
    /// No verdict: the verifiers were full, stopped, or dropped the check.
    /// Not a wrong password: it does not count against
    /// `max_login_attempts`, and the device is asked again.
    Busy,
}

/// What the TLS handshake of a connection established, read by the driver
/// once it completes ([`crate::tls::facts`]).
#[derive(Clone, Default)]
pub struct TlsFacts {
    /// The OpenConnect DTLS key: the TLS exporter (openconnect-protocol.md §5.3).
    pub dtls_psk: Option<Zeroizing<Vec<u8>>>,
    /// The user a verified client certificate names (its subject CN).
    pub certificate_user: Option<String>,
}

impl core::fmt::Debug for TlsFacts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsFacts")
            .field("dtls_psk", &self.dtls_psk.as_ref().map(|_| "<32 bytes>"))
            .field("certificate_user", &self.certificate_user)
            .finish()
    }
}

/// What the core asks the driver to do, drained with
/// [`Core::poll_effect`](super::Core::poll_effect) after every call into it.
#[derive(Debug)]
pub enum Effect {
    /// Queue `bytes` on the connection as their own TLS record(s). A CSTP
    /// frame must be exactly one record: openconnect drops records holding
    /// two frames (openconnect-protocol.md §4.3), so never coalesce. DATA
    /// frames for a connection reported blocked are dropped by the core
    /// before they get here (`cstp_dropped_blocked`).
    Write { conn: ConnId, bytes: Vec<u8> },
    /// Flush what is queued, then close. The core has forgotten the
    /// connection already; whatever else arrives on it is ignored.
    Close { conn: ConnId, reason: &'static str },
    /// Check a password off the control thread; answer with
    /// [`Core::handle_verdict`](super::Core::handle_verdict).
    CheckPassword { check: CheckId, user: String, password: Zeroizing<String> },
    /// Tell relay link `link` that no session has the App-ID of its flow.
    RefuseFlow { link: usize, flow: u64 },
    /// A cluster cookie ended for good here: tell every relay link
    /// ([`proto::relay::Frame::Revoke`]), so the other nodes refuse it
    /// until `expires` (Unix seconds), and tell relays that link up later.
    RevokeCookie { tag: proto::relay::RevocationTag, expires: u64 },
    /// A session ended: for the log (and, later, accounting).
    SessionEnded(SessionEnd),
}

/// The record of a session that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    pub session: SessionId,
    pub user: String,
    pub group: String,
    pub address: Ipv4Addr,
    /// Where its latest CONNECT came from (the device, as the relay
    /// reports it when relayed); none when it never connected.
    pub peer: Option<std::net::SocketAddr>,
    pub reason: EndReason,
    pub traffic: Traffic,
}

/// A relay's request to bind a UDP port for a device's DTLS flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRequest {
    pub link: usize,
    pub flow: u64,
    /// The relay's port for this flow.
    pub relay: SocketAddr,
    pub nonce: proto::relay::Nonce,
    pub app_id: Vec<u8>,
    pub device: SocketAddr,
}
