//! `corridor bench run`: many simulated devices in one process, each a full
//! session through the real protocol (TLS, login, CONNECT, DTLS), spread
//! over `threads` generator threads, each driving its share of the devices
//! from one poll loop (`fleet`) with batched sends (UDP GSO).
//!
//! Scenario names are stable (they key result files and `bench compare`):
//!
//! * `handshake-storm`: connect `devices` devices, at most `concurrency`
//!   handshaking at once; time-to-tunnel (TCP connect to DTLS up) per
//!   device into an HDR histogram, handshakes/s, failures.
//! * `udp-echo`: bring the devices up, then send IPv4/UDP probes through
//!   DTLS to a reflector (`corridor bench reflect`) for `seconds`: at `rate`
//!   probes/s in all, or with `rate` 0 at saturation, each device keeping
//!   `window` probes in flight. Round-trip time per probe into an HDR
//!   histogram; loss.
//! * `bulk`: one-way UDP to the reflector for `seconds`, packets of `size`
//!   (64, 512, 1400 bytes, any size in between, or `imix`: 7:4:1 of 64, 576
//!   and 1400 bytes), at `rate` packets/s or (0) as fast as the sockets take
//!   them. The reflector counts what arrived; delivered Gbit/s, packets/s,
//!   loss.
//! * `bulk-down`: the other way: each device asks the reflector for bulk
//!   datagrams of `size` at its share of `rate` (0: as fast as the
//!   reflector's socket takes them) for `seconds`; the devices count what
//!   arrived, the reflector says what it sent.
//! * `many-sessions`: bring up `devices` sessions and hold them idle for
//!   `seconds` with DPD and keepalives running; sessions lost, and with
//!   `gateway_pid` the gateway's memory (PSS of its process tree) per session.
//!
//! Every run reports the generator's own CPU time, so a result whose
//! generator was saturated can be recognised as measuring the generator.

mod child;
mod fleet;
mod footprint;
mod packet;
mod reflect;
mod report;
mod sockets;
mod worker;

use std::net::{IpAddr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use device::DeviceConfig;
use hdrhistogram::Histogram;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Map, Value};

use fleet::Fleet;
pub use reflect::reflect;
pub use report::Report;
pub use sockets::raise_open_file_limit;
use worker::{Outcome, Share, Shared};

/// The scenarios, by their stable names.
pub const SCENARIOS: [&str; 5] = ["handshake-storm", "udp-echo", "bulk", "bulk-down", "many-sessions"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    HandshakeStorm,
    UdpEcho,
    Bulk,
    BulkDown,
    ManySessions,
}

impl Scenario {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "handshake-storm" => Some(Self::HandshakeStorm),
            "udp-echo" => Some(Self::UdpEcho),
            "bulk" => Some(Self::Bulk),
            "bulk-down" => Some(Self::BulkDown),
            "many-sessions" => Some(Self::ManySessions),
            _ => None,
        }
    }
}

/// The IP packet sizes of `bulk` (IPv4 header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketSize {
    Fixed(usize),
    /// 7 : 4 : 1 of 64, 576 and 1400 bytes (the simple IMIX, its largest
    /// size capped to fit a tunnel MTU).
    Imix,
}

impl PacketSize {
    /// The smallest packet that holds the headers and a bulk header.
    pub const MIN: usize = packet::IP_UDP_HEADERS + packet::BULK_HEADER;
    /// The largest packet a 1500-byte link carries.
    pub const MAX: usize = 1500;

    /// The size of each burst in turn: one burst per entry, so `imix`'s
    /// packet counts follow its 7 : 4 : 1.
    fn cycle(self) -> Vec<usize> {
        match self {
            Self::Fixed(n) => vec![n],
            Self::Imix => [[64; 7].as_slice(), &[576; 4], &[1400]].concat(),
        }
    }
}

