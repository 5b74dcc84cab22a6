//! DTLS handshakes for tunnel sessions (PSK-NEGOTIATE, openconnect-protocol.md
//! §5.3). Shards forward datagrams from peers they have no session for;
//! here they meet a stateless cookie exchange, then a `dtls::Connection`
//! keyed by the session's TLS-exporter PSK, chosen by the App-ID in the
//! ClientHello. A finished handshake becomes a session grant.

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

    fn has(&self, app_id: &[u8]) -> bool {
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

/// A handshake that completed: hand `keys` to `shard` for `peer`.
#[derive(Debug)]
pub struct Established {
    pub peer: SocketAddr,
    pub shard: ShardId,
    pub info: HandshakeInfo,
    pub keys: SessionKeys,
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
            self.pending.remove(&peer);
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
        if self.pending.len() >= MAX_PENDING {
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
        let mut buf = Vec::new();
        while p.conn.poll_transmit(&mut buf) {
            send(peer, &buf);
        }
        let mut remove = false;
        while let Some(e) = p.conn.poll_event() {
            match e {
                Event::Connected(info) => match p.conn.export_session() {
                    Some(keys) => {
                        self.counters.established += 1;
                        p.done_at = Some(now);
                        done.push(Established { peer, shard: p.shard, info, keys });
                    }
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
        while p.conn.poll_transmit(&mut buf) {
            send(peer, &buf);
        }
        if remove {
            self.pending.remove(&peer);
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
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}
