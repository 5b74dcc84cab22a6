//! The relay's sans-IO core: everything the relay decides, nothing it
//! does. It routes device TCP by SNI to a gateway link of that name, runs
//! each link's state machine (Hello → Challenge → Auth → Welcome or
//! Refused, Ping/Pong, silence), pairs streams with their gateway's Attach
//! by nonce, routes DTLS by App-ID to UDP flows (Allocate, Bind, Refuse,
//! idle), passes cookie revocations between the gateways of one name, and
//! holds every limit and counter. It has no socket, no thread and no
//! clock: the driver ([`crate::driver`]) owns those, tells the core
//! what happened, with `now`, and carries out the [`Effect`]s it gives back
//! (quinn-proto's `Endpoint` has the same shape).
//!
//! Bulk bytes stay in the driver: a spliced stream is the driver's until
//! it ends, and a datagram the core lets through is sent from the
//! driver's buffer ([`DeviceDatagrams::Forward`], [`FlowDatagrams::Forward`]);
//! the core decides where, once per receive, and counts what went.
//!
//! # Call order
//!
//! 1. [`RelayCore::handle_accept`] for each accepted connection;
//! 2. while [`RelayCore::wants_bytes`], read it and [`RelayCore::handle_read`];
//!    [`RelayCore::handle_end`] when the peer closed it or a read or write failed;
//! 3. [`RelayCore::handle_device_datagrams`] for what the devices' socket
//!    received, [`RelayCore::handle_flow_datagrams`] for a flow's port; send
//!    what they let through, then [`RelayCore::record_forwarded`] or
//!    [`RelayCore::record_send_failed`];
//! 4. [`RelayCore::handle_timeout`] once [`RelayCore::poll_timeout`] has passed,
//!    after [`RelayCore::set_wall_clock`] (revocations expire by the Unix clock);
//! 5. after each call, [`RelayCore::poll_effect`] until `None`, carrying out
//!    each effect in order; answering one (an opened port, a failed write,
//!    a finished splice) may queue more, which the same drain picks up.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use proto::relay::Frame;

use crate::config::Config;

mod affinity;
pub mod counters;
mod effect;
mod flows;
mod links;
mod pages;
mod preauth;
mod revocations;
mod streams;
#[cfg(test)]
mod tests;

pub use counters::Counters;
pub use effect::{datagrams_in, ConnId, DeviceDatagrams, Effect, Ended, FlowDatagrams, FlowId, Listener, Toward};
pub use flows::{is_client_hello, BIND_TIMEOUT, QUEUE_BEFORE_BIND};

/// How often the core checks its timers: every timeout is that precise.
pub const TICK: Duration = Duration::from_millis(250);

/// Whether `limit` has passed since `since`.
fn late(now: Instant, since: Instant, limit: Duration) -> bool {
    now.saturating_duration_since(since) >= limit
}

/// The relay's state: connections by what they are now, links and their
/// routes, flows, device affinity, counters, and the effects not yet drained.
#[derive(Debug)]
pub struct RelayCore {
    config: Config,
    /// Device TCP connections, from accept until closed or their splice ended.
    devices: HashMap<ConnId, streams::Device>,
    /// Device connections held per source IP.
    per_source: HashMap<IpAddr, usize>,
    /// Streams whose gateway was asked to attach, by the id the Open named.
    waiting: HashMap<u64, ConnId>,
    next_stream: u64,
    /// Connections on the gateway port before their first frame.
    inbound: HashMap<ConnId, links::Inbound>,
    links: HashMap<ConnId, links::Link>,
    /// Gateway-port connections not yet authenticated, by source.
    preauth: preauth::PreAuth,
    /// Up links by the route that tags their sessions' App-IDs.
    routes: HashMap<u32, ConnId>,
    flows: flows::Flows,
    affinity: affinity::Affinity,
    /// Cookie revocations per gateway name, until the cookies expire.
    revocations: revocations::ByName,
    wall: WallClock,
    counters: Counters,
    effects: VecDeque<Effect>,
    next_timeout: Instant,
}

/// The Unix clock at an instant: revocations carry the cookie's expiry in
/// Unix seconds, which a gateway's `Instant` cannot. The driver sets it
/// every tick; between ticks it advances with `now`.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    at: Instant,
    unix_secs: u64,
}

