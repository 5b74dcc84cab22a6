//! Many `DeviceSession`s on one thread: one mio `Poll`, one non-blocking TCP
//! and one connected UDP socket per device, edge-triggered readiness. Token
//! `2i` is device `i`'s TCP socket, `2i + 1` its UDP socket.
//!
//! Work per turn is proportional to what happened, not to the fleet: only
//! devices with readable sockets or a due timer are pumped, and timers sit
//! in one heap holding at most one entry per device (plus stale ones that
//! pop as no-ops), so ten thousand idle devices cost nothing between their
//! keepalives.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use device::{DeviceConfig, DeviceSession, Event};
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};

use super::sockets::{self, GSO_MAX_BYTES, GSO_MAX_SEGMENTS};

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
        /// Which device's tunnel it came out of.
        device: usize,
        packet: Vec<u8>,
        at: Instant,
    },
}

/// The fleet's own I/O counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FleetStats {
    /// Datagrams handed to the kernel.
    pub(crate) datagrams_out: u64,
    /// `sendmsg` calls that carried them.
    pub(crate) send_calls: u64,
    /// Datagrams dropped because the socket buffer was full.
    pub(crate) datagrams_blocked: u64,
    pub(crate) datagrams_in: u64,
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
    mtu: u16,
    /// The instant this device's live heap entry is for.
    scheduled: Option<Instant>,
    dirty: bool,
}

/// The devices of one thread and the poll loop that drives them.
pub(crate) struct Fleet {
    poll: Poll,
    events: Events,
    gateway: SocketAddr,
    devices: Vec<Device>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    dirty: Vec<usize>,
    buf: Vec<u8>,
    datagram: Vec<u8>,
    /// Equal-sized datagrams waiting for one GSO send.
    gso: Vec<u8>,
    /// Off once the kernel refused `UDP_SEGMENT`; sends go one by one.
    gso_enabled: bool,
    socket_buffer: usize,
    pub(crate) stats: FleetStats,
    /// How long a device may take from TCP connect to DTLS up.
    pub(crate) handshake_timeout: Duration,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("gateway", &self.gateway).field("devices", &self.devices.len()).finish()
    }
}

impl Fleet {
    /// `socket_buffer`: bytes of send and receive buffer per UDP socket.
    pub(crate) fn new(gateway: SocketAddr, socket_buffer: usize) -> std::io::Result<Self> {
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            gateway,
            devices: Vec::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            buf: vec![0; 65_536],
            datagram: Vec::with_capacity(2048),
            gso: Vec::with_capacity(GSO_MAX_BYTES + 2048),
            gso_enabled: true,
            socket_buffer,
            stats: FleetStats::default(),
            handshake_timeout: Duration::from_secs(30),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.devices.len()
    }

    pub(crate) fn address(&self, device: usize) -> Option<Ipv4Addr> {
        self.devices.get(device).and_then(|d| d.address)
    }

    pub(crate) fn stage(&self, device: usize) -> Option<Stage> {
        self.devices.get(device).map(|d| d.stage)
    }

    /// The tunnel MTU the gateway gave device `i`.
    pub(crate) fn mtu(&self, device: usize) -> u16 {
        self.devices.get(device).map_or(0, |d| d.mtu)
    }

    /// Starts one more device; its index is the previous `len()`.
    pub(crate) fn start(&mut self, config: DeviceConfig, now: Instant) -> std::io::Result<usize> {
        let index = self.devices.len();
        let session = DeviceSession::new(config).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut tcp = TcpStream::connect(self.gateway)?;
        self.poll.registry().register(&mut tcp, Token(2 * index), Interest::READABLE | Interest::WRITABLE)?;
        let mut d = Device {
            session,
            tcp,
            udp: None,
            tx: Vec::new(),
            started: now,
            stage: Stage::Handshaking,
            address: None,
            mtu: 0,
            scheduled: None,
            dirty: false,
        };
        d.session.poll_tls(&mut d.tx);
        self.devices.push(d);
        self.reschedule(index);
        Ok(index)
    }

    /// Sends one IP packet through device `i`'s tunnel.
    pub(crate) fn send(&mut self, device: usize, now: Instant, packet: &[u8]) -> bool {
        let Some(d) = self.devices.get_mut(device) else { return false };
        if d.stage != Stage::Up || d.session.send_packet(now, packet).is_err() {
            return false;
        }
        Self::flush(d, &mut self.datagram, &mut self.stats).is_ok()
    }

