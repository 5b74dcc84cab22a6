//! A simulated network for the control core, after quinn-proto's `Pair`:
//! real [`device::DeviceSession`]s against real [`control::core::Core`]s in
//! one process, with virtual time. Between them sit in-memory TCP (each
//! gateway-side connection is a rustls `ServerConnection` fed byte for
//! byte), in-memory UDP, and for each gateway an [`InMemoryDataplane`]
//! whose "shard" runs the shards' own code: DTLS handshakes against
//! control's authorisations ([`dataplane::handshake`]) and records opened
//! and answered by the fast path ([`dataplane::fastpath`]). No root, no
//! TUN, no sockets, no clock.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use control::core::{CheckId, ConnId, Core, Effect, SessionEnd, Verdict};
use control::passwd::{Entry, PasswordFile};
use control::port::InMemoryDataplane;
use control::Config;
use dataplane::fastpath::{self, RecordAction};
use dataplane::handshake::Handshakes;
use dataplane::{FromShard, ShardCounters, ShardId, ToShard};
use device::{DeviceConfig, DeviceSession, Event};
use proto::grant::SessionId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub const HOST: &str = "vpn.test";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery staple";
pub const POOL: &str = "10.200.0.0/24";
/// A network the default group may reach.
pub const ORG: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 7);
/// A destination outside every group's `allowed`.
pub const FORBIDDEN: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
/// Where [`World::add_raw`]'s clients come from.
pub const RAW_SOURCE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The step virtual time moves by while waiting.
pub const STEP: Duration = Duration::from_millis(50);

/// The test PKI: `device/testdata`, or `CORRIDOR_TESTDATA` where the test
/// binaries run away from the source tree (scripts/test.sh runs them as an
/// unprivileged user from a copy).
pub fn testdata(name: &str) -> PathBuf {
    match std::env::var_os("CORRIDOR_TESTDATA") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../device/testdata").join(name),
    }
}

/// A gateway configuration: the test's TOML `extra` goes after `[server]`'s
/// fields (so it may add `[auth]` keys by starting with `[auth]`, etc.).
pub fn config(timers: &str, extra: &str) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:4443"
dtls_port = 4443
cert = "{cert}"
key = "{key}"
max_connections = 8
{extra}
[network]
pool = "{POOL}"
[timers]
{timers}
[[group]]
name = "default"
allowed = ["10.99.0.0/16"]
split_include = ["10.99.0.0/16"]

[[group]]
name = "staff"
allowed = ["10.98.0.0/16"]
split_include = ["10.98.0.0/16"]
"#,
        cert = testdata("server.crt").display(),
        key = testdata("server.key").display(),
    );
    Config::parse(&text).unwrap_or_else(|e| panic!("test configuration: {e}\n{text}"))
}

/// Password logins (the file's path is never read: the harness checks
/// passwords itself, as the verifier threads would).
pub const PASSWORDS: &str = "[auth]\npassword_file = \"passwd\"\nmax_login_attempts = 2\n";
pub const DEFAULT_TIMERS: &str = "dpd = 30\nkeepalive = 20\nidle_timeout = 0\nsession_timeout = 0\ncookie_grace = 60\n";

fn server_tls(client_ca: bool) -> Arc<rustls::ServerConfig> {
    control::tls::server_config(
        &testdata("server.crt"),
        &testdata("server.key"),
        client_ca.then(|| testdata("ca.crt")).as_deref(),
    )
    .expect("server TLS configuration")
}

