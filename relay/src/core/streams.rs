//! Device TCP streams: the limits at accept, the ClientHello's SNI that
//! names the gateway, the Open that asks a link of that name for a stream,
//! and the Attach (right nonce, right host) that joins the two.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use proto::relay::{Frame, Nonce};
use proto::sni::{self, Sniffed};
use service::random_bytes;

use super::{late, ConnId, Effect, RelayCore};

/// A device's TCP connection, from accept until it closes.
#[derive(Debug)]
pub(super) struct Device {
    pub(super) peer: SocketAddr,
    /// When the current phase began: its timeout runs from there.
    pub(super) since: Instant,
    pub(super) phase: Phase,
}

#[derive(Debug)]
pub(super) enum Phase {
    /// Reading its ClientHello: what arrived so far.
    Sniffing { hello: Vec<u8> },
    /// Link `link` was asked to open `stream` with `nonce`; the ClientHello
    /// goes to the gateway first once it attaches.
    Waiting { hello: Vec<u8>, link: ConnId, stream: u64, nonce: Nonce },
    /// Joined to the stream its gateway attached; the driver moves its bytes.
    Spliced { link: ConnId },
}

impl Device {
    pub(super) fn is_sniffing(&self) -> bool {
        matches!(self.phase, Phase::Sniffing { .. })
    }

    pub(super) fn is_spliced(&self) -> bool {
        matches!(self.phase, Phase::Spliced { .. })
    }

    /// The link this device's stream counts against, once it has one.
    pub(super) fn link(&self) -> Option<ConnId> {
        match self.phase {
            Phase::Sniffing { .. } => None,
            Phase::Waiting { link, .. } | Phase::Spliced { link } => Some(link),
        }
    }
}

impl RelayCore {
    pub(super) fn accept_device(&mut self, conn: ConnId, peer: SocketAddr, now: Instant) {
        let limits = self.config.limits;
        if self.devices.len() >= limits.max_connections {
            self.counters.refused_max_connections += 1;
            tracing::debug!(%peer, "relay connection limit reached; refused");
            return self.close(conn, "relay connection limit");
        }
        let from_source = self.per_source.get(&peer.ip()).copied().unwrap_or(0);
        if from_source >= limits.max_connections_per_source {
            self.counters.refused_per_source += 1;
            tracing::info!(%peer, limit = limits.max_connections_per_source, "too many connections from one source; refused");
            return self.close(conn, "per-source connection limit");
        }
        *self.per_source.entry(peer.ip()).or_insert(0) += 1;
        self.counters.device_connections += 1;
        self.devices.insert(conn, Device { peer, since: now, phase: Phase::Sniffing { hello: Vec::new() } });
    }

    pub(super) fn on_device_bytes(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        let Some(d) = self.devices.get_mut(&conn) else { return };
        let Phase::Sniffing { hello } = &mut d.phase else { return };
        hello.extend_from_slice(bytes);
        let peer = d.peer;
        match sni::sniff(hello) {
            Ok(Sniffed::NeedMore) => {}
            Err(e) => {
                self.counters.drop_bad_client_hello += 1;
                tracing::info!(%peer, error = %e, "not a TLS ClientHello; dropped");
                self.close_device(conn, "bad ClientHello");
            }
            Ok(Sniffed::Hello { server_name }) => {
                let Some(name) = server_name.or_else(|| self.config.default_name.clone()) else {
                    self.counters.drop_no_sni += 1;
                    tracing::info!(%peer, "ClientHello without SNI and no relay.default_name; dropped");
                    return self.close_device(conn, "no SNI");
                };
                if !self.config.tokens.contains_key(&name) {
                    self.counters.drop_unknown_name += 1;
                    tracing::info!(%peer, name = %name, "ClientHello for a name no gateway registers; dropped");
                    return self.close_device(conn, "unknown SNI");
                }
                self.open_stream(conn, &name, peer, now);
            }
        }
    }

    /// A device that closes before its ClientHello is whole is gone; one
    /// waiting for its gateway keeps its socket, and the splice forwards
    /// its close.
    pub(super) fn device_ended(&mut self, conn: ConnId) {
        if self.devices.get(&conn).is_some_and(Device::is_sniffing) {
            self.close_device(conn, "closed before its ClientHello");
        }
    }

    /// Asks a live gateway of `name` to dial a stream back for `conn`.
    fn open_stream(&mut self, conn: ConnId, name: &str, peer: SocketAddr, now: Instant) {
        if self.waiting.len() >= self.config.limits.max_pending_streams {
            self.counters.drop_pending_streams += 1;
            tracing::info!(%peer, name, "too many streams waiting for their gateway; dropped");
            return self.close_device(conn, "pending stream limit");
        }
        let Some(link) = self.affinity.choose(name, peer.ip(), now, &self.routes, &self.links) else {
            self.counters.drop_no_gateway += 1;
            tracing::info!(%peer, name, "no gateway of that name is connected; dropped");
            return self.close_device(conn, "no live gateway");
        };
        let nonce = random_bytes::<16>();
        self.next_stream += 1;
        let stream = self.next_stream;
        let Some(l) = self.links.get_mut(&link) else { return };
        l.streams_opened += 1;
        l.active_streams += 1;
        let route = l.route();
        self.send(link, &Frame::Open { stream, nonce, device: peer });
        let Some(d) = self.devices.get_mut(&conn) else { return };
        let hello = match &mut d.phase {
            Phase::Sniffing { hello } => std::mem::take(hello),
            _ => Vec::new(),
        };
        d.phase = Phase::Waiting { hello, link, stream, nonce };
        d.since = now;
        self.waiting.insert(stream, conn);
        tracing::debug!(%peer, name, stream, route = ?route, "stream requested from the gateway");
    }