    /// Sends `count` IP packets through device `i`'s tunnel, each built by
    /// `make` into the buffer it is given; equal-sized datagrams leave in
    /// GSO batches. Returns how many packets the session took and whether
    /// the socket buffer was full (the caller should let the kernel drain).
    pub(crate) fn send_burst(
        &mut self,
        device: usize,
        now: Instant,
        count: usize,
        packet: &mut Vec<u8>,
        mut make: impl FnMut(&mut Vec<u8>),
    ) -> (usize, bool) {
        let Some(d) = self.devices.get_mut(device) else { return (0, false) };
        let Some(udp) = d.udp.as_ref().filter(|_| d.stage == Stage::Up) else { return (0, false) };
        let blocked_before = self.stats.datagrams_blocked;
        let mut taken = 0;
        let mut segment = 0;
        self.gso.clear();
        for _ in 0..count {
            make(packet);
            if d.session.send_packet(now, packet).is_err() {
                continue;
            }
            taken += 1;
            while d.session.poll_datagram(&mut self.datagram) {
                let n = self.datagram.len();
                let full = self.gso.len() / segment.max(1) >= GSO_MAX_SEGMENTS || self.gso.len() + n > GSO_MAX_BYTES;
                if !self.gso.is_empty() && (n != segment || full) {
                    Self::send_gso(udp, &mut self.gso, segment, &mut self.gso_enabled, &mut self.stats);
                }
                if self.gso.is_empty() {
                    segment = n;
                }
                self.gso.extend_from_slice(&self.datagram);
            }
        }
        Self::send_gso(udp, &mut self.gso, segment, &mut self.gso_enabled, &mut self.stats);
        // Anything the session sent over CSTP instead (DTLS down) goes now.
        let _ = Self::flush(d, &mut self.datagram, &mut self.stats);
        (taken, self.stats.datagrams_blocked > blocked_before)
    }

