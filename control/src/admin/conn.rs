//! One admin connection on the admin thread: its socket (TCP for HTTP, unix
//! for ctl), what it sent so far, what it is waiting for, what is left to
//! write, and its deadline. Non-blocking throughout: a read or write that
//! would block returns and the admin loop's poll says when to go on.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

use mio::event::Source;

use super::PeerCred;

/// The socket of a connection.
#[derive(Debug)]
pub(super) enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Stream {
    pub(super) fn source(&mut self) -> &mut dyn Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }
}

/// Which door it came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Door {
    Http,
    Ctl(PeerCred),
}

/// What it waits on the control thread for: what to answer if that does
/// not come in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waiting {
    Metrics,
    Health,
    Ctl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Its request is arriving.
    Reading,
    /// Question `query` is with the control thread.
    Waiting { query: u64, what: Waiting },
    /// Its response is being written; then it is closed.
    Writing,
}

/// What reading found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arrived {
    /// Bytes came (or nothing yet); the request may be whole now.
    More,
    /// The peer closed its side: what arrived is all there is.
    Ended,
    /// A socket error.
    Failed,
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) stream: Stream,
    pub(super) door: Door,
    pub(super) phase: Phase,
    /// When the current phase must be over.
    pub(super) deadline: Instant,
    pub(super) inbox: Vec<u8>,
    outbox: Vec<u8>,
    written: usize,
}

impl Conn {
    pub(super) fn new(stream: Stream, door: Door, deadline: Instant) -> Self {
        Self { stream, door, phase: Phase::Reading, deadline, inbox: Vec::new(), outbox: Vec::new(), written: 0 }
    }

    /// Reads what the socket has, up to `limit` bytes in all: a request
    /// that long is whole or too long whatever follows, so reading stops
    /// there (a client streaming bytes does not keep this thread reading).
    pub(super) fn read(&mut self, limit: usize) -> Arrived {
        let mut chunk = [0u8; 1024];
        loop {
            let room = limit.saturating_sub(self.inbox.len());
            if room == 0 {
                return Arrived::More;
            }
            let want = room.min(chunk.len());
            match self.stream.read(chunk.get_mut(..want).unwrap_or_default()) {
                Ok(0) => return Arrived::Ended,
                Ok(n) => self.inbox.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Arrived::More,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Arrived::Failed,
            }
        }
    }

    /// Starts writing `bytes` as the response; `deadline` bounds it.
    pub(super) fn respond(&mut self, bytes: Vec<u8>, deadline: Instant) {
        self.outbox = bytes;
        self.written = 0;
        self.phase = Phase::Writing;
        self.deadline = deadline;
    }

    /// Writes what it can; `Ok(true)` once the whole response is out (the
    /// connection is then done, and its write side shut).
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        while self.written < self.outbox.len() {
            match self.stream.write(self.outbox.get(self.written..).unwrap_or_default()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.stream.shutdown_write();
        Ok(true)
    }
}
