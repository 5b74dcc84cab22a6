//! OpenConnect's messages, both directions, and the values and arithmetic
//! that corridor's gateway, relay and device share.
//!
//! Pure functions over bytes: no I/O, no clock, no unsafe. The exact bytes
//! and traps are in `shared/reference/openconnect-protocol.md`; each module
//! cites the section it implements. The rooms:
//!
//! - **OpenConnect messages, gateway and device halves side by side**:
//!   [`auth`] (the XML login documents, on the one XML reader and escaper),
//!   [`connect`] (the CONNECT request and the response that configures the
//!   tunnel), [`cstp`] (CSTP frames and the DTLS payload type byte),
//!   [`http`] (requests as the gateway reads them, its responses) and
//!   [`http_response`] (responses as the device reads them).
//! - **IP views and the session grant**: [`ip`] (IPv4 header views,
//!   networks), [`grant`] (what a data-plane shard is handed for one session,
//!   and the policy that admits its packets by destination), [`mtu`] (the
//!   MTU numbers of a CONNECT response).
//! - **Offload arithmetic**: [`offload`] (TUN `virtio_net_hdr`, checksums,
//!   segmenting super-packets, coalescing segments).
//! - **Relay links and SNI**: [`relay`] (the frames of the link a gateway
//!   dials out to a relay) and [`sni`] (the server name of a ClientHello, by
//!   which the relay routes without terminating TLS).

#![forbid(unsafe_code)]

pub mod auth;
pub mod connect;
pub mod cstp;
pub mod grant;
pub mod http;
pub mod http_response;
pub mod ip;
pub mod mtu;
pub mod offload;
pub mod relay;
pub mod sni;
mod xml;