impl std::str::FromStr for PacketSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(Self::Imix);
        }
        match s.parse::<usize>() {
            Ok(n) if (Self::MIN..=Self::MAX).contains(&n) => Ok(Self::Fixed(n)),
            _ => Err(format!("{s:?}: give an IP packet size from {} to {} bytes, or imix", Self::MIN, Self::MAX)),
        }
    }
}

impl std::fmt::Display for PacketSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(n) => write!(f, "{n}"),
            Self::Imix => f.write_str("imix"),
        }
    }
}

/// How to reach and log in to the gateway.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://HOST[:PORT]/`.
    pub gateway: String,
    /// PEM file with the CA that signed the gateway certificate.
    pub cafile: PathBuf,
    /// Empty with a certificate alone.
    pub user: String,
    pub password: String,
    /// PEM client certificate chain and key: every device presents them
    /// (certificate login, alone or with the password).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// What a scenario does; scenarios ignore the knobs they do not use.
#[derive(Debug, Clone)]
pub struct Params {
    pub devices: usize,
    /// Devices handshaking at once, all threads together.
    pub concurrency: usize,
    /// Packets per second, all devices together (`udp-echo`, `bulk`); 0:
    /// saturation.
    pub rate: u64,
    /// How long traffic runs (`udp-echo`, `bulk`) or sessions are held
    /// (`many-sessions`).
    pub seconds: u64,
    /// The reflector behind the gateway (`udp-echo`, `bulk`).
    pub reflector: SocketAddrV4,
    /// Generator threads (each drives its share of the devices).
    pub threads: usize,
    /// `bulk` packet size.
    pub size: PacketSize,
    /// `udp-echo` at saturation: probes in flight per device.
    pub window: usize,
    /// The gateway's process, for its memory (`many-sessions`; any scenario).
    pub gateway_pid: Option<u32>,
    /// Generator processes (`handshake-storm`, `many-sessions`): each device
    /// holds two sockets, so one process's open-file limit caps the fleet.
    /// The extra processes are this program again (`child::child_args`).
    pub processes: usize,
    /// Print `settled up=N failed=M` on stdout once every device of this
    /// process is up or failed (how a parent run learns it).
    pub announce_settled: bool,
}

