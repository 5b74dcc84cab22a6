//! A test harness that plays the device and the organisation's server
//! around a real data plane: a UDP socket on 127.0.0.1 holding the mirror
//! of the session's record keys, and a UDP socket on the TUN address.
//!
//! Needs root (TUN creation) and is meant for a private network namespace:
//! `unshare --net -- bash -c 'ip link set lo up && cargo test -p corridor-dataplane'`.

// Each test binary uses only part of the helpers, and `pub` items of a
// private test module are unreachable by construction. Test packets are
// built by the test itself, so indexing them is checked by the test.
#![allow(dead_code, unreachable_pub, clippy::indexing_slicing)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dataplane::handshake::Authorization;
use dataplane::{Dataplane, DataplaneConfig, FromShard, IoBackend, ShardCounters, ShardId, ToShard};
use dtls::keys::DirectionKeys;
use dtls::replay::ReplayWindow;
use dtls::{CipherSuite, ContentType, RecordProtection, Role, SessionKeys};
use proto::grant::{Policy, SessionId};
use proto::ip::Ipv4Net;

pub const TYPE_DATA: u8 = 0x00;
pub const TYPE_DPD_REQ: u8 = 0x03;
pub const TYPE_DPD_RESP: u8 = 0x04;
pub const TYPE_DISCONNECT: u8 = 0x05;
pub const TYPE_KEEPALIVE: u8 = 0x07;

/// The I/O engine the tests ask for: `CORRIDOR_IO=readiness` (or
/// `io_uring`) runs the whole suite on that engine — `scripts/test.sh`
/// runs it once more on the readiness engine — and anything else `auto`.
pub fn io_from_env() -> IoBackend {
    match std::env::var("CORRIDOR_IO").as_deref() {
        Ok("readiness") => IoBackend::Readiness,
        Ok("io_uring") => IoBackend::IoUring,
        _ => IoBackend::Auto,
    }
}

/// Upper bound for every wait in these tests.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Polls `f` until it yields a value, failing the test after [`PATIENCE`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One session's record keys, as the gateway and as the device.
pub fn mirrored_keys(suite: CipherSuite) -> (SessionKeys, SessionKeys) {
    let key_len = if suite == CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256 { 16 } else { 32 };
    let iv_len = if suite == CipherSuite::TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 { 12 } else { 4 };
    let c2s = DirectionKeys::new(&vec![0x11; key_len], &vec![0x22; iv_len]).expect("keys");
    let s2c = DirectionKeys::new(&vec![0x33; key_len], &vec![0x44; iv_len]).expect("keys");
    let keys = |role, write: &DirectionKeys, read: &DirectionKeys| SessionKeys {
        suite,
        role,
        epoch: 1,
        write: write.clone(),
        read: read.clone(),
        next_send_seq: 1,
        replay: ReplayWindow::new(64),
    };
    (keys(Role::Server, &s2c, &c2s), keys(Role::Client, &c2s, &s2c))
}

/// An IPv4/UDP packet (UDP checksum 0: none, allowed over IPv4).
pub fn ipv4_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else { panic!("IPv4 only") };
    let mut p = Vec::new();
    proto::ip::emit_ipv4_udp(src, dst, payload, &mut p);
    p
}

/// Splits an IPv4/UDP packet into (source, destination, payload).
pub fn parse_ipv4_udp(p: &[u8]) -> (SocketAddr, SocketAddr, Vec<u8>) {
    assert_eq!(p[0] >> 4, 4, "IPv4");
    assert_eq!(p[9], 17, "UDP");
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let ip = |at: usize| Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]);
    let port = |at: usize| u16::from_be_bytes([p[at], p[at + 1]]);
    let src = SocketAddr::from((ip(12), port(ihl)));
    let dst = SocketAddr::from((ip(16), port(ihl + 2)));
    (src, dst, p[ihl + 8..total].to_vec())
}

/// A record of `content_type` carrying `payload`, sealed with `keys`.
pub fn seal_record(keys: &mut RecordProtection, content_type: ContentType, payload: &[u8]) -> Vec<u8> {
    let head = keys.headroom();
    let mut buf = vec![0u8; head + payload.len() + keys.tailroom()];
    buf[head..head + payload.len()].copy_from_slice(payload);
    let n = keys.seal_in_place(content_type, &mut buf, payload.len()).expect("seal");
    buf.truncate(n);
    buf
}