    /// Sends and clears `gso`: one `UDP_SEGMENT` send, or one send per
    /// datagram where the kernel refused GSO.
    fn send_gso(udp: &UdpSocket, gso: &mut Vec<u8>, segment: usize, enabled: &mut bool, stats: &mut FleetStats) {
        if gso.is_empty() || segment == 0 {
            gso.clear();
            return;
        }
        let datagrams = gso.len().div_ceil(segment) as u64;
        if *enabled {
            match sockets::send_segments(udp, gso, segment) {
                Ok(_) => {
                    stats.send_calls += 1;
                    stats.datagrams_out += datagrams;
                    gso.clear();
                    return;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    stats.datagrams_blocked += datagrams;
                    gso.clear();
                    return;
                }
                // ECONNREFUSED from an earlier ICMP error: the datagrams are lost, as on a network.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    gso.clear();
                    return;
                }
                // EINVAL/EIO/ENOPROTOOPT: no GSO here; fall back for good.
                Err(_) => *enabled = false,
            }
        }
        for chunk in gso.chunks(segment) {
            match udp.send(chunk) {
                Ok(_) => stats.datagrams_out += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => stats.datagrams_blocked += 1,
                Err(_) => {}
            }
            stats.send_calls += 1;
        }
        gso.clear();
    }

    /// Logs every device out and writes what that produces, best effort.
    pub(crate) fn disconnect_all(&mut self, now: Instant) {
        for d in &mut self.devices {
            if d.stage != Stage::Failed {
                d.session.disconnect(now);
                let _ = Self::flush(d, &mut self.datagram, &mut self.stats);
            }
        }
    }

    /// Polls once (at most until `deadline`), feeds what arrived to the
    /// sessions, fires due timers and reports what happened.
    pub(crate) fn turn(&mut self, deadline: Instant, out: &mut Vec<Happening>) -> std::io::Result<()> {
        let now = Instant::now();
        let wake = self.timers.peek().map_or(deadline, |Reverse((at, _))| deadline.min(*at));
        match self.poll.poll(&mut self.events, Some(wake.saturating_duration_since(now))) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        for event in &self.events {
            let Token(t) = event.token();
            let index = t / 2;
            let Some(d) = self.devices.get_mut(index) else { continue };
            if d.stage == Stage::Failed {
                continue;
            }
            let result = if t % 2 == 0 {
                Self::read_tcp(d, &mut self.buf, now)
            } else {
                Self::read_udp(d, &mut self.buf, now, &mut self.stats)
            };
            if let Err(why) = result {
                Self::fail(d, index, why, out);
            } else if !d.dirty {
                d.dirty = true;
                self.dirty.push(index);
            }
        }
        while let Some(&Reverse((at, index))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(d) = self.devices.get_mut(index) else { continue };
            if d.scheduled != Some(at) || d.stage == Stage::Failed {
                continue;
            }
            d.scheduled = None;
            if d.stage == Stage::Handshaking && now.duration_since(d.started) >= self.handshake_timeout {
                let (phase, udp) = (d.session.phase(), d.udp.is_some());
                let why = format!("no DTLS within {:?} (phase {phase:?}, DTLS socket {udp})", self.handshake_timeout);
                Self::fail(d, index, why, out);
                continue;
            }
            d.session.handle_timeout(now);
            if !d.dirty {
                d.dirty = true;
                self.dirty.push(index);
            }
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        for index in dirty.drain(..) {
            let Some(d) = self.devices.get_mut(index) else { continue };
            d.dirty = false;
            if d.stage == Stage::Failed {
                continue;
            }
            if let Err(why) = self.pump(index, now, out) {
                if let Some(d) = self.devices.get_mut(index) {
                    Self::fail(d, index, why, out);
                }
            }
            self.reschedule(index);
        }
        self.dirty = dirty;
        Ok(())
    }

    /// Puts device `i`'s next deadline in the heap unless an entry at or
    /// before it is there already (an early entry pops as a harmless
    /// `handle_timeout` and reschedules).
    fn reschedule(&mut self, index: usize) {
        let timeout = self.handshake_timeout;
        let Some(d) = self.devices.get_mut(index) else { return };
        if d.stage == Stage::Failed {
            return;
        }
        let handshake = (d.stage == Stage::Handshaking).then(|| d.started + timeout);
        let Some(next) = [d.session.poll_timeout(), handshake].into_iter().flatten().min() else { return };
        if d.scheduled.is_some_and(|s| s <= next) {
            return;
        }
        d.scheduled = Some(next);
        self.timers.push(Reverse((next, index)));
    }

    fn fail(d: &mut Device, device: usize, why: String, out: &mut Vec<Happening>) {
        d.stage = Stage::Failed;
        d.scheduled = None;
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

    fn read_udp(d: &mut Device, buf: &mut [u8], now: Instant, stats: &mut FleetStats) -> Result<(), String> {
        let Some(udp) = &d.udp else { return Ok(()) };
        loop {
            match udp.recv(buf) {
                Ok(n) => {
                    stats.datagrams_in += 1;
                    d.session.handle_datagram(now, buf.get(..n).unwrap_or_default());
                }
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
                Event::TunnelUp { address, dtls_port, mtu, .. } => {
                    d.address = Some(address);
                    d.mtu = mtu;
                    let port = dtls_port.ok_or("the gateway offered no DTLS")?;
                    let bind: SocketAddr = (Ipv4Addr::UNSPECIFIED, 0).into();
                    let mut udp = UdpSocket::bind(bind).map_err(|e| format!("UDP bind: {e}"))?;
                    udp.connect(SocketAddr::new(gateway.ip(), port)).map_err(|e| format!("UDP connect: {e}"))?;
                    if self.socket_buffer > 0 {
                        sockets::socket_buffers(&udp, self.socket_buffer);
                    }
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
                Event::Packet(packet) => out.push(Happening::Packet { device: index, packet, at: now }),
                Event::AuthFailed(m) => return Err(format!("auth failed: {m}")),
                Event::Disconnected(r) => return Err(format!("disconnected: {r:?}")),
                Event::LoggedIn | Event::DtlsDown | Event::DpdResponse(_) => {}
            }
        }
        Self::flush(d, &mut self.datagram, &mut self.stats)
    }

    fn flush(d: &mut Device, datagram: &mut Vec<u8>, stats: &mut FleetStats) -> Result<(), String> {
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
                stats.send_calls += 1;
                match udp.send(datagram) {
                    Ok(_) => stats.datagrams_out += 1,
                    // A full socket buffer or an ICMP error drops the datagram,
                    // as the network would; DTLS retransmits handshakes.
                    Err(e) if e.kind() == ErrorKind::WouldBlock => stats.datagrams_blocked += 1,
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(format!("UDP send: {e}")),
                }
            }
        }
        Ok(())
    }
}
