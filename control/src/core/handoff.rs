//! The DTLS hand-off: handshake datagrams the shards could not place run
//! through [`Handshakes`](crate::handshakes::Handshakes) here; a finished
//! handshake becomes a [`SessionGrant`] on the shard that received it, and
//! its final flight waits until that shard confirms the grant.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dataplane::{FromShard, ShardId, ToShard};
use proto::grant::{SessionGrant, SessionId};

use super::{Core, Effect, FlowRequest};
use crate::handshakes::Established;
use crate::port::DataplanePort;
use crate::session::DtlsState;

/// How long a finished handshake's last flight waits for its shard to
/// confirm the grant. Past it the flight goes anyway: there is no
/// confirmation when the shard's event queue is full or it refused the
/// grant, and a device must never be left mid-handshake for want of one.
pub(super) const FINAL_FLIGHT_HOLD: Duration = Duration::from_millis(200);

/// A finished handshake's last flight (ChangeCipherSpec, Finished), held
/// until `shard` reports the grant for `peer` installed: the device sends
/// data as soon as it reads the flight, and the shard takes records from a
/// peer it holds no grant for as handshake traffic, which is lost.
#[derive(Debug)]
pub(super) struct HeldFlight {
    shard: ShardId,
    peer: SocketAddr,
    datagrams: Vec<Vec<u8>>,
    since: Instant,
}

impl<P: DataplanePort> Core<P> {
    /// Takes every event the shards queued.
    pub fn handle_dataplane(&mut self, now: Instant) {
        let mut events = Vec::new();
        self.port.drain_events(&mut events);
        let mut done = Vec::new();
        for e in events {
            match e {
                FromShard::Handshake { shard, peer, datagram } => {
                    let port = &mut self.port;
                    let mut send = |to: SocketAddr, d: &[u8]| {
                        port.send_datagram(to, d);
                    };
                    self.handshakes.on_datagram(now, shard, peer, &datagram, &mut send, &mut done);
                }
                FromShard::Granted { shard, session, peer } => self.release_final_flight(shard, session, peer),
                FromShard::CstpPacket { session, packet } => self.send_over_cstp(session, &packet, now),
                FromShard::Disconnect { session } => {
                    tracing::info!(session = %session, "DTLS DISCONNECT from client");
                }
                FromShard::Activity { session, last_rx: _, rx_packets, tx_packets } => {
                    if let Some(s) = self.sessions.get_mut(session) {
                        if rx_packets > s.dtls_rx_packets || tx_packets > s.dtls_tx_packets {
                            s.last_data = now;
                        }
                        s.dtls_rx_packets = rx_packets;
                        s.dtls_tx_packets = tx_packets;
                    }
                }
            }
        }
        self.grant(done, now);
    }

    /// DTLS retransmissions and overdue final flights.
    pub(super) fn handshake_timers(&mut self, now: Instant) {
        let mut done = Vec::new();
        let port = &mut self.port;
        let mut send = |to: SocketAddr, d: &[u8]| {
            port.send_datagram(to, d);
        };
        self.handshakes.on_tick(now, &mut send, &mut done);
        self.grant(done, now);
        self.release_overdue_final_flights(now);
    }

    fn send_datagrams(&mut self, peer: SocketAddr, datagrams: &[Vec<u8>]) {
        for d in datagrams {
            self.port.send_datagram(peer, d);
        }
    }

    /// Finished DTLS handshakes become session grants on the shard that
    /// received the client's datagrams; their final flights wait for the
    /// grant to be installed (see [`HeldFlight`]).
    fn grant(&mut self, done: Vec<Established>, now: Instant) {
        for e in done {
            let Some(id) = self.sessions.by_app_id(&e.info.app_id) else { continue };
            let Some(s) = self.sessions.get_mut(id) else { continue };
            if let DtlsState::Granted { shard, .. } = s.dtls {
                let _ = self.port.send(shard, ToShard::Revoke(id));
            }
            let grant = SessionGrant {
                session: id,
                peer: e.peer,
                address: s.address,
                policy: self.config.group(Some(&s.group)).policy.clone(),
                keys: e.keys,
                mtu: s.mtu,
            };
            match self.port.send(e.shard, ToShard::Grant(Box::new(grant))) {
                Ok(()) => {
                    s.dtls = DtlsState::Granted { shard: e.shard, peer: e.peer };
                    tracing::info!(session = %id, user = %s.user, suite = ?e.info.suite, peer = %e.peer, shard = e.shard.0, "DTLS established; session handed to shard");
                    // A flight still held from an earlier handshake of this
                    // session answers a DTLS session that no longer exists.
                    self.held_flights
                        .insert(id, HeldFlight { shard: e.shard, peer: e.peer, datagrams: e.final_flight, since: now });
                }
                Err(_) => {
                    tracing::warn!(session = %id, "shard queue full; DTLS grant dropped, traffic stays on CSTP");
                    // No grant will be confirmed; holding the flight would
                    // only delay the device.
                    self.send_datagrams(e.peer, &e.final_flight);
                }
            }
        }
    }

    /// `shard` installed the grant of `session` for `peer`: the device may
    /// have its final flight. A confirmation of an older grant (another
    /// shard or peer, since replaced) releases nothing.
    fn release_final_flight(&mut self, shard: ShardId, session: SessionId, peer: SocketAddr) {
        if !self.held_flights.get(&session).is_some_and(|f| f.shard == shard && f.peer == peer) {
            return;
        }
        if let Some(f) = self.held_flights.remove(&session) {
            self.send_datagrams(f.peer, &f.datagrams);
        }
    }

    /// Sends the final flights whose grant confirmation is overdue.
    fn release_overdue_final_flights(&mut self, now: Instant) {
        let overdue: Vec<SessionId> = self
            .held_flights
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.since) >= FINAL_FLIGHT_HOLD)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            let Some(f) = self.held_flights.remove(&id) else { continue };
            self.counters.final_flights_released_by_timer += 1;
            tracing::debug!(session = %id, peer = %f.peer, shard = f.shard.0, "no grant confirmation from the shard; final DTLS flight sent anyway");
            self.send_datagrams(f.peer, &f.datagrams);
        }
    }

    /// A relay opened a UDP port for a device's DTLS flow: bind it from the
    /// shards' port if a session has the flow's App-ID, or refuse it.
    pub fn handle_flow_request(&mut self, r: FlowRequest) {
        if !self.handshakes.keys().has(&r.app_id) {
            tracing::info!(device = %r.device, relay = %r.relay, flow = r.flow, "relay flow for an App-ID no session has; refused");
            self.effects.push_back(Effect::RefuseFlow { link: r.link, flow: r.flow });
            return;
        }
        let bind = proto::relay::Bind { flow: r.flow, nonce: r.nonce }.to_bytes();
        // The bind leaves from the shards' port: the relay's replies to it
        // are then "established" for the firewall, and the shards see the
        // device as `relay`.
        if self.port.send_datagram(r.relay, &bind) {
            self.counters.relay_flows_bound += 1;
            tracing::debug!(device = %r.device, relay = %r.relay, flow = r.flow, "relay flow bound");
        }
    }
}
