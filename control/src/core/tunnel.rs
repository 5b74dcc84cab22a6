//! The tunnel phase of a connection: CONNECT, then CSTP frames both ways —
//! the TCP fallback for data, and dead-peer detection and disconnects
//! (openconnect-protocol.md §3, §4).

use std::time::Instant;

use dataplane::{ShardId, ToShard, TUN_WRITE_HEADROOM};
use proto::connect::{self, DtlsParams, TunnelParams};
use proto::cstp::{self, Deframer, PacketType};
use proto::grant::{Refusal, SessionId};
use proto::http::Request;

use super::{secs, ConnId, Core, Misbehaviour, Phase};
use crate::port::DataplanePort;
use crate::session::{DtlsState, EndReason};

impl<P: DataplanePort> Core<P> {
    fn reject_connect(&mut self, conn: ConnId, status: u16, reason: &str, now: Instant) {
        self.counters.connect_rejected += 1;
        self.write(conn, connect::connect_error(status, reason));
        self.close(conn, "CONNECT refused", now);
    }

    pub(super) fn on_connect(&mut self, conn: ConnId, req: &Request<'_>, now: Instant) {
        let Some(c) = self.conns.get(&conn) else { return };
        let (peer, via) = (c.peer, c.via);
        let cr = match connect::parse_connect(req) {
            Ok(cr) => cr,
            Err(e) => {
                tracing::info!(%peer, error = ?e, "bad CONNECT");
                self.misbehaved(peer, Misbehaviour::Malformed, conn, now);
                return self.reject_connect(conn, 400, "Bad CONNECT request", now);
            }
        };
        // A cookie revoked here or at a cluster peer is as unknown as a guess.
        let cookie = cr.cookie.as_deref().filter(|k| {
            let revoked = self.is_revoked(k, now);
            if revoked {
                self.counters.connects_refused_revoked += 1;
                self.counters.logins_cookie_refused += 1;
                tracing::info!(%peer, "CONNECT with a revoked cluster cookie");
            }
            !revoked
        });
        let known = cookie.and_then(|k| self.sessions.by_cookie(k));
        let Some(id) = known.or_else(|| self.adopt(cookie?, now)) else {
            if cookie.is_some() {
                self.counters.logins_cookie_failed += 1;
            }
            tracing::info!(%peer, "CONNECT with an unknown cookie");
            // A cookie nobody issued is a guess at a credential.
            self.misbehaved(peer, Misbehaviour::WrongPassword, conn, now);
            return self.reject_connect(conn, 401, "Cookie is not acceptable", now);
        };
        self.counters.logins_cookie_ok += 1;
        let Some(psk) = self.conns.get(&conn).and_then(|c| c.tls.dtls_psk.clone()) else {
            return self.reject_connect(conn, 503, "Cannot derive the DTLS key", now);
        };
        // A reconnect takes the session over from any older connection.
        if let Some(old) = self.sessions.get(id).and_then(|s| s.conn).filter(|o| *o != conn) {
            self.close_quietly(old, "replaced by a reconnect");
        }
        // A DTLS grant of an earlier connection is done with: its key came
        // from that connection's TLS exporter, and the device handshakes
        // anew. Revoked now, ahead of the new authorisation in the same
        // shard queue: left standing, the first CSTP packet would take it
        // for a fallback and revoke it after the new grant was installed
        // in its place, killing that one.
        if let Some(s) = self.sessions.get_mut(id) {
            if let DtlsState::Granted { shard, .. } = s.dtls {
                s.dtls = DtlsState::None;
                let _ = self.port.send(shard, ToShard::Revoke(id));
            }
        }
        let config = self.config.clone();
        // Through a relay the device sends DTLS to the relay's port, with an
        // App-ID that names this gateway's link there.
        let dtls_port = match via {
            Some(v) => config.dtls_port.and((v.dtls_port != 0).then_some(v.dtls_port)),
            None => config.dtls_port,
        };
        if let (Some(v), Some(s)) = (via, self.sessions.get(id)) {
            let mut tagged = s.app_id;
            proto::relay::tag_app_id(&mut tagged, v.route);
            if tagged != s.app_id {
                self.sessions.replace_app_id(id, tagged);
            }
        }
        let Some(group) = self.sessions.get(id).and_then(|s| config.group(Some(&s.group))) else {
            return self.reject_connect(conn, 403, "Group not configured", now);
        };
        let Some(s) = self.sessions.get_mut(id) else { return };
        if let Some(prev) = cr.previous_ipv4.filter(|p| *p != s.address) {
            tracing::info!(session = %id, requested = %prev, assigned = %s.address, "reconnect asked for another address");
        }
        let dtls_on = dtls_port.is_some() && cr.psk_negotiate;
        let (base_mtu, mtu) = if dtls_on {
            proto::mtu::tunnel_mtu(config.link_mtu, cr.base_mtu, proto::mtu::DTLS_AES_GCM_OVERHEAD)
        } else {
            proto::mtu::cstp_only(config.link_mtu, cr.base_mtu)
        };
        s.mtu = mtu;
        s.conn = Some(conn);
        s.peer = Some(peer);
        s.via = via;
        s.detached_at = None;
        s.connected = true;
        let elapsed = now.saturating_duration_since(s.created).as_secs();
        let params = TunnelParams {
            server_name: config.server_name.clone(),
            hostname: cr.hostname.clone(),
            address: s.address,
            netmask: config.pool.mask(),
            dns: config.dns.clone(),
            default_domain: config.default_domain.clone(),
            split_include: group.split_include.clone(),
            split_exclude: group.split_exclude.clone(),
            base_mtu,
            mtu,
            dpd_secs: secs(config.timers.dpd),
            keepalive_secs: secs(config.timers.keepalive),
            idle_timeout_secs: config.timers.idle_timeout.map(secs),
            session_timeout_secs: config
                .timers
                .session_timeout
                .map(|t| secs(t).saturating_sub(u32::try_from(elapsed).unwrap_or(u32::MAX))),
            rekey: None,
            banner: config.banner.clone(),
            dtls: dtls_on.then(|| DtlsParams {
                port: dtls_port.unwrap_or(0),
                app_id: s.app_id.to_vec(),
                dpd_secs: secs(config.timers.dpd),
                keepalive_secs: secs(config.timers.keepalive),
            }),
            apps: group.apps.clone(),
            trusted: group.trusted.clone(),
        };
        let user = s.user.clone();
        let address = s.address;
        if dtls_on {
            self.authorize_dtls(id, psk);
        }
        let via = via.map_or("direct".to_owned(), |v| format!("relay route {:08x}", v.route));
        tracing::info!(event = "tunnel_up", session = %id, user = %user, address = %address, mtu, dtls = dtls_on, %peer, via = %via, "tunnel up (CSTP)");
        // The header block is its own record; frames follow in records of their own.
        self.write(conn, connect::connect_response(&params));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Tunnel { session: id, deframer: Deframer::new() };
        }
        self.authenticated(conn);
        self.counters.connects += 1;
    }

    /// Handles every complete CSTP frame the connection has buffered.
    pub(super) fn drain_frames(&mut self, conn: ConnId, now: Instant) {
        let mut frames = Vec::new();
        let mut broken = None;
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let Phase::Tunnel { session, deframer } = &mut c.phase else { return };
        let session = *session;
        // DATA goes to the TUN from the buffer it is framed into, with room
        // for the shard to put the TUN's header in front.
        while let Some(f) = deframer.next_frame_with_headroom(TUN_WRITE_HEADROOM) {
            match f {
                Ok(f) => frames.push(f),
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        for f in frames {
            self.on_frame(conn, session, f, now);
        }
        if let Some(e) = broken {
            self.counters.cstp_protocol_errors += 1;
            tracing::info!(session = %session, error = ?e, "CSTP framing error; closing the connection");
            self.close(conn, "CSTP framing error", now);
        }
    }

    pub(super) fn send_frame(&mut self, conn: ConnId, t: PacketType, payload: &[u8]) {
        let mut f = Vec::with_capacity(cstp::HEADER_LEN + payload.len());
        if cstp::write_frame(&mut f, t, payload).is_ok() {
            self.counters.cstp_frames_out += 1;
            self.write(conn, f);
        }
    }

    fn on_frame(&mut self, conn: ConnId, id: SessionId, f: cstp::Frame, now: Instant) {
        if !self.conns.contains_key(&conn) {
            // An earlier frame of this read closed it.
            return;
        }
        self.counters.cstp_frames_in += 1;
        let payload = f.payload.get(TUN_WRITE_HEADROOM..).unwrap_or_default();
        match f.packet_type {
            PacketType::DATA => self.device_packet(id, f.payload, now),
            // Echo the payload: openconnect probes MTU with DPD (§7.3).
            PacketType::DPD_REQ => self.send_frame(conn, PacketType::DPD_RESP, payload),
            PacketType::DPD_RESP | PacketType::KEEPALIVE => {}
            PacketType::DISCONNECT => {
                if payload.first() == Some(&cstp::DISCONNECT_LOGOUT) {
                    self.close_quietly(conn, "client logged out");
                    self.end_session(id, EndReason::Logout);
                } else if let Some(code) = cstp::pause_reason(payload) {
                    // The device paused its tunnel (e.g. it is on the
                    // organisation's network itself): the session waits
                    // for its cookie, as after a temporary disconnect.
                    let user = self.sessions.get(id).map(|s| s.user.clone()).unwrap_or_default();
                    tracing::info!(event = "paused", session = %id, user = %user, reason_code = code, "device paused its tunnel; the session waits for its cookie");
                    self.close(conn, "device paused its tunnel", now);
                } else {
                    tracing::info!(session = %id, "client disconnected temporarily");
                    self.close(conn, "client disconnected temporarily", now);
                }
            }
            other => {
                self.counters.cstp_protocol_errors += 1;
                tracing::debug!(session = %id, packet_type = ?other, "unexpected CSTP packet type dropped");
            }
        }
    }

    /// A packet from a device over CSTP (`frame`: the packet behind
    /// [`TUN_WRITE_HEADROOM`]): the shards' admission rule, then into the TUN
    /// through a shard's queue, in the buffer it was framed into.
    fn device_packet(&mut self, id: SessionId, mut frame: Vec<u8>, now: Instant) {
        let Some(s) = self.sessions.get_mut(id) else { return };
        let packet = frame.get(TUN_WRITE_HEADROOM..).unwrap_or_default();
        let admitted = match self.config.group(Some(&s.group)).map(|g| g.policy.admit(s.address, packet)) {
            Some(a) => a,
            None => Err(Refusal::Denied),
        };
        let admitted = match admitted {
            Ok(a) => a,
            // IPv6 is not carried yet; clients still send router solicitations.
            Err(Refusal::NotIpv4) => {
                self.counters.drop_not_ipv4 += 1;
                return;
            }
            Err(Refusal::Malformed) => {
                self.counters.cstp_protocol_errors += 1;
                return;
            }
            Err(Refusal::SpoofedSource) => {
                s.drops_spoofed += 1;
                self.counters.drop_spoofed_source += 1;
                return;
            }
            Err(Refusal::Denied) => {
                s.drops_policy += 1;
                self.counters.drop_policy += 1;
                return;
            }
            // The implicit deny is the group's policy too: the session's
            // policy drops count it as well.
            Err(Refusal::ToGateway) => {
                s.drops_policy += 1;
                self.counters.drop_to_gateway += 1;
                return;
            }
            Err(Refusal::ClientToClient) => {
                s.drops_policy += 1;
                self.counters.drop_client_to_client += 1;
                return;
            }
        };
        frame.truncate(TUN_WRITE_HEADROOM + admitted.total_len);
        s.traffic.cstp_rx.add(admitted.total_len);
        s.last_data = now;
        // The write goes through the queue of the shard holding the grant when
        // there is one: a revoke queued there first is then in force before
        // the packet reaches the network, so the reply cannot leave over the
        // DTLS channel the device has given up.
        let shards = self.port.shard_count().max(1);
        let mut target = ShardId(u16::try_from(id.0 as usize % shards).unwrap_or(0));
        if let Some((shard, peer)) = Self::fell_back(s.dtls, now) {
            target = shard;
            // The device sends data over CSTP only when its DTLS channel is
            // down (openconnect-protocol.md §8): stop sending over DTLS too,
            // until it completes a new handshake.
            s.dtls = DtlsState::None;
            tracing::info!(session = %id, user = %s.user, %peer, "device fell back to CSTP; DTLS grant revoked");
            let _ = self.port.send(shard, ToShard::Revoke(id));
        }
        if self.port.send(target, ToShard::TunWrite { session: id, frame }).is_err() {
            tracing::debug!(session = %id, "shard queue full; CSTP packet dropped");
        }
    }

    /// A packet for a session without a DTLS grant, from the TUN: over CSTP,
    /// unless its connection is gone or its socket full.
    pub(super) fn send_over_cstp(&mut self, id: SessionId, packet: &[u8], now: Instant) {
        let Some(conn) = self.sessions.get(id).and_then(|s| s.conn) else { return };
        let Some(c) = self.conns.get(&conn) else { return };
        if c.blocked {
            self.counters.cstp_dropped_blocked += 1;
            return;
        }
        self.send_frame(conn, PacketType::DATA, packet);
        if let Some(s) = self.sessions.get_mut(id) {
            s.traffic.cstp_tx.add(packet.len());
            s.last_data = now;
        }
    }
}