/// Why a run could not start or went wrong as a whole (a device failing is
/// a figure, not an error).
#[derive(Debug)]
pub enum LoadError {
    UnknownScenario(String),
    Gateway(String),
    Ca(String),
    /// The client certificate or key could not be used.
    Certificate(String),
    /// The open-file limit cannot hold two sockets per device.
    FileLimit {
        devices: usize,
        needed: u64,
        limit: u64,
    },
    /// A generator thread stopped (poll failure, MTU, a silent reflector).
    Run(String),
    /// `--processes` for a scenario that cannot be split across processes.
    Processes(String),
    Io(std::io::Error),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownScenario(s) => write!(f, "unknown scenario {s:?} (known: {})", SCENARIOS.join(", ")),
            Self::Gateway(s) => write!(f, "gateway URL: {s}"),
            Self::Ca(s) => write!(f, "CA file: {s}"),
            Self::Certificate(s) => write!(f, "--cert/--key: {s}"),
            Self::FileLimit { devices, needed, limit } => write!(
                f,
                "--devices {devices} needs {needed} open files but the limit is {limit}: \
                 raise it (ulimit -Hn; LimitNOFILE=) or use fewer devices"
            ),
            Self::Run(s) => write!(f, "{s}"),
            Self::Processes(s) => write!(f, "--processes: {s}"),
            Self::Io(e) => write!(f, "I/O: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<std::io::Error> for LoadError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// UDP socket buffers for `bulk` devices, so bursts do not overflow them.
const BULK_SOCKET_BUFFER: usize = 4 << 20;

/// Runs one scenario to the end; a progress line goes to stderr once a
/// second.
pub fn run(scenario_name: &str, target: &Target, params: &Params) -> Result<Report, LoadError> {
    let scenario =
        Scenario::from_name(scenario_name).ok_or_else(|| LoadError::UnknownScenario(scenario_name.into()))?;
    let (addr, config) = device_config(target)?;
    let processes = params.processes.clamp(1, params.devices.max(1));
    if processes > 1 && !matches!(scenario, Scenario::HandshakeStorm | Scenario::ManySessions) {
        return Err(LoadError::Processes("only handshake-storm and many-sessions run in several processes".into()));
    }
    // This process's share; the children take the rest.
    let own_devices = split(params.devices, processes, 0);
    let limit = raise_open_file_limit();
    let needed = 2 * own_devices as u64 + 64;
    if limit < needed {
        return Err(LoadError::FileLimit { devices: own_devices, needed, limit });
    }
    let threads = params.threads.clamp(1, own_devices.max(1));
    let buffer = if matches!(scenario, Scenario::Bulk | Scenario::BulkDown) { BULK_SOCKET_BUFFER } else { 0 };
    let mut fleets = Vec::with_capacity(threads);
    let shares: Vec<Share> = (0..threads)
        .map(|t| Share {
            thread: t,
            devices: split(own_devices, threads, t),
            concurrency: split(split(params.concurrency, processes, 0).max(threads), threads, t),
            rate: split_rate(params.rate, threads, t),
        })
        .collect();
    for _ in 0..threads {
        fleets.push(Fleet::new(addr, buffer)?);
    }
    // Any value that differs between runs: the reflector keeps one run's count.
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(std::process::id(), |d| d.subsec_nanos() ^ std::process::id());
    let shared = Shared::new(threads);
    let gateway_before = params.gateway_pid.and_then(footprint::tree_pss_bytes);
    let own_before = footprint::own_rss_bytes();
    let cpu_before = report::cpu_seconds();
    let started = Instant::now();
    let mut children = (1..processes)
        .map(|p| child::Child::spawn(target, params, scenario_name, split(params.devices, processes, p), processes, p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut settled_memory: Option<(Option<u64>, u64)> = None;
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = fleets
            .into_iter()
            .zip(&shares)
            .map(|(fleet, share)| {
                let (config, shared) = (&config, &shared);
                s.spawn(move || worker::run(scenario, params, share, fleet, config, shared, run_id))
            })
            .collect();
        let mut progress = report::Progress::new();
        let mut settled_since: Option<Instant> = None;
        let mut announced = false;
        while !handles.iter().all(std::thread::ScopedJoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(100));
            let (up, failed) = (shared.up.load(Ordering::Relaxed), shared.failed.load(Ordering::Relaxed));
            let own_settled = up + failed >= own_devices as u64;
            if own_settled && params.announce_settled && !announced {
                announced = true;
                println!("settled up={up} failed={failed}");
                let _ = std::io::Write::flush(&mut std::io::stdout());
            }
            if own_settled && children.iter().all(child::Child::settled) && settled_memory.is_none() {
                // A second after the last device settled, the gateway has
                // finished its hand-offs: its memory now is what the
                // sessions cost.
                let since = *settled_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs(1) {
                    let gateway = params.gateway_pid.and_then(footprint::tree_pss_bytes);
                    settled_memory = Some((gateway, footprint::own_rss_bytes()));
                }
            }
            progress.tick(|| {
                let (cu, cf) = children.iter().map(child::Child::progress).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
                format!(
                    "up {}/{} failed {} lost {} | sent {} received {}",
                    up + cu,
                    params.devices,
                    failed + cf,
                    shared.lost.load(Ordering::Relaxed),
                    shared.sent.load(Ordering::Relaxed),
                    shared.received.load(Ordering::Relaxed)
                )
            });
        }
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| LoadError::Run("a generator thread panicked".into())))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let child_results = children.iter_mut().map(child::Child::finish).collect::<Result<Vec<_>, _>>()?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = report::cpu_seconds() - cpu_before;
    if let Some(e) = outcomes.iter().find_map(|o| o.error.clone()) {
        return Err(LoadError::Run(e));
    }

    let mut figures = Map::new();
    let mut histograms = Map::new();
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let child_sum =
        |k: &str| child_results.iter().filter_map(|c| c.pointer(&format!("/figures/{k}"))?.as_u64()).sum::<u64>();
    let merged = |f: fn(&Outcome) -> &Histogram<u64>, name: &str| -> Result<Histogram<u64>, LoadError> {
        let mut h = worker::histogram();
        for o in &outcomes {
            let _ = h.add(f(o));
        }
        for c in &child_results {
            let v = c.pointer(&format!("/histograms/{name}")).unwrap_or(&Value::Null);
            if !report::histogram_from_json(v, &mut h) {
                return Err(LoadError::Processes(format!("a child's result has no {name} buckets")));
            }
        }
        Ok(h)
    };
    let up = sum(|o| o.up) + child_sum("devices_up");
    figures.insert("devices_up".into(), up.into());
    figures.insert("failures".into(), (sum(|o| o.failures) + child_sum("failures")).into());
    let own_bring_up =
        outcomes.iter().filter_map(|o| o.settled_at).max().map_or(0.0, |t| t.duration_since(started).as_secs_f64());
    let bring_up_s = child_results
        .iter()
        .filter_map(|c| c.pointer("/figures/handshake_wall_s")?.as_f64())
        .fold(own_bring_up, f64::max);
    figures.insert("handshake_wall_s".into(), bring_up_s.into());
    figures.insert("handshakes_per_s".into(), (up as f64 / bring_up_s.max(1e-9)).into());
    histograms.insert(
        "time_to_tunnel_us".into(),
        report::histogram_json(&merged(|o| &o.time_to_tunnel, "time_to_tunnel_us")?),
    );
    match scenario {
        Scenario::HandshakeStorm => {}
        Scenario::UdpEcho => {
            let (sent, received) = (sum(|o| o.sent), sum(|o| o.received));
            figures.insert("mode".into(), if params.rate > 0 { "paced" } else { "saturation" }.into());
            figures.insert("probes_sent".into(), sent.into());
            figures.insert("probes_received".into(), received.into());
            figures.insert("loss".into(), sent.saturating_sub(received).into());
            figures.insert("send_failures".into(), sum(|o| o.send_failures).into());
            figures.insert("echoes_per_s".into(), (received as f64 / (params.seconds as f64).max(1e-9)).into());
            histograms.insert("rtt_us".into(), report::histogram_json(&merged(|o| &o.rtt, "rtt_us")?));
        }
        Scenario::Bulk => bulk_figures(&outcomes, &mut figures)?,
        Scenario::BulkDown => bulk_down_figures(&outcomes, &mut figures)?,
        Scenario::ManySessions => {
            figures.insert("held_s".into(), params.seconds.into());
            let lost = shared.lost.load(Ordering::Relaxed) + child_sum("sessions_lost");
            figures.insert("sessions_lost".into(), lost.into());
            figures.insert("sessions_still_up".into(), (sum(|o| o.still_up) + child_sum("sessions_still_up")).into());
        }
    }
    if let Some((gateway_up, own_up)) = settled_memory {
        if let (Some(before), Some(after)) = (gateway_before, gateway_up) {
            figures.insert("gateway_pss_before_bytes".into(), before.into());
            figures.insert("gateway_pss_up_bytes".into(), after.into());
            let per = after.saturating_sub(before) / up.max(1);
            figures.insert("gateway_bytes_per_session".into(), per.into());
        }
        let own = sum(|o| o.up).max(1);
        figures.insert("generator_bytes_per_session".into(), (own_up.saturating_sub(own_before) / own).into());
    }
    let (out, calls) = (sum(|o| o.fleet.datagrams_out), sum(|o| o.fleet.send_calls));
    figures.insert("generator_datagrams_per_send".into(), (out as f64 / (calls.max(1)) as f64).into());
    figures.insert("wall_s".into(), wall.into());
    figures.insert("generator_threads".into(), threads.into());
    figures.insert("generator_processes".into(), processes.into());
    let cpu = cpu + child_results.iter().filter_map(|c| c.pointer("/figures/generator_cpu_s")?.as_f64()).sum::<f64>();
    figures.insert("generator_cpu_s".into(), cpu.into());
    figures.insert("generator_cores".into(), (cpu / wall.max(1e-9)).into());
    let child_failure =
        || child_results.iter().find_map(|c| c.pointer("/figures/first_failure")?.as_str().map(String::from));
    if let Some(why) = outcomes.iter().find_map(|o| o.first_failure.clone()).or_else(child_failure) {
        figures.insert("first_failure".into(), why.into());
    }
    let parameters = json!({
        "gateway": target.gateway,
        "user": target.user,
        "devices": params.devices,
        "concurrency": params.concurrency,
        "rate": params.rate,
        "seconds": params.seconds,
        "reflector": params.reflector.to_string(),
        "threads": threads,
        "processes": processes,
        "size": params.size.to_string(),
        "window": params.window,
    });
    Ok(Report::new(scenario_name, parameters, figures, histograms))
}

/// Seconds from the earliest start to the latest end of every thread's
/// `window` (0 when no thread has one).
fn span_s(outcomes: &[Outcome], window: impl Fn(&Outcome) -> Option<(Instant, Instant)>) -> f64 {
    let first = outcomes.iter().filter_map(|o| window(o).map(|w| w.0)).min();
    let last = outcomes.iter().filter_map(|o| window(o).map(|w| w.1)).max();
    match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    }
}

