//! Gateway links: a connection on the gateway port says what it is with
//! its first bytes (a TLS ClientHello starts a link, a plain Attach frame
//! carries a stream); a link runs TLS, proves its name's token inside it
//! (Hello → Challenge → Auth → Welcome, or Refused), then answers pings,
//! and is dead once silent past `limits.link_timeout`. Before its Welcome
//! a link is answered nothing but the handshake ([`super::preauth`]).

use std::net::SocketAddr;
use std::time::Instant;

use proto::relay::{self as link, next_frame, Frame};
use service::random_bytes;
use service::revocations::Cursor;

use super::preauth::Refusal;
use super::{late, ConnId, Effect, Ended, RelayCore};

/// The first byte of a TLS handshake record: no link frame type has it.
const TLS_HANDSHAKE: u8 = 22;

/// A connection on the gateway port before its first frame.
#[derive(Debug)]
pub(super) struct Inbound {
    peer: SocketAddr,
    local: SocketAddr,
    buf: Vec<u8>,
    since: Instant,
    /// It began with a TLS handshake: the driver runs TLS on it, and `buf`
    /// holds plaintext.
    tls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkState {
    /// Hello received, Challenge sent.
    Challenged { nonce: [u8; 32] },
    /// Authenticated; `route` tags its sessions' App-IDs.
    Up { route: u32 },
}

/// What the relay knows of the gateway behind a link.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) peer: SocketAddr,
    /// The relay's address the gateway reached: flows for this link open
    /// their UDP port there, so the gateway's binds and our replies share it.
    pub(super) local: SocketAddr,
    pub(super) name: String,
    route_hint: u32,
    state: LinkState,
    /// Bytes of a frame not yet whole.
    inbox: Vec<u8>,
    /// When it was accepted: its authentication deadline runs from there.
    accepted: Instant,
    last_rx: Instant,
    last_ping: Instant,
    /// Device streams opened through it, and now active (waiting or spliced).
    pub(super) streams_opened: u64,
    pub(super) active_streams: usize,
    /// Where telling it its name's revocations stands; `None`: done.
    pub(super) replay: Option<Cursor>,
    /// Its gateway said it drains ([`Frame::Drain`]): no new device goes
    /// to it, a device it had goes elsewhere.
    pub(super) draining: bool,
}

impl Link {
    pub(super) fn route(&self) -> Option<u32> {
        match self.state {
            LinkState::Up { route } => Some(route),
            LinkState::Challenged { .. } => None,
        }
    }
}

impl RelayCore {
    pub(super) fn accept_gateway(&mut self, conn: ConnId, peer: SocketAddr, local: SocketAddr, now: Instant) {
        match self.preauth.admit(peer.ip(), &self.config.limits) {
            Ok(()) => {}
            Err(Refusal::Total) => {
                self.counters.refused_unauthenticated += 1;
                tracing::debug!(%peer, "too many unauthenticated gateway connections; refused");
                return self.close(conn, "unauthenticated connection limit");
            }
            Err(Refusal::PerSource) => {
                self.counters.refused_unauthenticated_per_source += 1;
                tracing::debug!(%peer, "too many unauthenticated gateway connections from one source; refused");
                return self.close(conn, "per-source unauthenticated connection limit");
            }
        }
        self.inbound.insert(conn, Inbound { peer, local, buf: Vec::new(), since: now, tls: false });
    }

    pub(super) fn on_inbound_bytes(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        let Some(c) = self.inbound.get_mut(&conn) else { return };
        if !c.tls && c.buf.is_empty() && bytes.first() == Some(&TLS_HANDSHAKE) {
            // A link: the driver runs the TLS and hands us its plaintext.
            c.tls = true;
            self.effects.push_back(Effect::StartTls { conn, initial: bytes.to_vec() });
            return;
        }
        c.buf.extend_from_slice(bytes);
        let parsed = next_frame(&c.buf);
        if matches!(parsed, Ok(None)) && c.buf.len() <= link::HEADER_LEN + link::MAX_BODY {
            return;
        }
        let Some(c) = self.inbound.remove(&conn) else { return };
        match parsed {
            Ok(Some((Frame::Hello { version, route_hint, name }, used))) if c.tls => {
                let leftover = c.buf.get(used..).unwrap_or_default();
                self.on_hello(conn, &c, version, route_hint, &name, leftover, now);
            }
            Ok(Some((Frame::Hello { name, .. }, _))) => {
                self.preauth.release(c.peer.ip());
                self.counters.drop_plaintext_link += 1;
                tracing::warn!(peer = %c.peer, name = %name, "gateway link without TLS refused; upgrade the gateway");
                let reason = "the link must run over TLS: upgrade the gateway and pin the relay's key".to_owned();
                self.send(conn, &Frame::Refused { reason });
                self.close(conn, "link without TLS");
            }
            // A stream is the device's own TLS: it is never wrapped.
            Ok(Some((Frame::Attach { stream, nonce }, used))) if !c.tls => {
                self.preauth.release(c.peer.ip());
                let leftover = c.buf.get(used..).unwrap_or_default();
                self.on_attach(conn, c.peer, stream, nonce, leftover);
            }
            other => self.bad_first_frame(conn, &c, other.map(|f| f.map(|(f, _)| f))),
        }
    }

