//! `corridor connect`: a Linux OpenConnect client. It drives the device
//! crate's sans-IO [`device::DeviceSession`] over a real TCP connection, a
//! UDP socket for DTLS and a TUN device, so it logs in and tunnels as the
//! load generator's simulated devices do, against corridor or ocserv.
//!
//! What it does, in order: resolves the gateway; logs in over TLS (user
//! name and password, or a client certificate), trusting a CA file (the
//! system bundle by default) and/or pinned keys (`--servercert
//! pin-sha256:…`); sends CONNECT; creates its TUN with the tunnel's address
//! and MTU and adds the routes the gateway pushed (split-include routes
//! through the TUN; with none, everything: `0.0.0.0/1` and `128.0.0.0/1`
//! through the TUN and the gateway's own address through the path it had);
//! brings up PSK-NEGOTIATE DTLS beside CSTP, falling back to CSTP when DTLS
//! fails; answers DPD and sends keepalives; when the TCP connection is lost
//! it reconnects with the cookie to the same address, and it listens to
//! netlink: when the way to the gateway now leaves from another local
//! address (the device moved), it reconnects at once, with a new DTLS
//! handshake from the new address, rather than wait for dead-peer
//! detection; connections inside the tunnel carry on. SIGINT, SIGTERM or
//! SIGHUP log out (BYE) and restore the routes; the TUN, and every route
//! through it, goes with the process, also when it crashes.
//!
//! The two-step login of NetworkManager and scripts: `authenticate_only`
//! logs in and hands back the cookie (no CONNECT, no TUN, no root needed);
//! `cookie` starts from such a cookie with CONNECT, no login.
//!
//! Beside that: `--dns` (the pushed servers in use while the tunnel is
//! up), per-app selection ([`apps`]), trusted-network teardown (the tunnel
//! pauses while the organisation's network is reachable directly),
//! `--background`, and `--script` (a vpnc-script configures the interface
//! instead, as openconnect's `--script`).
//!
//! Not yet: following a move to another interface in a full tunnel (the
//! gateway's host route stays on the interface it was added for), and the
//! batched I/O of the shards.

#![forbid(unsafe_code)]

pub mod apps;
mod dns;
mod driver;
pub mod netlink;
mod script;
pub mod status;
pub mod trust;
mod trusted;
mod tunnel;

use std::time::Duration;

use zeroize::Zeroizing;

pub use proto::connect::TrustedNetwork;
pub use trust::Trust;

/// What `corridor connect` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gateway's host name or address.
    pub host: String,
    pub port: u16,
    /// For the password form; none with certificate login.
    pub user: Option<String>,
    pub password: Option<Zeroizing<String>>,
    pub trust: Trust,
    /// The TUN interface to create.
    pub interface: String,
    /// Offer DTLS (`--no-dtls`: CSTP only).
    pub dtls: bool,
    /// How long a lost connection is retried with the cookie.
    pub reconnect_timeout: Duration,
    /// A cookie from an earlier `--authenticate`: CONNECT with it, no login.
    pub cookie: Option<Zeroizing<String>>,
    /// Log in, hand back the cookie and stop: no CONNECT, no TUN.
    pub authenticate_only: bool,
    /// `--app`: only these executables use the tunnel, within the
    /// gateway's list when it sends one; empty: the gateway's choice.
    pub apps: Vec<String>,
    /// The user's trusted-network detection, over the gateway's.
    pub trusted: Option<proto::connect::TrustedNetwork>,
    /// No trusted-network detection at all.
    pub no_trusted_network: bool,
    /// Use the gateway's DNS servers while the tunnel is up (`--dns`).
    pub dns: bool,
    /// Print `up` on standard output when the tunnel first comes up (for
    /// a parent that returns then: `--background`).
    pub notify_up: bool,
    /// `--script`: a vpnc-script (run by `/bin/sh -c`) sets the address,
    /// MTU, routes and DNS instead of this client.
    pub script: Option<String>,
}

/// How a session ended without an error of this client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// A signal asked to stop: logged out.
    ByUser,
    /// The gateway ended it (its reason), or reconnecting gave up.
    ByGateway(String),
    /// `authenticate_only`: the login's cookie, and the pin of the key the
    /// gateway presented (`pin-sha256:…`, for `--servercert` next time).
    Authenticated { cookie: Zeroizing<String>, fingerprint: String, gateway: std::net::SocketAddr },
}

/// Runs the client until the session ends; errors say what failed
/// (resolution, TLS, the login, the TUN, routes).
pub fn run(options: Options) -> Result<Ended, String> {
    driver::Client::start(options)?.run()
}
