//! One generator thread: its share of the devices in a [`Fleet`], brought
//! up and then driven through the scenario's traffic phase. Threads meet at
//! barriers between phases so traffic starts when every device is settled;
//! a thread that hits an error still reaches every barrier (recording the
//! error), so one failing thread never strands the others.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use device::DeviceConfig;
use hdrhistogram::Histogram;

use super::fleet::{Fleet, FleetStats, Happening, Stage};
use super::packet;
use super::{PacketSize, Params, Scenario};

mod down;

/// What every thread shares: progress counters and the phase barrier.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) up: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Devices that failed after the bring-up (`many-sessions`: lost sessions).
    pub(crate) lost: AtomicU64,
    pub(crate) barrier: Barrier,
}

impl Shared {
    pub(crate) fn new(threads: usize) -> Self {
        Self {
            up: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            barrier: Barrier::new(threads),
        }
    }
}

/// One thread's share of the run.
#[derive(Debug, Clone)]
pub(crate) struct Share {
    pub(crate) thread: usize,
    pub(crate) devices: usize,
    pub(crate) concurrency: usize,
    /// This thread's packets per second (0: as fast as it can).
    pub(crate) rate: u64,
}

/// What one thread measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) up: u64,
    pub(crate) failures: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) time_to_tunnel: Histogram<u64>,
    /// When this thread's last device settled (up or failed).
    pub(crate) settled_at: Option<Instant>,
    pub(crate) rtt: Histogram<u64>,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) send_failures: u64,
    /// `bulk`: IP bytes the sessions took, and the first and last send.
    pub(crate) sent_ip_bytes: u64,
    pub(crate) sending: Option<(Instant, Instant)>,
    /// `bulk-down`: IP bytes of the bulk datagrams that arrived, and when
    /// the first and the last did.
    pub(crate) received_ip_bytes: u64,
    pub(crate) receiving: Option<(Instant, Instant)>,
    /// `bulk`, thread 0: the reflector's count for this run.
    pub(crate) reflector: Option<serde_json::Value>,
    /// `many-sessions`: devices still up at the end of the hold.
    pub(crate) still_up: u64,
    pub(crate) fleet: FleetStats,
    /// An error that stopped this thread's traffic (not a device failure).
    pub(crate) error: Option<String>,
}

pub(crate) fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("fixed, valid bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// The UDP source port of every generated packet.
const SOURCE_PORT: u16 = 40_000;
/// A probe not answered within this long is lost (saturation mode).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Packets one device sends per burst (`bulk`).
const BURST: usize = 64;

/// A probe from `src` to the reflector: sequence number and send time
/// (since the run's epoch).
fn probe_packet(src: Ipv4Addr, params: &Params, seq: u64, since_epoch: Duration, out: &mut Vec<u8>) {
    let sent_ns = u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX);
    let (reflector, port) = (*params.reflector.ip(), params.reflector.port());
    packet::ipv4_udp(src, SOURCE_PORT, reflector, port, &packet::probe(seq, sent_ns), out);
}

/// Runs one thread's share of `scenario` to the end.
pub(crate) fn run(
    scenario: Scenario,
    params: &Params,
    share: &Share,
    fleet: Fleet,
    config: &DeviceConfig,
    shared: &Shared,
    run_id: u32,
) -> Outcome {
    let mut w = Worker {
        fleet,
        shared,
        happenings: Vec::new(),
        o: Outcome {
            up: 0,
            failures: 0,
            first_failure: None,
            time_to_tunnel: histogram(),
            settled_at: None,
            rtt: histogram(),
            sent: 0,
            received: 0,
            send_failures: 0,
            sent_ip_bytes: 0,
            sending: None,
            received_ip_bytes: 0,
            receiving: None,
            reflector: None,
            still_up: 0,
            fleet: FleetStats::default(),
            error: None,
        },
        settled: false,
    };
    if let Err(e) = w.bring_up(share, config) {
        w.o.error.get_or_insert(e);
    }
    shared.barrier.wait();
    let traffic = match scenario {
        Scenario::HandshakeStorm => Ok(()),
        Scenario::UdpEcho if share.rate > 0 => w.echo_paced(params, share.rate),
        Scenario::UdpEcho => w.echo_window(params),
        Scenario::Bulk => w.bulk(params, share.rate, run_id),
        Scenario::BulkDown => w.bulk_down(params, share.rate, run_id),
        Scenario::ManySessions => w.hold(params),
    };
    if let Err(e) = traffic {
        w.o.error.get_or_insert(e);
    }
    if matches!(scenario, Scenario::Bulk | Scenario::BulkDown) {
        // Every thread has stopped sending; thread 0 asks the reflector.
        shared.barrier.wait();
        if share.thread == 0 && w.o.error.is_none() {
            match w.query_reflector(params, run_id) {
                Ok(v) => w.o.reflector = Some(v),
                Err(e) => w.o.error = Some(e),
            }
        }
    }
    w.o.still_up = (0..w.fleet.len()).filter(|&i| w.fleet.stage(i) == Some(Stage::Up)).count() as u64;
    w.fleet.disconnect_all(Instant::now());
    w.o.fleet = w.fleet.stats;
    w.o
}

