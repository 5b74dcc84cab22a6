//! DTLS handshakes for tunnel sessions (PSK-NEGOTIATE, openconnect-protocol.md
//! §5.3). Shards forward datagrams from peers they have no session for;
//! here they meet a stateless cookie exchange, then a `dtls::Connection`
//! keyed by the session's TLS-exporter PSK, chosen by the App-ID in the
//! ClientHello. A finished handshake becomes a session grant; its final
//! flight goes back to the caller, to be sent once the grant is installed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dataplane::ShardId;
use dtls::{
    Accept, Acceptor, CloseReason, Connection, Event, HandshakeInfo, PeekedClientHello, Psk, PskRequest, PskResolver,
    ServerConfig, SessionKeys,
};

/// How long a finished handshake is kept to resend its final flight when
/// the client shows it lost it (RFC 6347 §4.2.4).
const LINGER: Duration = Duration::from_secs(30);

/// Handshakes in progress at once; beyond this new ClientHellos are dropped.
/// Finished handshakes lingering for [`LINGER`] do not count: there is one
/// per established session at most, and counting them made a storm of
/// successful logins lock later devices out for the linger time.
const MAX_PENDING: usize = 4096;

/// PSKs by App-ID, shared with the DTLS server's resolver. Only the control
/// thread touches it; the lock exists because the resolver must be `Sync`.
#[derive(Debug, Default)]
pub struct KeysByAppId(Mutex<HashMap<Vec<u8>, Psk>>);

impl KeysByAppId {
    pub fn set(&self, app_id: &[u8], psk: Psk) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(app_id.to_vec(), psk);
    }

    pub fn remove(&self, app_id: &[u8]) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(app_id);
    }

    pub fn has(&self, app_id: &[u8]) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains_key(app_id)
    }
}

impl PskResolver for KeysByAppId {
    /// openconnect always sends identity `psk`; the App-ID picks the key.
    fn resolve(&self, r: &PskRequest<'_>) -> Option<Psk> {
        if r.identity != b"psk" {
            return None;
        }
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(r.app_id).cloned()
    }
}

#[derive(Debug)]
struct Pending {
    conn: Connection,
    shard: ShardId,
    done_at: Option<Instant>,
}

/// A handshake that completed: hand `keys` to `shard` for `peer`, then
/// send `final_flight` to `peer`.
#[derive(Debug)]
pub struct Established {
    pub peer: SocketAddr,
    pub shard: ShardId,
    pub info: HandshakeInfo,
    pub keys: SessionKeys,
    /// Our ChangeCipherSpec and Finished, not yet sent. The device sends
    /// data the moment it reads them, and a record reaching the shard
    /// before the grant would be taken for a stranger's and lost: hold
    /// them until the shard has the session. Later copies (the device lost
    /// these and resent its own flight, a retransmission timeout later) go
    /// out at once from the lingering handshake.
    pub final_flight: Vec<Vec<u8>>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct HandshakeCounters {
    pub unknown_app_id: u64,
    pub not_client_hello: u64,
    pub hello_verify_requests: u64,
    pub refused: u64,
    pub failed: u64,
    pub established: u64,
    pub overloaded: u64,
}

#[derive(Debug)]
pub struct Handshakes {
    acceptor: Acceptor,
    keys: Arc<KeysByAppId>,
    pending: HashMap<SocketAddr, Pending>,
    /// Entries of `pending` that finished and linger.
    lingering: usize,
    max_pending: usize,
    pub counters: HandshakeCounters,
}

impl Handshakes {
    pub fn new(now: Instant) -> Result<Self, dtls::ConfigError> {
        let keys = Arc::new(KeysByAppId::default());
        let mut cfg = ServerConfig::new(keys.clone());
        // openconnect handles HelloVerifyRequest; the cookie keeps us from
        // holding state for spoofed sources.
        cfg.cookies = true;
        cfg.common.timers.initial_retransmit = Duration::from_millis(400);
        cfg.common.timers.handshake_timeout = Duration::from_secs(30);
        Ok(Self {
            acceptor: Acceptor::new(Arc::new(cfg), now)?,
            keys,
            pending: HashMap::new(),
            lingering: 0,
            max_pending: MAX_PENDING,
            counters: HandshakeCounters::default(),
        })
    }

