//! Trusted-network detection: is the device on the organisation's network
//! itself? It is when an https URL reachable only inside answers directly
//! (not through the tunnel) with the server key its pin names. The gateway
//! says which URL and pin (`X-Corridor-Trusted-URL`, `-Pin`); the user may
//! set their own or turn it off.
//!
//! A probe is one TCP connection and a TLS handshake, at most
//! [`PROBE_TIMEOUT`] each, made when the tunnel comes up, when netlink
//! reports a change, and every [`PAUSED_PROBE_EVERY`] while paused.

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use proto::connect::TrustedNetwork;
use rustls::pki_types::ServerName;

use crate::netlink::Netlink;

pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// While paused, how often the client looks whether it left.
pub(crate) const PAUSED_PROBE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Detector {
    url: String,
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
}

impl Detector {
    pub(crate) fn new(t: &TrustedNetwork) -> Result<Self, String> {
        let rest = t.url.strip_prefix("https://").ok_or_else(|| format!("trusted URL {}: not https://", t.url))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("trusted URL {}: bad port", t.url))?),
            None => (authority, 443),
        };
        if host.is_empty() {
            return Err(format!("trusted URL {}: no host", t.url));
        }
        let pin = service::pin::parse_pin(&t.pin).ok_or_else(|| format!("trusted pin {}: not a key pin", t.pin))?;
        let tls = crate::trust::client_config(&crate::Trust { pins: vec![pin], ..crate::Trust::default() })?;
        Ok(Self { url: t.url.clone(), host: host.to_owned(), port, tls })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Whether the trusted server answers directly with the pinned key. A
    /// server the kernel would reach through `tunnel` (its interface index)
    /// does not count: that is the tunnel, not the inside.
    pub(crate) fn inside(&self, tunnel: Option<u32>) -> bool {
        let Some(addr) =
            (self.host.as_str(), self.port).to_socket_addrs().ok().and_then(|mut a| a.find(SocketAddr::is_ipv4))
        else {
            return false;
        };
        if let (IpAddr::V4(ip), Some(tun)) = (addr.ip(), tunnel) {
            match Netlink::open().and_then(|mut nl| nl.path_to(ip)) {
                Ok(path) if path.oif != tun => {}
                _ => return false,
            }
        }
        self.handshake(addr).is_ok()
    }

    fn handshake(&self, addr: SocketAddr) -> Result<(), String> {
        let mut tcp = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
        let name = match self.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(self.host.clone()).map_err(|e| e.to_string())?,
        };
        let mut conn = rustls::ClientConnection::new(self.tls.clone(), name).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
        }
        // The pinned key signed the handshake: this is the inside.
        conn.send_close_notify();
        let _ = conn.complete_io(&mut tcp);
        Ok(())
    }
}
