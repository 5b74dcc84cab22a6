//! `corridor bench flood`: unauthenticated datagrams at a gateway's DTLS
//! port, as an attacker without a session sends them, for
//! `scripts/flood-bench.sh` (a handshake storm with and without a flood
//! beside it).
//!
//! Kinds:
//! * `client-hello` — a real DTLS 1.2 ClientHello (the device library's),
//!   each with a fresh random App-ID in its session id: what passes every
//!   check but the App-ID lookup;
//! * `garbage` — random bytes behind a DTLS handshake record header;
//! * `mixed` — the two, alternately.
//!
//! One thread sends round-robin from `ports` UDP sockets on one address
//! (so per-port limits see many flows, per-address limits one source), as
//! fast as it can or at `rate` datagrams per second.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodKind {
    ClientHello,
    Garbage,
    Mixed,
}

impl std::str::FromStr for FloodKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "client-hello" => Ok(Self::ClientHello),
            "garbage" => Ok(Self::Garbage),
            "mixed" => Ok(Self::Mixed),
            other => Err(format!("unknown flood kind `{other}` (client-hello, garbage, mixed)")),
        }
    }
}

/// One flood.
#[derive(Debug, Clone)]
pub struct FloodParams {
    pub target: SocketAddr,
    /// The address the sockets bind (the flood's one source address).
    pub bind: IpAddr,
    pub ports: usize,
    pub seconds: u64,
    /// Datagrams per second in all; 0 = as fast as one thread sends.
    pub rate: u64,
    pub kind: FloodKind,
}

/// What a flood sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloodReport {
    pub sent: u64,
    pub send_errors: u64,
    pub seconds: f64,
}

impl FloodReport {
    pub fn line(&self, p: &FloodParams) -> String {
        format!(
            "flood: sent {} datagrams ({:?}) from {} ports of {} in {:.1} s ({:.0}/s), {} send errors",
            self.sent,
            p.kind,
            p.ports,
            p.bind,
            self.seconds,
            self.sent as f64 / self.seconds.max(1e-9),
            self.send_errors
        )
    }
}

/// xorshift64*: the flood needs cheap bytes, not good ones.
struct Cheap(u64);

impl Cheap {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(v.get(..chunk.len()).unwrap_or_default());
        }
    }
}

/// A real ClientHello and where its 32-byte App-ID sits in it.
fn client_hello_template() -> io::Result<(Vec<u8>, usize)> {
    let marker = [0x5a; 32];
    let mut config = dtls::ClientConfig::new(b"flood", &[1; 32]);
    config.session_id = marker.to_vec();
    let mut client = dtls::Connection::client(Arc::new(config), Instant::now())
        .map_err(|e| io::Error::other(format!("building a ClientHello: {e:?}")))?;
    let mut hello = Vec::new();
    if !client.poll_transmit(&mut hello) {
        return Err(io::Error::other("the DTLS client sent no ClientHello"));
    }
    let at = hello
        .windows(marker.len())
        .position(|w| w == marker)
        .ok_or_else(|| io::Error::other("no session id in the ClientHello"))?;
    Ok((hello, at))
}

/// Sends for `p.seconds`, or until `stop` is set, and says what it sent.
pub fn flood(p: &FloodParams, stop: &AtomicBool) -> io::Result<FloodReport> {
    let sockets = (0..p.ports.max(1))
        .map(|_| {
            let s = UdpSocket::bind(SocketAddr::new(p.bind, 0))?;
            s.connect(p.target)?;
            Ok(s)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let (mut hello, app_id_at) = client_hello_template()?;
    // A DTLS 1.2 handshake record header: what reaches the handshake path.
    let mut garbage = vec![22u8, 0xfe, 0xfd];
    garbage.resize(200, 0);
    let mut rng = Cheap(u64::from(std::process::id()) << 32 | 0x9e37_79b9);
    let start = Instant::now();
    let end = start + Duration::from_secs(p.seconds);
    let (mut sent, mut send_errors) = (0u64, 0u64);
    // Clock reads and pacing every `batch` datagrams: ~1 ms of a paced flood.
    let batch = if p.rate > 0 { (p.rate / 1000).clamp(1, 256) } else { 256 };
    loop {
        if sent % batch == 0 {
            let mut now = Instant::now();
            if p.rate > 0 {
                // Ahead of the pace: wait for it.
                let due = start + Duration::from_secs_f64(sent as f64 / p.rate as f64);
                if due > now {
                    std::thread::sleep(due - now);
                    now = Instant::now();
                }
            }
            if now >= end || stop.load(Ordering::Relaxed) {
                break;
            }
        }
        let Some(socket) = sockets.get(usize::try_from(sent).unwrap_or(0) % sockets.len()) else { break };
        let hello_now = match p.kind {
            FloodKind::ClientHello => true,
            FloodKind::Garbage => false,
            FloodKind::Mixed => sent % 2 == 0,
        };
        let datagram: &[u8] = if hello_now {
            if let Some(id) = hello.get_mut(app_id_at..app_id_at + 32) {
                rng.fill(id);
            }
            &hello
        } else {
            if let Some(body) = garbage.get_mut(3..) {
                rng.fill(body);
            }
            &garbage
        };
        match socket.send(datagram) {
            Ok(_) => sent += 1,
            Err(_) => {
                send_errors += 1;
                sent += 1;
            }
        }
    }
    Ok(FloodReport { sent: sent - send_errors, send_errors, seconds: start.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_a_client_hello_with_the_app_id_in_its_session_id() {
        let (hello, at) = client_hello_template().expect("template");
        assert_eq!(hello.first(), Some(&22), "a handshake record");
        assert_eq!(hello.get(13), Some(&1), "a ClientHello message");
        // The session id's length byte is just before it.
        assert_eq!(hello.get(at - 1), Some(&32));
    }

    #[test]
    fn a_flood_sends_at_its_pace_to_its_target() {
        let target = UdpSocket::bind("127.0.0.1:0").expect("bind");
        target.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let p = FloodParams {
            target: target.local_addr().expect("addr"),
            bind: "127.0.0.1".parse().expect("ip"),
            ports: 4,
            seconds: 1,
            rate: 200,
            kind: FloodKind::Mixed,
        };
        let report = flood(&p, &AtomicBool::new(false)).expect("flood");
        assert!(report.sent > 0 && report.sent <= 201, "{report:?}");
        let mut buf = [0u8; 2048];
        let (n, from) = target.recv_from(&mut buf).expect("a datagram");
        assert!(n > 3 && buf[0] == 22, "{n} bytes");
        assert_eq!(from.ip(), p.bind);
    }
}
