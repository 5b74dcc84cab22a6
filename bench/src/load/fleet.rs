//! Many `DeviceSession`s on one thread: one mio `Poll`, one non-blocking TCP
//! and one UDP socket per device, edge-triggered readiness. Token `2i` is
//! device `i`'s TCP socket, `2i + 1` its UDP socket.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use device::{DeviceConfig, DeviceSession, Event};
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};

/// Where one device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// TCP connecting, TLS, login, CONNECT or the DTLS handshake.
    Handshaking,
    /// DTLS up: the tunnel is ready for traffic.
    Up,
    Failed,
}

/// What the fleet tells its scenario.
#[derive(Debug)]
pub(crate) enum Happening {
    /// A device has DTLS up, `elapsed` after its TCP connect began.
    Up {
        elapsed: Duration,
    },
    Failed {
        device: usize,
        why: String,
    },
    /// An IP packet arrived on a device's tunnel.
    Packet {
        packet: Vec<u8>,
        at: Instant,
    },
}

struct Device {
    session: DeviceSession,
    tcp: TcpStream,
    udp: Option<UdpSocket>,
    /// TLS bytes the socket would not take yet (connect pending or full).
    tx: Vec<u8>,
    started: Instant,
    stage: Stage,
    address: Option<Ipv4Addr>,
}

/// The devices of one run and the poll loop that drives them.
pub(crate) struct Fleet {
    poll: Poll,
    events: Events,
    gateway: SocketAddr,
    devices: Vec<Device>,
    buf: Vec<u8>,
    datagram: Vec<u8>,
    /// How long a device may take from TCP connect to DTLS up.
    pub(crate) handshake_timeout: Duration,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("gateway", &self.gateway).field("devices", &self.devices.len()).finish()
    }
}

impl Fleet {
    pub(crate) fn new(gateway: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            gateway,
            devices: Vec::new(),
            buf: vec![0; 65_536],
            datagram: Vec::with_capacity(2048),
            handshake_timeout: Duration::from_secs(30),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.devices.len()
    }

    pub(crate) fn address(&self, device: usize) -> Option<Ipv4Addr> {
        self.devices.get(device).and_then(|d| d.address)
    }

    /// Starts one more device; its index is the previous `len()`.
    pub(crate) fn start(&mut self, config: DeviceConfig, now: Instant) -> std::io::Result<usize> {
        let index = self.devices.len();
        let session = DeviceSession::new(config).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut tcp = TcpStream::connect(self.gateway)?;
        self.poll.registry().register(&mut tcp, Token(2 * index), Interest::READABLE | Interest::WRITABLE)?;
        let mut d =
            Device { session, tcp, udp: None, tx: Vec::new(), started: now, stage: Stage::Handshaking, address: None };
        d.session.poll_tls(&mut d.tx);
        self.devices.push(d);
        Ok(index)
    }

    /// Sends one IP packet through device `i`'s tunnel.
    pub(crate) fn send(&mut self, device: usize, now: Instant, packet: &[u8]) -> bool {
        let Some(d) = self.devices.get_mut(device) else { return false };
        if d.stage != Stage::Up || d.session.send_packet(now, packet).is_err() {
            return false;
        }
        Self::flush(d, &mut self.datagram).is_ok()
    }

    /// Logs every device out and writes what that produces, best effort.
    pub(crate) fn disconnect_all(&mut self, now: Instant) {
        for d in &mut self.devices {
            if d.stage != Stage::Failed {
                d.session.disconnect(now);
                let _ = Self::flush(d, &mut self.datagram);
            }
        }
    }

    /// Polls once (at most until `deadline`), feeds what arrived to the
    /// sessions, fires their timers and reports what happened.
    pub(crate) fn turn(&mut self, deadline: Instant, out: &mut Vec<Happening>) -> std::io::Result<()> {
        let now = Instant::now();
        let wake = self.devices.iter().filter_map(|d| d.session.poll_timeout()).fold(deadline, Instant::min);
        match self.poll.poll(&mut self.events, Some(wake.saturating_duration_since(now))) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        let ready: Vec<Token> = self.events.iter().map(mio::event::Event::token).collect();
        for Token(t) in ready {
            let index = t / 2;
            let Some(d) = self.devices.get_mut(index) else { continue };
            if d.stage == Stage::Failed {
                continue;
            }
            let result =
                if t % 2 == 0 { Self::read_tcp(d, &mut self.buf, now) } else { Self::read_udp(d, &mut self.buf, now) };
            if let Err(why) = result {
                Self::fail(d, index, why, out);
            }
        }
        for index in 0..self.devices.len() {
            let Some(d) = self.devices.get_mut(index) else { continue };
            if d.stage == Stage::Failed {
                continue;
            }
            if d.session.poll_timeout().is_some_and(|t| t <= now) {
                d.session.handle_timeout(now);
            }
            if d.stage == Stage::Handshaking && now.duration_since(d.started) > self.handshake_timeout {
                Self::fail(d, index, format!("no DTLS within {:?}", self.handshake_timeout), out);
                continue;
            }
            if let Err(why) = self.pump(index, now, out) {
                if let Some(d) = self.devices.get_mut(index) {
                    Self::fail(d, index, why, out);
                }
            }
        }
        Ok(())
    }

