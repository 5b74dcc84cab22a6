//! The device side of OpenConnect as a sans-IO state machine, for load
//! generators that run thousands of simulated devices.
//!
//! A [`DeviceSession`] logs in with a user name and password over HTTPS
//! (protocol reference §2), sends CONNECT (§3), then carries IP packets
//! over CSTP (§4) and, once its PSK-NEGOTIATE handshake completes, over
//! DTLS (§5), answering DPD and sending keepalives on the way (§6.1).
//!
//! # Call order
//!
//! The caller owns the TCP and UDP sockets, the buffers and the clock. The
//! session owns a `rustls::ClientConnection`, used purely as a byte
//! transformer.
//!
//! 1. [`DeviceSession::new`]; connect TCP to the gateway.
//! 2. Feed it: [`handle_tls`](DeviceSession::handle_tls) with every read
//!    from TCP ([`handle_tls_eof`](DeviceSession::handle_tls_eof) at EOF),
//!    [`handle_datagram`](DeviceSession::handle_datagram) with every UDP
//!    datagram from the gateway's DTLS port, and
//!    [`handle_timeout`](DeviceSession::handle_timeout) once the instant from
//!    [`poll_timeout`](DeviceSession::poll_timeout) has passed.
//! 3. After every call, write [`poll_tls`](DeviceSession::poll_tls) to TCP,
//!    send each [`poll_datagram`](DeviceSession::poll_datagram) to the
//!    gateway's address at the port in [`Event::TunnelUp`], drain
//!    [`poll_event`](DeviceSession::poll_event), and re-read `poll_timeout`.
//!
//! Once [`Event::TunnelUp`] arrives, [`send_packet`](DeviceSession::send_packet)
//! sends IP packets (over DTLS when it is up, else CSTP) and
//! [`Event::Packet`] delivers them.
//!
//! Nothing here reads a clock; `now` is always an argument.

#![forbid(unsafe_code)]

pub mod auth_xml;
mod error;
pub mod liveness;
mod session;
pub mod tunnel;

pub use error::{Channel, DeviceError, DisconnectReason, SendError};
pub use session::{DeviceConfig, DeviceSession, Event, Phase, Stats};
