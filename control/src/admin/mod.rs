//! Administration, served by a thread of its own so that nothing an admin
//! client does (a slow request, a silent connection, a flood of them)
//! reaches the control thread, where logins and CSTP run.
//!
//! Two doors:
//!
//! * **`[admin] listen`** (plain HTTP, optional; keep it on loopback or a
//!   management network): `GET /metrics` (Prometheus text) and
//!   `GET /healthz` (`200 ok` while the control loop answers within
//!   [`HEALTH_DEADLINE`] and every shard is up and turning; `503` and what
//!   is wrong otherwise). Nothing else: anything that lists users or
//!   changes state answers `404`.
//! * **`[admin] ctl_socket`** (a unix socket, mode 0660, default
//!   [`crate::ctl::DEFAULT_SOCKET`]): the `corridor ctl` protocol
//!   ([`crate::ctl`]) — status, sessions, kill, bans, unban. Who may
//!   connect is decided by the file's owner, group and mode; each
//!   state-changing command is logged with the peer's uid and pid
//!   (`SO_PEERCRED`).
//!
//! The admin thread ([`server`]) owns both listeners and every admin
//! connection in a mio loop of its own, each connection with a deadline on
//! its whole request ([`HTTP_REQUEST_DEADLINE`],
//! [`crate::ctl::REQUEST_DEADLINE`]), so one slow client delays no other. It
//! asks the control thread through a bounded channel and a wake-up pipe
//! ([`link`]); the control thread answers each question with owned,
//! ready-to-write data (the metrics text, a status, session views) and
//! never reads or writes an admin socket.

mod conn;
pub mod link;
mod server;
pub mod socket;

use std::time::Duration;

pub use server::{start, AdminHandle};
pub use socket::PeerCred;

/// How long a whole HTTP request head may take to arrive. Off the control
/// thread a slow client costs one of the admin thread's connection slots
/// ([`MAX_HTTP_CONNECTIONS`]) and nothing else, so this is generous
/// (a Prometheus scrape's own default timeout is 10 s).
pub const HTTP_REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// How long `/healthz` waits for the control loop before answering 503.
pub const HEALTH_DEADLINE: Duration = Duration::from_secs(1);
/// How long any other question waits for the control loop.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
/// How long a response may take to be written out.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);
/// HTTP connections held at once; more are closed at accept.
pub const MAX_HTTP_CONNECTIONS: usize = 32;
/// ctl connections held at once, apart from the HTTP ones so that a flood
/// on the TCP port cannot lock the operator out.
pub const MAX_CTL_CONNECTIONS: usize = 32;

/// What an HTTP request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRequest {
    Metrics,
    Health,
    NotFound,
}

/// What a request line's method and path ask for. Pure, so it is fuzzed
/// (`fuzz/`) apart from the socket.
pub fn route(method: &str, path: &str) -> AdminRequest {
    match (method, path) {
        ("GET", "/metrics") => AdminRequest::Metrics,
        ("GET", "/healthz") => AdminRequest::Health,
        _ => AdminRequest::NotFound,
    }
}

/// The body of a 404: what is served here, and where the rest went.
pub const NOT_FOUND: &str = "GET /metrics, GET /healthz. Sessions, kill and bans are on the ctl socket: \
                             `corridor ctl` ([admin] ctl_socket).\n";

pub use service::Metrics;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metrics_and_health_are_served_over_http() {
        assert_eq!(route("GET", "/metrics"), AdminRequest::Metrics);
        assert_eq!(route("GET", "/healthz"), AdminRequest::Health);
        assert_eq!(route("GET", "/sessions"), AdminRequest::NotFound);
        assert_eq!(route("POST", "/sessions/s12/kill"), AdminRequest::NotFound);
        assert_eq!(route("DELETE", "/metrics"), AdminRequest::NotFound);
        assert_eq!(route("POST", "/metrics"), AdminRequest::NotFound);
    }
}
