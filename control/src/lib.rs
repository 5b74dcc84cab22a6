//! corridor's control plane: one thread that negotiates tunnels.
//!
//! It terminates TLS (rustls on aws-lc-rs), runs the OpenConnect login and
//! CONNECT, carries CSTP for devices without DTLS, drives DTLS handshakes
//! with the `dtls` crate, and hands each established session to a
//! data-plane shard as a [`proto::grant::SessionGrant`]. It is the only
//! place that allocates per-session state. See [`gateway::Gateway`].
//!
//! It also dials out to the infrastructure relays of `[[relay]]`
//! ([`relay_link`]): devices then reach it through a relay and nothing
//! connects in. Gateways serving one name form a `[cluster]`
//! ([`cluster`]) whose nodes honour each other's session cookies.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod core;
pub mod gateway;
pub mod passwd;
pub mod pool;
pub mod port;
pub mod relay_link;
pub mod session;
pub mod tls;
pub mod verifier;

pub use config::{Config, ConfigError};
pub use gateway::{Gateway, StartError};

/// The TUN MTU: the largest inner packet a device may send, the data MTU
/// of a DTLS AES-GCM tunnel over the configured link (openconnect-protocol.md §7.4).
pub fn mtu_for(config: &Config) -> u16 {
    proto::mtu::tunnel_mtu(config.link_mtu, None, proto::mtu::DTLS_AES_GCM_OVERHEAD).1
}