    fn fail(d: &mut Device, device: usize, why: String, out: &mut Vec<Happening>) {
        d.stage = Stage::Failed;
        out.push(Happening::Failed { device, why });
    }

    fn read_tcp(d: &mut Device, buf: &mut [u8], now: Instant) -> Result<(), String> {
        loop {
            match d.tcp.read(buf) {
                Ok(0) => {
                    d.session.handle_tls_eof();
                    return Ok(());
                }
                Ok(n) => d.session.handle_tls(now, buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Still connecting: the writable event comes later.
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("TCP read: {e}")),
            }
        }
    }

    fn read_udp(d: &mut Device, buf: &mut [u8], now: Instant) -> Result<(), String> {
        let Some(udp) = &d.udp else { return Ok(()) };
        loop {
            match udp.recv(buf) {
                Ok(n) => d.session.handle_datagram(now, buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                // ICMP unreachable before the gateway's DTLS answers: retransmission covers it.
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::ConnectionRefused) => {}
                Err(e) => return Err(format!("UDP recv: {e}")),
            }
        }
    }

    /// Drains device `i`'s events, then writes its TLS bytes and datagrams.
    fn pump(&mut self, index: usize, now: Instant, out: &mut Vec<Happening>) -> Result<(), String> {
        let gateway = self.gateway;
        let Some(d) = self.devices.get_mut(index) else { return Ok(()) };
        while let Some(event) = d.session.poll_event() {
            match event {
                Event::TunnelUp { address, dtls_port, .. } => {
                    d.address = Some(address);
                    let port = dtls_port.ok_or("the gateway offered no DTLS")?;
                    let bind: SocketAddr = (Ipv4Addr::UNSPECIFIED, 0).into();
                    let mut udp = UdpSocket::bind(bind).map_err(|e| format!("UDP bind: {e}"))?;
                    udp.connect(SocketAddr::new(gateway.ip(), port)).map_err(|e| format!("UDP connect: {e}"))?;
                    self.poll
                        .registry()
                        .register(&mut udp, Token(2 * index + 1), Interest::READABLE)
                        .map_err(|e| format!("register: {e}"))?;
                    d.udp = Some(udp);
                }
                Event::DtlsUp { .. } => {
                    if d.stage == Stage::Handshaking {
                        d.stage = Stage::Up;
                        out.push(Happening::Up { elapsed: now.duration_since(d.started) });
                    }
                }
                Event::Packet(packet) => out.push(Happening::Packet { packet, at: now }),
                Event::AuthFailed(m) => return Err(format!("auth failed: {m}")),
                Event::Disconnected(r) => return Err(format!("disconnected: {r:?}")),
                Event::LoggedIn | Event::DtlsDown | Event::DpdResponse(_) => {}
            }
        }
        Self::flush(d, &mut self.datagram)
    }

    fn flush(d: &mut Device, datagram: &mut Vec<u8>) -> Result<(), String> {
        d.session.poll_tls(&mut d.tx);
        while !d.tx.is_empty() {
            match d.tcp.write(&d.tx) {
                Ok(0) => return Err("TCP write: closed".into()),
                Ok(n) => {
                    d.tx.drain(..n);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("TCP write: {e}")),
            }
        }
        if let Some(udp) = &d.udp {
            while d.session.poll_datagram(datagram) {
                match udp.send(datagram) {
                    Ok(_) => {}
                    // A full socket buffer or an ICMP error drops the datagram,
                    // as the network would; DTLS retransmits handshakes.
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::ConnectionRefused) => {}
                    Err(e) => return Err(format!("UDP send: {e}")),
                }
            }
        }
        Ok(())
    }
}
