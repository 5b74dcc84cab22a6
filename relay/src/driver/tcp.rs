//! TCP for the core: accepting on both listeners, reading connections the
//! core wants bytes from, writing link frames, closing, and the splices
//! that carry device streams once the core joined them.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use service::link::write_out;

use super::link_tls::LinkTls;
use super::{Conn, Owner, Relay, Splice, Spliced};
use crate::core::{ConnId, Ended, Listener};

/// Bytes read from a connection per call into the core.
const READ_CHUNK: usize = 4096;

/// The next connection `listener` has, with the relay's address it
/// reached (the listener's when the socket cannot say: only a broken one
/// cannot, and it fails at its first read).
fn accept_one(listener: &TcpListener, which: &str) -> Option<(TcpStream, SocketAddr, SocketAddr)> {
    match listener.accept() {
        Ok((stream, peer)) => {
            let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
            let local = stream.local_addr().or_else(|_| listener.local_addr()).unwrap_or(unspecified);
            Some((stream, peer, local))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) => {
            tracing::warn!(error = %e, "{which} accept failed");
            None
        }
    }
}

impl Relay {
    pub(super) fn accept_devices(&mut self, now: Instant) {
        while let Some((stream, peer, local)) = accept_one(&self.device_listener, "device") {
            self.accepted(stream, Listener::Devices, peer, local, now);
        }
    }

    pub(super) fn accept_gateways(&mut self, now: Instant) {
        while let Some((stream, peer, local)) = accept_one(&self.gateway_listener, "gateway") {
            self.accepted(stream, Listener::Gateways, peer, local, now);
        }
    }

    /// Tells the core of a new connection; it is registered unless the
    /// core closed it at once (a limit).
    fn accepted(
        &mut self,
        mut stream: TcpStream,
        listener: Listener,
        peer: SocketAddr,
        local: SocketAddr,
        now: Instant,
    ) {
        let token = self.token();
        // A connection is named by its token: one id for both sides of the loop.
        let conn = ConnId(token.0 as u64);
        let _ = stream.set_nodelay(true);
        if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
            tracing::warn!(%peer, error = %e, "could not register a connection");
            return;
        }
        self.owners.insert(token, Owner::Conn(conn));
        self.conns.insert(conn, Conn { stream, outbox: Vec::new(), tls: None });
        self.core.handle_accept(conn, listener, peer, local, now);
        self.carry_out(now);
    }

    /// A connection is ready: queued frames are written, then what arrived
    /// is read while the core wants it.
    pub(super) fn on_conn(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if !c.outbox.is_empty() && write_out(&mut c.stream, &mut c.outbox).is_err() {
            self.core.handle_end(conn, Ended::WriteFailed, now);
            return self.carry_out(now);
        }
        let mut buf = [0u8; READ_CHUNK];
        while self.core.wants_bytes(conn) {
            let Some(c) = self.conns.get_mut(&conn) else { break };
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    self.core.handle_end(conn, Ended::Eof, now);
                    break;
                }
                Ok(n) => {
                    self.received(conn, buf.get(..n).unwrap_or_default(), now);
                    // A StartTls among the effects changes how the next bytes are read.
                    self.carry_out(now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.core.handle_end(conn, Ended::ReadFailed, now);
                    break;
                }
            }
        }
        self.carry_out(now);
    }

    /// Bytes read from `conn`: to the core as they are, or through the
    /// link's TLS.
    fn received(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let Some(tls) = c.tls.as_mut() else { return self.core.handle_read(conn, bytes, now) };
        let mut plain = Vec::new();
        let result = tls.receive(bytes, &mut plain, &mut c.outbox);
        let flushed = write_out(&mut c.stream, &mut c.outbox);
        if !plain.is_empty() {
            self.core.handle_read(conn, &plain, now);
        }
        if let Err(e) = result {
            tracing::info!(conn = conn.0, error = %e, "gateway link: TLS failed");
            self.core.handle_end(conn, Ended::TlsFailed, now);
        } else if flushed.is_err() {
            self.core.handle_end(conn, Ended::WriteFailed, now);
        }
    }

    /// The core found a link's ClientHello in `initial`: TLS from here on.
    pub(super) fn start_tls(&mut self, conn: ConnId, initial: &[u8], now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        match LinkTls::new(&self.link_tls) {
            Ok(tls) => c.tls = Some(Box::new(tls)),
            Err(e) => {
                tracing::warn!(conn = conn.0, error = %e, "gateway link: could not start TLS");
                return self.core.handle_end(conn, Ended::TlsFailed, now);
            }
        }
        self.received(conn, initial, now);
    }

    pub(super) fn write(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        match c.tls.as_mut() {
            Some(tls) => tls.seal(bytes, &mut c.outbox),
            None => c.outbox.extend_from_slice(bytes),
        }
        if write_out(&mut c.stream, &mut c.outbox).is_err() {
            self.core.handle_end(conn, Ended::WriteFailed, now);
        }
    }

    pub(super) fn close(&mut self, conn: ConnId, reason: &str) {
        let Some(mut c) = self.conns.remove(&conn) else { return };
        if let Some(tls) = c.tls.as_mut() {
            tls.close(&mut c.outbox);
        }
        // A Refused frame goes out if the socket takes it now; nobody waits.
        let _ = write_out(&mut c.stream, &mut c.outbox);
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.owners.remove(&token_of(conn));
        tracing::trace!(conn = conn.0, reason, "connection closed");
    }

    /// Joins a device connection to the stream its gateway attached.
    pub(super) fn splice(&mut self, device: ConnId, gateway: ConnId, initial: &[u8]) {
        let (Some(d), Some(g)) = (self.conns.remove(&device), self.conns.remove(&gateway)) else {
            // The core joined connections the driver no longer holds.
            for conn in [device, gateway] {
                self.close(conn, "splice of a vanished connection");
            }
            return self.core.handle_splice_end(device, 0, 0, false);
        };
        let (dt, gt) = (token_of(device), token_of(gateway));
        self.owners.insert(dt, Owner::Splice(device));
        self.owners.insert(gt, Owner::Splice(device));
        let splice = Splice::new(d.stream, g.stream, initial);
        self.splices.insert(device, Spliced { splice, device: dt, gateway: gt });
        self.pump(device);
    }

    /// Moves what a splice can move; a finished or broken one is closed and
    /// reported to the core.
    pub(super) fn pump(&mut self, device: ConnId) {
        let Some(s) = self.splices.get_mut(&device) else { return };
        let clean = match s.splice.pump() {
            Ok(false) => return,
            Ok(true) => true,
            Err(_) => false,
        };
        let Some(mut s) = self.splices.remove(&device) else { return };
        let (up, down) = s.splice.bytes();
        let _ = self.poll.registry().deregister(&mut s.splice.device);
        let _ = self.poll.registry().deregister(&mut s.splice.gateway);
        self.owners.remove(&s.device);
        self.owners.remove(&s.gateway);
        self.core.handle_splice_end(device, up, down, clean);
    }
}

fn token_of(conn: ConnId) -> mio::Token {
    mio::Token(conn.0 as usize)
}
