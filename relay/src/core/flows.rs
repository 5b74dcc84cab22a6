//! DTLS flows through the relay, one per device UDP address: a relay UDP
//! port of its own (a TURN-like allocation) that the gateway opens with a
//! [`proto::relay::Bind`] from its shards' port. The gateway therefore sees
//! each device as a distinct peer (`relay:port`) and its fast path is the
//! same in direct and relayed mode; its firewall sees only replies to
//! datagrams it sent.
//!
//! A device's DTLS ClientHello names its gateway link by the route tagged
//! into its App-ID; once the flow is bound, its datagrams pass both ways
//! with one table lookup per receive.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use proto::relay::{self as link, Bind, Frame, Nonce};
use service::random_bytes;

use super::{datagrams_in, late, DeviceDatagrams, Effect, FlowDatagrams, FlowId, RelayCore};

/// Datagrams held for a flow its gateway has not bound yet: the device's
/// first flight. More are dropped (DTLS retransmits).
pub const QUEUE_BEFORE_BIND: usize = 8;
/// How long a flow may wait for its gateway's bind.
pub const BIND_TIMEOUT: Duration = Duration::from_secs(5);

/// Buffers held until the bind, each with its GRO segment size.
type Held = Vec<(Vec<u8>, Option<usize>)>;

#[derive(Debug)]
pub(super) enum FlowState {
    /// The driver is opening the flow's port; the Allocate (with the
    /// ClientHello's App-ID) goes once it is open.
    Opening { held: Held },
    /// Allocate sent; the device's datagrams wait for the gateway's Bind.
    Unbound { held: Held },
    /// Bound by the gateway from `gateway`: only datagrams from there go to
    /// the device, and the device's go there.
    Bound { gateway: SocketAddr },
}

#[derive(Debug)]
pub(super) struct Flow {
    id: FlowId,
    device: SocketAddr,
    /// The link route the ClientHello's App-ID named.
    route: u32,
    /// The App-ID of the ClientHello that opened it.
    app_id: Vec<u8>,
    nonce: Nonce,
    /// The link's peer address: binds must come from it.
    gateway_ip: IpAddr,
    state: FlowState,
    created: Instant,
    last_active: Instant,
}

impl Flow {
    fn is_bound(&self) -> bool {
        matches!(self.state, FlowState::Bound { .. })
    }
}

/// Every flow, by id and by device address, and how many each source
/// address and each App-ID holds.
#[derive(Debug, Default)]
pub(super) struct Flows {
    by_id: HashMap<FlowId, Flow>,
    by_device: HashMap<SocketAddr, FlowId>,
    per_source: HashMap<IpAddr, usize>,
    per_app_id: HashMap<Vec<u8>, usize>,
    last_id: u64,
}

fn count_up<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    *map.entry(key).or_insert(0) += 1;
}

