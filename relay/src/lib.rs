//! corridor's infrastructure relay (`corridor relay`): the rendezvous in
//! front of an organisation that opens no inbound port.
//!
//! ```text
//!  device ──TLS, TCP 443──▶ relay ◀──links and streams, TCP 3101── gateway ──▶ org
//!         ──DTLS, UDP 443─▶   │   ◀──one UDP flow per device, opened by the gateway──┘
//! ```
//!
//! * Gateways dial out to the relay and authenticate their link with an
//!   HMAC challenge over the token of the name they register
//!   ([`proto::relay`] has the frames).
//! * A device's TCP connection is routed by the SNI of its TLS ClientHello
//!   ([`proto::sni`]): the relay asks a live gateway of that name to dial a
//!   stream back, and splices the two ([`splice`]). It holds no TLS key.
//! * A device's DTLS ClientHello is routed by its App-ID, which the gateway
//!   tagged with its link's route ([`proto::relay::tag_app_id`]); the relay
//!   opens a UDP port for the flow and the gateway binds it from its shards'
//!   port, so every flow is opened from inside ([`flows`]).
//! * Several gateways may register one name: new devices go to the live
//!   link with the fewest active streams, a device sticks to its gateway
//!   while it lives, and a dead one's devices land on the others.
//!
//! * Datagrams move in batches ([`udp`]): a gateway's GSO batch arrives
//!   whole (GRO) and leaves as one GSO send; devices' datagrams come 32 per
//!   `recvmmsg` and a device's same-sized run leaves as one GSO send.
//!
//! One mio thread ([`server::Relay`]); limits and counters for every drop
//! ([`counters`]), a Prometheus endpoint, one log line per link event.

#![forbid(unsafe_code)]

pub mod config;
pub mod counters;
pub mod flows;
pub mod links;
pub mod server;
pub mod splice;
pub mod udp;

pub use config::{Config, ConfigError};
pub use server::{Relay, StartError};
