//! What corridor's two servers, `corridor gateway` and `corridor relay`,
//! both serve and both need, kept apart from either so that the relay does
//! not depend on the gateway's control plane (and through it on rustls,
//! x509-parser and io-uring):
//!
//! * [`admin`]: the admin endpoint's HTTP, one small request at a time;
//! * [`counters`](mod@counters): the one way to declare a set of counters ([`counters!`]);
//! * [`metrics`]: counters, gauges and histograms in the Prometheus text format;
//! * [`config`]: the error every configuration mistake becomes, TOML read
//!   with every mistake's field path and line, the effective configuration
//!   with secrets redacted, and the shared secrets (link tokens) read from
//!   a file or given inline;
//! * [`link`]: writing a relay link's queued frames without blocking;
//! * [`pin`]: SPKI SHA-256 pins of the relay link's certificate;
//! * [`fd_limit`]: raising the open-file limit at start;
//! * [`fips`]: whether aws-lc runs in FIPS mode;
//! * [`notify`]: telling the service manager (systemd) ready, reloading,
//!   stopping, and that the loop is alive (the watchdog);
//! * [`random`]: nonces and tokens from the system CSPRNG;
//! * [`revocations`]: revoked cluster cookies by tag, each until its expiry,
//!   bounded (the gateway refuses them, the relay replays them);
//! * [`sandbox`]: the drop to an unprivileged user and the seccomp filters
//!   every confined process (the gateway's worker and keeper, the relay)
//!   installs, each with its own [`sandbox::Policy`].
//!
//! The data plane depends on it for [`counters!`] alone, so that its shard
//! counters are declared and shown like every other set.

#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod counters;
pub mod fd_limit;
pub mod fips;
pub mod link;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod pin;
pub mod random;
pub mod revocations;
pub mod sandbox;
pub mod start;

pub use config::ConfigError;
pub use counters::{Counter, CounterSet};
pub use metrics::Metrics;
pub use random::{random_bytes, random_hex};
pub use start::StartError;

/// Seconds since the Unix epoch, read by the drivers for their cores'
/// wall clocks (cluster cookies and their revocations carry Unix times,
/// which another machine's `Instant` cannot).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
