//! The userspace lossy path (this kernel has no `tc netem`): a forwarder
//! inside a test namespace that stands for a server address. TCP passes
//! through untouched (the TLS and its CSTP); UDP (the DTLS) is dropped,
//! duplicated and reordered at the rates asked, each way, by a seeded
//! generator, and every impairment is counted so a test can show it
//! happened. A device is pointed at it by name (`--resolve`), so nothing
//! of the gateway or the client changes.
//!
//! Reordering holds a datagram back until the next one in the same
//! direction has gone (or [`HOLD`] passes with none), so it arrives after
//! a later one.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long a held-back datagram waits for a later one to pass it.
pub const HOLD: Duration = Duration::from_millis(20);
/// How often the loops look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// What happens to datagrams, in per mille of them, each way.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    pub drop_permille: u32,
    pub duplicate_permille: u32,
    pub reorder_permille: u32,
    pub seed: u64,
}

impl Impairment {
    /// 5 % lost, 5 % duplicated, 5 % reordered.
    pub fn five_percent_each(seed: u64) -> Self {
        Self { drop_permille: 50, duplicate_permille: 50, reorder_permille: 50, seed }
    }
}

/// What the forwarder did to one direction's datagrams.
#[derive(Debug, Default)]
pub struct Counts {
    pub datagrams: AtomicU64,
    pub bytes: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
}

/// A snapshot of [`Counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub datagrams: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

impl Counts {
    pub fn tally(&self) -> Tally {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Tally {
            datagrams: l(&self.datagrams),
            bytes: l(&self.bytes),
            dropped: l(&self.dropped),
            duplicated: l(&self.duplicated),
            reordered: l(&self.reordered),
        }
    }
}

/// splitmix64: small, seeded, the same sequence on every machine.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn permille(&mut self) -> u32 {
        (self.next() % 1000) as u32
    }
}

/// What to do with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Drop,
    Duplicate,
    Reorder,
    Pass,
}

/// One direction's impairment: its generator and the datagram held back.
#[derive(Debug)]
struct Direction {
    rng: Rng,
    rates: Impairment,
    held: Option<Vec<u8>>,
    counts: Arc<Counts>,
}

impl Direction {
    fn new(rates: Impairment, stream: u64, counts: Arc<Counts>) -> Self {
        Self { rng: Rng(rates.seed ^ stream.wrapping_mul(0xa076_1d64_78bd_642f)), rates, held: None, counts }
    }

    fn fate(&mut self) -> Fate {
        let r = self.rng.permille();
        let i = &self.rates;
        if r < i.drop_permille {
            Fate::Drop
        } else if r < i.drop_permille + i.duplicate_permille {
            Fate::Duplicate
        } else if r < i.drop_permille + i.duplicate_permille + i.reorder_permille {
            Fate::Reorder
        } else {
            Fate::Pass
        }
    }

    /// Impairs `d` and sends what survives with `send`.
    fn carry(&mut self, d: &[u8], send: &mut dyn FnMut(&[u8])) {
        let c = self.counts.clone();
        c.datagrams.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
        match self.fate() {
            Fate::Drop => {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Fate::Reorder if self.held.is_none() => {
                c.reordered.fetch_add(1, Ordering::Relaxed);
                self.held = Some(d.to_vec());
                return;
            }
            Fate::Duplicate => {
                c.duplicated.fetch_add(1, Ordering::Relaxed);
                send(d);
                send(d);
            }
            // A second one to hold while one is held goes as it is.
            Fate::Reorder | Fate::Pass => send(d),
        }
        if let Some(h) = self.held.take() {
            send(&h);
        }
    }

    /// Lets a held datagram go when nothing came to pass it.
    fn release(&mut self, send: &mut dyn FnMut(&[u8])) {
        if let Some(h) = self.held.take() {
            send(&h);
        }
    }
}

/// A running forwarder; stopped on drop.
pub struct Lossy {
    stop: Arc<AtomicBool>,
    /// Device → server.
    pub upstream: Arc<Counts>,
    /// Server → device.
    pub downstream: Arc<Counts>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Lossy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lossy")
            .field("upstream", &self.upstream.tally())
            .field("downstream", &self.downstream.tally())
            .finish()
    }
}

/// Moves the calling thread into network namespace `netns` (`ip netns add`'s name).
fn enter(netns: &str) -> io::Result<()> {
    let f = File::open(format!("/var/run/netns/{netns}"))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

impl Lossy {
    /// Listens on `listen` (TCP and UDP) inside `netns` and forwards to
    /// `server` from there: TCP as it is, UDP impaired by `rates`.
    pub fn start(netns: &str, listen: SocketAddr, server: SocketAddr, rates: Impairment) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = Arc::new(Counts::default());
        let downstream = Arc::new(Counts::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = netns.to_owned();
        let (s, up, down) = (stop.clone(), upstream.clone(), downstream.clone());
        // The sockets are made in the namespace, on a thread that entered it.
        let udp = thread::spawn(move || {
            let sockets = enter(&ns).and_then(|()| {
                let device_side = UdpSocket::bind(listen)?;
                let tcp = TcpListener::bind(listen)?;
                Ok((device_side, tcp))
            });
            let (device_side, tcp) = match sockets {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let tcp_stop = s.clone();
            let tcp = thread::spawn(move || pass_tcp(tcp, server, &tcp_stop));
            carry_udp(&device_side, server, rates, &s, &up, &down);
            let _ = tcp.join();
        });
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the lossy forwarder could not listen on {listen} in {netns}: {e}"),
            Err(_) => panic!("the lossy forwarder's thread died"),
        }
        Self { stop, upstream, downstream, threads: vec![udp] }
    }
}

impl Drop for Lossy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// TCP: each connection to the server as it is, both ways.
fn pass_tcp(listener: TcpListener, server: SocketAddr, stop: &AtomicBool) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let (device, _) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(POLL);
                continue;
            }
            Err(_) => return,
        };
        // Made on this thread, so in the namespace.
        let Ok(upstream) = TcpStream::connect(server) else { continue };
        let _ = device.set_nonblocking(false);
        for (from, to) in [(&device, &upstream), (&upstream, &device)] {
            let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { continue };
            thread::spawn(move || {
                let _ = io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
        }
    }
}

