//! Real sockets, eventfds and TUN queues: run as root in a private
//! network namespace (`unshare --net` with `lo` up), as CI does.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use super::*;
use crate::io::{SubmitError, TxBuf};
use crate::sys::{configure_interface, open_tun_queue, set_gro, EventFd, RawSockAddr};

const PATIENCE: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(20);
const TUN_HEADROOM: usize = 40;

/// An engine over a loopback UDP socket, a doorbell and a TUN queue (or,
/// for tests that need none, an eventfd nobody rings in its place).
struct Rig {
    engine: ReadinessEngine,
    socket: UdpSocket,
    peer: UdpSocket,
    bell: EventFd,
    _tun: Option<OwnedFd>,
    _no_tun: EventFd,
}

impl Rig {
    fn new(tun: Option<(&str, Ipv4Addr)>, tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("non-blocking");
        let peer = UdpSocket::bind("127.0.0.1:0").expect("bind peer");
        peer.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let bell = EventFd::new().expect("eventfd");
        let no_tun = EventFd::new().expect("eventfd");
        let tun = tun.map(|(name, addr)| {
            let q = open_tun_queue(name, false).expect("TUN queue (root, /dev/net/tun)");
            configure_interface(name, addr, 24, 1400).expect("configure TUN");
            q
        });
        let mut cfg = EngineConfig {
            entries: 64,
            udp_fd: socket.as_raw_fd(),
            tun_fd: tun.as_ref().map_or(no_tun.as_raw_fd(), AsRawFd::as_raw_fd),
            wake_fd: bell.as_raw_fd(),
            udp_buffers: 8,
            tun_buffers: 8,
            udp_payload: 2048,
            tun_headroom: TUN_HEADROOM,
            tun_packet: 1500,
            tun_tailroom: 16,
            transmits: 32,
            batch_wait: std::time::Duration::ZERO,
        };
        tweak(&mut cfg);
        let engine = ReadinessEngine::new(&cfg).expect("engine");
        Self { engine, socket, peer, bell, _tun: tun, _no_tun: no_tun }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("addr")
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer.local_addr().expect("peer addr")
    }

    /// Turns the engine until `on` (handed each completion while its
    /// batch lasts) says it has seen enough.
    fn drive(&mut self, mut on: impl FnMut(&mut ReadinessEngine, Completion) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        let mut out = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "timed out");
            self.engine.wait(TICK, &mut out).expect("wait");
            let mut done = false;
            for c in out.drain(..) {
                done |= on(&mut self.engine, c);
            }
            if done {
                return;
            }
        }
    }
}

fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = socket.recv_from(&mut buf).expect("datagram");
    (buf[..n].to_vec(), from)
}

#[test]
fn datagrams_arrive_with_their_peer_and_payload() {
    let mut rig = Rig::new(None, |_| {});
    let sent: [&[u8]; 3] = [b"one", b"two!", b"three"];
    for d in sent {
        rig.peer.send_to(d, rig.addr()).expect("send");
    }
    let peer = rig.peer_addr();
    let mut got = Vec::new();
    rig.drive(|engine, c| {
        if let Completion::Datagram { bid, peer: from, payload, truncated, segment } = c {
            assert_eq!(from, Some(peer));
            assert!(!truncated);
            assert_eq!(segment, None);
            assert_eq!(payload.start, UDP_PAYLOAD_AT);
            got.push(engine.udp_slot(bid).expect("held")[payload].to_vec());
        }
        got.len() == sent.len()
    });
    assert_eq!(got, sent.map(<[u8]>::to_vec));
}

#[test]
fn a_datagram_longer_than_its_slot_is_marked_truncated() {
    // Slot: round_up_64(64 + 100) = 192 bytes, 128 of them for the payload.
    let mut rig = Rig::new(None, |c| c.udp_payload = 100);
    let long: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
    rig.peer.send_to(&long, rig.addr()).expect("send");
    rig.drive(|engine, c| match c {
        Completion::Datagram { bid, payload, truncated, .. } => {
            assert!(truncated);
            assert_eq!(payload.len(), 128);
            assert_eq!(engine.udp_slot(bid).expect("held")[payload], long[..128]);
            true
        }
        _ => false,
    });
}

#[test]
fn sends_plain_and_gso_and_hands_owned_buffers_back() {
    let mut rig = Rig::new(None, |_| {});
    let to = RawSockAddr::new(rig.peer_addr());
    let hello = b"hello".to_vec();
    let train: Vec<u8> = [[b'a'; 100], [b'b'; 100], [b'c'; 100]].concat();
    rig.engine.send_to(TxBuf::Owned(hello.clone()), 0..5, &to, None).expect("queue plain");
    rig.engine.send_to(TxBuf::Owned(train.clone()), 0..300, &to, Some(100)).expect("queue GSO");
    let mut sent = Vec::new();
    rig.drive(|_, c| {
        if let Completion::Sent { result, datagrams, owned } = c {
            sent.push((result.expect("sent"), datagrams, owned));
        }
        sent.len() == 2
    });
    assert_eq!(sent, vec![(5, 1, Some(hello)), (300, 3, Some(train))]);

    let from = rig.addr();
    assert_eq!(recv(&rig.peer), (b"hello".to_vec(), from));
    for fill in [b'a', b'b', b'c'] {
        assert_eq!(recv(&rig.peer), (vec![fill; 100], from), "one datagram per GSO segment");
    }
}