    pub fn keys(&self) -> &Arc<KeysByAppId> {
        &self.keys
    }

    /// A datagram a shard could not place. `send` transmits to the peer
    /// (from the gateway's UDP port).
    pub fn on_datagram(
        &mut self,
        now: Instant,
        shard: ShardId,
        peer: SocketAddr,
        datagram: &[u8],
        send: &mut dyn FnMut(SocketAddr, &[u8]),
        done: &mut Vec<Established>,
    ) {
        if let Some(p) = self.pending.get_mut(&peer) {
            // A new ClientHello from a peer whose last handshake finished is
            // a new DTLS session (the client redid it after DPD death).
            let restart = p.done_at.is_some()
                && PeekedClientHello::parse(datagram).is_ok_and(|h| h.message_seq == 0 && h.hello.cookie.is_empty());
            if !restart {
                p.conn.handle_datagram(now, datagram);
                self.drive(now, peer, send, done);
                return;
            }
            self.remove(&peer);
        }
        let app_id_known = match PeekedClientHello::parse(datagram) {
            Ok(h) => self.keys.has(h.hello.app_id()),
            Err(_) => {
                self.counters.not_client_hello += 1;
                return;
            }
        };
        if !app_id_known {
            self.counters.unknown_app_id += 1;
            return;
        }
        if self.pending.len() - self.lingering >= self.max_pending {
            self.counters.overloaded += 1;
            return;
        }
        let mut out = Vec::new();
        let key = peer.to_string();
        match self.acceptor.accept(now, key.as_bytes(), datagram, &mut out) {
            Accept::HelloVerifyRequest => {
                self.counters.hello_verify_requests += 1;
                send(peer, &out);
            }
            Accept::Refused(e) => {
                self.counters.refused += 1;
                tracing::info!(%peer, error = %e, "DTLS ClientHello refused");
                send(peer, &out);
            }
            Accept::Drop(_) => self.counters.not_client_hello += 1,
            Accept::Connection(c) => {
                self.pending.insert(peer, Pending { conn: *c, shard, done_at: None });
                self.drive(now, peer, send, done);
            }
        }
    }

    fn drive(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        send: &mut dyn FnMut(SocketAddr, &[u8]),
        done: &mut Vec<Established>,
    ) {
        let Some(p) = self.pending.get_mut(&peer) else { return };
        // Events before transmits: both were queued by the same
        // `handle_datagram`/`handle_timeout`, and a completion decides where
        // the datagrams queued with it go.
        let mut completed = None;
        let mut remove = false;
        while let Some(e) = p.conn.poll_event() {
            match e {
                Event::Connected(info) => match p.conn.export_session() {
                    Some(keys) => completed = Some((info, keys)),
                    None => remove = true,
                },
                Event::Closed(CloseReason::Error(e)) => {
                    self.counters.failed += 1;
                    tracing::info!(%peer, error = %e, "DTLS handshake failed");
                    remove = true;
                }
                Event::Closed(_) => remove = true,
                Event::ApplicationData(_) | Event::Alert { .. } => {}
            }
        }
        let mut buf = Vec::new();
        let mut final_flight = Vec::new();
        while p.conn.poll_transmit(&mut buf) {
            if completed.is_some() {
                final_flight.push(core::mem::take(&mut buf));
            } else {
                send(peer, &buf);
            }
        }
        if let Some((info, keys)) = completed {
            self.counters.established += 1;
            p.done_at = Some(now);
            self.lingering += 1;
            done.push(Established { peer, shard: p.shard, info, keys, final_flight });
        }
        if remove {
            self.remove(&peer);
        }
    }