    /// A gateway connection ended before its first frame was whole.
    pub(super) fn inbound_ended(&mut self, conn: ConnId, how: Ended) {
        let Some(c) = self.inbound.remove(&conn) else { return };
        if how == Ended::TlsFailed {
            self.preauth.release(c.peer.ip());
            self.counters.drop_link_tls += 1;
            tracing::info!(peer = %c.peer, "gateway link: TLS handshake failed; closed");
            return self.close(conn, "TLS failed");
        }
        self.bad_first_frame(conn, &c, Ok(None));
    }

    fn bad_first_frame(&mut self, conn: ConnId, c: &Inbound, frame: Result<Option<Frame>, link::LinkError>) {
        self.preauth.release(c.peer.ip());
        self.counters.drop_bad_gateway_frame += 1;
        tracing::info!(peer = %c.peer, ?frame, "gateway port: not a link or stream; closed");
        self.close(conn, "not a link or stream");
    }

    #[allow(clippy::too_many_arguments)]
    fn on_hello(
        &mut self,
        conn: ConnId,
        c: &Inbound,
        version: u8,
        route_hint: u32,
        name: &str,
        leftover: &[u8],
        now: Instant,
    ) {
        let name = name.to_ascii_lowercase();
        if version != link::VERSION || !self.config.tokens.contains_key(&name) {
            self.counters.links_refused += 1;
            let reason = if version != link::VERSION {
                format!("link version {version} is not spoken here (this relay speaks {})", link::VERSION)
            } else {
                format!("no [[gateway]] named `{name}` on this relay")
            };
            tracing::warn!(peer = %c.peer, name = %name, reason = %reason, "gateway link refused");
            self.preauth.release(c.peer.ip());
            self.send(conn, &Frame::Refused { reason });
            return self.close(conn, "gateway link refused");
        }
        let nonce = random_bytes::<32>();
        self.send(conn, &Frame::Challenge { nonce });
        let link = Link {
            peer: c.peer,
            local: c.local,
            name,
            route_hint,
            state: LinkState::Challenged { nonce },
            inbox: leftover.to_vec(),
            accepted: c.since,
            last_rx: now,
            last_ping: now,
            streams_opened: 0,
            active_streams: 0,
            replay: None,
            draining: false,
        };
        self.links.insert(conn, link);
        // Auth may have arrived with the Hello.
        self.take_link_frames(conn, now);
    }

    pub(super) fn on_link_bytes(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        let Some(l) = self.links.get_mut(&conn) else { return };
        l.last_rx = now;
        l.inbox.extend_from_slice(bytes);
        self.take_link_frames(conn, now);
    }

    /// Handles the whole frames in a link's inbox; a malformed one ends the link.
    fn take_link_frames(&mut self, conn: ConnId, now: Instant) {
        loop {
            let Some(l) = self.links.get_mut(&conn) else { return };
            match next_frame(&l.inbox) {
                Ok(Some((f, used))) => {
                    l.inbox.drain(..used);
                    self.on_link_frame(conn, f, now);
                }
                Ok(None) => return,
                Err(e) => {
                    self.counters.drop_bad_gateway_frame += 1;
                    return self.drop_link(conn, &e.to_string());
                }
            }
        }
    }

    fn on_link_frame(&mut self, conn: ConnId, f: Frame, now: Instant) {
        let Some(l) = self.links.get(&conn) else { return };
        match (l.state, f) {
            // Before its Welcome a link is answered nothing but the handshake.
            (LinkState::Challenged { .. }, other) if !matches!(other, Frame::Auth { .. }) => {
                self.counters.drop_frame_before_auth += 1;
                tracing::info!(peer = %l.peer, name = %l.name, frame = ?other, "frame before authentication; dropped the link");
                self.drop_link(conn, "frame before authentication");
            }
            (LinkState::Challenged { nonce }, Frame::Auth { mac }) => {
                let ok = self
                    .config
                    .tokens
                    .get(&l.name)
                    .is_some_and(|secret| link::verify_link_mac(secret, &nonce, &l.name, &mac));
                if !ok {
                    self.counters.links_refused += 1;
                    tracing::warn!(peer = %l.peer, name = %l.name, "gateway link refused: wrong token");
                    self.send(conn, &Frame::Refused { reason: "authentication failed".into() });
                    return self.drop_link(conn, "authentication failed");
                }
                self.link_up(conn, now);
            }
            (LinkState::Up { .. }, Frame::Decline { stream }) => self.on_decline(conn, stream),
            (LinkState::Up { route }, Frame::Refuse { flow }) => self.on_refuse(route, flow),
            (LinkState::Up { .. }, Frame::Ping { token }) => self.send(conn, &Frame::Pong { token }),
            (LinkState::Up { .. }, Frame::Pong { .. }) => {}
            (LinkState::Up { .. }, Frame::Revoke { tag, expires }) => self.on_revoke(conn, tag, expires, now),
            (LinkState::Up { .. }, Frame::Drain) => {
                if let Some(l) = self.links.get_mut(&conn) {
                    if !l.draining {
                        l.draining = true;
                        self.counters.links_draining += 1;
                        tracing::info!(name = %l.name, peer = %l.peer, "gateway draining: no new devices go to it");
                    }
                }
            }
            (state, other) => {
                self.counters.drop_bad_gateway_frame += 1;
                tracing::warn!(peer = %l.peer, ?state, frame = ?other, "unexpected frame on a gateway link; dropped the link");
                self.drop_link(conn, "protocol error");
            }
        }
    }

