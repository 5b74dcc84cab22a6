//! OpenConnect wire formats and the values that cross corridor's threads.
//!
//! Pure functions over bytes: no I/O, no clock, no unsafe. The exact bytes
//! and traps are in `shared/reference/openconnect-protocol.md`; each module
//! cites the section it implements.

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
