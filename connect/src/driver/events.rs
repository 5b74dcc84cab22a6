//! What the client does with the session's events: the tunnel coming up
//! (its TUN, routes and per-app machinery), DTLS, packets, the session
//! ending or pausing; and the checks after a network change (the way to
//! the gateway, the trusted network).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::time::Instant;

use device::{DeviceSession, DisconnectReason, Event, Phase};
use mio::unix::SourceFd;
use mio::Interest;
use proto::connect::TunnelConfig;

use super::{Client, TUN};
use crate::apps::AppTunnel;
use crate::netlink::Netlink;
use crate::trusted::{Detector, PAUSED_PROBE_EVERY};
use crate::tunnel::{add_routes, open_tun, remove_routes, Tunnel};
use crate::Ended;

impl Client {
    /// After a network change: when a new connection to the gateway would
    /// leave from another address than the current one (the address went,
    /// or the route moved), the current one is as good as lost. Reconnect
    /// now with the cookie (same tunnel address, a new DTLS handshake from
    /// the new address) rather than wait for dead-peer detection.
    pub(super) fn check_path(&mut self, now: Instant) {
        if !matches!(self.session.phase(), Phase::Tunnel | Phase::Connecting) {
            return;
        }
        let Some(local) = self.tcp.as_ref().and_then(|s| s.local_addr().ok()) else { return };
        let IpAddr::V4(gateway) = self.gateway.ip() else { return };
        let now_from = Netlink::open().and_then(|mut nl| nl.lookup(gateway)).ok().and_then(|l| l.source);
        if now_from.is_some_and(|s| IpAddr::V4(s) == local.ip()) {
            return;
        }
        match now_from {
            Some(new) => {
                tracing::warn!(was = %local.ip(), now = %new, "network changed: the gateway is reached from another address; reconnecting")
            }
            None => {
                tracing::warn!(was = %local.ip(), "network changed: no route to the gateway now; reconnecting when there is")
            }
        }
        self.drop_tcp();
        self.session.handle_connection_lost(now);
    }

    /// On the trusted network with the tunnel up: pause it (the gateway
    /// keeps the session) and take the TUN and routes away. Paused and no
    /// longer on it: bring the tunnel back with the cookie.
    pub(super) fn check_trusted(&mut self, now: Instant) {
        self.probe = None;
        let Some(detector) = &self.trusted else { return };
        let paused = self.session.is_paused();
        let inside = detector.inside(self.tunnel.as_ref().map(|t| t.index));
        match (paused, inside) {
            (false, true) if self.session.phase() == Phase::Tunnel => {
                tracing::info!(
                    event = "paused",
                    reason_code = "trusted_network",
                    url = detector.url(),
                    "on the trusted network: tunnel paused"
                );
                self.session.pause(now, "trusted_network");
                self.probe = Some(now + PAUSED_PROBE_EVERY);
            }
            (true, false) => {
                tracing::info!(
                    event = "resumed",
                    url = detector.url(),
                    "left the trusted network: bringing the tunnel back"
                );
                self.session.resume(now);
                self.resuming = true;
            }
            (true, true) => self.probe = Some(now + PAUSED_PROBE_EVERY),
            _ => {}
        }
    }

