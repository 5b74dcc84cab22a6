//! The relay's end of a gateway link: frames in and out of one TCP
//! connection the gateway dialled, the challenge that authenticates it, and
//! what the relay knows of the gateway behind it.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Token;
use proto::relay::{next_frame, Frame, LinkError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Hello received, Challenge sent.
    Challenged { nonce: [u8; 32] },
    /// Authenticated; `route` tags its sessions' App-IDs.
    Up { route: u32 },
}

#[derive(Debug)]
pub struct Link {
    pub token: Token,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// The relay's address the gateway reached: flows for this link open
    /// their UDP port there, so the gateway's binds and our replies share it.
    pub local: SocketAddr,
    pub name: String,
    pub route_hint: u32,
    pub state: LinkState,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    pub last_rx: Instant,
    pub last_ping: Instant,
    pub up_since: Option<Instant>,
    /// Device streams opened through it, and now active (pending or spliced).
    pub streams_opened: u64,
    pub active_streams: usize,
}

/// What reading a link gave: the whole frames that arrived, and why the
/// link is over if it is (frames before the end are still handled).
#[derive(Debug, Default)]
pub struct LinkRead {
    pub frames: Vec<Frame>,
    pub ended: Option<LinkEnd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEnd {
    Closed(&'static str),
    Broken(LinkError),
}

impl core::fmt::Display for LinkEnd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LinkEnd::Closed(why) => f.write_str(why),
            LinkEnd::Broken(e) => e.fmt(f),
        }
    }
}

impl Link {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        token: Token,
        stream: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        name: String,
        route_hint: u32,
        nonce: [u8; 32],
        leftover: &[u8],
        now: Instant,
    ) -> Self {
        Self {
            token,
            stream,
            peer,
            local,
            name,
            route_hint,
            state: LinkState::Challenged { nonce },
            inbox: leftover.to_vec(),
            outbox: Vec::new(),
            last_rx: now,
            last_ping: now,
            up_since: None,
            streams_opened: 0,
            active_streams: 0,
        }
    }

    pub fn route(&self) -> Option<u32> {
        match self.state {
            LinkState::Up { route } => Some(route),
            LinkState::Challenged { .. } => None,
        }
    }

    /// Queues a frame and writes what the socket takes. `Err`: the link is
    /// dead or too far behind.
    pub fn send(&mut self, f: &Frame) -> io::Result<()> {
        f.write(&mut self.outbox);
        self.flush()
    }

    pub fn flush(&mut self) -> io::Result<()> {
        service::link::write_out(&mut self.stream, &mut self.outbox)
    }

    /// Reads what arrived and splits it into frames.
    pub fn read(&mut self, now: Instant) -> LinkRead {
        let mut buf = [0u8; 4096];
        let mut closed = None;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    closed = Some("closed by the gateway");
                    break;
                }
                Ok(n) => {
                    self.last_rx = now;
                    self.inbox.extend_from_slice(buf.get(..n).unwrap_or_default());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = Some("read failed");
                    break;
                }
            }
        }
        let mut out = LinkRead { frames: Vec::new(), ended: closed.map(LinkEnd::Closed) };
        let mut at = 0;
        loop {
            match next_frame(self.inbox.get(at..).unwrap_or_default()) {
                Ok(Some((f, n))) => {
                    out.frames.push(f);
                    at += n;
                }
                Ok(None) => break,
                Err(e) => {
                    out.ended = Some(LinkEnd::Broken(e));
                    break;
                }
            }
        }
        self.inbox.drain(..at);
        out
    }
}
