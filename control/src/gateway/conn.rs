//! One device TLS connection on the driver's side: bytes between the
//! socket and rustls. What the plaintext means is the core's business.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;

/// What one readiness event's reads found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ReadOutcome {
    /// TLS bytes arrived (the peer is alive, whether or not they held plaintext).
    pub(super) bytes: bool,
    /// The peer closed, or TLS failed: the connection is done once what
    /// arrived before has been handled.
    pub(super) closed: Option<&'static str>,
    /// The peer's TLS was bad (it costs ban points).
    pub(super) tls_failed: bool,
}

/// What reading hands to the core, in order.
#[derive(Debug)]
pub(super) enum Input<'a> {
    /// The TLS handshake just completed: before any plaintext, so the core
    /// knows the DTLS key and the certificate user when the first request
    /// arrives (with TLS 1.3 it may come in the same read as the client's
    /// Finished).
    Established(crate::core::TlsFacts),
    Plaintext(&'a [u8]),
}

#[derive(Debug)]
pub(super) struct TlsConn {
    pub(super) peer: SocketAddr,
    stream: TcpStream,
    pub(super) tls: rustls::ServerConnection,
    /// The core has been told what the handshake established.
    pub(super) established: bool,
    /// When the core asked for it to be closed once drained.
    pub(super) closing: Option<Instant>,
    /// Whether the core was last told the socket is full.
    pub(super) blocked: bool,
}

impl TlsConn {
    pub(super) fn new(
        stream: TcpStream,
        peer: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<Self, rustls::Error> {
        let tls = rustls::ServerConnection::new(config)?;
        Ok(Self { peer, stream, tls, established: false, closing: None, blocked: false })
    }

    pub(super) fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Reads everything the socket has (edge-triggered: until `WouldBlock`),
    /// handing each read's plaintext to `deliver` as it is decrypted, so no
    /// more than one read's worth is ever held here.
    pub(super) fn read(&mut self, deliver: &mut dyn FnMut(Input<'_>)) -> ReadOutcome {
        let mut out = ReadOutcome::default();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.tls.read_tls(&mut self.stream) {
                Ok(0) => {
                    out.closed = Some("peer closed the TCP connection");
                    return out;
                }
                Ok(_) => {
                    out.bytes = true;
                    if let Err(e) = self.tls.process_new_packets() {
                        tracing::debug!(peer = %self.peer, error = %e, "TLS error");
                        // rustls queued an alert; try to send it.
                        let _ = self.flush();
                        out.closed = Some("TLS error");
                        out.tls_failed = true;
                        return out;
                    }
                    if !self.established && !self.tls.is_handshaking() {
                        self.established = true;
                        deliver(Input::Established(crate::tls::facts(&self.tls)));
                    }
                    loop {
                        match self.tls.reader().read(&mut chunk) {
                            Ok(0) => {
                                out.closed = Some("peer sent close_notify");
                                return out;
                            }
                            Ok(n) => deliver(Input::Plaintext(chunk.get(..n).unwrap_or_default())),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => {
                                out.closed = Some("TLS stream ended uncleanly");
                                return out;
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    out.closed = Some("socket error");
                    return out;
                }
            }
        }
    }

    /// Queues `data` as its own TLS record(s) (see [`crate::core::Effect::Write`]).
    pub(super) fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.tls.writer().write_all(data)
    }

    /// Writes queued TLS records to the socket until done or `WouldBlock`;
    /// `Ok(true)` when the socket is full with records still queued.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Whether everything queued went out and the connection may be dropped.
    pub(super) fn drained(&self) -> bool {
        !self.tls.wants_write()
    }
}