    pub(super) fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::LoggedIn if self.options.authenticate_only => {
                let cookie = self.session.cookie().map(|c| zeroize::Zeroizing::new(c.to_owned()));
                let fingerprint = self.session.server_certificate().as_deref().and_then(crate::trust::pin_of);
                self.ended = Some(match (cookie, fingerprint) {
                    (Some(cookie), Some(fingerprint)) => {
                        Ok(Ended::Authenticated { cookie, fingerprint, gateway: self.gateway })
                    }
                    _ => Err("logged in, but no cookie or no gateway certificate to show".to_owned()),
                });
            }
            Event::LoggedIn => tracing::info!("logged in"),
            Event::TunnelUp { address, mtu, dtls_port, .. } => {
                self.resuming = false;
                if let Some(script) = self.tunnel.as_ref().and_then(|t| t.script.as_ref()) {
                    // A reconnection that kept the tunnel.
                    script.run_logged("reconnect");
                }
                if self.tunnel.is_none() {
                    let config = self.session.tunnel().cloned();
                    match config.ok_or_else(|| "no tunnel configuration".to_owned()).and_then(|c| self.open_tunnel(&c))
                    {
                        Ok(t) => {
                            self.tunnel = Some(t);
                            if std::mem::take(&mut self.options.notify_up) {
                                println!("up");
                                let _ = std::io::stdout().flush();
                            }
                        }
                        Err(e) => {
                            self.session.disconnect(now);
                            self.ended = Some(Err(e));
                            return;
                        }
                    }
                }
                if self.trusted.is_none() && !self.options.no_trusted_network {
                    if let Some(t) = self.session.tunnel().and_then(|c| c.trusted.clone()) {
                        match Detector::new(&t) {
                            Ok(d) => self.trusted = Some(d),
                            Err(e) => tracing::warn!(error = %e, "the gateway's trusted network is unusable; ignored"),
                        }
                    }
                }
                if self.trusted.is_some() {
                    self.probe = Some(now);
                }
                let via = if self.options.dtls && dtls_port.is_some() { "CSTP, DTLS starting" } else { "CSTP" };
                tracing::info!(event = "tunnel_up", %address, mtu, via, "tunnel up");
                self.status.state = "tunnel".into();
                self.status.address = Some(address);
                self.status.channel = Some("cstp".into());
                self.status.cipher = None;
                self.status.since = Some(crate::status::now_unix());
                self.status_due = now;
                if let Some(port) = dtls_port {
                    self.open_udp(port);
                }
            }
            Event::DtlsUp { suite } => {
                tracing::info!(event = "dtls_up", ?suite, "DTLS up: packets go over DTLS");
                (self.status.channel, self.status.cipher) = (Some("dtls".into()), Some(format!("{suite:?}")));
                self.status_due = now;
            }
            Event::DtlsDown => {
                tracing::warn!(event = "dtls_down", "DTLS down: packets go over CSTP");
                (self.status.channel, self.status.cipher) = (Some("cstp".into()), None);
                self.status_due = now;
            }
            Event::Packet(p) => {
                self.status.packets_in += 1;
                self.status.bytes_in += p.len() as u64;
                if let Some(t) = self.tunnel.as_mut() {
                    // A full TUN queue drops the packet; TCP inside recovers.
                    let _ = t.file.write(&p);
                }
            }
            Event::DpdResponse(_) => {}
            Event::AuthFailed(message) => {
                self.ended = Some(Err(format!("login refused: {}", message.trim())));
            }
            Event::Disconnected(reason) => self.on_disconnected(now, reason),
        }
    }

    pub(super) fn on_disconnected(&mut self, now: Instant, reason: DisconnectReason) {
        self.status.state = match reason {
            DisconnectReason::Paused(_) => "paused",
            _ => "reconnecting",
        }
        .into();
        (self.status.channel, self.status.cipher) = (None, None);
        self.status.last_teardown = Some(describe(&reason));
        self.status_due = now;
        // What the session wrote last (a logout's BYE) leaves before the
        // connection is dropped.
        while self.session.poll_tls(&mut self.tcp_out) {}
        self.flush_tcp(now);
        self.drop_tcp();
        if self.ended.is_some() {
            return;
        }
        if let DisconnectReason::Paused(_) = reason {
            if let Some(mut t) = self.tunnel.take() {
                // The listed apps keep their cgroup for the resume.
                self.suspended_apps = t.apps.take();
                if let Some(a) = &self.suspended_apps {
                    a.suspend();
                }
                remove_routes(&t);
            }
            return;
        }
        // A paused session whose cookie expired meanwhile: log in afresh.
        if matches!(reason, DisconnectReason::CookieRejected { .. }) && std::mem::take(&mut self.resuming) {
            match DeviceSession::new(self.config.clone()) {
                Ok(s) => {
                    tracing::info!("the paused session's cookie has expired: logging in again");
                    self.session = s;
                    if let Err(e) = self.connect_tcp() {
                        self.ended = Some(Err(e));
                    }
                    return;
                }
                Err(e) => {
                    self.ended = Some(Err(e.to_string()));
                    return;
                }
            }
        }
        if let Some(at) = self.session.reconnect_at() {
            let wait = at.saturating_duration_since(Instant::now());
            tracing::warn!(reason = %describe(&reason), ?wait, "connection lost; reconnecting with the cookie");
            return;
        }
        self.ended = Some(match reason {
            DisconnectReason::Logout if self.stopping => Ok(Ended::ByUser),
            DisconnectReason::AuthFailed => Err("login refused".to_owned()),
            DisconnectReason::Error(e) => Err(error_text(&e)),
            other => Ok(Ended::ByGateway(describe(&other))),
        });
    }

    /// Creates and configures the TUN and the routes of `config`.
    pub(super) fn open_tunnel(&mut self, config: &TunnelConfig) -> Result<Tunnel, String> {
        let name = self.options.interface.clone();
        let file = match self.tun.take() {
            Some(f) => f,
            None => open_tun(&name)?,
        };
        let prefix = config.netmask.map_or(32, |m| u32::from(m).leading_ones() as u8);
        if let Some(command) = self.options.script.clone() {
            return self.scripted_tunnel(&command, name, file, config);
        }
        dataplane::tun::configure_interface(&name, config.address, prefix, config.mtu)
            .map_err(|e| format!("configuring {name}: {e}"))?;
        let mut tunnel = self.attach_tun(name, file, config)?;
        match crate::apps::effective(config.apps.as_deref(), &self.options.apps)? {
            Some(_) if self.suspended_apps.is_some() => {
                let a = self.suspended_apps.take();
                if let Some(a) = &a {
                    a.restore()?;
                }
                tunnel.apps = a;
                tracing::info!(interface = %tunnel.name, "per-app selection again, for the apps started before the pause");
            }
            None => tracing::info!("every app uses the tunnel"),
            Some(apps) => {
                tunnel.apps = Some(AppTunnel::start(&tunnel.name, &apps)?);
                tracing::info!(apps = %apps.join(","), interface = %tunnel.name, "per-app selection: only these apps use the tunnel; start one with `corridor app -- CMD`");
            }
        }
        if let Err(e) = add_routes(&mut tunnel, config, self.gateway) {
            remove_routes(&tunnel);
            return Err(e);
        }
        if !config.dns.is_empty() {
            let dns: Vec<String> = config.dns.iter().map(Ipv4Addr::to_string).collect();
            let domain = config.default_domain.as_deref().unwrap_or("");
            if self.options.dns {
                match crate::dns::apply(&tunnel.name, &config.dns, config.default_domain.as_deref()) {
                    Ok(d) => tunnel.dns = d,
                    Err(e) => {
                        remove_routes(&tunnel);
                        return Err(format!("--dns: {e}"));
                    }
                }
                tracing::info!(dns = %dns.join(","), domain, "DNS servers pushed: in use while the tunnel is up");
            } else {
                tracing::info!(dns = %dns.join(","), domain, "DNS servers pushed (not configured: --dns uses them)");
            }
        }
        if let Some(b) = &config.banner {
            tracing::info!(banner = %b.trim(), "the gateway's banner");
        }
        tracing::info!(interface = %tunnel.name, address = %tunnel.address, prefix, mtu = config.mtu, "tunnel interface up");
        Ok(tunnel)
    }

    /// `--script`: the vpnc-script sets the address, MTU, routes and DNS
    /// (`reason=connect`); this client only reads and writes the TUN.
    fn scripted_tunnel(
        &mut self,
        command: &str,
        name: String,
        file: std::fs::File,
        config: &TunnelConfig,
    ) -> Result<Tunnel, String> {
        if let Some(apps) = crate::apps::effective(config.apps.as_deref(), &self.options.apps)? {
            return Err(format!(
                "only listed apps may use this tunnel ({}), which needs corridor connect's own routes: \
                 run it without --script",
                apps.join(", ")
            ));
        }
        let script = crate::script::Script::new(command).for_tunnel(&name, self.gateway, config);
        script.run("connect")?;
        let mut tunnel = self.attach_tun(name, file, config)?;
        tracing::info!(interface = %tunnel.name, address = %config.address, mtu = config.mtu, "tunnel interface configured by the vpnc-script");
        tunnel.script = Some(script);
        Ok(tunnel)
    }

    /// The configured TUN `name` as a [`Tunnel`] of `config`'s address,
    /// its reads watched by the poll loop; nothing added to it yet.
    fn attach_tun(&mut self, name: String, file: std::fs::File, config: &TunnelConfig) -> Result<Tunnel, String> {
        let index = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("{name} has no interface index"))?;
        let raw = file.as_raw_fd();
        self.poll.registry().register(&mut SourceFd(&raw), TUN, Interest::READABLE).map_err(|e| e.to_string())?;
        Ok(Tunnel {
            name,
            file,
            index,
            address: config.address,
            added: Vec::new(),
            apps: None,
            dns: None,
            script: None,
        })
    }
}