    /// Retransmission timers and clean-up.
    pub fn on_tick(&mut self, now: Instant, send: &mut dyn FnMut(SocketAddr, &[u8]), done: &mut Vec<Established>) {
        let due: Vec<SocketAddr> = self
            .pending
            .iter()
            .filter(|(_, p)| p.conn.poll_timeout().is_some_and(|t| t <= now))
            .map(|(a, _)| *a)
            .collect();
        for peer in due {
            if let Some(p) = self.pending.get_mut(&peer) {
                p.conn.handle_timeout(now);
            }
            self.drive(now, peer, send, done);
        }
        self.pending
            .retain(|_, p| !p.conn.is_closed() && p.done_at.is_none_or(|t| now.saturating_duration_since(t) < LINGER));
        self.lingering = self.pending.values().filter(|p| p.done_at.is_some()).count();
    }

    fn remove(&mut self, peer: &SocketAddr) {
        if self.pending.remove(peer).is_some_and(|p| p.done_at.is_some()) {
            self.lingering = self.lingering.saturating_sub(1);
        }
    }

    /// Handshakes in progress (finished ones lingering not counted).
    pub fn pending(&self) -> usize {
        self.pending.len() - self.lingering
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_for(h: &Handshakes, now: Instant, app_id: &[u8]) -> Connection {
        let psk = [7u8; 32];
        h.keys().set(app_id, Psk::new(psk.to_vec()));
        let mut c = dtls::ClientConfig::new(b"psk", &psk);
        c.session_id = app_id.to_vec();
        Connection::client(Arc::new(c), now).expect("client")
    }

    fn connected(client: &mut Connection) -> bool {
        std::iter::from_fn(|| client.poll_event()).any(|e| matches!(e, Event::Connected(_)))
    }

    /// Drives one PSK-NEGOTIATE client from `port` against `h` until it is
    /// connected or nothing moves, releasing the final flight as the gateway
    /// does once the grant is installed; returns whether it connected.
    fn handshake(h: &mut Handshakes, now: Instant, port: u16, app_id: &[u8]) -> bool {
        let mut client = client_for(h, now, app_id);
        let peer: SocketAddr = ([10, 10, 0, 2], port).into();
        let (mut to_server, mut done, mut buf) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..10 {
            while client.poll_transmit(&mut buf) {
                to_server.push(buf.clone());
            }
            if to_server.is_empty() {
                break;
            }
            let mut to_client = Vec::new();
            for d in to_server.drain(..) {
                h.on_datagram(now, ShardId(0), peer, &d, &mut |_, b| to_client.push(b.to_vec()), &mut done);
            }
            for e in &mut done {
                to_client.append(&mut e.final_flight);
            }
            for d in to_client {
                client.handle_datagram(now, &d);
            }
        }
        connected(&mut client) && !done.is_empty()
    }

    /// Runs `client`'s flights through `h` until the handshake completes
    /// there; returns what completed and what `h` sent in that last step.
    fn until_established(
        h: &mut Handshakes,
        now: Instant,
        client: &mut Connection,
        peer: SocketAddr,
    ) -> (Established, Vec<Vec<u8>>) {
        let (mut done, mut buf) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            let mut sent = Vec::new();
            while client.poll_transmit(&mut buf) {
                h.on_datagram(now, ShardId(3), peer, &buf, &mut |_, b| sent.push(b.to_vec()), &mut done);
            }
            if let Some(e) = done.pop() {
                assert!(done.is_empty(), "one handshake completed");
                return (e, sent);
            }
            for d in sent {
                client.handle_datagram(now, &d);
            }
        }
        panic!("the handshake did not complete in four client flights");
    }

