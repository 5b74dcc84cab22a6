//! The admin endpoint: plain HTTP on a local address (keep it on loopback
//! or a management network). `GET /metrics` gives counters in the
//! Prometheus text format, `GET /sessions` one line per session, and
//! `POST /sessions/ID/kill` ends a session.
//!
//! Requests are tiny and local, so each is served synchronously with a
//! short read timeout rather than through the event loop.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What the admin asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    Metrics,
    Sessions,
    Kill(u32),
    NotFound,
    BadRequest,
}

/// Reads one request (up to 4 KiB, 200 ms) and names what it asks for.
pub fn read_request(stream: &mut TcpStream) -> AdminRequest {
    let Some((method, path)) = read_request_line(stream) else { return AdminRequest::BadRequest };
    match (method.as_str(), path.as_str()) {
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

/// Reads one request's head (up to 4 KiB, 200 ms): its method and path,
/// or `None` when the request line is not there.
pub fn read_request_line(stream: &mut TcpStream) -> Option<(String, String)> {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while n < buf.len() {
        match stream.read(buf.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if buf.get(..n).is_some_and(|b| b.windows(4).any(|w| w == b"\r\n\r\n")) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    Some((first.next()?.to_owned(), first.next()?.to_owned()))
}

pub fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

/// Prometheus text exposition of named counters.
#[derive(Debug, Default)]
pub struct Metrics(String);

impl Metrics {
    pub fn counter(&mut self, name: &str, help: &str, labels: &str, value: u64) {
        if !self.0.contains(&format!("# TYPE {name} ")) {
            let _ = writeln!(self.0, "# HELP {name} {help}");
            let _ = writeln!(self.0, "# TYPE {name} counter");
        }
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    /// A histogram series: `cumulative` holds (upper bound in seconds, or
    /// `None` for +Inf, count at or under it), ending with +Inf.
    pub fn histogram(&mut self, name: &str, help: &str, labels: &str, cumulative: &[(Option<f64>, u64)], sum: f64) {
        if !self.0.contains(&format!("# TYPE {name} ")) {
            let _ = writeln!(self.0, "# HELP {name} {help}");
            let _ = writeln!(self.0, "# TYPE {name} histogram");
        }
        let sep = if labels.is_empty() { "" } else { "," };
        for (le, n) in cumulative {
            let le = le.map_or("+Inf".to_owned(), |s| format!("{s:e}"));
            let _ = writeln!(self.0, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
        }
        let count = cumulative.last().map_or(0, |(_, n)| *n);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(self.0, "{name}_sum{braces} {sum}");
        let _ = writeln!(self.0, "{name}_count{braces} {count}");
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} gauge");
        let _ = writeln!(self.0, "{name} {value}");
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_once_per_name() {
        let mut m = Metrics::default();
        m.counter("corridor_x_total", "x", "shard=\"0\"", 1);
        m.counter("corridor_x_total", "x", "shard=\"1\"", 2);
        m.histogram("corridor_t_seconds", "t", "shard=\"0\"", &[(Some(5e-7), 1), (None, 3)], 0.25);
        let s = m.into_string();
        assert!(s.contains("corridor_t_seconds_bucket{shard=\"0\",le=\"5e-7\"} 1"), "{s}");
        assert!(s.contains("corridor_t_seconds_bucket{shard=\"0\",le=\"+Inf\"} 3"), "{s}");
        assert!(s.contains("corridor_t_seconds_count{shard=\"0\"} 3") && s.contains("_sum{shard=\"0\"} 0.25"), "{s}");
        assert_eq!(s.matches("# TYPE corridor_x_total counter").count(), 1);
        assert!(s.contains("corridor_x_total{shard=\"1\"} 2"));
    }
}