pub(super) fn describe(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::ByGateway(text) => format!("ended by the gateway: {}", text.trim()),
        DisconnectReason::ConnectRefused { status, reason } => format!("CONNECT refused ({status}): {reason}"),
        DisconnectReason::DpdTimeout => "the gateway stopped answering (dead-peer detection)".to_owned(),
        DisconnectReason::TlsClosed => "the TLS connection closed".to_owned(),
        DisconnectReason::CookieRejected { status, reason } => {
            format!("the gateway no longer knows this session ({status}): {reason}")
        }
        DisconnectReason::AddressChanged { previous, offered } => {
            format!("reconnect offered {offered} instead of {previous}")
        }
        DisconnectReason::ReconnectTimeout => "could not reconnect in time".to_owned(),
        DisconnectReason::Logout => "logged out".to_owned(),
        DisconnectReason::Paused(code) => format!("paused ({code})"),
        DisconnectReason::AuthFailed => "login refused".to_owned(),
        DisconnectReason::Error(e) => error_text(e),
    }
}

/// The error as a person reads it: rustls shows an application's own
/// certificate error (a pin mismatch) by its Debug form, so that one is
/// spelled out.
pub(super) fn error_text(e: &device::DeviceError) -> String {
    use rustls::{CertificateError, Error};
    match e {
        device::DeviceError::Tls(Error::InvalidCertificate(CertificateError::Other(other))) => {
            format!("TLS: the gateway's certificate is refused: {}", other.0)
        }
        e => e.to_string(),
    }
}
