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
//!   stream back, and splices the two ([`driver::splice`]). It holds no TLS key.
//! * A device's DTLS ClientHello is routed by its App-ID, which the gateway
//!   tagged with its link's route ([`proto::relay::tag_app_id`]); the relay
//!   opens a UDP port for the flow and the gateway binds it from its shards'
//!   port, so every flow is opened from inside.
//! * Several gateways may register one name: new devices go to the live
//!   link with the fewest active streams, a device sticks to its gateway
//!   while it lives, and a dead one's devices land on the others.
//!
//! * Datagrams move in batches ([`driver::udp`]): a gateway's GSO batch arrives
//!   whole (GRO) and leaves as one GSO send; devices' datagrams come 32 per
//!   `recvmmsg` and a device's same-sized run leaves as one GSO send.
//!
//! Two rooms: the [`core`], a sans-IO state machine that decides all of
//! the above (routing, links, streams, flows, every limit and counter) with
//! `now` as an argument, and the [`driver`], one mio thread that accepts,
//! reads, writes, splices and batches datagrams, feeds the core and
//! carries out its effects. A Prometheus endpoint shows the counters; each
//! link event is one log line. Once started, the relay drops to an
//! unprivileged user under a seccomp filter ([`sandbox`]).

#![forbid(unsafe_code)]

pub mod config;
pub mod core;
pub mod driver;
pub mod sandbox;

pub use config::{Config, ConfigError};
pub use driver::{Relay, StartError};