fn client_tls(certificate: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(testdata("ca.crt")).expect("ca.crt") {
        roots.add(c.expect("ca.crt")).expect("CA certificate");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let tls = if certificate {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(testdata("client.crt")).unwrap().collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(testdata("client.key")).unwrap();
        builder.with_client_auth_cert(chain, key).expect("client certificate")
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(tls)
}

pub fn device_config(user: &str, password: &str) -> DeviceConfig {
    let mut c = DeviceConfig::new(client_tls(false), ServerName::try_from(HOST).unwrap(), HOST, user, password);
    // Reconnect promptly in virtual time.
    c.reconnect_interval = Duration::from_secs(1);
    c
}

pub fn certificate_device_config() -> DeviceConfig {
    DeviceConfig::with_certificate(client_tls(true), ServerName::try_from(HOST).unwrap(), HOST)
}

/// A gateway's end of one TCP connection.
struct ServerEnd {
    tls: rustls::ServerConnection,
    established: bool,
    /// The core asked for it to be closed once drained.
    closing: bool,
    /// The peer that holds the other end: a device index, or a raw client.
    peer: Peer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Device(usize),
    Raw(usize),
}

/// One gateway: its core, its connections, and its in-memory shard.
pub struct Gateway {
    pub core: Core<InMemoryDataplane>,
    tls: Arc<rustls::ServerConfig>,
    pub passwords: PasswordFile,
    conns: HashMap<ConnId, ServerEnd>,
    /// Each shard's handshakes (devices' datagrams all reach shard 0).
    pub handshakes: Vec<Handshakes>,
    /// Grants as the shard holds them, by peer.
    granted: HashMap<SocketAddr, (SessionId, fastpath::DeviceSession)>,
    /// Datagrams the shards sent, oldest first.
    pub outbox: std::collections::VecDeque<(SocketAddr, Vec<u8>)>,
    pub shard_counters: ShardCounters,
    /// Packets written to the TUN (by the shard, or from CSTP), in order.
    pub tun: Vec<(SessionId, Vec<u8>)>,
    pub ended: Vec<SessionEnd>,
    pub refused_flows: Vec<(usize, u64)>,
    /// Cookie revocations the core asked to send to the relays: (tag, expires).
    pub revocations: Vec<(proto::relay::RevocationTag, u64)>,
    /// Every effect's kind, for tests that look at the order.
    pub closes: Vec<(ConnId, &'static str)>,
    /// Answer password checks `Busy` instead of checking them.
    pub verifiers_busy: bool,
    /// Checks asked for and not yet answered (with `hold_checks`).
    pub held_checks: Vec<CheckId>,
    pub hold_checks: bool,
}

pub struct Device {
    pub session: DeviceSession,
    pub gateway: usize,
    pub conn: Option<ConnId>,
    pub tcp_peer: SocketAddr,
    pub udp: SocketAddr,
    pub events: Vec<Event>,
    /// Drop everything the device sends (it went dark).
    pub silent: bool,
    /// Drop the device's UDP both ways (a network that blocks it).
    pub udp_blocked: bool,
}

/// A TLS client that sends whatever bytes a test gives it.
pub struct RawClient {
    pub tls: rustls::ClientConnection,
    pub gateway: usize,
    pub conn: ConnId,
    pub received: Vec<u8>,
    pub closed: bool,
}

pub struct World {
    pub now: Instant,
    pub gateways: Vec<Gateway>,
    pub devices: Vec<Device>,
    pub raws: Vec<RawClient>,
    next_conn: usize,
    next_port: u16,
}

impl World {
    pub fn new(config: Config) -> Self {
        let mut w = Self {
            now: Instant::now(),
            gateways: Vec::new(),
            devices: Vec::new(),
            raws: Vec::new(),
            next_conn: 16,
            next_port: 40_000,
        };
        w.add_gateway(config);
        w
    }

    /// Another gateway (a cluster node); returns its index.
    pub fn add_gateway(&mut self, config: Config) -> usize {
        let tls = server_tls(config.client_ca.is_some());
        let mut passwords = PasswordFile::default();
        passwords.set(Entry::new(USER, PASSWORD, None, 1000).unwrap());
        passwords.set(Entry::new("bob", "bob's password", Some("staff"), 1000).unwrap());
        let core = Core::new(Arc::new(config), InMemoryDataplane::new(2), self.now, 1_800_000_000);
        let handshakes = (0..2).map(|_| Handshakes::new(self.now).expect("handshakes")).collect();
        self.gateways.push(Gateway {
            core,
            tls,
            passwords,
            conns: HashMap::new(),
            handshakes,
            granted: HashMap::new(),
            outbox: std::collections::VecDeque::new(),
            shard_counters: ShardCounters::default(),
            tun: Vec::new(),
            ended: Vec::new(),
            refused_flows: Vec::new(),
            revocations: Vec::new(),
            closes: Vec::new(),
            verifiers_busy: false,
            held_checks: Vec::new(),
            hold_checks: false,
        });
        self.gateways.len() - 1
    }

    fn connect(&mut self, gw: usize, peer: Peer, from: SocketAddr) -> Option<ConnId> {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let g = &mut self.gateways[gw];
        if !g.core.handle_conn_open(id, from, None, self.now) {
            return None;
        }
        let tls = rustls::ServerConnection::new(g.tls.clone()).unwrap();
        g.conns.insert(id, ServerEnd { tls, established: false, closing: false, peer });
        Some(id)
    }

    fn port(&mut self) -> u16 {
        self.next_port += 1;
        self.next_port
    }

    /// A device that starts logging in to gateway `gw`; returns its index.
    pub fn add_device(&mut self, gw: usize, config: DeviceConfig) -> usize {
        let ip = Ipv4Addr::new(192, 0, 2, 10 + self.devices.len() as u8);
        self.add_device_at(gw, config, ip)
    }

    /// As [`add_device`](Self::add_device), from address `ip`.
    pub fn add_device_at(&mut self, gw: usize, config: DeviceConfig, ip: Ipv4Addr) -> usize {
        let i = self.devices.len();
        let tcp_peer = SocketAddr::from((ip, self.port()));
        let udp = SocketAddr::from((ip, self.port()));
        let conn = self.connect(gw, Peer::Device(i), tcp_peer);
        self.devices.push(Device {
            session: DeviceSession::new(config).expect("device session"),
            gateway: gw,
            conn,
            tcp_peer,
            udp,
            events: Vec::new(),
            silent: false,
            udp_blocked: false,
        });
        self.run();
        i
    }

    /// A TLS client to gateway `gw` that the test writes raw plaintext with.
    pub fn add_raw(&mut self, gw: usize) -> usize {
        self.try_add_raw(gw, RAW_SOURCE).expect("connection taken")
    }

    /// A raw client from `ip`; `None` when the gateway refused the connection at accept.
    pub fn try_add_raw(&mut self, gw: usize, ip: Ipv4Addr) -> Option<usize> {
        let i = self.raws.len();
        let from = SocketAddr::from((ip, self.port()));
        let conn = self.connect(gw, Peer::Raw(i), from)?;
        let tls =
            rustls::ClientConnection::new(client_tls(false), ServerName::try_from(HOST).unwrap()).expect("client");
        self.raws.push(RawClient { tls, gateway: gw, conn, received: Vec::new(), closed: false });
        self.run();
        Some(i)
    }

    /// The plaintext raw client `i` has received, as text.
    pub fn raw_text(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.raws[i].received).into_owned()
    }

    pub fn raw_send(&mut self, i: usize, plaintext: &[u8]) {
        self.raws[i].tls.writer().write_all(plaintext).unwrap();
        self.run();
    }

    /// The device's TCP connection breaks (on both sides, as a reset would).
    pub fn break_connection(&mut self, d: usize) {
        let now = self.now;
        let dev = &mut self.devices[d];
        if let Some(conn) = dev.conn.take() {
            let g = &mut self.gateways[dev.gateway];
            g.conns.remove(&conn);
            g.core.handle_conn_closed(conn, now, "connection reset");
        }
        dev.session.handle_connection_lost(now);
        self.run();
    }

    /// Reconnects a detached device over a new TCP connection to `gw`.
    pub fn reconnect(&mut self, d: usize, gw: usize) {
        let peer = SocketAddr::from((self.devices[d].tcp_peer.ip(), self.port()));
        let udp = SocketAddr::from((self.devices[d].udp.ip(), self.port()));
        let conn = self.connect(gw, Peer::Device(d), peer);
        let now = self.now;
        let dev = &mut self.devices[d];
        dev.gateway = gw;
        dev.conn = conn;
        dev.tcp_peer = peer;
        dev.udp = udp;
        dev.session.reconnect(now).expect("the session is detached");
        self.run();
    }

    /// A shard event, as a shard would queue it (and wake the driver).
    pub fn shard_event(&mut self, gw: usize, e: FromShard) {
        let now = self.now;
        let g = &mut self.gateways[gw];
        g.core.port_mut().push_event(e);
        g.core.handle_dataplane(now);
        self.run();
    }

    pub fn take_events(&mut self, d: usize) -> Vec<Event> {
        std::mem::take(&mut self.devices[d].events)
    }

    /// Moves virtual time on by `d`, in [`STEP`]s, firing every timer due.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + STEP).min(end);
            let now = self.now;
            for g in &mut self.gateways {
                g.core.handle_tick(now);
                let outbox = &mut g.outbox;
                for h in &mut g.handshakes {
                    h.on_timeout(now, &mut |to, d| outbox.push_back((to, d.to_vec())));
                }
            }
            for dev in &mut self.devices {
                if dev.session.poll_timeout().is_some_and(|t| t <= now) {
                    dev.session.handle_timeout(now);
                }
            }
            self.run();
        }
    }

    /// Delivers everything in flight until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the simulation did not settle");
    }

    fn step(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        let mut buf = Vec::new();
        // Devices → gateways.
        for (i, dev) in self.devices.iter_mut().enumerate() {
            while dev.session.poll_tls(&mut buf) {
                moved = true;
                let Some(conn) = dev.conn.filter(|_| !dev.silent) else { continue };
                let g = &mut self.gateways[dev.gateway];
                let Some(end) = g.conns.get_mut(&conn) else { continue };
                feed_server(&mut g.core, conn, end, &buf, now);
                let _ = i;
            }
            while dev.session.poll_datagram(&mut buf) {
                moved = true;
                if dev.silent || dev.udp_blocked {
                    continue;
                }
                let g = &mut self.gateways[dev.gateway];
                g.datagram_from(dev.udp, &buf, now);
            }
        }
        for raw in &mut self.raws {
            let g = &mut self.gateways[raw.gateway];
            let mut out = Vec::new();
            while raw.tls.wants_write() {
                raw.tls.write_tls(&mut out).unwrap();
            }
            if !out.is_empty() {
                moved = true;
                if let Some(end) = g.conns.get_mut(&raw.conn) {
                    feed_server(&mut g.core, raw.conn, end, &out, now);
                }
            }
        }
        // Inside each gateway.
        for g in &mut self.gateways {
            moved |= g.settle(now);
        }
        // Gateways → devices.
        for g in &mut self.gateways {
            let mut done = Vec::new();
            for (conn, end) in g.conns.iter_mut() {
                let mut out = Vec::new();
                while end.tls.wants_write() {
                    end.tls.write_tls(&mut out).unwrap();
                }
                let eof = end.closing;
                if !out.is_empty() || eof {
                    moved = true;
                }
                match end.peer {
                    Peer::Device(d) => {
                        let dev = &mut self.devices[d];
                        if !out.is_empty() && !dev.silent {
                            dev.session.handle_tls(now, &out);
                        }
                        if eof {
                            if dev.conn == Some(*conn) {
                                dev.conn = None;
                                dev.session.handle_tls_eof();
                            }
                            done.push(*conn);
                        }
                    }
                    Peer::Raw(r) => {
                        let raw = &mut self.raws[r];
                        let mut rest = &out[..];
                        while !rest.is_empty() && raw.tls.read_tls(&mut rest).is_ok() {
                            if raw.tls.process_new_packets().is_err() {
                                break;
                            }
                            let mut plain = Vec::new();
                            let _ = raw.tls.reader().read_to_end(&mut plain);
                            raw.received.extend_from_slice(&plain);
                        }
                        if eof {
                            raw.closed = true;
                            done.push(*conn);
                        }
                    }
                }
            }
            for conn in done {
                g.conns.remove(&conn);
            }
            let datagrams: Vec<(SocketAddr, Vec<u8>)> = g.outbox.drain(..).collect();
            for (to, d) in datagrams {
                moved = true;
                if let Some(dev) = self.devices.iter_mut().find(|dev| dev.udp == to && !dev.udp_blocked) {
                    dev.session.handle_datagram(now, &d);
                }
            }
        }
        for dev in &mut self.devices {
            while let Some(e) = dev.session.poll_event() {
                moved = true;
                dev.events.push(e);
            }
        }
        moved
    }
}

