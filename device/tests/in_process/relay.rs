//! The lossy UDP relay between the device and the in-process gateway.

use super::*;

// The lossy relay.

/// What the relay does to the `n`th datagram (from 0) of one direction:
/// drop every 5th (n = 1, 6, 11, …), else send every 7th twice (n = 0, 7,
/// 14, …), else hold every 11th back and send it after the next one
/// (n = 3, 25, 36, …; released on its own after [`HOLD_AT_MOST`] if nothing
/// follows). The pattern is fixed, so each run impairs the same datagrams of
/// an exchange; the offsets put a loss and a duplicate into the first
/// flights of the DTLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Forward,
    Drop,
    Duplicate,
    Hold,
}

/// The longest a held datagram waits for one to overtake it.
const HOLD_AT_MOST: Duration = Duration::from_millis(500);

fn fate(n: u64) -> Fate {
    if n % 5 == 1 {
        Fate::Drop
    } else if n % 7 == 0 {
        Fate::Duplicate
    } else if n % 11 == 3 {
        Fate::Hold
    } else {
        Fate::Forward
    }
}

/// What one direction of the relay did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RelayStats {
    pub(crate) received: u64,
    pub(crate) forwarded: u64,
    pub(crate) dropped: u64,
    pub(crate) duplicated: u64,
    /// Held back and overtaken by the datagram after it.
    pub(crate) reordered: u64,
    /// Held back and released on its own: nothing overtook it in time, or
    /// the datagram after it was dropped.
    pub(crate) delayed: u64,
    /// From an address other than the expected peer; not forwarded.
    pub(crate) strangers: u64,
}

/// A userspace relay between the device's UDP socket and the gateway's
/// DTLS port: the device talks to `device_side`; the gateway sees the
/// relay's other socket as the device.
pub(crate) struct Relay {
    pub(crate) device_side: SocketAddr,
    stop: Arc<AtomicBool>,
    pumps: Vec<JoinHandle<RelayStats>>,
}

impl Relay {
    pub(crate) fn start(device: SocketAddr, gateway: SocketAddr) -> Self {
        let near = UdpSocket::bind("127.0.0.1:0").expect("relay socket facing the device");
        let far = UdpSocket::bind("127.0.0.1:0").expect("relay socket facing the gateway");
        for s in [&near, &far] {
            s.set_read_timeout(Some(READ_SLICE)).expect("relay read timeout");
        }
        let device_side = near.local_addr().expect("relay address");
        let stop = Arc::new(AtomicBool::new(false));
        let pump = |name: &str, from: &UdpSocket, to: &UdpSocket, source: SocketAddr, dest: SocketAddr| {
            let p = Pump {
                from: from.try_clone().expect("clone relay socket"),
                to: to.try_clone().expect("clone relay socket"),
                source,
                dest,
                stop: stop.clone(),
            };
            std::thread::Builder::new().name(name.into()).spawn(move || p.run()).expect("spawn a relay thread")
        };
        let pumps = vec![
            pump("relay-to-gateway", &near, &far, device, gateway),
            pump("relay-to-device", &far, &near, gateway, device),
        ];
        Self { device_side, stop, pumps }
    }

    /// Stops both directions; their stats, device → gateway first.
    pub(crate) fn stop(mut self) -> [RelayStats; 2] {
        self.stop.store(true, Ordering::Relaxed);
        let mut stats = self.pumps.drain(..).map(|p| p.join().expect("a relay thread panicked"));
        [stats.next().unwrap_or_default(), stats.next().unwrap_or_default()]
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One direction of the relay.
struct Pump {
    from: UdpSocket,
    to: UdpSocket,
    source: SocketAddr,
    dest: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Pump {
    fn run(self) -> RelayStats {
        let mut stats = RelayStats::default();
        let mut held: Option<(Vec<u8>, Instant)> = None;
        let mut buf = vec![0u8; 65_536];
        let send = |d: &[u8], stats: &mut RelayStats| {
            // Best effort, like the network it stands for.
            if self.to.send_to(d, self.dest).is_ok() {
                stats.forwarded += 1;
            }
        };
        while !self.stop.load(Ordering::Relaxed) {
            let (n, from) = match self.from.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if let Some((h, _)) = held.take_if(|(_, since)| since.elapsed() >= HOLD_AT_MOST) {
                        send(&h, &mut stats);
                        stats.delayed += 1;
                    }
                    continue;
                }
                Err(e) => panic!("relay recv: {e}"),
            };
            if from != self.source {
                stats.strangers += 1;
                continue;
            }
            let datagram = buf.get(..n).unwrap_or_default();
            let fate = fate(stats.received);
            stats.received += 1;
            match fate {
                Fate::Drop => stats.dropped += 1,
                Fate::Forward => send(datagram, &mut stats),
                Fate::Duplicate => {
                    send(datagram, &mut stats);
                    send(datagram, &mut stats);
                    stats.duplicated += 1;
                }
                Fate::Hold => {
                    held = Some((datagram.to_vec(), Instant::now()));
                    continue;
                }
            }
            if let Some((h, _)) = held.take() {
                send(&h, &mut stats);
                if fate == Fate::Drop {
                    stats.delayed += 1;
                } else {
                    stats.reordered += 1;
                }
            }
        }
        stats
    }
}
