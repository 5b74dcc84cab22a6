//! The device side of OpenConnect as a sans-IO state machine, for load
//! generators that run thousands of simulated devices.
//!
//! A [`DeviceSession`] logs in over HTTPS with a user name and password or
//! a client certificate (protocol reference §2, §2.7), sends CONNECT (§3),
//! then carries IP packets over CSTP (§4) and, once its PSK-NEGOTIATE
//! handshake completes, over DTLS (§5), answering DPD and sending
//! keepalives on the way (§6.1). When the TLS connection is lost it keeps
//! its cookie and address and reconnects without logging in again (§6.6).
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
//! # Reconnecting
//!
//! Report a dead TCP connection with
//! [`handle_connection_lost`](DeviceSession::handle_connection_lost) (or
//! `handle_tls_eof`). [`Event::Disconnected`] follows; if
//! [`reconnect_at`](DeviceSession::reconnect_at) is then `Some`, the session
//! is [`Phase::Detached`]: at that instant connect TCP again, call
//! [`reconnect`](DeviceSession::reconnect), and drive it as in step 2–3
//! until [`Event::TunnelUp`] (same address; the DTLS port and App-ID may be
//! new, ocserv issues a new App-ID per CONNECT: open a new UDP socket).
//! `poll_timeout` meanwhile carries the instant at which the session gives
//! up ([`DisconnectReason::ReconnectTimeout`]). The loss is told with the
//! same `Disconnected` event as the end of a session, so a caller that never
//! reconnects (the load generator) treats both alike and needs no change.
//!
//! Nothing here reads a clock; `now` is always an argument.

#![forbid(unsafe_code)]

mod error;
pub mod liveness;
mod reconnect;
mod session;

pub use error::{Channel, DeviceError, DisconnectReason, ReconnectError, SendError};
pub use session::{DeviceConfig, DeviceSession, Event, Phase, Stats};
