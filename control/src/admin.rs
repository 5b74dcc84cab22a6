//! The admin endpoint: plain HTTP on a local address (keep it on loopback
//! or a management network). `GET /metrics` gives counters in the
//! Prometheus text format, `GET /sessions` one line per session, and
//! `POST /sessions/ID/kill` ends a session.
//!
//! Requests are tiny and local, so each is served synchronously, with a
//! deadline on the whole request ([`service::admin`]) rather than through the
//! event loop.

use std::net::TcpStream;

/// What the admin asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    Metrics,
    Sessions,
    Kill(u32),
    NotFound,
    BadRequest,
}

/// Reads one request (up to 4 KiB, 200 ms for the whole head) and names what it asks for.
pub fn read_request(stream: &mut TcpStream) -> AdminRequest {
    match service::admin::read_request_line(stream) {
        Some((method, path)) => route(&method, &path),
        None => AdminRequest::BadRequest,
    }
}

/// What a request line's method and path ask for. Pure, so it is fuzzed
/// (`fuzz/`) apart from the socket.
pub fn route(method: &str, path: &str) -> AdminRequest {
    match (method, path) {
        ("GET", "/metrics") => AdminRequest::Metrics,
        ("GET", "/sessions") => AdminRequest::Sessions,
        ("POST", p) => p
            .strip_prefix("/sessions/")
            .and_then(|r| r.strip_suffix("/kill"))
            .and_then(|id| id.trim_start_matches('s').parse().ok())
            .map_or(AdminRequest::NotFound, AdminRequest::Kill),
        _ => AdminRequest::NotFound,
    }
}

pub use service::admin::respond;
pub use service::Metrics;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/metrics"), AdminRequest::Metrics);
        assert_eq!(route("GET", "/sessions"), AdminRequest::Sessions);
        assert_eq!(route("POST", "/sessions/s12/kill"), AdminRequest::Kill(12));
        assert_eq!(route("POST", "/sessions/x/kill"), AdminRequest::NotFound);
        assert_eq!(route("DELETE", "/metrics"), AdminRequest::NotFound);
    }
}
