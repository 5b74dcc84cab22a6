//! One simulated device over real sockets: logs in, brings the tunnel and
//! DTLS up, sends one IPv4/UDP packet to an echo server behind the gateway
//! and waits for the echo. A small blocking driver around `DeviceSession`,
//! used by `tests/against_corridor.rs` and `tests/against_ocserv.rs`; it
//! prints one line per milestone.
//!
//! ```text
//! device-probe [--reconnect [--hold]] [--tls12] [--cert CERT_PEM --key KEY_PEM] GATEWAY_IP CA_PEM [USER PASSWORD] ECHO_IP:PORT
//! ```
//! The password may also come as `-`, read from the first stdin line. With
//! `--cert` the user name and password may be left out (certificate login,
//! protocol reference §2.7). With `--reconnect`, after the first echo the
//! probe drops its TCP connection (no DISCONNECT: a network loss as the
//! gateway sees it), reconnects with the session cookie (§6.6), checks it
//! got the same address, brings DTLS up again and echoes a second time.
//! `--hold` makes it print `HOLDING` after the drop and wait for a line on
//! stdin before reconnecting, so a test can act on the gateway meanwhile.
//! `--tls12` offers TLS 1.2 only (the DTLS PSK then comes from the TLS 1.2
//! exporter, §5.3).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use device::{DeviceConfig, DeviceSession, Event};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const PAYLOAD: &str = "corridor-device-probe";
const SOURCE_PORT: u16 = 40_000;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("FAILED {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: device-probe [--reconnect [--hold]] [--tls12] [--cert CERT_PEM --key KEY_PEM] GATEWAY_IP CA_PEM [USER PASSWORD] ECHO_IP:PORT";

struct Args {
    reconnect: bool,
    hold: bool,
    tls12: bool,
    cert: Option<(String, String)>,
    gateway: Ipv4Addr,
    ca: String,
    login: Option<(String, String)>,
    echo: SocketAddrV4,
}

fn parse_args() -> Result<Args, String> {
    let mut reconnect = false;
    let mut hold = false;
    let mut tls12 = false;
    let (mut cert, mut key) = (None, None);
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reconnect" => reconnect = true,
            "--hold" => hold = true,
            "--tls12" => tls12 = true,
            "--cert" => cert = Some(args.next().ok_or(USAGE)?),
            "--key" => key = Some(args.next().ok_or(USAGE)?),
            _ if a.starts_with("--") => return Err(format!("unknown option {a}; {USAGE}")),
            _ => positional.push(a),
        }
    }
    let cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(format!("--cert and --key go together; {USAGE}")),
    };
    let (gateway, ca, login, echo) = match positional.as_slice() {
        [g, ca, user, password, echo] => (g, ca, Some((user.clone(), read_password(password)?)), echo),
        [g, ca, echo] if cert.is_some() => (g, ca, None, echo),
        _ => return Err(USAGE.into()),
    };
    if hold && !reconnect {
        return Err(format!("--hold goes with --reconnect; {USAGE}"));
    }
    Ok(Args {
        reconnect,
        hold,
        tls12,
        cert,
        gateway: gateway.parse().map_err(|e| format!("gateway: {e}"))?,
        ca: ca.clone(),
        login,
        echo: echo.parse().map_err(|e| format!("echo: {e}"))?,
    })
}

fn read_password(arg: &str) -> Result<String, String> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
    Ok(line.trim_end().to_string())
}

fn device_config(a: &Args) -> Result<DeviceConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&a.ca).map_err(|e| format!("{}: {e}", a.ca))? {
        roots.add(c.map_err(|e| format!("{}: {e}", a.ca))?).map_err(|e| e.to_string())?;
    }
    let versions: &[&rustls::SupportedProtocolVersion] =
        if a.tls12 { &[&rustls::version::TLS12] } else { rustls::DEFAULT_VERSIONS };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let tls = match &a.cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("{cert}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate: {e}"))?
        }
    };
    let name = ServerName::IpAddress(std::net::IpAddr::V4(a.gateway).into());
    let host = a.gateway.to_string();
    Ok(match &a.login {
        Some((user, password)) => DeviceConfig::new(Arc::new(tls), name, &host, user, password),
        None => DeviceConfig::with_certificate(Arc::new(tls), name, &host),
    })
}