impl RelayCore {
    /// A core with no connections; `unix_secs` is the Unix clock at `now`.
    pub fn new(config: Config, now: Instant, unix_secs: u64) -> Self {
        Self {
            config,
            devices: HashMap::new(),
            per_source: HashMap::new(),
            waiting: HashMap::new(),
            next_stream: 0,
            inbound: HashMap::new(),
            links: HashMap::new(),
            preauth: preauth::PreAuth::default(),
            routes: HashMap::new(),
            flows: flows::Flows::default(),
            affinity: affinity::Affinity::default(),
            revocations: revocations::ByName::default(),
            wall: WallClock { at: now, unix_secs },
            counters: Counters::default(),
            effects: VecDeque::new(),
            next_timeout: now + TICK,
        }
    }

    /// A connection was accepted on `listener` from `peer`; `local` is the
    /// relay's address it reached.
    pub fn handle_accept(
        &mut self,
        conn: ConnId,
        listener: Listener,
        peer: SocketAddr,
        local: SocketAddr,
        now: Instant,
    ) {
        match listener {
            Listener::Devices => self.accept_device(conn, peer, now),
            Listener::Gateways => self.accept_gateway(conn, peer, local, now),
        }
    }

    /// Whether the core reads `conn` now. A device stream waiting for its
    /// gateway is not read: its bytes stay in the socket for the splice.
    pub fn wants_bytes(&self, conn: ConnId) -> bool {
        self.links.contains_key(&conn)
            || self.inbound.contains_key(&conn)
            || self.devices.get(&conn).is_some_and(streams::Device::is_sniffing)
    }

    /// Bytes read from `conn`.
    pub fn handle_read(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        if self.links.contains_key(&conn) {
            self.on_link_bytes(conn, bytes, now);
        } else if self.inbound.contains_key(&conn) {
            self.on_inbound_bytes(conn, bytes, now);
        } else if self.devices.contains_key(&conn) {
            self.on_device_bytes(conn, bytes, now);
        }
    }

    /// `conn` ended (or its writes failed). The driver keeps the socket
    /// until the core closes it: a device waiting for its gateway is still
    /// spliced, and its close is noticed then.
    pub fn handle_end(&mut self, conn: ConnId, how: Ended, _now: Instant) {
        if self.links.contains_key(&conn) {
            if how == Ended::TlsFailed {
                self.counters.drop_link_tls += 1;
            }
            self.drop_link(conn, how.as_str());
        } else if self.inbound.contains_key(&conn) {
            self.inbound_ended(conn, how);
        } else if self.devices.contains_key(&conn) {
            self.device_ended(conn);
        }
    }

    /// Checks every timer: hello, attach, authentication and bind timeouts,
    /// idle flows, link pings and silence, affinity and revocation expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.next_timeout = now + TICK;
        self.expire_streams(now);
        self.expire_unauthenticated(now);
        self.expire_flows(now);
        self.check_links(now);
        self.affinity.expire(now);
        self.expire_revocations(now);
        self.continue_replays(now);
    }

    /// The Unix clock reads `unix_secs` at `now`.
    pub fn set_wall_clock(&mut self, now: Instant, unix_secs: u64) {
        self.wall = WallClock { at: now, unix_secs };
    }

    fn unix_now(&self, now: Instant) -> u64 {
        self.wall.unix_secs.saturating_add(now.saturating_duration_since(self.wall.at).as_secs())
    }

    /// When the core next wants [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Instant {
        self.next_timeout
    }

    /// The next thing the driver must do.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Datagrams were sent where the core said; counted as forwarded.
    pub fn record_forwarded(&mut self, toward: Toward, datagrams: u64, bytes: usize) {
        let (n, b) = match toward {
            Toward::Gateway => (&mut self.counters.udp_to_gateways, &mut self.counters.udp_bytes_to_gateways),
            Toward::Device => (&mut self.counters.udp_to_devices, &mut self.counters.udp_bytes_to_devices),
        };
        *n += datagrams;
        *b += bytes as u64;
    }

    /// The kernel refused to send datagrams the core let through.
    pub fn record_send_failed(&mut self, datagrams: u64) {
        self.counters.drop_udp_send_failed += datagrams;
    }

    /// A device datagram was larger than the driver takes whole.
    pub fn record_truncated(&mut self) {
        self.counters.drop_udp_truncated += 1;
    }

    /// Queues a frame on a link or a gateway connection.
    fn send(&mut self, conn: ConnId, frame: &Frame) {
        self.effects.push_back(Effect::Write { conn, bytes: frame.to_vec() });
    }

    fn close(&mut self, conn: ConnId, reason: &'static str) {
        self.effects.push_back(Effect::Close { conn, reason });
    }
}