/// One OpenConnect DTLS message: type byte then payload.
pub fn seal_message(keys: &mut RecordProtection, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(payload);
    seal_record(keys, ContentType::APPLICATION_DATA, &m)
}

/// A pool subnet 10.77.`net`.0/24 with the gateway on .1 and a device on .10.
#[derive(Debug, Clone, Copy)]
pub struct Addressing {
    pub net: u8,
}

impl Addressing {
    pub fn host(self, h: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.net, h)
    }
    pub fn pool(self) -> Ipv4Net {
        Ipv4Net::new(self.host(0), 24).expect("net")
    }
    pub fn gateway(self) -> Ipv4Addr {
        self.host(1)
    }
    pub fn device(self) -> Ipv4Addr {
        self.host(10)
    }
    pub fn device_session(self) -> SessionId {
        SessionId(10)
    }
}

pub struct Harness {
    pub dp: Dataplane,
    pub addr: Addressing,
    /// The device's UDP socket (the DTLS peer).
    pub device: UdpSocket,
    /// The gateway's UDP address.
    pub gateway_udp: SocketAddr,
    /// A server in the organisation's network, bound on the TUN address.
    pub server: UdpSocket,
    /// The device's half of the session's record keys (after `grant_device`).
    pub client: Option<RecordProtection>,
    pub shard: Option<ShardId>,
    /// Datagrams the device's handshake sent and received (the shard
    /// counts them among `rx_datagrams` and `tx_datagrams`).
    pub handshake_sent: u64,
    pub handshake_received: u64,
    events: Vec<FromShard>,
}

impl Harness {
    /// A data plane with offloads on (as the gateway runs by default).
    pub fn start(tun_name: &str, net: u8, shards: usize) -> Harness {
        Self::start_with(tun_name, net, shards, true)
    }

    pub fn start_with(tun_name: &str, net: u8, shards: usize, offloads: bool) -> Harness {
        Self::start_io(tun_name, net, shards, offloads, io_from_env())
    }

    pub fn start_io(tun_name: &str, net: u8, shards: usize, offloads: bool, io: IoBackend) -> Harness {
        Self::start_steered(tun_name, net, shards, offloads, io, true)
    }

    pub fn start_steered(
        tun_name: &str,
        net: u8,
        shards: usize,
        offloads: bool,
        io: IoBackend,
        steering: bool,
    ) -> Harness {
        let addr = Addressing { net };
        let dp = Dataplane::start(DataplaneConfig {
            shards,
            udp_listen: "127.0.0.1:0".parse().expect("addr"),
            tun_name: tun_name.to_owned(),
            tun_address: Ipv4Net::new(addr.gateway(), 24).expect("net"),
            tun_mtu: 1400,
            pool: addr.pool(),
            pin_cores: shards > 1,
            ring_entries: 64,
            offloads,
            io,
            steering,
            batch_wait: std::time::Duration::from_micros(50),
        })
        .expect("start the data plane (needs root, in a private network namespace)");
        assert_eq!(dp.shard_count(), shards);
        let gateway_udp = dp.udp_local_addr();
        let device = UdpSocket::bind("127.0.0.1:0").expect("device socket");
        device.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let server = UdpSocket::bind((addr.gateway(), 0)).expect("server socket on the TUN address");
        server.set_read_timeout(Some(PATIENCE)).expect("timeout");
        Harness {
            dp,
            addr,
            device,
            gateway_udp,
            server,
            client: None,
            shard: None,
            handshake_sent: 0,
            handshake_received: 0,
            events: Vec::new(),
        }
    }

    /// Waits for the first queued event `pick` accepts and returns what it extracted.
    pub fn expect_event<T>(&mut self, what: &str, mut pick: impl FnMut(&FromShard) -> Option<T>) -> T {
        let mut fresh = Vec::new();
        wait_for(what, || {
            self.dp.ack_events();
            self.dp.drain_events(&mut fresh);
            self.events.append(&mut fresh);
            let at = self.events.iter().position(|e| pick(e).is_some())?;
            pick(&self.events.remove(at))
        })
    }

