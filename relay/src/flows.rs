//! DTLS flows through the relay, one per device UDP address: a relay UDP
//! port of its own (a TURN-like allocation) that the gateway opened with a
//! [`proto::relay::Bind`] from its shards' port. The gateway therefore sees
//! each device as a distinct peer (`relay:port`) and its fast path is the
//! same in direct and relayed mode; its firewall sees only replies to
//! datagrams it sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::UdpSocket;
use mio::Token;
use proto::relay::Nonce;

/// Datagrams held for a flow its gateway has not bound yet: the device's
/// first flight. More are dropped (DTLS retransmits).
pub const QUEUE_BEFORE_BIND: usize = 8;

#[derive(Debug)]
pub struct Flow {
    pub id: u64,
    pub token: Token,
    pub socket: UdpSocket,
    pub device: SocketAddr,
    /// The link route the ClientHello's App-ID named.
    pub route: u32,
    pub nonce: Nonce,
    /// The gateway's address for this flow, once it bound it; only
    /// datagrams from there are forwarded to the device.
    pub gateway: Option<SocketAddr>,
    /// The link's peer address: binds must come from it.
    pub gateway_ip: std::net::IpAddr,
    /// Buffers held until the bind, each with its GRO segment size.
    pub queue: Vec<(Vec<u8>, Option<usize>)>,
    pub created: Instant,
    pub last_active: Instant,
}

/// Every flow, by id, by device address and by socket token.
#[derive(Debug, Default)]
pub struct Flows {
    by_id: HashMap<u64, Flow>,
    by_device: HashMap<SocketAddr, u64>,
    by_token: HashMap<Token, u64>,
    next_id: u64,
}

impl Flows {
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn insert(&mut self, f: Flow) {
        self.by_device.insert(f.device, f.id);
        self.by_token.insert(f.token, f.id);
        self.by_id.insert(f.id, f);
    }

    pub fn remove(&mut self, id: u64) -> Option<Flow> {
        let f = self.by_id.remove(&id)?;
        if self.by_device.get(&f.device) == Some(&id) {
            self.by_device.remove(&f.device);
        }
        self.by_token.remove(&f.token);
        Some(f)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Flow> {
        self.by_id.get_mut(&id)
    }

    pub fn of_device(&self, device: SocketAddr) -> Option<u64> {
        self.by_device.get(&device).copied()
    }

    pub fn of_token(&self, token: Token) -> Option<u64> {
        self.by_token.get(&token).copied()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn pending(&self) -> usize {
        self.by_id.values().filter(|f| f.gateway.is_none()).count()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Flow> {
        self.by_id.values()
    }

    /// Flows on `route` (a link), bound or not.
    pub fn on_route(&self, route: u32) -> usize {
        self.by_id.values().filter(|f| f.route == route).count()
    }
}

/// Whether a datagram starts with a DTLS ClientHello record (content type
/// handshake, epoch 0, handshake type client_hello): a device starting a
/// new handshake, possibly with another gateway.
pub fn is_client_hello(d: &[u8]) -> bool {
    matches!(d, [22, _, _, 0, 0, _, _, _, _, _, _, _, _, 1, ..])
}
