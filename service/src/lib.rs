//! What corridor's two servers, `corridor gateway` and `corridor relay`,
//! both serve and both need, kept apart from either so that the relay does
//! not depend on the gateway's control plane (and through it on rustls,
//! x509-parser and io-uring):
//!
//! * [`admin`]: the admin endpoint's HTTP, one small request at a time;
//! * [`metrics`]: counters, gauges and histograms in the Prometheus text format;
//! * [`config`]: the error every configuration mistake becomes, and the
//!   shared secrets (link tokens) read from a file or given inline;
//! * [`link`]: writing a relay link's queued frames without blocking;
//! * [`random`]: nonces and tokens from the system CSPRNG.

#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod link;
pub mod metrics;
pub mod random;

pub use config::ConfigError;
pub use metrics::Metrics;
pub use random::{random_bytes, random_hex};
