//! One TLS connection from a device: bytes between the socket and rustls,
//! and which phase of the protocol it is in. What a request *means* is
//! decided in `gateway.rs`; this room only moves bytes.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Token;
use proto::cstp::Deframer;
use proto::grant::SessionId;

use crate::verifier::PendingCheck;

/// Plaintext we hold for a connection that has not formed a request yet:
/// a little above the HTTP parser's own head + body limits.
pub const MAX_PENDING_PLAINTEXT: usize = 96 * 1024;

/// What the connection is doing.
#[derive(Debug)]
pub enum Phase {
    /// HTTP: login and CONNECT.
    Http,
    /// After CONNECT: CSTP frames for this session.
    Tunnel { session: SessionId, deframer: Deframer },
}

#[derive(Debug)]
pub struct TlsConn {
    pub token: Token,
    pub peer: SocketAddr,
    stream: TcpStream,
    pub tls: rustls::ServerConnection,
    /// Decrypted bytes not consumed yet (HTTP phase).
    pub plaintext: Vec<u8>,
    pub phase: Phase,
    pub opened: Instant,
    pub last_rx: Instant,
    /// Close once everything queued has been written.
    pub closing: bool,
    pub login_failures: u32,
    /// A login whose password a verifier thread is checking. While it is
    /// out, requests that arrive wait in `plaintext`; dropping the
    /// connection abandons the check.
    pub check: Option<PendingCheck>,
    /// The socket refused more bytes; DATA frames are dropped until it drains.
    pub blocked: bool,
    /// The relay link this connection came through (`None`: direct).
    pub via: Option<crate::relay_link::RelayRoute>,
}

/// What reading found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Keep going (maybe new plaintext).
    Open,
    /// The peer closed, or TLS failed; the connection is done.
    Closed(&'static str),
}

impl TlsConn {
    pub fn new(
        token: Token,
        stream: TcpStream,
        peer: SocketAddr,
        config: Arc<rustls::ServerConfig>,
        now: Instant,
    ) -> Result<Self, rustls::Error> {
        let tls = rustls::ServerConnection::new(config)?;
        Ok(Self {
            token,
            peer,
            stream,
            tls,
            plaintext: Vec::new(),
            phase: Phase::Http,
            opened: now,
            last_rx: now,
            closing: false,
            login_failures: 0,
            check: None,
            blocked: false,
            via: None,
        })
    }

    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Reads everything the socket has, decrypts it, and appends the
    /// plaintext (edge-triggered: read until `WouldBlock`).
    pub fn read(&mut self, now: Instant) -> ReadOutcome {
        loop {
            match self.tls.read_tls(&mut self.stream) {
                Ok(0) => return ReadOutcome::Closed("peer closed the TCP connection"),
                Ok(_) => {
                    self.last_rx = now;
                    if let Err(e) = self.tls.process_new_packets() {
                        tracing::debug!(peer = %self.peer, error = %e, "TLS error");
                        // rustls queued an alert; try to send it.
                        let _ = self.flush();
                        return ReadOutcome::Closed("TLS error");
                    }
                    let mut chunk = [0u8; 16 * 1024];
                    loop {
                        match self.tls.reader().read(&mut chunk) {
                            Ok(0) => return ReadOutcome::Closed("peer sent close_notify"),
                            Ok(n) => self.plaintext.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => return ReadOutcome::Closed("TLS stream ended uncleanly"),
                        }
                    }
                    if self.plaintext.len() > MAX_PENDING_PLAINTEXT && matches!(self.phase, Phase::Http) {
                        return ReadOutcome::Closed("request too large");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Closed("socket error"),
            }
        }
    }

    /// Queues `data` as its own TLS record(s). A CSTP frame (≤ 16 KiB) is
    /// exactly one record: openconnect drops records holding two frames
    /// (openconnect-protocol.md §4.3), so never coalesce writes.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.tls.writer().write_all(data)
    }

    /// Writes queued TLS records to the socket until done or `WouldBlock`.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.blocked = false;
        Ok(())
    }

    pub fn session(&self) -> Option<SessionId> {
        match &self.phase {
            Phase::Tunnel { session, .. } => Some(*session),
            Phase::Http => None,
        }
    }

    /// Whether everything queued went out and the connection may be dropped.
    pub fn drained(&self) -> bool {
        !self.tls.wants_write()
    }
}
