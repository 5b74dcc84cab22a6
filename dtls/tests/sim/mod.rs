//! A deterministic in-memory network for two sans-IO endpoints, with
//! virtual time and knobs for loss, duplication, reordering and MTU
//! (the shape of quinn-proto's test `Pair`).

#![allow(dead_code, unreachable_pub, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtls::{Accept, Acceptor, ClientConfig, Connection, Event, ServerConfig, StaticPsk};

pub const PSK: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ClientToServer,
    ServerToClient,
}

/// A fault to apply to the n-th datagram (1-based) of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Drop,
    Duplicate,
    /// Hold it back and deliver it after the next datagram of that direction.
    Delay,
}

#[derive(Default)]
pub struct Faults {
    pub rules: Vec<(Dir, usize, Fault)>,
    pub duplicate_all: bool,
    /// Reverse the order of every batch of datagrams sent in one step.
    pub reverse_batches: bool,
    /// Send every record in a datagram of its own.
    pub split_records: bool,
}

pub struct Pair {
    pub now: Instant,
    pub start: Instant,
    pub client: Connection,
    pub acceptor: Acceptor,
    pub server: Option<Connection>,
    pub faults: Faults,
    pub sent: [usize; 2],
    held: [Option<Vec<u8>>; 2],
    to_server: VecDeque<Vec<u8>>,
    to_client: VecDeque<Vec<u8>>,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    pub hello_verify_requests: usize,
    pub log: Vec<String>,
}

pub fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new(b"client1", PSK);
    c.session_id = vec![0xab; 32];
    c
}

pub fn server_config() -> ServerConfig {
    ServerConfig::new(Arc::new(StaticPsk { identity: b"client1".to_vec(), psk: PSK.to_vec().into() }))
}

const PEER: &[u8] = b"10.0.0.2:40000";

impl Pair {
    pub fn new(client: ClientConfig, server: ServerConfig) -> Self {
        let now = Instant::now();
        Self {
            now,
            start: now,
            client: Connection::client(Arc::new(client), now).expect("client config"),
            acceptor: Acceptor::new(Arc::new(server), now).expect("server config"),
            server: None,
            faults: Faults::default(),
            sent: [0, 0],
            held: [None, None],
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            hello_verify_requests: 0,
            log: Vec::new(),
        }
    }

    pub fn default_pair() -> Self {
        Self::new(client_config(), server_config())
    }

    fn route(&mut self, dir: Dir, d: Vec<u8>) {
        let i = match dir {
            Dir::ClientToServer => 0,
            Dir::ServerToClient => 1,
        };
        self.sent[i] += 1;
        let n = self.sent[i];
        let fault = self.faults.rules.iter().find(|(d2, n2, _)| *d2 == dir && *n2 == n).map(|r| r.2);
        self.log.push(format!("{:?} #{n} {}B {:?}", dir, d.len(), fault));
        let q = match dir {
            Dir::ClientToServer => &mut self.to_server,
            Dir::ServerToClient => &mut self.to_client,
        };
        match fault {
            Some(Fault::Drop) => return,
            Some(Fault::Delay) => {
                self.held[i] = Some(d);
                return;
            }
            Some(Fault::Duplicate) => q.push_back(d.clone()),
            None => {}
        }
        if self.faults.duplicate_all {
            q.push_back(d.clone());
        }
        q.push_back(d);
        if let Some(h) = self.held[i].take() {
            q.push_back(h);
        }
    }

    /// Moves every queued datagram from both endpoints onto the wire.
    fn split(&self, d: &[u8], batch: &mut Vec<Vec<u8>>) {
        if self.faults.split_records {
            batch.extend(dtls::record::Records::new(d).map(|r| r.into_inner().to_vec()));
        } else {
            batch.push(d.to_vec());
        }
    }

    fn flush(&mut self) {
        let mut buf = Vec::new();
        let mut batch = Vec::new();
        while self.client.poll_transmit(&mut buf) {
            self.split(&buf, &mut batch);
        }
        if self.faults.reverse_batches {
            batch.reverse();
        }
        for d in batch.drain(..) {
            self.route(Dir::ClientToServer, d);
        }
        let mut from_server = Vec::new();
        if let Some(s) = self.server.as_mut() {
            while s.poll_transmit(&mut buf) {
                from_server.push(buf.clone());
            }
        }
        for d in from_server {
            self.split(&d, &mut batch);
        }
        if self.faults.reverse_batches {
            batch.reverse();
        }
        for d in batch.drain(..) {
            self.route(Dir::ServerToClient, d);
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        if let Some(s) = self.server.as_mut() {
            while let Some(e) = s.poll_event() {
                self.server_events.push(e);
            }
        }
    }

    /// Delivers what is on the wire; returns whether anything moved.
    fn deliver(&mut self) -> bool {
        let mut moved = false;
        while let Some(d) = self.to_server.pop_front() {
            moved = true;
            match self.server.as_mut() {
                Some(s) => s.handle_datagram(self.now, &d),
                None => {
                    let mut out = Vec::new();
                    match self.acceptor.accept(self.now, PEER, &d, &mut out) {
                        Accept::HelloVerifyRequest => {
                            self.hello_verify_requests += 1;
                            self.route(Dir::ServerToClient, out);
                        }
                        Accept::Connection(c) => self.server = Some(*c),
                        Accept::Refused(_) => self.route(Dir::ServerToClient, out),
                        Accept::Drop(_) => {}
                    }
                }
            }
            self.flush();
        }
        while let Some(d) = self.to_client.pop_front() {
            moved = true;
            self.client.handle_datagram(self.now, &d);
            self.flush();
        }
        moved
    }

    /// Runs until both sides are idle, advancing virtual time to the next
    /// timer whenever the wire is empty, for at most `limit` of virtual time.
    pub fn drive(&mut self, limit: Duration) {
        let end = self.now + limit;
        self.flush();
        loop {
            while self.deliver() {}
            let next = [self.client.poll_timeout(), self.server.as_ref().and_then(|s| s.poll_timeout())]
                .into_iter()
                .flatten()
                .min();
            let Some(t) = next else { break };
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.client.handle_timeout(self.now);
            if let Some(s) = self.server.as_mut() {
                s.handle_timeout(self.now);
            }
            self.flush();
        }
    }

    pub fn both_connected(&self) -> bool {
        self.client.is_established() && self.server.as_ref().is_some_and(|s| s.is_established())
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}
