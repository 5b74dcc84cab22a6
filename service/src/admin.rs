//! The admin endpoint's HTTP: plain text on a local address (keep it on
//! loopback or a management network). The relay serves each request
//! synchronously on its thread ([`read_request_line`], [`respond`]), a
//! deadline on the whole request keeping a slow or silent client from
//! holding that thread; the gateway's admin thread reads and writes its own
//! non-blocking sockets and uses only the pure parts ([`parse_request_line`],
//! [`response`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a whole request head may take to arrive. A deadline per read
/// would let a client that sends a byte at a time hold the thread for
/// minutes; this bounds every request.
pub const REQUEST_DEADLINE: Duration = Duration::from_millis(200);
/// How long each write of a response may wait for the client.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(200);
/// The most of a request head that is read.
const MAX_HEAD: usize = 4096;

/// Reads one request's head (up to 4 KiB, within [`REQUEST_DEADLINE`]):
/// its method and path, or `None` when the request line is not there.
pub fn read_request_line(stream: &mut TcpStream) -> Option<(String, String)> {
    read_request_line_within(stream, REQUEST_DEADLINE)
}

/// [`read_request_line`] with its deadline given: what arrived by then is
/// all that is read.
pub fn read_request_line_within(stream: &mut TcpStream, limit: Duration) -> Option<(String, String)> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; MAX_HEAD];
    let mut n = 0;
    while n < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        // A zero timeout means "none" to the kernel: stop instead.
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(buf.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if buf.get(..n).is_some_and(|b| b.windows(4).any(|w| w == b"\r\n\r\n")) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    parse_request_line(buf.get(..n).unwrap_or_default())
}

/// The method and path of the request line at the start of `head` (the
/// bytes a client sent, up to 4 KiB), or `None` when there are not two
/// words on the first line. Pure, so it is fuzzed (`fuzz/`) apart from the
/// socket.
pub fn parse_request_line(head: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    Some((first.next()?.to_owned(), first.next()?.to_owned()))
}

/// Writes a whole `text/plain` response (Prometheus' content type, which
/// plain lines also are) and lets the connection close.
pub fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.write_all(&response(status, body));
}

/// A whole `text/plain` response, head and body, for a server that writes
/// it out itself.
pub fn response(status: &str, body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (server, _) = l.accept().expect("accept");
        (client, server)
    }

    #[test]
    fn a_request_line_is_read_and_answered() {
        let (mut client, mut server) = pair();
        client.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        assert_eq!(read_request_line(&mut server), Some(("GET".into(), "/metrics".into())));
        respond(&mut server, "200 OK", "up 1\n");
        drop(server);
        let mut got = String::new();
        client.read_to_string(&mut got).expect("read");
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.contains("Content-Length: 5\r\n") && got.ends_with("\r\n\r\nup 1\n"), "{got}");
    }

    #[test]
    fn no_request_line_is_none() {
        let (mut client, mut server) = pair();
        client.write_all(b"\r\n\r\n").expect("write");
        assert_eq!(read_request_line(&mut server), None);
    }

    #[test]
    fn the_request_line_is_its_first_two_words() {
        assert_eq!(
            parse_request_line(b"POST /sessions/s7/kill HTTP/1.1\r\n"),
            Some(("POST".into(), "/sessions/s7/kill".into()))
        );
        assert_eq!(parse_request_line(b"GET\r\n/metrics HTTP/1.1\r\n"), None, "one line only");
        assert_eq!(parse_request_line(b""), None);
    }

    /// A client that sends a byte now and then is cut off at the deadline,
    /// not after a timeout per byte.
    #[test]
    fn a_dribbling_client_is_cut_off_at_the_deadline() {
        let (mut client, mut server) = pair();
        let dribble = std::thread::spawn(move || {
            for b in b"GET /metrics HTTP/1.1\r\n" {
                if client.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        let start = Instant::now();
        let _ = read_request_line_within(&mut server, Duration::from_millis(150));
        let took = start.elapsed();
        assert!(took < Duration::from_millis(600), "held for {took:?}");
        drop(server);
        let _ = dribble.join();
    }
}