/// The reflector's answer to the count query (thread 0 asks it).
fn reflector_answer(outcomes: &[Outcome], scenario: &str) -> Result<Value, LoadError> {
    outcomes
        .iter()
        .find_map(|o| o.reflector.clone())
        .ok_or_else(|| LoadError::Run(format!("{scenario}: no answer from the reflector")))
}

fn bulk_figures(outcomes: &[Outcome], figures: &mut Map<String, Value>) -> Result<(), LoadError> {
    let sent: u64 = outcomes.iter().map(|o| o.sent).sum();
    let sent_bytes: u64 = outcomes.iter().map(|o| o.sent_ip_bytes).sum();
    let span = span_s(outcomes, |o| o.sending);
    let reflector = reflector_answer(outcomes, "bulk")?;
    let got = |k: &str| reflector.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (delivered, delivered_bytes) = (got("packets"), got("ip_bytes"));
    let delivered_span = reflector.get("span_s").and_then(Value::as_f64).unwrap_or(0.0).max(1e-9);
    figures.insert("packets_sent".into(), sent.into());
    figures.insert("send_failures".into(), outcomes.iter().map(|o| o.send_failures).sum::<u64>().into());
    figures.insert("offered_pps".into(), (sent as f64 / span.max(1e-9)).into());
    figures.insert("offered_gbps".into(), (sent_bytes as f64 * 8.0 / span.max(1e-9) / 1e9).into());
    figures.insert("packets_delivered".into(), delivered.into());
    figures.insert("delivered_pps".into(), (delivered as f64 / delivered_span).into());
    figures.insert("delivered_gbps".into(), (delivered_bytes as f64 * 8.0 / delivered_span / 1e9).into());
    figures.insert("loss".into(), sent.saturating_sub(delivered).into());
    figures.insert("loss_ratio".into(), (sent.saturating_sub(delivered) as f64 / (sent.max(1)) as f64).into());
    figures.insert("reordered".into(), got("reordered").into());
    if let Some(cpu) = reflector.get("reflector_cpu_s") {
        figures.insert("reflector_cpu_s".into(), cpu.clone());
    }
    Ok(())
}

