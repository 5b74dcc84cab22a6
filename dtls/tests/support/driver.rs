//! A blocking UDP driver around our sans-IO endpoints, for interop tests
//! against peer processes. Loopback only.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtls::{Accept, Acceptor, ClientConfig, CloseReason, Connection, Event, HandshakeInfo, ServerConfig, Stats};

/// What happened on our side.
#[derive(Debug, Default)]
pub struct Outcome {
    pub info: Option<HandshakeInfo>,
    pub received: Vec<Vec<u8>>,
    pub closed: Option<CloseReason>,
    pub stats: Stats,
    pub hello_verify_requests: usize,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn received_text(&self) -> String {
        self.received.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect()
    }
}

fn flush(conn: &mut Connection, sock: &UdpSocket, to: Option<SocketAddr>, buf: &mut Vec<u8>) {
    while conn.poll_transmit(buf) {
        let r = match to {
            Some(a) => sock.send_to(buf, a),
            None => sock.send(buf),
        };
        if let Err(e) = r {
            eprintln!("ours: send failed: {e}");
        }
    }
}

fn wait(sock: &UdpSocket, conn: Option<&Connection>, deadline: Instant) -> Option<Duration> {
    let now = Instant::now();
    let mut until = deadline;
    if let Some(t) = conn.and_then(|c| c.poll_timeout()) {
        until = until.min(t);
    }
    let d = until.saturating_duration_since(now).max(Duration::from_millis(1));
    sock.set_read_timeout(Some(d)).ok()?;
    Some(d)
}

/// Runs our client against `server`: handshake, send `message`, wait for one
/// record back, close. Gives up at `limit`.
pub fn run_client(config: ClientConfig, server: SocketAddr, message: &[u8], limit: Duration) -> Outcome {
    let start = Instant::now();
    let deadline = start + limit;
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(server).expect("connect");
    let mut conn = Connection::client(Arc::new(config), start).expect("client config");
    let mut out = Outcome::default();
    let mut buf = Vec::new();
    let mut rx = vec![0u8; 65536];
    let mut done_at: Option<Instant> = None;
    loop {
        flush(&mut conn, &sock, None, &mut buf);
        while let Some(e) = conn.poll_event() {
            match e {
                Event::Connected(info) => {
                    eprintln!("ours: client connected: {:?} ems={}", info.suite, info.extended_master_secret);
                    out.info = Some(info);
                    conn.send(message).expect("send");
                }
                Event::ApplicationData(d) => {
                    eprintln!("ours: client received {:?}", String::from_utf8_lossy(&d));
                    out.received.push(d);
                    conn.close();
                    done_at.get_or_insert(Instant::now());
                }
                Event::Closed(r) => {
                    out.closed = Some(r);
                    done_at.get_or_insert(Instant::now());
                }
                Event::Alert { .. } => {}
            }
        }
        flush(&mut conn, &sock, None, &mut buf);
        if done_at.is_some() || Instant::now() >= deadline {
            break;
        }
        wait(&sock, Some(&conn), deadline);
        match sock.recv(&mut rx) {
            Ok(n) => conn.handle_datagram(Instant::now(), rx.get(..n).unwrap_or_default()),
            Err(_) => conn.handle_timeout(Instant::now()),
        }
    }
    out.stats = *conn.stats();
    out.elapsed = start.elapsed();
    out
}

/// A bound server socket and its port.
pub fn bind_server() -> (UdpSocket, u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = sock.local_addr().expect("addr").port();
    (sock, port)
}

/// Runs our server for one client: cookie exchange, handshake, wait for a
/// record, answer `reply`, then wait for close_notify (or `linger`).
pub fn run_server(config: ServerConfig, sock: UdpSocket, reply: &[u8], limit: Duration, linger: Duration) -> Outcome {
    let start = Instant::now();
    let deadline = start + limit;
    let mut acceptor = Acceptor::new(Arc::new(config), start).expect("server config");
    let mut out = Outcome::default();
    let mut conn: Option<(Connection, SocketAddr)> = None;
    let mut buf = Vec::new();
    let mut rx = vec![0u8; 65536];
    let mut done_at: Option<Instant> = None;
    loop {
        if let Some((c, peer)) = conn.as_mut() {
            flush(c, &sock, Some(*peer), &mut buf);
            while let Some(e) = c.poll_event() {
                match e {
                    Event::Connected(info) => {
                        eprintln!(
                            "ours: server connected: {:?} ems={} identity={:?} app_id={}",
                            info.suite,
                            info.extended_master_secret,
                            String::from_utf8_lossy(&info.psk_identity),
                            info.app_id.len()
                        );
                        out.info = Some(info);
                    }
                    Event::ApplicationData(d) => {
                        eprintln!("ours: server received {:?}", String::from_utf8_lossy(&d));
                        out.received.push(d);
                        if out.received.len() == 1 {
                            let _ = c.send(reply);
                            done_at = Some(Instant::now());
                        }
                    }
                    Event::Closed(r) => {
                        out.closed = Some(r);
                        done_at = Some(Instant::now() - linger);
                    }
                    Event::Alert { .. } => {}
                }
            }
            flush(c, &sock, Some(*peer), &mut buf);
        }
        let now = Instant::now();
        if now >= deadline || done_at.is_some_and(|t| now >= t + linger) {
            break;
        }
        let end = done_at.map_or(deadline, |t| (t + linger).min(deadline));
        wait(&sock, conn.as_ref().map(|c| &c.0), end);
        match sock.recv_from(&mut rx) {
            Ok((n, from)) => {
                let d = rx.get(..n).unwrap_or_default();
                match conn.as_mut() {
                    Some((c, peer)) if *peer == from => c.handle_datagram(Instant::now(), d),
                    _ => {
                        let key = from.to_string();
                        match acceptor.accept(Instant::now(), key.as_bytes(), d, &mut buf) {
                            Accept::HelloVerifyRequest => {
                                out.hello_verify_requests += 1;
                                let _ = sock.send_to(&buf, from);
                            }
                            Accept::Refused(e) => {
                                eprintln!("ours: refused ClientHello: {e}");
                                let _ = sock.send_to(&buf, from);
                                out.closed = Some(CloseReason::Error(e));
                            }
                            Accept::Connection(c) => conn = Some((*c, from)),
                            Accept::Drop(why) => eprintln!("ours: dropped datagram: {why:?}"),
                        }
                    }
                }
            }
            Err(_) => {
                if let Some((c, _)) = conn.as_mut() {
                    c.handle_timeout(Instant::now());
                }
            }
        }
    }
    if let Some((c, _)) = conn.as_ref() {
        out.stats = *c.stats();
    }
    out.elapsed = start.elapsed();
    out
}