fn connect_tcp(gateway: Ipv4Addr) -> std::io::Result<TcpStream> {
    let tcp = TcpStream::connect((gateway, 443))?;
    tcp.set_read_timeout(Some(Duration::from_millis(5)))?;
    Ok(tcp)
}

/// What the latest input was, to say which channel delivered a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Cstp,
    Dtls,
    Timer,
}

/// The probe's own state around the session and its sockets.
struct Probe {
    args: Args,
    session: DeviceSession,
    tcp: Option<TcpStream>,
    udp: Option<UdpSocket>,
    address: Option<Ipv4Addr>,
    /// The payload of the echo in flight, and how many came back.
    expecting: Option<Vec<u8>>,
    echoes: usize,
    out: Vec<u8>,
}

/// Whether the probe is finished.
enum Flow {
    Go,
    Done,
}

impl Probe {
    /// Acts on the session's events; `via` is the input that raised them.
    fn on_events(&mut self, via: Via) -> Result<Flow, String> {
        let echo = self.args.echo;
        while let Some(event) = self.session.poll_event() {
            let now = Instant::now();
            match event {
                Event::LoggedIn => println!("LOGGED IN"),
                Event::TunnelUp { address, netmask, mtu, dtls_port, app_id } => {
                    println!(
                        "TUNNEL UP address={address} netmask={netmask:?} mtu={mtu} dtls_port={dtls_port:?} app_id_len={}",
                        app_id.as_ref().map_or(0, Vec::len)
                    );
                    if self.address.is_some_and(|first| first != address) {
                        return Err(format!("reconnect gave {address}, not {:?}", self.address));
                    }
                    if self.address.is_some() {
                        println!("RECONNECTED reconnects={}", self.session.stats().reconnects);
                    }
                    self.address = Some(address);
                    if let Some(port) = dtls_port {
                        let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
                        s.connect((self.args.gateway, port)).map_err(|e| e.to_string())?;
                        s.set_read_timeout(Some(Duration::from_millis(5))).map_err(|e| e.to_string())?;
                        self.udp = Some(s);
                    }
                }
                Event::DtlsUp { suite } => {
                    println!("DTLS UP suite={suite:?}");
                    let src = self.address.ok_or("DTLS before the tunnel")?;
                    let payload = format!("{PAYLOAD}-{}", self.echoes + 1).into_bytes();
                    let packet = ipv4_udp(src, SOURCE_PORT, *echo.ip(), echo.port(), &payload);
                    let channel = self.session.send_packet(now, &packet).map_err(|e| format!("send: {e:?}"))?;
                    println!("SENT via {channel:?}");
                    self.expecting = Some(payload);
                }
                Event::DtlsDown => println!("DTLS DOWN"),
                Event::Packet(p) => {
                    let hit =
                        self.expecting.as_deref().is_some_and(|e| udp_payload(&p, *echo.ip(), SOURCE_PORT) == Some(e));
                    if !hit {
                        // Anything else the gateway sends: ocserv forwards what
                        // the kernel puts on its TUN (IPv6 MLD reports, router
                        // solicitations), though the device asked for IPv4 only.
                        let version = p.first().map(|b| b >> 4);
                        let ip = proto::ip::Ipv4Packet::new_checked(p.as_slice()).ok();
                        let dst = ip.map(|ip| (ip.protocol().0, ip.dst()));
                        println!("PACKET {} bytes via={via:?} ip_version={version:?} ipv4_proto_dst={dst:?}", p.len());
                        continue;
                    }
                    self.expecting = None;
                    self.echoes += 1;
                    let s = self.session.stats();
                    println!(
                        "ECHO OK via={via:?} dtls_packets_in={} cstp_packets_in={}",
                        s.dtls_packets_in, s.cstp_packets_in
                    );
                    let rounds = if self.args.reconnect { 2 } else { 1 };
                    if self.echoes >= rounds {
                        self.session.disconnect(now);
                        self.flush_tls()?;
                        println!("DONE");
                        return Ok(Flow::Done);
                    }
                    // A network loss as the gateway sees it: the TCP
                    // connection goes, no DISCONNECT first.
                    self.tcp = None;
                    self.udp = None;
                    println!("DROPPED TCP");
                    if self.args.hold {
                        println!("HOLDING");
                        let mut line = String::new();
                        std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
                    }
                    self.session.handle_connection_lost(Instant::now());
                }
                Event::DpdResponse(c) => println!("DPD RESPONSE on {c:?}"),
                Event::AuthFailed(m) => return Err(format!("auth failed: {m}")),
                Event::Disconnected(r) => {
                    let Some(at) = self.session.reconnect_at() else {
                        return Err(format!("disconnected: {r:?}"));
                    };
                    println!("CONNECTION LOST {r:?}; reconnect in {:?}", at.saturating_duration_since(Instant::now()));
                    self.tcp = None;
                    self.udp = None;
                }
            }
        }
        Ok(Flow::Go)
    }