fn bulk_down_figures(outcomes: &[Outcome], figures: &mut Map<String, Value>) -> Result<(), LoadError> {
    let reflector = reflector_answer(outcomes, "bulk-down")?;
    let sent = reflector.get("sent_down").and_then(Value::as_u64).unwrap_or(0);
    let delivered: u64 = outcomes.iter().map(|o| o.received).sum();
    let bytes: u64 = outcomes.iter().map(|o| o.received_ip_bytes).sum();
    let span = span_s(outcomes, |o| o.receiving).max(1e-9);
    figures.insert("packets_sent".into(), sent.into());
    figures.insert("packets_delivered".into(), delivered.into());
    figures.insert("delivered_pps".into(), (delivered as f64 / span).into());
    figures.insert("delivered_gbps".into(), (bytes as f64 * 8.0 / span / 1e9).into());
    figures.insert("loss".into(), sent.saturating_sub(delivered).into());
    figures.insert("loss_ratio".into(), (sent.saturating_sub(delivered) as f64 / (sent.max(1)) as f64).into());
    Ok(())
}

/// Thread `t`'s share of `n` items over `threads`.
fn split(n: usize, threads: usize, t: usize) -> usize {
    n / threads + usize::from(t < n % threads)
}

fn split_rate(rate: u64, threads: usize, t: usize) -> u64 {
    let threads = threads as u64;
    rate / threads + u64::from((t as u64) < rate % threads)
}