    /// A connection on the gateway port says it carries `stream`. The nonce
    /// went only to the link's gateway over its authenticated link, and the
    /// stream must come from that gateway's host.
    pub(super) fn on_attach(&mut self, gateway: ConnId, from: SocketAddr, stream: u64, nonce: Nonce, leftover: &[u8]) {
        let device = self.waiting.get(&stream).copied();
        let valid = device.and_then(|c| self.devices.get(&c)).and_then(|d| match &d.phase {
            Phase::Waiting { link, nonce: expected, .. }
                if aws_lc_rs::constant_time::verify_slices_are_equal(expected, &nonce).is_ok()
                    && self.links.get(link).is_some_and(|l| l.peer.ip() == from.ip()) =>
            {
                Some(*link)
            }
            _ => None,
        });
        let (Some(device), Some(link)) = (device, valid) else {
            self.counters.drop_bad_attach += 1;
            tracing::info!(peer = %from, stream, "attach for no stream waiting for it; closed");
            return self.close(gateway, "attach for no waiting stream");
        };
        if !leftover.is_empty() {
            // A gateway sends nothing before the device's ClientHello.
            self.counters.drop_bad_attach += 1;
            tracing::info!(peer = %from, stream, "gateway stream sent bytes before the device did; closed");
            self.close_device(device, "bad attach");
            return self.close(gateway, "bytes before the device's");
        }
        self.waiting.remove(&stream);
        let Some(d) = self.devices.get_mut(&device) else { return };
        let initial = match std::mem::replace(&mut d.phase, Phase::Spliced { link }) {
            Phase::Waiting { hello, .. } => hello,
            _ => Vec::new(),
        };
        self.counters.streams_spliced += 1;
        tracing::debug!(device = %d.peer, gateway = %from, stream, "stream spliced");
        self.effects.push_back(Effect::Splice { device, gateway, initial });
    }

    /// The gateway of `link` will not take `stream`.
    pub(super) fn on_decline(&mut self, link: ConnId, stream: u64) {
        let Some(device) = self.waiting.get(&stream).copied() else { return };
        if self.devices.get(&device).and_then(Device::link) == Some(link) {
            self.counters.streams_declined += 1;
            self.close_device(device, "declined by the gateway");
        }
    }

    /// Closes a device connection the driver has not spliced.
    pub(super) fn close_device(&mut self, conn: ConnId, why: &'static str) {
        let Some(d) = self.devices.get(&conn) else { return };
        if d.is_spliced() {
            return;
        }
        let Some(d) = self.devices.remove(&conn) else { return };
        if let Phase::Waiting { link, stream, .. } = d.phase {
            self.waiting.remove(&stream);
            self.release_link(link);
        }
        self.release_source(d.peer.ip());
        self.close(conn, why);
        tracing::debug!(peer = %d.peer, conn = conn.0, reason = why, "device connection closed");
    }

    /// A splice the core asked for ended: both its connections are closed.
    /// `to_gateway`, `to_device`: the bytes it delivered; `clean`: both
    /// sides finished (else one reset).
    pub fn handle_splice_end(&mut self, device: ConnId, to_gateway: u64, to_device: u64, clean: bool) {
        let Some(d) = self.devices.remove(&device) else { return };
        self.counters.stream_bytes_to_gateway += to_gateway;
        self.counters.stream_bytes_to_device += to_device;
        self.release_source(d.peer.ip());
        if let Some(link) = d.link() {
            self.release_link(link);
        }
        let how = if clean { "closed" } else { "reset" };
        tracing::debug!(device = %d.peer, conn = device.0, up = to_gateway, down = to_device, how, "stream ended");
    }

    pub(super) fn expire_streams(&mut self, now: Instant) {
        let limits = self.config.limits;
        let expired: Vec<(ConnId, bool)> = self
            .devices
            .iter()
            .filter_map(|(c, d)| match d.phase {
                Phase::Sniffing { .. } => late(now, d.since, limits.hello_timeout).then_some((*c, false)),
                Phase::Waiting { .. } => late(now, d.since, limits.attach_timeout).then_some((*c, true)),
                Phase::Spliced { .. } => None,
            })
            .collect();
        for (conn, waiting) in expired {
            if waiting {
                self.counters.drop_attach_timeout += 1;
                self.close_device(conn, "the gateway did not attach in time");
            } else {
                self.counters.drop_hello_timeout += 1;
                self.close_device(conn, "no ClientHello in time");
            }
        }
    }

    fn release_link(&mut self, link: ConnId) {
        if let Some(l) = self.links.get_mut(&link) {
            l.active_streams = l.active_streams.saturating_sub(1);
        }
    }

    fn release_source(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_source.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&ip);
            }
        }
    }
}