/// TLS bytes from a client into the gateway's end of `conn`, and the
/// plaintext on into the core, as the driver does.
fn feed_server(core: &mut Core<InMemoryDataplane>, conn: ConnId, end: &mut ServerEnd, bytes: &[u8], now: Instant) {
    let mut rest = bytes;
    // rustls takes at most one buffer's worth per read_tls, as from a socket.
    while !rest.is_empty() {
        if end.tls.read_tls(&mut rest).is_err() || end.tls.process_new_packets().is_err() {
            end.closing = true;
            core.handle_tls_failure(conn, now);
            core.handle_conn_closed(conn, now, "TLS error");
            return;
        }
        if !end.established && !end.tls.is_handshaking() {
            end.established = true;
            core.handle_tls_established(conn, control::tls::facts(&end.tls));
        }
        let mut plain = Vec::new();
        let _ = end.tls.reader().read_to_end(&mut plain);
        core.handle_conn_data(conn, now, &plain);
    }
}

impl Gateway {
    /// A datagram from a device, as shard 0 takes it: the fast path if it
    /// holds a grant for the peer (epoch-0 records to the lingering
    /// handshake), else the handshakes.
    fn datagram_from(&mut self, peer: SocketAddr, datagram: &[u8], now: Instant) {
        if let Some((id, session)) = self.granted.get_mut(&peer) {
            let mut buf = datagram.to_vec();
            let mut at = 0;
            while at < buf.len() {
                let record = &mut buf[at..];
                let Ok((epoch, len)) = dtls::record::Record::new_checked(&*record).map(|r| (r.epoch(), r.total_len()))
                else {
                    return;
                };
                if epoch == 0 {
                    let rest = record.to_vec();
                    return self.handshake(peer, &rest, now);
                }
                match fastpath::open_record(record, session, &mut self.shard_counters, now) {
                    RecordAction::WriteTun(r) => self.tun.push((*id, record[r].to_vec())),
                    RecordAction::Reply(r) => self.outbox.push_back((peer, record[r].to_vec())),
                    RecordAction::Disconnect(s) => {
                        self.core.port_mut().push_event(FromShard::Disconnect { session: s })
                    }
                    RecordAction::Done => {}
                }
                at += len;
            }
            return;
        }
        self.handshake(peer, datagram, now);
    }

