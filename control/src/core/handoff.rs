//! The DTLS hand-off, one way: at CONNECT control authorises the session's
//! DTLS handshake on every shard ([`ToShard::Authorize`]: its App-ID and
//! TLS-exporter key, its address and policy); the shard that the device's
//! datagrams reach runs the handshake, installs the session and says so
//! ([`FromShard::Established`]). Control never sees a handshake datagram and
//! never waits on a shard.

use std::time::{Duration, Instant};

use dataplane::handshake::Authorization;
use dataplane::{FromShard, ShardId, ToShard};
use proto::grant::SessionId;

use super::{Core, Effect, FlowRequest};
use crate::port::DataplanePort;
use crate::session::DtlsState;

/// How long after a DTLS channel comes up a CSTP packet is still taken for
/// one the device sent before it read the handshake's last flight, rather
/// than for a fallback (which comes only after the device's DPD gave up on
/// DTLS, tens of seconds).
const FALLBACK_GUARD: Duration = Duration::from_secs(1);

impl<P: DataplanePort> Core<P> {
    /// Takes every event the shards queued.
    pub fn handle_dataplane(&mut self, now: Instant) {
        let mut events = Vec::new();
        self.port.drain_events(&mut events);
        for e in events {
            match e {
                FromShard::Established { shard, session, peer, suite } => {
                    self.on_established(shard, session, peer, suite, now);
                }
                FromShard::CstpPacket { session, packet } => self.send_over_cstp(session, &packet, now),
                FromShard::Disconnect { session } => {
                    tracing::info!(session = %session, "DTLS DISCONNECT from client");
                }
                FromShard::Activity { session, shard, last_rx: _, rx, tx } => {
                    let Some(s) = self.sessions.get_mut(session) else { continue };
                    // A report from a shard the session has since left
                    // counts the old grant, already history.
                    if !matches!(s.dtls, DtlsState::Granted { shard: holder, .. } if holder == shard) {
                        continue;
                    }
                    let t = &mut s.traffic;
                    if rx.packets > t.dtls_rx.packets || tx.packets > t.dtls_tx.packets {
                        s.last_data = now;
                    }
                    t.dtls_rx = rx;
                    t.dtls_tx = tx;
                }
            }
        }
    }

    /// Tells every shard to accept `id`'s DTLS handshake under its current
    /// App-ID and `psk`.
    pub(super) fn authorize_dtls(&mut self, id: SessionId, psk: dtls::Psk) {
        let Some(s) = self.sessions.get(id) else { return };
        let Some(group) = self.config.group(Some(&s.group)) else { return };
        let a = Authorization {
            session: id,
            app_id: s.app_id.to_vec(),
            psk,
            address: s.address,
            policy: group.policy.clone(),
            mtu: s.mtu,
        };
        for shard in 0..self.port.shard_count() {
            let shard = ShardId(u16::try_from(shard).unwrap_or(u16::MAX));
            if self.port.send(shard, ToShard::Authorize(Box::new(a.clone()))).is_err() {
                // That shard cannot take this device's handshake; DTLS then
                // fails for it and CSTP carries its traffic.
                tracing::warn!(session = %id, %shard, "shard queue full; DTLS not authorised there");
            }
        }
    }

    /// The session ended: no shard may accept its handshake or hold it.
    pub(super) fn deauthorize_dtls(&mut self, id: SessionId) {
        for shard in 0..self.port.shard_count() {
            let shard = ShardId(u16::try_from(shard).unwrap_or(u16::MAX));
            let _ = self.port.send(shard, ToShard::Deauthorize(id));
        }
    }

    fn on_established(
        &mut self,
        shard: ShardId,
        id: SessionId,
        peer: std::net::SocketAddr,
        suite: dtls::CipherSuite,
        now: Instant,
    ) {
        let Some(s) = self.sessions.get_mut(id) else {
            // It ended while the shard finished; the shard forgets it with
            // the deauthorisation already on its way.
            return;
        };
        if let DtlsState::Granted { shard: old, .. } = s.dtls {
            if old != shard {
                // The device's datagrams now reach another shard (a new
                // source port): the old one lets go.
                let _ = self.port.send(old, ToShard::Revoke(id));
            }
        }
        // The shard counts the new grant from zero.
        s.traffic.new_grant();
        s.dtls = DtlsState::Granted { shard, peer, since: now, suite };
        tracing::info!(event = "dtls_up", session = %id, user = %s.user, group = %s.group, address = %s.address, ?suite, %peer, shard = shard.0, "DTLS established on its shard");
    }

    /// Whether a CSTP packet from a device whose DTLS is `state` means it
    /// fell back to CSTP (see [`FALLBACK_GUARD`]).
    pub(super) fn fell_back(state: DtlsState, now: Instant) -> Option<(ShardId, std::net::SocketAddr)> {
        match state {
            DtlsState::Granted { shard, peer, since, .. } if now.saturating_duration_since(since) >= FALLBACK_GUARD => {
                Some((shard, peer))
            }
            _ => None,
        }
    }

    /// A relay opened a UDP port for a device's DTLS flow: bind it from the
    /// shards' port if a session has the flow's App-ID, or refuse it.
    pub fn handle_flow_request(&mut self, r: FlowRequest) {
        if self.sessions.by_app_id(&r.app_id).is_none() {
            tracing::info!(device = %r.device, relay = %r.relay, flow = r.flow, "relay flow for an App-ID no session has; refused");
            self.effects.push_back(Effect::RefuseFlow { link: r.link, flow: r.flow });
            return;
        }
        let bind = proto::relay::Bind { flow: r.flow, nonce: r.nonce }.to_bytes().to_vec();
        // The bind leaves from the shards' port: the relay's replies to it
        // are then "established" for the firewall, and the shards see the
        // device as `relay`.
        if self.port.send(ShardId(0), ToShard::SendDatagram { to: r.relay, datagram: bind }).is_ok() {
            self.counters.relay_flows_bound += 1;
            tracing::debug!(device = %r.device, relay = %r.relay, flow = r.flow, "relay flow bound");
        }
    }
}