    fn flush_tls(&mut self) -> Result<(), String> {
        let Some(tcp) = self.tcp.as_mut() else { return Ok(()) };
        self.out.clear();
        if self.session.poll_tls(&mut self.out) {
            tcp.write_all(&self.out).map_err(|e| format!("TCP write: {e}"))?;
        }
        Ok(())
    }

    /// One turn: timers, a reconnect if one is due, then one read from
    /// each socket; events after each step.
    fn turn(&mut self, buf: &mut [u8]) -> Result<Flow, String> {
        let now = Instant::now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        if let Flow::Done = self.on_events(Via::Timer)? {
            return Ok(Flow::Done);
        }
        if self.tcp.is_none() {
            if self.session.reconnect_at().is_some_and(|t| t <= now) {
                match connect_tcp(self.args.gateway) {
                    Ok(t) => {
                        self.session.reconnect(now).map_err(|e| format!("reconnect: {e}"))?;
                        println!("RECONNECTING attempt={}", self.session.stats().reconnect_attempts);
                        self.tcp = Some(t);
                    }
                    Err(e) => {
                        println!("TCP connect: {e}");
                        self.session.handle_connection_lost(now);
                    }
                }
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Ok(Flow::Go);
        }
        self.flush_tls()?;
        if let Some(s) = &self.udp {
            while self.session.poll_datagram(&mut self.out) {
                s.send(&self.out).map_err(|e| format!("UDP send: {e}"))?;
            }
        }
        if let Some(t) = self.tcp.as_mut() {
            match t.read(buf) {
                Ok(0) => self.session.handle_connection_lost(Instant::now()),
                Ok(n) => self.session.handle_tls(Instant::now(), buf.get(..n).unwrap_or_default()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => {
                    println!("TCP read: {e}");
                    self.session.handle_connection_lost(Instant::now());
                }
            }
        }
        if let Flow::Done = self.on_events(Via::Cstp)? {
            return Ok(Flow::Done);
        }
        if let Some(s) = &self.udp {
            match s.recv(buf) {
                Ok(n) => self.session.handle_datagram(Instant::now(), buf.get(..n).unwrap_or_default()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                // ICMP unreachable before the gateway listens: retransmission covers it.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(format!("UDP recv: {e}")),
            }
        }
        self.on_events(Via::Dtls)
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let session = DeviceSession::new(device_config(&args)?).map_err(|e| e.to_string())?;
    let tcp = connect_tcp(args.gateway).map_err(|e| format!("TCP connect: {e}"))?;
    let mut probe =
        Probe { args, session, tcp: Some(tcp), udp: None, address: None, expecting: None, echoes: 0, out: Vec::new() };
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        if let Flow::Done = probe.turn(&mut buf)? {
            return Ok(());
        }
    }
    Err("timed out".into())
}

/// An IPv4/UDP packet; UDP checksum 0 (allowed over IPv4).
fn ipv4_udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    proto::ip::emit_ipv4_udp(SocketAddrV4::new(src, sport), SocketAddrV4::new(dst, dport), payload, &mut p);
    p
}

/// The UDP payload of `p` if it comes from `from` to port `to_port`.
fn udp_payload(p: &[u8], from: Ipv4Addr, to_port: u16) -> Option<&[u8]> {
    let ip = proto::ip::Ipv4Packet::new_checked(p).ok()?;
    let (_, dport, payload) = ip.udp()?;
    (ip.src() == from && dport == to_port).then_some(payload)
}