    /// Regression: a device that read our Finished before its shard had the
    /// grant sent data the shard took for a stranger's, and lost it.
    #[test]
    fn final_flight_is_held_in_established_not_sent() {
        let now = Instant::now();
        let mut h = Handshakes::new(now).expect("handshakes");
        let mut client = client_for(&h, now, &[9; 32]);
        let peer: SocketAddr = ([10, 10, 0, 2], 42_000).into();
        let (e, sent) = until_established(&mut h, now, &mut client, peer);
        assert!(sent.is_empty(), "nothing is sent when the handshake completes: {sent:?}");
        assert_eq!((e.peer, e.shard), (peer, ShardId(3)));
        assert!(!e.final_flight.is_empty());
        assert!(!connected(&mut client), "the device waits for the held flight");
        for d in &e.final_flight {
            client.handle_datagram(now, d);
        }
        assert!(connected(&mut client), "the released flight completes the device's handshake");
        assert_eq!(h.counters.established, 1);
    }

    /// The held flight may be lost on the way like any other: the device
    /// resends its own, and the lingering handshake answers it at once.
    #[test]
    fn lost_final_flight_is_resent_when_the_device_retransmits() {
        let now = Instant::now();
        let mut h = Handshakes::new(now).expect("handshakes");
        let mut client = client_for(&h, now, &[10; 32]);
        let peer: SocketAddr = ([10, 10, 0, 2], 42_001).into();
        let (_lost_on_the_way, _) = until_established(&mut h, now, &mut client, peer);
        let later = now + Duration::from_secs(2);
        client.handle_timeout(later);
        let (mut resent, mut done, mut buf) = (Vec::new(), Vec::new(), Vec::new());
        while client.poll_transmit(&mut buf) {
            h.on_datagram(later, ShardId(3), peer, &buf, &mut |_, b| resent.push(b.to_vec()), &mut done);
        }
        assert!(done.is_empty(), "a retransmission grants nothing again");
        assert!(!resent.is_empty(), "the final flight is sent again");
        for d in &resent {
            client.handle_datagram(later, d);
        }
        assert!(connected(&mut client));
        assert_eq!(h.counters.established, 1);
    }

    #[test]
    fn finished_handshakes_lingering_do_not_lock_out_new_ones() {
        let now = Instant::now();
        let mut h = Handshakes::new(now).expect("handshakes");
        h.max_pending = 2;
        for port in 0..5u16 {
            assert!(handshake(&mut h, now, 40_000 + port, &[port as u8; 32]), "device {port} connects");
        }
        assert_eq!(h.counters.established, 5);
        assert_eq!(h.counters.overloaded, 0);
        assert_eq!(h.pending(), 0, "all five linger, none in progress");
    }

    #[test]
    fn handshakes_in_progress_beyond_the_limit_are_dropped_and_counted() {
        let now = Instant::now();
        let mut h = Handshakes::new(now).expect("handshakes");
        h.max_pending = 1;
        let mut started = Vec::new();
        for port in 0..2u16 {
            let app_id = [port as u8 + 100; 32];
            h.keys().set(&app_id, Psk::new(vec![7u8; 32]));
            let mut c = dtls::ClientConfig::new(b"psk", &[7u8; 32]);
            c.session_id = app_id.to_vec();
            let mut client = Connection::client(Arc::new(c), now).expect("client");
            let peer: SocketAddr = ([10, 10, 0, 2], 41_000 + port).into();
            let (mut hvr, mut done, mut buf) = (Vec::new(), Vec::new(), Vec::new());
            // ClientHello, HelloVerifyRequest, ClientHello with the cookie: in progress.
            while client.poll_transmit(&mut buf) {
                h.on_datagram(now, ShardId(0), peer, &buf, &mut |_, b| hvr.push(b.to_vec()), &mut done);
            }
            for d in hvr.drain(..) {
                client.handle_datagram(now, &d);
            }
            while client.poll_transmit(&mut buf) {
                h.on_datagram(now, ShardId(0), peer, &buf, &mut |_, _| {}, &mut done);
            }
            started.push(client);
        }
        assert_eq!(h.pending(), 1);
        assert_eq!(h.counters.overloaded, 1);
    }
}
