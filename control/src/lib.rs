//! corridor's control plane: one thread that negotiates tunnels.
//!
//! Two rooms:
//!
//! * [`core`]: the protocol as a sans-IO state machine — connections'
//!   state (HTTP login → awaiting a password verdict → CSTP tunnel),
//!   sessions, the address pool, timers, cluster adoption, and the DTLS
//!   hand-off (each session's handshake authorised on every shard, which
//!   runs it and installs the session). No sockets, threads or clock
//!   reads; tested with real device sessions in one process
//!   (`tests/core_*.rs`).
//! * [`gateway`]: the driver — the mio loop, rustls, the password verifier
//!   threads ([`verifier`]) and the relay links ([`relay_link`]) — which
//!   feeds the core and carries out its effects. The data plane sits
//!   behind [`port::DataplanePort`].
//!
//! Administration runs on a thread of its own ([`admin`]): `/metrics` and
//! `/healthz` over HTTP, and the `corridor ctl` unix socket ([`ctl`]: its
//! protocol and its client). It asks the control thread through a bounded
//! channel; the control thread answers with owned data and never touches
//! an admin socket.
//!
//! The gateway also dials out to the infrastructure relays of `[[relay]]`
//! ([`relay_link`]): devices then reach it through a relay and nothing
//! connects in. Gateways serving one name form a `[cluster]`
//! ([`cluster`]) whose nodes honour each other's session cookies.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod core;
pub mod ctl;
pub mod gateway;
pub mod keeper;
pub mod passwd;
pub mod pool;
pub mod port;
pub mod relay_link;
pub mod sandbox;
pub mod session;
pub mod tls;
pub mod verifier;

pub use config::{Config, ConfigError};
pub use gateway::{Gateway, Secrets, StartError};

/// The TUN MTU: the largest inner packet a device may send, the data MTU
/// of a DTLS AES-GCM tunnel over the configured link (openconnect-protocol.md §7.4).
pub fn mtu_for(config: &Config) -> u16 {
    proto::mtu::tunnel_mtu(config.link_mtu, None, proto::mtu::DTLS_AES_GCM_OVERHEAD).1
}