    /// What a shard does with handshake traffic: answer it, and install a
    /// finished handshake's session before its final flight leaves.
    fn handshake(&mut self, peer: SocketAddr, datagram: &[u8], now: Instant) {
        let outbox = &mut self.outbox;
        let Some(e) =
            self.handshakes[0].on_datagram(now, peer, datagram, &mut |d| outbox.push_back((peer, d.to_vec())))
        else {
            return;
        };
        let (session, suite) = (e.grant.session, e.info.suite);
        self.install(e.grant, now);
        for d in e.final_flight {
            self.outbox.push_back((peer, d));
        }
        self.core.port_mut().push_event(FromShard::Established { shard: ShardId(0), session, peer, suite });
        self.core.handle_dataplane(now);
    }

    fn install(&mut self, grant: proto::grant::SessionGrant, now: Instant) {
        let (session, peer) = (grant.session, grant.peer);
        self.granted.retain(|_, (id, _)| *id != session);
        let s = fastpath::DeviceSession::new(grant, now).expect("grant keys");
        self.granted.insert(peer, (session, s));
    }

    /// Carries out the core's effects and the shards' part; whether anything moved.
    fn settle(&mut self, now: Instant) -> bool {
        let mut moved = false;
        loop {
            let mut any = false;
            while let Some(e) = self.core.poll_effect() {
                any = true;
                match e {
                    Effect::Write { conn, bytes, .. } => {
                        if let Some(end) = self.conns.get_mut(&conn) {
                            end.tls.writer().write_all(&bytes).unwrap();
                        }
                    }
                    Effect::Close { conn, reason } => {
                        self.closes.push((conn, reason));
                        if let Some(end) = self.conns.get_mut(&conn) {
                            end.closing = true;
                        }
                    }
                    Effect::CheckPassword { check, user, password } => {
                        if self.hold_checks {
                            self.held_checks.push(check);
                            continue;
                        }
                        let verdict = if self.verifiers_busy {
                            Verdict::Busy
                        } else {
                            match self.passwords.check(&user, &password) {
                                Some(e) => Verdict::Accepted { group: e.group.clone() },
                                None => Verdict::Rejected,
                            }
                        };
                        self.core.handle_verdict(check, verdict, now);
                    }
                    Effect::RefuseFlow { link, flow } => self.refused_flows.push((link, flow)),
                    Effect::RevokeCookie { tag, expires } => self.revocations.push((tag, expires)),
                    Effect::SessionEnded(e) => self.ended.push(e),
                }
            }
            // The shard's side of the queues.
            let msgs: Vec<(ShardId, ToShard)> = self.core.port_mut().to_shards.drain(..).collect();
            for (shard, m) in msgs {
                any = true;
                let h = &mut self.handshakes[usize::from(shard.0)];
                match m {
                    ToShard::Authorize(a) => h.authorize(*a),
                    ToShard::Deauthorize(id) => {
                        h.deauthorize(id);
                        if shard.0 == 0 {
                            self.granted.retain(|_, (s, _)| *s != id);
                        }
                    }
                    ToShard::Grant(g) => self.install(*g, now),
                    ToShard::Revoke(id) => self.granted.retain(|_, (s, _)| *s != id),
                    ToShard::TunWrite { session, frame } => {
                        self.tun.push((session, frame[dataplane::TUN_WRITE_HEADROOM..].to_vec()))
                    }
                    ToShard::SendDatagram { to, datagram } => self.outbox.push_back((to, datagram)),
                    ToShard::Repolicy { session, policy } => {
                        h.repolicy(session, &policy);
                        for (id, s) in self.granted.values_mut() {
                            if *id == session {
                                s.set_policy((*policy).clone());
                            }
                        }
                    }
                }
            }
            if any {
                self.core.handle_dataplane(now);
                moved = true;
            } else {
                return moved;
            }
        }
    }

    /// Whether the shard holds a grant for `session`.
    pub fn granted(&self, session: SessionId) -> bool {
        self.granted.values().any(|(s, _)| *s == session)
    }

    pub fn end_reasons(&self) -> Vec<control::session::EndReason> {
        self.ended.iter().map(|e| e.reason).collect()
    }
}

/// An IPv4/UDP packet from `src` to `dst` (checksum left zero: allowed for UDP).
pub fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let sum = proto::ip::internet_checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..22].copy_from_slice(&5000u16.to_be_bytes());
    p[22..24].copy_from_slice(&7u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// An auth-reply POST logging in as `user` with `password`.
pub fn login_request(user: &str, password: &str) -> String {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"auth-reply\"><version who=\"vpn\">9.01</version><auth><username>{user}</username><password>{password}</password></auth></config-auth>"
    );
    format!("POST /auth HTTP/1.1\r\nHost: vpn.test\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}