    /// An authenticated link gets its old route back while no other link
    /// holds it (App-IDs issued before a drop still route), else a new one,
    /// and then the revocations its name holds.
    fn link_up(&mut self, conn: ConnId, now: Instant) {
        let Some(l) = self.links.get(&conn) else { return };
        let hint = l.route_hint;
        let route = if hint != 0 && !self.routes.contains_key(&hint) {
            hint
        } else {
            loop {
                let r = u32::from_be_bytes(random_bytes::<4>());
                if r != 0 && !self.routes.contains_key(&r) {
                    break r;
                }
            }
        };
        let Some(l) = self.links.get_mut(&conn) else { return };
        l.state = LinkState::Up { route };
        self.preauth.release(l.peer.ip());
        self.routes.insert(route, conn);
        self.counters.links_up += 1;
        tracing::info!(peer = %l.peer, name = %l.name, route = format_args!("{route:08x}"), kept_route = route == hint, "gateway link up");
        let dtls_port = self.config.dtls_port.unwrap_or(0);
        self.send(conn, &Frame::Welcome { route, dtls_port });
        self.start_replay(conn, now);
    }

    /// A link is gone: its waiting device streams are closed (their
    /// devices retry) and its unbound flows too; spliced streams and bound
    /// flows carry on, since they are connections of their own to the gateway.
    pub(super) fn drop_link(&mut self, conn: ConnId, why: &str) {
        let Some(l) = self.links.remove(&conn) else { return };
        self.close(conn, "gateway link dropped");
        if l.route().is_none() {
            self.preauth.release(l.peer.ip());
        }
        if let Some(route) = l.route() {
            self.routes.remove(&route);
            self.counters.links_lost += 1;
            tracing::warn!(peer = %l.peer, name = %l.name, route = format_args!("{route:08x}"), reason = why, "gateway link lost");
        }
        let waiting: Vec<ConnId> = self
            .waiting
            .values()
            .copied()
            .filter(|c| self.devices.get(c).and_then(|d| d.link()) == Some(conn))
            .collect();
        for device in waiting {
            self.close_device(device, "gateway link lost");
        }
        if let Some(route) = l.route() {
            self.close_unbound_flows(route);
        }
    }

    /// Closes gateway-port connections past `limits.auth_timeout` that
    /// have not attached, or as links have not authenticated.
    pub(super) fn expire_unauthenticated(&mut self, now: Instant) {
        let timeout = self.config.limits.auth_timeout;
        let slow: Vec<ConnId> =
            self.inbound.iter().filter(|(_, c)| late(now, c.since, timeout)).map(|(c, _)| *c).collect();
        for conn in slow {
            let Some(c) = self.inbound.remove(&conn) else { continue };
            self.preauth.release(c.peer.ip());
            self.counters.drop_auth_timeout += 1;
            self.close(conn, "not authenticated in time");
        }
        let slow: Vec<ConnId> = self
            .links
            .iter()
            .filter(|(_, l)| l.route().is_none() && late(now, l.accepted, timeout))
            .map(|(c, _)| *c)
            .collect();
        for conn in slow {
            self.counters.drop_auth_timeout += 1;
            self.drop_link(conn, "not authenticated in time");
        }
    }

    /// Pings every live link a third of `limits.link_timeout` after the
    /// last ping; drops those silent for all of it.
    pub(super) fn check_links(&mut self, now: Instant) {
        let timeout = self.config.limits.link_timeout;
        let mut dead = Vec::new();
        let mut ping = Vec::new();
        for (conn, l) in &mut self.links {
            if late(now, l.last_rx, timeout) {
                dead.push(*conn);
            } else if late(now, l.last_ping, timeout / 3) && l.route().is_some() {
                l.last_ping = now;
                ping.push(*conn);
            }
        }
        for conn in ping {
            self.send(conn, &Frame::Ping { token: 0 });
        }
        for conn in dead {
            self.drop_link(conn, "silent past limits.link_timeout");
        }
    }
}