/// The gateway's socket address and the configuration every device shares.
fn device_config(target: &Target) -> Result<(SocketAddr, DeviceConfig), LoadError> {
    let rest =
        target.gateway.strip_prefix("https://").ok_or_else(|| LoadError::Gateway("must start with https://".into()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|e| LoadError::Gateway(format!("port: {e}")))?),
        None => (authority, 443),
    };
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| LoadError::Gateway(format!("{host}: {e}")))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| LoadError::Gateway(format!("{host}: no IPv4 address")))?;
    let server_name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(host.to_string()).map_err(|e| LoadError::Gateway(e.to_string()))?,
    };
    let ca = target.cafile.display().to_string();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&target.cafile).map_err(|e| LoadError::Ca(format!("{ca}: {e}")))? {
        roots.add(c.map_err(|e| LoadError::Ca(format!("{ca}: {e}")))?).map_err(|e| LoadError::Ca(e.to_string()))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| LoadError::Ca(e.to_string()))?
        .with_root_certificates(roots);
    let mut tls = match &target.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let what = |p: &PathBuf, e: &dyn std::fmt::Display| LoadError::Certificate(format!("{}: {e}", p.display()));
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| what(cert, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| what(cert, &e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| what(key, &e))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| LoadError::Certificate(e.to_string()))?
        }
    };
    // Every device is a different machine: none resumes another's TLS session.
    tls.resumption = rustls::client::Resumption::disabled();
    let config = DeviceConfig::new(Arc::new(tls), server_name, host, &target.user, &target.password);
    Ok((addr, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_whole() {
        for (n, threads) in [(10, 3), (1, 4), (10_000, 7), (0, 2)] {
            assert_eq!((0..threads).map(|t| split(n, threads, t)).sum::<usize>(), n);
            assert_eq!((0..threads).map(|t| split_rate(n as u64, threads, t)).sum::<u64>(), n as u64);
        }
    }

    #[test]
    fn packet_sizes_parse_and_imix_keeps_its_proportions() {
        assert_eq!("64".parse::<PacketSize>(), Ok(PacketSize::Fixed(64)));
        assert_eq!("IMIX".parse::<PacketSize>(), Ok(PacketSize::Imix));
        assert!("20".parse::<PacketSize>().is_err());
        assert!("9000".parse::<PacketSize>().is_err());
        let cycle = PacketSize::Imix.cycle();
        let count = |n| cycle.iter().filter(|&&s| s == n).count();
        assert_eq!((count(64), count(576), count(1400)), (7, 4, 1));
    }

    #[test]
    fn scenario_names_are_the_published_ones() {
        for name in SCENARIOS {
            assert!(Scenario::from_name(name).is_some(), "{name}");
        }
        assert!(Scenario::from_name("storm").is_none());
    }
}
