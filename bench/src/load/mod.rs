//! `corridor bench run`: many simulated devices in one process, each a full
//! session through the real protocol (TLS, login, CONNECT, DTLS), driven by
//! one single-threaded poll loop ([`fleet`]).
//!
//! Scenario names are stable (they key result files):
//!
//! * `handshake-storm`: connect `devices` devices, at most `concurrency`
//!   handshaking at once; time-to-tunnel (TCP connect to DTLS up) per
//!   device into an HDR histogram, handshakes/s, failures. Devices stay
//!   connected until the end, then log out.
//! * `udp-echo`: bring `devices` tunnels up, then send IPv4/UDP probes at
//!   `rate` packets/s in all (round robin over the devices) for `seconds`
//!   through DTLS to a reflector (`corridor bench reflect`); round-trip time
//!   per probe into an HDR histogram, loss.
//!
//! The generator reports its own CPU time so a result whose generator was
//! saturated can be recognised as measuring the generator.

mod fleet;
mod packet;
mod reflect;
mod report;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use device::DeviceConfig;
use hdrhistogram::Histogram;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use fleet::{Fleet, Happening};
pub use reflect::reflect;
pub use report::Report;

/// The scenarios, by their stable names.
pub const SCENARIOS: [&str; 2] = ["handshake-storm", "udp-echo"];

/// How to reach and log in to the gateway.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://HOST[:PORT]/`.
    pub gateway: String,
    /// PEM file with the CA that signed the gateway certificate.
    pub cafile: PathBuf,
    pub user: String,
    pub password: String,
}

/// What a scenario does; scenarios ignore the knobs they do not use.
#[derive(Debug, Clone)]
pub struct Params {
    pub devices: usize,
    /// Devices handshaking at once.
    pub concurrency: usize,
    /// Probes per second, all devices together (`udp-echo`).
    pub rate: u64,
    /// How long probes are sent (`udp-echo`).
    pub seconds: u64,
    /// The echo server behind the gateway (`udp-echo`).
    pub reflector: SocketAddrV4,
}