#[test]
fn a_reply_is_sent_from_the_slot_it_was_received_in() {
    let mut rig = Rig::new(None, |_| {});
    rig.peer.send_to(b"ping", rig.addr()).expect("send");
    let mut replied = false;
    rig.drive(|engine, c| match c {
        Completion::Datagram { bid, peer, payload, .. } => {
            let slot = engine.udp_slot(bid).expect("held");
            slot[payload.clone()].copy_from_slice(b"PONG");
            let to = RawSockAddr::new(peer.expect("peer"));
            engine.send_to(TxBuf::Udp(bid), payload, &to, None).expect("queue reply");
            replied = true;
            false
        }
        Completion::Sent { result, datagrams, owned } => {
            assert!(replied);
            assert_eq!((result.expect("sent"), datagrams, owned), (4, 1, None));
            true
        }
        _ => false,
    });
    assert_eq!(recv(&rig.peer).0, b"PONG");
    // Its batch is over and its send is done: no longer the shard's.
    assert!((0..8).all(|bid| rig.engine.udp_slot(bid).is_none()));
}

#[test]
fn slots_are_reused_across_batches() {
    let mut rig = Rig::new(None, |c| c.udp_buffers = 8);
    let total = 80u16;
    for i in 0..total {
        rig.peer.send_to(&i.to_be_bytes(), rig.addr()).expect("send");
    }
    let mut seen = vec![false; usize::from(total)];
    let mut batches = 0;
    let deadline = Instant::now() + PATIENCE;
    let mut out = Vec::new();
    while seen.iter().any(|s| !s) {
        assert!(Instant::now() < deadline, "only {} of {total} arrived", seen.iter().filter(|s| **s).count());
        rig.engine.wait(TICK, &mut out).expect("wait");
        let mut in_batch = 0;
        for c in out.drain(..) {
            if let Completion::Datagram { bid, payload, .. } = c {
                assert!(bid < 8);
                let b = &rig.engine.udp_slot(bid).expect("held")[payload];
                let i = u16::from_be_bytes([b[0], b[1]]);
                assert!(!seen[usize::from(i)], "datagram {i} twice");
                seen[usize::from(i)] = true;
                in_batch += 1;
            }
        }
        assert!(in_batch <= 8, "more datagrams than slots in one batch");
        batches += usize::from(in_batch > 0);
    }
    assert!(batches >= 10, "80 datagrams through 8 slots took {batches} batches");
}

#[test]
fn gro_receives_report_their_segment_size() {
    let mut rig = Rig::new(None, |_| {});
    if !set_gro(&rig.socket, true) {
        return; // A kernel before 5.0: nothing to check.
    }
    // GSO to itself over lo arrives coalesced (platform-facts §3).
    let to = RawSockAddr::new(rig.addr());
    let train: Vec<u8> = [[1u8; 100], [2u8; 100], [3u8; 100]].concat();
    rig.engine.send_to(TxBuf::Owned(train.clone()), 0..300, &to, Some(100)).expect("queue");
    rig.drive(|engine, c| match c {
        Completion::Datagram { bid, payload, segment, .. } => {
            assert_eq!(segment, Some(100));
            assert_eq!(engine.udp_slot(bid).expect("held")[payload], train);
            true
        }
        _ => false,
    });
}

#[test]
fn the_doorbell_wakes_once_and_is_reset() {
    let mut rig = Rig::new(None, |_| {});
    rig.bell.notify();
    rig.bell.notify();
    rig.drive(|_, c| matches!(c, Completion::Wake));
    let mut out = Vec::new();
    let start = Instant::now();
    rig.engine.wait(Duration::from_millis(50), &mut out).expect("wait");
    assert!(out.is_empty(), "the engine read the eventfd, so it is quiet: {out:?}");
    assert!(start.elapsed() >= Duration::from_millis(45), "an idle wait sleeps out its timeout");
    rig.bell.notify();
    rig.drive(|_, c| matches!(c, Completion::Wake));
}