struct Worker<'a> {
    fleet: Fleet,
    shared: &'a Shared,
    happenings: Vec<Happening>,
    o: Outcome,
    settled: bool,
}

impl Worker<'_> {
    /// Starts every device, at most `concurrency` handshaking at once, and
    /// waits until each is up or failed.
    fn bring_up(&mut self, share: &Share, config: &DeviceConfig) -> Result<(), String> {
        let concurrency = share.concurrency.max(1);
        let mut started = 0usize;
        loop {
            let settled = usize::try_from(self.o.up + self.o.failures).unwrap_or(usize::MAX);
            let now = Instant::now();
            while started < share.devices && started - settled.min(started) < concurrency {
                started += 1;
                if let Err(e) = self.fleet.start(config.clone(), now) {
                    // A device that cannot even open its socket counts as failed.
                    self.device_failed(format!("start: {e}"));
                }
            }
            if settled >= share.devices {
                self.o.settled_at = Some(Instant::now());
                self.settled = true;
                return Ok(());
            }
            self.turn(now + Duration::from_millis(100))?;
            self.happenings.clear();
        }
    }

    fn device_failed(&mut self, why: String) {
        if self.settled {
            self.shared.lost.fetch_add(1, Ordering::Relaxed);
        } else {
            self.o.failures += 1;
            self.shared.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.o.first_failure.get_or_insert(why);
    }

    /// One fleet turn; device ups and failures are counted here, packets
    /// stay in `happenings` for the scenario.
    fn turn(&mut self, deadline: Instant) -> Result<(), String> {
        let mut happenings = std::mem::take(&mut self.happenings);
        let start = happenings.len();
        self.fleet.turn(deadline, &mut happenings).map_err(|e| format!("poll: {e}"))?;
        let mut keep = start;
        for i in start..happenings.len() {
            match happenings.get(i) {
                Some(Happening::Up { elapsed }) => {
                    self.o.up += 1;
                    self.shared.up.fetch_add(1, Ordering::Relaxed);
                    let _ = self.o.time_to_tunnel.record(micros(*elapsed));
                }
                Some(Happening::Failed { device, why }) => {
                    let why = format!("device {device}: {why}");
                    self.device_failed(why);
                }
                Some(Happening::Packet { .. }) => {
                    happenings.swap(keep, i);
                    keep += 1;
                }
                None => {}
            }
        }
        happenings.truncate(keep);
        self.happenings = happenings;
        Ok(())
    }

    fn live(&self) -> Vec<(usize, Ipv4Addr)> {
        (0..self.fleet.len())
            .filter(|&i| self.fleet.stage(i) == Some(Stage::Up))
            .filter_map(|i| self.fleet.address(i).map(|a| (i, a)))
            .collect()
    }

    /// `udp-echo` at a set rate: probes at `rate`/s round robin over the
    /// live devices for `seconds`, then up to 2 s for the last answers.
    fn echo_paced(&mut self, params: &Params, rate: u64) -> Result<(), String> {
        let live = self.live();
        let total = rate.saturating_mul(params.seconds);
        let mut seen = vec![false; usize::try_from(total).unwrap_or(0)];
        let epoch = Instant::now();
        let reflector = *params.reflector.ip();
        let mut packet = Vec::with_capacity(64);
        let mut drain_until = None;
        let due = |n: u64| epoch + Duration::from_secs_f64(n as f64 / rate as f64);
        loop {
            let now = Instant::now();
            while self.o.sent < total && !live.is_empty() && due(self.o.sent) <= now {
                let slot = usize::try_from(self.o.sent).unwrap_or(0) % live.len();
                let Some(&(device, src)) = live.get(slot) else { break };
                probe_packet(src, params, self.o.sent, now.duration_since(epoch), &mut packet);
                if !self.fleet.send(device, now, &packet) {
                    self.o.send_failures += 1;
                }
                self.o.sent += 1;
                self.shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            if self.o.sent >= total && drain_until.is_none() {
                drain_until = Some(now + Duration::from_secs(2));
            }
            if self.o.received >= total || drain_until.is_some_and(|d| now >= d) || live.is_empty() {
                return Ok(());
            }
            let next = if self.o.sent < total { due(self.o.sent) } else { now + Duration::from_millis(50) };
            self.turn(next.min(now + Duration::from_millis(100)))?;
            for h in std::mem::take(&mut self.happenings) {
                let Happening::Packet { packet, at, .. } = h else { continue };
                let Some((seq, sent_ns)) = packet::parse_probe(&packet, reflector, SOURCE_PORT) else { continue };
                let Some(flag) = seen.get_mut(usize::try_from(seq).unwrap_or(usize::MAX)) else { continue };
                if std::mem::replace(flag, true) {
                    continue;
                }
                self.o.received += 1;
                self.shared.received.fetch_add(1, Ordering::Relaxed);
                let rtt = at.duration_since(epoch).saturating_sub(Duration::from_nanos(sent_ns));
                let _ = self.o.rtt.record(micros(rtt));
            }
        }
    }

    /// `udp-echo` at saturation: every device keeps `window` probes in
    /// flight for `seconds`, sending the next as soon as one comes back (or
    /// is given up after [`PROBE_TIMEOUT`]).
    fn echo_window(&mut self, params: &Params) -> Result<(), String> {
        let live = self.live();
        let window = params.window.max(1);
        let epoch = Instant::now();
        let end = epoch + Duration::from_secs(params.seconds);
        let reflector = *params.reflector.ip();
        // Per probe: (slot in `live`, send time); `None` once settled.
        let mut probes: Vec<Option<(usize, Instant)>> = Vec::new();
        let mut in_flight = vec![0usize; live.len()];
        let mut oldest = 0usize;
        let mut packet = Vec::with_capacity(64);
        loop {
            let now = Instant::now();
            // Give up on probes older than the timeout; their slots refill.
            while let Some(p) = probes.get_mut(oldest) {
                match *p {
                    None => oldest += 1,
                    Some((slot, at)) if now.duration_since(at) > PROBE_TIMEOUT => {
                        *p = None;
                        if let Some(n) = in_flight.get_mut(slot) {
                            *n = n.saturating_sub(1);
                        }
                        oldest += 1;
                    }
                    Some(_) => break,
                }
            }
            if now < end {
                for (slot, &(device, src)) in live.iter().enumerate() {
                    let Some(n) = in_flight.get_mut(slot) else { continue };
                    while *n < window {
                        let seq = probes.len() as u64;
                        probe_packet(src, params, seq, now.duration_since(epoch), &mut packet);
                        if !self.fleet.send(device, now, &packet) {
                            self.o.send_failures += 1;
                        }
                        probes.push(Some((slot, now)));
                        *n += 1;
                        self.o.sent += 1;
                        self.shared.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            } else if in_flight.iter().all(|&n| n == 0) || live.is_empty() {
                return Ok(());
            }
            self.turn(now + Duration::from_millis(10))?;
            for h in std::mem::take(&mut self.happenings) {
                let Happening::Packet { packet, at, .. } = h else { continue };
                let Some((seq, _)) = packet::parse_probe(&packet, reflector, SOURCE_PORT) else { continue };
                let Some(p) = probes.get_mut(usize::try_from(seq).unwrap_or(usize::MAX)) else { continue };
                let Some((slot, sent)) = p.take() else { continue };
                if let Some(n) = in_flight.get_mut(slot) {
                    *n = n.saturating_sub(1);
                }
                self.o.received += 1;
                self.shared.received.fetch_add(1, Ordering::Relaxed);
                let _ = self.o.rtt.record(micros(at.duration_since(sent)));
            }
        }
    }

    /// `bulk`: one-way packets of `params.size` to the reflector for
    /// `seconds`, at `rate`/s or as fast as the sockets take them, in
    /// bursts of [`BURST`] per device round robin.
    fn bulk(&mut self, params: &Params, rate: u64, run_id: u32) -> Result<(), String> {
        let live = self.live();
        let reflector = *params.reflector.ip();
        let port = params.reflector.port();
        let sizes = params.size.cycle();
        for &(device, _) in &live {
            let mtu = usize::from(self.fleet.mtu(device));
            if let Some(&big) = sizes.iter().max().filter(|&&s| s > mtu) {
                return Err(format!("--size: a {big}-byte packet does not fit the tunnel MTU of {mtu}"));
            }
        }
        let epoch = Instant::now();
        let end = epoch + Duration::from_secs(params.seconds);
        let mut payload = Vec::with_capacity(2048);
        let mut packet = Vec::with_capacity(2048);
        let mut bursts = 0usize;
        let mut seq = self.o.sent;
        while !live.is_empty() {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let mut count = BURST;
            if rate > 0 {
                let due = (now.duration_since(epoch).as_secs_f64() * rate as f64) as u64;
                let allowed = usize::try_from(due.saturating_sub(self.o.sent)).unwrap_or(BURST);
                if allowed == 0 {
                    self.turn(now + Duration::from_micros(500))?;
                    self.happenings.clear();
                    continue;
                }
                count = allowed.min(BURST);
            }
            let Some(&(device, src)) = live.get(bursts % live.len()) else { break };
            let size = sizes.get(bursts % sizes.len()).copied().unwrap_or(PacketSize::MIN);
            bursts += 1;
            let (taken, blocked) = self.fleet.send_burst(device, now, count, &mut packet, |out| {
                packet::bulk(run_id, seq, size, &mut payload);
                seq += 1;
                packet::ipv4_udp(src, SOURCE_PORT, reflector, port, &payload, out);
            });
            self.o.send_failures += (count - taken) as u64;
            self.o.sent += taken as u64;
            self.o.sent_ip_bytes += (taken * size) as u64;
            self.shared.sent.fetch_add(taken as u64, Ordering::Relaxed);
            let first = self.o.sending.map_or(now, |(f, _)| f);
            self.o.sending = Some((first, Instant::now()));
            // Service input (keepalives, DPD) now and then, and let a full
            // socket buffer drain.
            if blocked || bursts % 16 == 0 {
                let wait = if blocked { Duration::from_micros(200) } else { Duration::ZERO };
                self.turn(Instant::now() + wait)?;
                self.happenings.clear();
            }
        }
        // Blocked datagrams never left: they are not "sent".
        let blocked = self.fleet.stats.datagrams_blocked;
        self.o.send_failures += blocked;
        self.o.sent = self.o.sent.saturating_sub(blocked);
        Ok(())
    }

    /// Asks the reflector what it counted of `run_id`, through the first
    /// live device; waits for the tunnel to drain first.
    fn query_reflector(&mut self, params: &Params, run_id: u32) -> Result<serde_json::Value, String> {
        let settle = Instant::now() + Duration::from_millis(500);
        while Instant::now() < settle {
            self.turn(settle)?;
            self.happenings.clear();
        }
        let &(device, src) = self.live().first().ok_or("no device is up to ask the reflector")?;
        let reflector = *params.reflector.ip();
        let mut packet = Vec::with_capacity(64);
        packet::ipv4_udp(src, SOURCE_PORT, reflector, params.reflector.port(), &packet::query(run_id), &mut packet);
        for _ in 0..5 {
            let now = Instant::now();
            self.fleet.send(device, now, &packet);
            let deadline = now + Duration::from_secs(1);
            while Instant::now() < deadline {
                self.turn(deadline)?;
                for h in std::mem::take(&mut self.happenings) {
                    let Happening::Packet { packet, .. } = h else { continue };
                    let Some(v) = packet::parse_reply(&packet, reflector, SOURCE_PORT) else { continue };
                    if v.get("run").and_then(serde_json::Value::as_u64) == Some(u64::from(run_id)) {
                        return Ok(v);
                    }
                }
            }
        }
        Err(format!("the reflector at {} did not answer the count query", params.reflector))
    }

    /// `many-sessions`: keep every session for `seconds`, answering DPD and
    /// sending keepalives; a device that fails now is a lost session.
    fn hold(&mut self, params: &Params) -> Result<(), String> {
        let end = Instant::now() + Duration::from_secs(params.seconds);
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            self.turn(end.min(now + Duration::from_millis(200)))?;
            self.happenings.clear();
        }
    }
}