/// Why a run could not start or went wrong as a whole (a device failing is
/// a figure, not an error).
#[derive(Debug)]
pub enum LoadError {
    UnknownScenario(String),
    Gateway(String),
    Ca(String),
    Io(std::io::Error),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownScenario(s) => write!(f, "unknown scenario {s:?} (known: {})", SCENARIOS.join(", ")),
            Self::Gateway(s) => write!(f, "gateway URL: {s}"),
            Self::Ca(s) => write!(f, "CA file: {s}"),
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

/// Runs one scenario to the end; progress goes to stderr once a second.
pub fn run(scenario: &str, target: &Target, params: &Params) -> Result<Report, LoadError> {
    if !SCENARIOS.contains(&scenario) {
        return Err(LoadError::UnknownScenario(scenario.into()));
    }
    let (addr, config) = device_config(target)?;
    let cpu_before = report::cpu_seconds();
    let mut run = Run::new(Fleet::new(addr)?, config);
    let mut figures = serde_json::Map::new();
    let mut histograms = serde_json::Map::new();
    let started = Instant::now();
    run.bring_up(params)?;
    let up_wall = started.elapsed().as_secs_f64();
    figures.insert("devices_up".into(), run.up.into());
    figures.insert("failures".into(), run.failures.into());
    histograms.insert("time_to_tunnel_us".into(), report::histogram_json(&run.time_to_tunnel));
    if scenario == "handshake-storm" {
        figures.insert("handshake_wall_s".into(), up_wall.into());
        figures.insert("handshakes_per_s".into(), (run.up as f64 / up_wall.max(1e-9)).into());
    } else {
        let echo = run.echo(params)?;
        figures.insert("probes_sent".into(), echo.sent.into());
        figures.insert("probes_received".into(), echo.received.into());
        figures.insert("loss".into(), echo.sent.saturating_sub(echo.received).into());
        figures.insert("send_failures".into(), echo.send_failures.into());
        histograms.insert("rtt_us".into(), report::histogram_json(&echo.rtt));
    }
    run.fleet.disconnect_all(Instant::now());
    let cpu = report::cpu_seconds() - cpu_before;
    let wall = started.elapsed().as_secs_f64();
    figures.insert("wall_s".into(), wall.into());
    figures.insert("generator_cpu_s".into(), cpu.into());
    figures.insert("generator_cpu_share".into(), (cpu / wall.max(1e-9)).into());
    if let Some(why) = &run.first_failure {
        figures.insert("first_failure".into(), why.clone().into());
    }
    let parameters = serde_json::json!({
        "gateway": target.gateway,
        "user": target.user,
        "devices": params.devices,
        "concurrency": params.concurrency,
        "rate": params.rate,
        "seconds": params.seconds,
        "reflector": params.reflector.to_string(),
    });
    Ok(Report::new(scenario, parameters, figures, histograms))
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
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| LoadError::Ca(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every device is a different machine: none resumes another's TLS session.
    tls.resumption = rustls::client::Resumption::disabled();
    let config = DeviceConfig::new(Arc::new(tls), server_name, host, &target.user, &target.password);
    Ok((addr, config))
}

struct Run {
    fleet: Fleet,
    config: DeviceConfig,
    happenings: Vec<Happening>,
    up: u64,
    failures: u64,
    first_failure: Option<String>,
    time_to_tunnel: Histogram<u64>,
    progress: report::Progress,
}

struct Echo {
    sent: u64,
    received: u64,
    send_failures: u64,
    rtt: Histogram<u64>,
}

const SOURCE_PORT: u16 = 40_000;

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("fixed, valid bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Run {
    fn new(fleet: Fleet, config: DeviceConfig) -> Self {
        Self {
            fleet,
            config,
            happenings: Vec::new(),
            up: 0,
            failures: 0,
            first_failure: None,
            time_to_tunnel: histogram(),
            progress: report::Progress::new(),
        }
    }

    /// Starts every device, at most `concurrency` handshaking at once, and
    /// waits until each is up or failed.
    fn bring_up(&mut self, params: &Params) -> Result<(), LoadError> {
        let concurrency = params.concurrency.max(1);
        loop {
            let settled = usize::try_from(self.up + self.failures).unwrap_or(usize::MAX);
            let now = Instant::now();
            while self.fleet.len() < params.devices && self.fleet.len() - settled < concurrency {
                if let Err(e) = self.fleet.start(self.config.clone(), now) {
                    // A device that cannot even open its socket counts as failed.
                    self.failures += 1;
                    self.first_failure.get_or_insert_with(|| format!("start: {e}"));
                    if self.fleet.len() + usize::try_from(self.failures).unwrap_or(0) > params.devices {
                        break;
                    }
                }
            }
            if settled >= params.devices {
                return Ok(());
            }
            self.turn(now + Duration::from_millis(100))?;
            let in_flight = self.fleet.len().saturating_sub(usize::try_from(self.up + self.failures).unwrap_or(0));
            self.progress
                .tick(|| format!("up {}/{} in-flight {in_flight} failed {}", self.up, params.devices, self.failures));
        }
    }

    fn turn(&mut self, deadline: Instant) -> Result<(), LoadError> {
        self.happenings.clear();
        let mut happenings = std::mem::take(&mut self.happenings);
        self.fleet.turn(deadline, &mut happenings)?;
        for h in happenings.drain(..) {
            match h {
                Happening::Up { elapsed, .. } => {
                    self.up += 1;
                    let _ = self.time_to_tunnel.record(micros(elapsed));
                }
                Happening::Failed { why, device } => {
                    self.failures += 1;
                    self.first_failure.get_or_insert_with(|| format!("device {device}: {why}"));
                }
                Happening::Packet { .. } => self.happenings.push(h),
            }
        }
        Ok(())
    }

    fn echo(&mut self, params: &Params) -> Result<Echo, LoadError> {
        let live: Vec<(usize, Ipv4Addr)> =
            (0..self.fleet.len()).filter_map(|i| self.fleet.address(i).map(|a| (i, a))).collect();
        let mut echo = Echo { sent: 0, received: 0, send_failures: 0, rtt: histogram() };
        let total = params.rate.saturating_mul(params.seconds);
        let mut seen = vec![false; usize::try_from(total).unwrap_or(0)];
        let epoch = Instant::now();
        let interval = Duration::from_secs(1).checked_div(u32::try_from(params.rate.max(1)).unwrap_or(u32::MAX));
        let interval = interval.unwrap_or(Duration::from_secs(1));
        let reflector = *params.reflector.ip();
        let mut packet = Vec::with_capacity(64);
        let mut drain_until = None;
        loop {
            let now = Instant::now();
            while echo.sent < total && !live.is_empty() {
                let due = epoch + interval * u32::try_from(echo.sent).unwrap_or(u32::MAX);
                if due > now {
                    break;
                }
                let slot = usize::try_from(echo.sent).unwrap_or(0) % live.len();
                let Some(&(device, src)) = live.get(slot) else { break };
                let sent_ns = u64::try_from(now.duration_since(epoch).as_nanos()).unwrap_or(u64::MAX);
                let probe = packet::probe(echo.sent, sent_ns);
                packet::ipv4_udp(src, SOURCE_PORT, reflector, params.reflector.port(), &probe, &mut packet);
                if !self.fleet.send(device, now, &packet) {
                    echo.send_failures += 1;
                }
                echo.sent += 1;
            }
            if echo.sent >= total && drain_until.is_none() {
                drain_until = Some(now + Duration::from_secs(2));
            }
            if echo.received >= total || drain_until.is_some_and(|d| now >= d) || live.is_empty() {
                return Ok(echo);
            }
            let next_send = if echo.sent < total {
                epoch + interval * u32::try_from(echo.sent).unwrap_or(u32::MAX)
            } else {
                now + Duration::from_millis(50)
            };
            self.turn(next_send.min(now + Duration::from_millis(100)))?;
            for h in self.happenings.drain(..) {
                let Happening::Packet { packet, at, .. } = h else { continue };
                let Some((seq, sent_ns)) = packet::parse_probe(&packet, reflector, SOURCE_PORT) else { continue };
                let Some(flag) = seen.get_mut(usize::try_from(seq).unwrap_or(usize::MAX)) else { continue };
                if *flag {
                    continue;
                }
                *flag = true;
                echo.received += 1;
                let rtt = at.duration_since(epoch).saturating_sub(Duration::from_nanos(sent_ns));
                let _ = echo.rtt.record(micros(rtt));
            }
            let (sent, received) = (echo.sent, echo.received);
            self.progress.tick(|| format!("probes sent {sent}/{total} received {received}"));
        }
    }
}