/// UDP: a socket toward the server per device address, as a NAT keeps
/// them; device → server on this thread, server → device on one thread
/// per device address.
fn carry_udp(
    device_side: &UdpSocket,
    server: SocketAddr,
    rates: Impairment,
    stop: &Arc<AtomicBool>,
    up_counts: &Arc<Counts>,
    down_counts: &Arc<Counts>,
) {
    if device_side.set_read_timeout(Some(HOLD)).is_err() {
        return;
    }
    let mut toward_server: HashMap<SocketAddr, (UdpSocket, Direction)> = HashMap::new();
    let mut back = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let (n, device) = match device_side.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                for (sock, dir) in toward_server.values_mut() {
                    dir.release(&mut |d| {
                        let _ = sock.send(d);
                    });
                }
                continue;
            }
            Err(_) => return,
        };
        if !toward_server.contains_key(&device) {
            let any = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let Ok(sock) = UdpSocket::bind(any) else { continue };
            if sock.connect(server).is_err() {
                continue;
            }
            let stream = toward_server.len() as u64 * 2;
            let (Ok(from_server), Ok(to_device)) = (sock.try_clone(), device_side.try_clone()) else { continue };
            let dir = Direction::new(rates, stream + 1, down_counts.clone());
            let s = stop.clone();
            back.push(thread::spawn(move || carry_back(&from_server, &to_device, device, dir, &s)));
            toward_server.insert(device, (sock, Direction::new(rates, stream, up_counts.clone())));
        }
        if let (Some((sock, dir)), Some(d)) = (toward_server.get_mut(&device), buf.get(..n)) {
            dir.carry(d, &mut |d| {
                let _ = sock.send(d);
            });
        }
    }
    for t in back {
        let _ = t.join();
    }
}

/// Server → one device.
fn carry_back(
    from_server: &UdpSocket,
    to_device: &UdpSocket,
    device: SocketAddr,
    mut dir: Direction,
    stop: &AtomicBool,
) {
    if from_server.set_read_timeout(Some(HOLD)).is_err() {
        return;
    }
    let mut buf = vec![0u8; 65_536];
    let mut send = |d: &[u8]| {
        let _ = to_device.send_to(d, device);
    };
    while !stop.load(Ordering::Relaxed) {
        match from_server.recv(&mut buf) {
            Ok(n) => {
                if let Some(d) = buf.get(..n) {
                    dir.carry(d, &mut send);
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                dir.release(&mut send);
            }
            // ECONNREFUSED from an ICMP error: the server is not there (yet).
            Err(_) => thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rates: Impairment, n: u8) -> (Vec<u8>, Tally) {
        let mut dir = Direction::new(rates, 0, Arc::new(Counts::default()));
        let mut out = Vec::new();
        for i in 0..n {
            dir.carry(&[i], &mut |d| out.push(d[0]));
        }
        dir.release(&mut |d| out.push(d[0]));
        (out, dir.counts.tally())
    }

    #[test]
    fn the_rates_are_kept_and_the_same_seed_gives_the_same_run() {
        let rates = Impairment::five_percent_each(7);
        let mut dir = Direction::new(rates, 0, Arc::new(Counts::default()));
        let mut sent = 0u64;
        for _ in 0..20_000 {
            dir.carry(&[0], &mut |_| sent += 1);
        }
        let t = dir.counts.tally();
        for (what, n) in [("dropped", t.dropped), ("duplicated", t.duplicated), ("reordered", t.reordered)] {
            assert!((800..1200).contains(&n), "{what}: {n} of 20000");
        }
        assert_eq!(sent + u64::from(dir.held.is_some()), 20_000 - t.dropped + t.duplicated);
        assert_eq!(run(rates, 200), run(rates, 200));
        assert_ne!(run(rates, 200).0, run(Impairment::five_percent_each(8), 200).0);
    }

    #[test]
    fn a_held_datagram_goes_after_the_next_one_or_when_released() {
        let only_reorder = Impairment { drop_permille: 0, duplicate_permille: 0, reorder_permille: 1000, seed: 1 };
        // Every datagram asks to be held: one is, the next passes it.
        let (out, t) = run(only_reorder, 4);
        assert_eq!(out, [1, 0, 3, 2]);
        assert_eq!(t.reordered, 2);
        let (out, _) = run(only_reorder, 1);
        assert_eq!(out, [0], "released when nothing follows");
    }
}