    /// Counters summed over shards, polled until `ok` holds.
    pub fn expect_counters(&self, what: &str, ok: impl Fn(&ShardCounters) -> bool) -> ShardCounters {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let total = self.totals();
            if ok(&total) {
                return total;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; counters: {total:#?}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn totals(&self) -> ShardCounters {
        self.dp.counters().iter().fold(ShardCounters::default(), |a, c| a.merged(c))
    }

    /// Authorises the device's session on every shard, as control does at
    /// CONNECT, and runs a real PSK-NEGOTIATE handshake from the device's
    /// socket: whichever shard its datagrams reach completes it and installs
    /// the session. The device keeps its half of the record keys.
    pub fn grant_device(&mut self, suite: CipherSuite) {
        self.grant_device_with(suite, Policy::allowing(vec![self.addr.pool()]));
    }

    /// [`grant_device`](Self::grant_device) with the session's `policy`.
    pub fn grant_device_with(&mut self, suite: CipherSuite, policy: Policy) {
        let (app_id, psk) = ([0x42u8; 32], [0x17u8; 32]);
        let session = self.addr.device_session();
        let authorization = Authorization {
            session,
            app_id: app_id.to_vec(),
            psk: dtls::Psk::new(psk.to_vec()),
            address: self.addr.device(),
            policy,
            mtu: 1400,
        };
        for i in 0..self.dp.shard_count() {
            let shard = ShardId(u16::try_from(i).expect("shard index"));
            self.dp.send(shard, ToShard::Authorize(Box::new(authorization.clone()))).expect("queue");
        }
        let mut config = dtls::ClientConfig::new(b"psk", &psk);
        config.session_id = app_id.to_vec();
        config.common.suites = vec![suite];
        let mut client = dtls::Connection::client(std::sync::Arc::new(config), Instant::now()).expect("DTLS client");
        let device_addr = self.device.local_addr().expect("addr");
        self.device.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
        let (mut out, mut buf) = (Vec::new(), vec![0u8; 2048]);
        let deadline = Instant::now() + PATIENCE;
        let keys = loop {
            assert!(Instant::now() < deadline, "the device's DTLS handshake did not complete");
            while client.poll_transmit(&mut out) {
                self.device.send_to(&out, self.gateway_udp).expect("send");
                self.handshake_sent += 1;
            }
            if let Ok((n, _)) = self.device.recv_from(&mut buf) {
                self.handshake_received += 1;
                client.handle_datagram(Instant::now(), &buf[..n]);
            } else if client.poll_timeout().is_some_and(|t| t <= Instant::now()) {
                client.handle_timeout(Instant::now());
            }
            if std::iter::from_fn(|| client.poll_event()).any(|e| matches!(e, dtls::Event::Connected(_))) {
                break client.export_session().expect("the device's keys");
            }
        };
        self.device.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let shard = self.expect_event("the session established on a shard", |e| match e {
            FromShard::Established { shard, session: s, peer, suite: got } if *peer == device_addr && *s == session => {
                assert_eq!(*got, suite);
                Some(*shard)
            }
            _ => None,
        });
        assert_eq!(self.dp.owner_of(session), Some(shard), "installed before the device heard it was done");
        let (sent, received) = (self.handshake_sent, self.handshake_received);
        self.expect_counters("the handshake's datagrams counted", |c| {
            c.rx_datagrams >= sent && c.tx_datagrams >= received
        });
        self.client = Some(RecordProtection::new(keys).expect("device keys"));
        self.shard = Some(shard);
    }

    pub fn client(&mut self) -> &mut RecordProtection {
        self.client.as_mut().expect("grant_device first")
    }

    /// Seals one OpenConnect message as the device and sends it.
    pub fn device_send(&mut self, kind: u8, payload: &[u8]) -> Vec<u8> {
        let record = seal_message(self.client(), kind, payload);
        self.device.send_to(&record, self.gateway_udp).expect("send");
        record
    }

    /// Receives one datagram on the device and opens its (single) record.
    pub fn device_recv(&mut self) -> (u8, Vec<u8>) {
        let mut buf = vec![0u8; 4096];
        let (n, from) = self.device.recv_from(&mut buf).expect("a datagram for the device");
        assert_eq!(from, self.gateway_udp, "records come from the gateway's port");
        buf.truncate(n);
        let opened = self.client().open_in_place(&mut buf).expect("the record opens with the device keys");
        assert_eq!(opened.content_type, ContentType::APPLICATION_DATA);
        assert_eq!(opened.record_len, n, "one record per datagram");
        let p = opened.payload();
        (p[0], p[1..].to_vec())
    }

    /// Receives one datagram on the server.
    pub fn server_recv(&self) -> (SocketAddr, Vec<u8>) {
        let mut buf = vec![0u8; 4096];
        let (n, from) = self.server.recv_from(&mut buf).expect("a datagram for the server");
        buf.truncate(n);
        (from, buf)
    }
}
