//! One simulated device over real sockets: logs in, brings the tunnel and
//! DTLS up, sends one IPv4/UDP packet to an echo server behind the gateway
//! and waits for the echo. A small blocking driver around `DeviceSession`,
//! used by `tests/against_corridor.rs`; it prints one line per milestone.
//!
//! ```text
//! device-probe GATEWAY_IP CA_PEM USER PASSWORD ECHO_IP:PORT
//! ```
//! (the password may also come as `-`, read from the first stdin line).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use device::{DeviceConfig, DeviceSession, Event};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const PAYLOAD: &[u8] = b"corridor-device-probe";
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

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [gateway, ca, user, password, echo] = args.as_slice() else {
        return Err("usage: device-probe GATEWAY_IP CA_PEM USER PASSWORD ECHO_IP:PORT".into());
    };
    let gateway: Ipv4Addr = gateway.parse().map_err(|e| format!("gateway: {e}"))?;
    let echo: SocketAddrV4 = echo.parse().map_err(|e| format!("echo: {e}"))?;
    let password = if password == "-" {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
        line.trim_end().to_string()
    } else {
        password.clone()
    };

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
        roots.add(c.map_err(|e| format!("{ca}: {e}"))?).map_err(|e| e.to_string())?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(std::net::IpAddr::V4(gateway).into());
    let config = DeviceConfig::new(Arc::new(tls), name, &gateway.to_string(), user, &password);
    let mut session = DeviceSession::new(config).map_err(|e| e.to_string())?;

    let mut tcp = TcpStream::connect((gateway, 443)).map_err(|e| format!("TCP connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_millis(5))).map_err(|e| e.to_string())?;
    let mut udp: Option<UdpSocket> = None;
    let mut address = None;
    let mut sent = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::new();

    while Instant::now() < deadline {
        let now = Instant::now();
        if session.poll_timeout().is_some_and(|t| t <= now) {
            session.handle_timeout(now);
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::LoggedIn => println!("LOGGED IN"),
                Event::TunnelUp { address: a, netmask, mtu, dtls_port, app_id } => {
                    println!(
                        "TUNNEL UP address={a} netmask={netmask:?} mtu={mtu} dtls_port={dtls_port:?} app_id_len={}",
                        app_id.as_ref().map_or(0, Vec::len)
                    );
                    address = Some(a);
                    if let Some(port) = dtls_port {
                        let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
                        s.connect((gateway, port)).map_err(|e| e.to_string())?;
                        s.set_read_timeout(Some(Duration::from_millis(5))).map_err(|e| e.to_string())?;
                        udp = Some(s);
                    }
                }
                Event::DtlsUp { suite } => {
                    println!("DTLS UP suite={suite:?}");
                    let src = address.ok_or("DTLS before the tunnel")?;
                    let packet = ipv4_udp(src, SOURCE_PORT, *echo.ip(), echo.port(), PAYLOAD);
                    let channel = session.send_packet(now, &packet).map_err(|e| format!("send: {e:?}"))?;
                    println!("SENT via {channel:?}");
                    sent = true;
                }
                Event::DtlsDown => println!("DTLS DOWN"),
                Event::Packet(p) => {
                    if sent && udp_payload(&p, *echo.ip(), SOURCE_PORT) == Some(PAYLOAD) {
                        let s = session.stats();
                        println!("ECHO OK dtls_packets_in={} cstp_packets_in={}", s.dtls_packets_in, s.cstp_packets_in);
                        session.disconnect(now);
                        flush_tls(&mut session, &mut tcp, &mut out)?;
                        println!("DONE");
                        return Ok(());
                    }
                    println!("PACKET {} bytes", p.len());
                }
                Event::DpdResponse(c) => println!("DPD RESPONSE on {c:?}"),
                Event::AuthFailed(m) => return Err(format!("auth failed: {m}")),
                Event::Disconnected(r) => return Err(format!("disconnected: {r:?}")),
            }
        }
        flush_tls(&mut session, &mut tcp, &mut out)?;
        if let Some(s) = &udp {
            while session.poll_datagram(&mut out) {
                s.send(&out).map_err(|e| format!("UDP send: {e}"))?;
            }
        }
        match tcp.read(&mut buf) {
            Ok(0) => session.handle_tls_eof(),
            Ok(n) => session.handle_tls(Instant::now(), buf.get(..n).unwrap_or_default()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(format!("TCP read: {e}")),
        }
        if let Some(s) = &udp {
            match s.recv(&mut buf) {
                Ok(n) => session.handle_datagram(Instant::now(), buf.get(..n).unwrap_or_default()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                // ICMP unreachable before the gateway listens: retransmission covers it.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(format!("UDP recv: {e}")),
            }
        }
    }
    Err("timed out".into())
}

fn flush_tls(session: &mut DeviceSession, tcp: &mut TcpStream, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    if session.poll_tls(out) {
        tcp.write_all(out).map_err(|e| format!("TCP write: {e}"))?;
    }
    Ok(())
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