#[test]
fn bad_buffers_and_a_full_queue_are_refused() {
    let mut rig = Rig::new(None, |_| {});
    let to = RawSockAddr::new(rig.peer_addr());
    assert_eq!(rig.engine.send_to(TxBuf::Udp(3), 0..4, &to, None), Err(SubmitError::BadBuffer));
    assert_eq!(rig.engine.write_tun(TxBuf::Tun(9), 0..4), Err(SubmitError::BadBuffer));
    assert_eq!(rig.engine.send_to(TxBuf::Owned(vec![0; 4]), 2..5, &to, None), Err(SubmitError::BadBuffer));

    rig.peer.send_to(b"x", rig.addr()).expect("send");
    rig.drive(|engine, c| match c {
        Completion::Datagram { bid, .. } => {
            let whole = engine.udp_slot(bid).expect("held").len();
            assert_eq!(engine.send_to(TxBuf::Udp(bid), 0..whole + 1, &to, None), Err(SubmitError::BadBuffer));
            true
        }
        _ => false,
    });

    // 32 + 256 transmits fit, as in the io_uring op table.
    let capacity = 288;
    for i in 0..capacity {
        assert_eq!(rig.engine.send_to(TxBuf::Owned(vec![1]), 0..1, &to, None), Ok(()), "transmit {i}");
    }
    assert_eq!(rig.engine.write_tun(TxBuf::Owned(vec![1]), 0..1), Err(SubmitError::OpTableFull));
    let mut back = 0;
    rig.drive(|_, c| {
        if let Completion::Sent { result, owned, .. } = c {
            assert_eq!(result.expect("sent"), 1);
            assert_eq!(owned, Some(vec![1]));
            back += 1;
        }
        back == capacity
    });
}

/// The UDP payload of an IPv4 packet, with its ports.
fn udp_of(packet: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, &[u8])> {
    let ip = proto::ip::Ipv4Packet::new_checked(packet).ok()?;
    let (sport, dport, payload) = ip.udp()?;
    Some((SocketAddrV4::new(ip.src(), sport), SocketAddrV4::new(ip.dst(), dport), payload))
}

#[test]
fn a_packet_routed_into_the_tun_arrives_and_is_echoed_from_its_slot() {
    let mut rig = Rig::new(Some(("crd-rdy0", Ipv4Addr::new(10, 214, 0, 1))), |_| {});
    let app = UdpSocket::bind("10.214.0.1:0").expect("bind on the TUN address");
    app.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let far = SocketAddrV4::new(Ipv4Addr::new(10, 214, 0, 2), 7000);
    app.send_to(b"through the tun", far).expect("send into the TUN");

    let mut echoed = None;
    rig.drive(|engine, c| match c {
        Completion::TunPacket { bid, len } => {
            let slot = engine.tun_slot(bid).expect("held");
            let packet = &mut slot[TUN_HEADROOM..TUN_HEADROOM + len];
            let Some((_, dst, payload)) = udp_of(packet) else { return false };
            if dst != far || payload != b"through the tun" {
                return false;
            }
            // Swap addresses and ports: both checksums stay valid.
            let (src_ip, dst_ip) = (packet[12..16].to_vec(), packet[16..20].to_vec());
            packet[12..16].copy_from_slice(&dst_ip);
            packet[16..20].copy_from_slice(&src_ip);
            let (sport, dport) = (packet[20..22].to_vec(), packet[22..24].to_vec());
            packet[20..22].copy_from_slice(&dport);
            packet[22..24].copy_from_slice(&sport);
            engine.write_tun(TxBuf::Tun(bid), TUN_HEADROOM..TUN_HEADROOM + len).expect("queue echo");
            echoed = Some(len);
            false
        }
        Completion::TunWritten { result, owned } => {
            assert_eq!(result.ok(), echoed);
            assert_eq!(owned, None);
            true
        }
        _ => false,
    });
    assert_eq!(recv(&app), (b"through the tun".to_vec(), SocketAddr::V4(far)));
}

#[test]
fn a_packet_written_to_the_tun_reaches_a_socket_on_its_address() {
    let mut rig = Rig::new(Some(("crd-rdy1", Ipv4Addr::new(10, 214, 1, 1))), |_| {});
    let app = UdpSocket::bind("10.214.1.1:0").expect("bind on the TUN address");
    app.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let SocketAddr::V4(app_addr) = app.local_addr().expect("addr") else { panic!("IPv4") };
    let far = SocketAddrV4::new(Ipv4Addr::new(10, 214, 1, 2), 5555);
    let mut packet = Vec::new();
    proto::ip::emit_ipv4_udp(far, app_addr, b"from the tunnel", &mut packet);
    let len = packet.len();
    rig.engine.write_tun(TxBuf::Owned(packet.clone()), 0..len).expect("queue");
    rig.drive(|_, c| match c {
        Completion::TunWritten { result, owned } => {
            assert_eq!(result.expect("written"), len);
            assert_eq!(owned.as_deref(), Some(&packet[..]));
            true
        }
        _ => false,
    });
    assert_eq!(recv(&app), (b"from the tunnel".to_vec(), SocketAddr::V4(far)));
}