fn count_down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Flows {
    fn next_id(&mut self) -> FlowId {
        self.last_id += 1;
        FlowId(self.last_id)
    }

    fn insert(&mut self, f: Flow) {
        self.by_device.insert(f.device, f.id);
        count_up(&mut self.per_source, f.device.ip());
        count_up(&mut self.per_app_id, f.app_id.clone());
        self.by_id.insert(f.id, f);
    }

    fn remove(&mut self, id: FlowId) -> Option<Flow> {
        let f = self.by_id.remove(&id)?;
        count_down(&mut self.per_source, &f.device.ip());
        count_down(&mut self.per_app_id, &f.app_id);
        if self.by_device.get(&f.device) == Some(&id) {
            self.by_device.remove(&f.device);
        }
        Some(f)
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Flows not bound yet (opening or waiting for their Bind).
    pub(super) fn pending(&self) -> usize {
        self.by_id.values().filter(|f| !f.is_bound()).count()
    }

    /// Flows on `route` (a link), bound or not.
    pub(super) fn on_route(&self, route: u32) -> usize {
        self.by_id.values().filter(|f| f.route == route).count()
    }
}

/// Whether a datagram starts with a DTLS ClientHello record (content type
/// handshake, epoch 0, handshake type client_hello): a device starting a
/// new handshake, possibly with another gateway.
pub fn is_client_hello(d: &[u8]) -> bool {
    matches!(d, [22, _, _, 0, 0, _, _, _, _, _, _, _, _, 1, ..])
}

impl RelayCore {
    /// Datagrams from `from` on the devices' socket: one, or several of
    /// `segment` bytes each (a run the driver joined for one GSO send).
    pub fn handle_device_datagrams(
        &mut self,
        from: SocketAddr,
        d: &[u8],
        segment: Option<usize>,
        now: Instant,
    ) -> DeviceDatagrams {
        let datagrams = datagrams_in(d.len(), segment);
        self.counters.udp_from_devices += datagrams;
        let first = segment.and_then(|s| d.get(..s)).unwrap_or(d);
        let hello = is_client_hello(first);
        // The ClientHello is parsed once: its App-ID routes it and, for a
        // new flow, goes to the gateway in the Allocate.
        let app_id =
            hello.then(|| dtls::PeekedClientHello::parse(first).ok()).flatten().map(|p| p.hello.app_id().to_vec());
        let route = app_id.as_deref().and_then(link::app_id_route);
        if let Some(id) = self.flows.by_device.get(&from).copied() {
            let Some(f) = self.flows.by_id.get_mut(&id) else { return DeviceDatagrams::Taken };
            // A ClientHello for another gateway (the device reconnected
            // elsewhere) starts a new flow; anything else follows this one.
            if !(hello && route.is_some() && route != Some(f.route)) {
                f.last_active = now;
                match &mut f.state {
                    FlowState::Bound { gateway } => return DeviceDatagrams::Forward { flow: id, to: *gateway },
                    FlowState::Opening { held, .. } | FlowState::Unbound { held } if held.len() < QUEUE_BEFORE_BIND => {
                        held.push((d.to_vec(), segment));
                    }
                    _ => self.counters.drop_udp_queue_full += datagrams,
                }
                return DeviceDatagrams::Taken;
            }
            self.close_flow(id, "the device began a handshake with another gateway");
        }
        if !hello {
            self.counters.drop_udp_unknown_peer += 1;
            return DeviceDatagrams::Taken;
        }
        let Some(route) = route else {
            self.counters.drop_udp_unknown_app_id += 1;
            tracing::debug!(%from, "DTLS ClientHello without a relay route in its App-ID; dropped");
            return DeviceDatagrams::Taken;
        };
        let Some(link) = self.routes.get(&route).and_then(|c| self.links.get(c)) else {
            self.counters.drop_udp_unknown_route += 1;
            tracing::debug!(%from, route = format_args!("{route:08x}"), "DTLS ClientHello for a route no link holds; dropped");
            return DeviceDatagrams::Taken;
        };
        let (ip, gateway_ip) = (link.local.ip(), link.peer.ip());
        if self.flows.len() >= self.config.limits.max_flows {
            self.counters.drop_udp_max_flows += 1;
            return DeviceDatagrams::Taken;
        }
        let limits = &self.config.limits;
        if self.flows.per_source.get(&from.ip()).is_some_and(|n| *n >= limits.max_flows_per_source) {
            self.counters.drop_udp_flows_per_source += 1;
            tracing::debug!(%from, limit = limits.max_flows_per_source, "flow limit of one source reached; ClientHello dropped");
            return DeviceDatagrams::Taken;
        }
        let app_id = app_id.unwrap_or_default();
        // One App-ID is one device session: ClientHellos sprayed for it
        // from many ports stop here, not at the gateway.
        if self.flows.per_app_id.get(&app_id).is_some_and(|n| *n >= limits.max_flows_per_app_id) {
            self.counters.drop_udp_flows_per_app_id += 1;
            tracing::debug!(%from, limit = limits.max_flows_per_app_id, "flow limit of one App-ID reached; ClientHello dropped");
            return DeviceDatagrams::Taken;
        }
        if self.flows.pending() >= limits.max_pending_flows {
            self.counters.drop_udp_pending_flows += 1;
            return DeviceDatagrams::Taken;
        }
        let id = self.flows.next_id();
        let held = vec![(d.to_vec(), segment)];
        let state = FlowState::Opening { held };
        let nonce = random_bytes::<16>();
        let created = now;
        let f = Flow { id, device: from, route, app_id, nonce, gateway_ip, state, created, last_active: now };
        self.flows.insert(f);
        // The port opens on the address the gateway dialled, so its binds
        // and our replies share one path through its firewall.
        self.effects.push_back(Effect::OpenFlowPort { flow: id, ip });
        DeviceDatagrams::Taken
    }

    /// The driver opened `flow`'s port (`None`: it could not): the gateway
    /// is asked to bind it.
    pub fn handle_flow_port(&mut self, flow: FlowId, port: Option<u16>, _now: Instant) {
        let Some(port) = port else {
            if self.flows.remove(flow).is_some() {
                self.counters.drop_udp_socket_failed += 1;
                tracing::warn!(flow = flow.0, "could not open a relay UDP port for a flow");
            }
            return;
        };
        let Some(f) = self.flows.by_id.get_mut(&flow) else { return };
        let FlowState::Opening { held } = std::mem::replace(&mut f.state, FlowState::Unbound { held: Vec::new() })
        else {
            return;
        };
        f.state = FlowState::Unbound { held };
        let (route, device, nonce, app_id) = (f.route, f.device, f.nonce, f.app_id.clone());
        let Some(link) = self.routes.get(&route).copied() else {
            return self.close_flow(flow, "gateway link lost before the bind");
        };
        self.send(link, &Frame::Allocate { flow: flow.0, port, nonce, device, app_id });
        self.counters.flows_allocated += 1;
        tracing::debug!(%device, flow = flow.0, port, route = format_args!("{route:08x}"), "flow allocated");
    }

    /// Datagrams that arrived on `flow`'s port from `from`: the gateway's
    /// (forwarded to the device once bound), its Bind, or a stranger's.
    pub fn handle_flow_datagrams(
        &mut self,
        flow: FlowId,
        from: SocketAddr,
        d: &[u8],
        segment: Option<usize>,
        now: Instant,
    ) -> FlowDatagrams {
        let Some(f) = self.flows.by_id.get_mut(&flow) else { return FlowDatagrams::Taken };
        match f.state {
            FlowState::Bound { gateway } if gateway == from => {
                f.last_active = now;
                return FlowDatagrams::Forward { to: f.device };
            }
            FlowState::Unbound { .. } if segment.is_none() => {}
            _ => {
                self.counters.drop_udp_stranger += datagrams_in(d.len(), segment);
                return FlowDatagrams::Taken;
            }
        }
        match Bind::parse(d) {
            Some(b)
                if b.flow == flow.0
                    && from.ip() == f.gateway_ip
                    && aws_lc_rs::constant_time::verify_slices_are_equal(&b.nonce, &f.nonce).is_ok() =>
            {
                let held = match std::mem::replace(&mut f.state, FlowState::Bound { gateway: from }) {
                    FlowState::Unbound { held } | FlowState::Opening { held, .. } => held,
                    FlowState::Bound { .. } => Vec::new(),
                };
                f.last_active = now;
                self.counters.flows_bound += 1;
                tracing::debug!(device = %f.device, gateway = %from, flow = flow.0, "flow bound");
                for (bytes, segment) in held {
                    self.effects.push_back(Effect::SendDatagram { flow, to: from, bytes, segment });
                }
            }
            _ => self.counters.drop_udp_stranger += 1,
        }
        FlowDatagrams::Taken
    }

    /// The gateway on `route` refused `flow` (no session has its App-ID).
    pub(super) fn on_refuse(&mut self, route: u32, flow: u64) {
        let flow = FlowId(flow);
        if self.flows.by_id.get(&flow).is_some_and(|f| f.route == route) {
            self.counters.flows_refused += 1;
            self.close_flow(flow, "refused by the gateway: unknown App-ID");
        }
    }

    /// The flows of a lost link that its gateway had not bound.
    pub(super) fn close_unbound_flows(&mut self, route: u32) {
        let unbound: Vec<FlowId> =
            self.flows.by_id.values().filter(|f| !f.is_bound() && f.route == route).map(|f| f.id).collect();
        for id in unbound {
            self.close_flow(id, "gateway link lost before the bind");
        }
    }

    fn close_flow(&mut self, id: FlowId, why: &'static str) {
        let Some(f) = self.flows.remove(id) else { return };
        self.effects.push_back(Effect::CloseFlowPort { flow: id });
        self.counters.flows_closed += 1;
        tracing::debug!(device = %f.device, flow = id.0, reason = why, "flow closed");
    }

    pub(super) fn expire_flows(&mut self, now: Instant) {
        let idle_timeout = self.config.limits.flow_idle_timeout;
        // (flow, whether it is closed for being idle rather than unbound)
        let stale: Vec<(FlowId, bool)> = self
            .flows
            .by_id
            .values()
            .filter_map(|f| {
                if !f.is_bound() && late(now, f.created, BIND_TIMEOUT) {
                    Some((f.id, false))
                } else {
                    late(now, f.last_active, idle_timeout).then_some((f.id, true))
                }
            })
            .collect();
        for (id, idle) in stale {
            if idle {
                self.counters.flows_idle += 1;
                self.close_flow(id, "idle");
            } else {
                self.counters.flows_unbound += 1;
                self.close_flow(id, "the gateway did not bind it");
            }
        }
    }
}
