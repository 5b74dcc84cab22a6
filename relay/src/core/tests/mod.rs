//! The relay core in memory: a pretend driver that records every effect,
//! virtual time, no sockets and no root. Gateways and devices are byte
//! strings the tests write and frames they read back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use proto::relay::{link_mac, next_frame, tag_app_id, Frame, Nonce};

use super::{ConnId, Counters, DeviceDatagrams, Effect, Ended, FlowId, Listener, RelayCore, Toward, TICK};
use crate::config::Config;

mod flows;
mod limits;
mod links;
mod preauth;
mod revocations;
mod streams;

const NAME: &str = "vpn.test";
const TOKEN: &str = "0123456789abcdef0123";
const OTHER_NAME: &str = "other.test";
const OTHER_TOKEN: &str = "fedcba9876543210fedc";
/// The Unix clock when a test's relay starts.
const UNIX_START: u64 = 1_800_000_000;
/// The relay's address on the gateways' side.
const RELAY_GATEWAY_SIDE: &str = "192.0.2.1:3101";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

fn config(limits: &str) -> Config {
    let text = format!(
        "[relay]\nlisten = \"198.51.100.1:443\"\ngateway_listen = \"{RELAY_GATEWAY_SIDE}\"\n\
         [limits]\n{limits}\n\
         [[gateway]]\nname = \"{NAME}\"\ntoken = \"{TOKEN}\"\n\
         [[gateway]]\nname = \"{OTHER_NAME}\"\ntoken = \"{OTHER_TOKEN}\"\n\
         [gateway_link]\ncert = \"link.crt\"\nkey = \"link.key\"\n"
    );
    Config::parse_in(&text, Path::new(".")).expect("a valid test config")
}

/// A TLS ClientHello record asking for `sni` (none: an address literal).
fn client_hello(sni: Option<&str>) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend([7u8; 32]); // random
    body.push(0); // session id
    body.extend([0, 2, 0x13, 0x01]); // one cipher suite
    body.extend([1, 0]); // null compression
    if let Some(name) = sni {
        let n = name.len() as u16;
        let mut list = (n + 3).to_be_bytes().to_vec();
        list.push(0); // host_name
        list.extend(n.to_be_bytes());
        list.extend(name.as_bytes());
        let mut exts = vec![0, 0]; // server_name
        exts.extend((list.len() as u16).to_be_bytes());
        exts.extend(list);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
    }
    let mut hs = vec![1];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut record = vec![22, 3, 1];
    record.extend((hs.len() as u16).to_be_bytes());
    record.extend(hs);
    record
}

/// A DTLS 1.2 ClientHello datagram whose App-ID (its session_id, as
/// openconnect sends it) is tagged with `route` (`None`: untagged).
fn dtls_client_hello(route: Option<u32>) -> Vec<u8> {
    dtls_client_hello_with([9u8; 32], route)
}

/// As [`dtls_client_hello`], with the App-ID's other bytes from `app_id`.
fn dtls_client_hello_with(mut app_id: [u8; 32], route: Option<u32>) -> Vec<u8> {
    if let Some(r) = route {
        tag_app_id(&mut app_id, r);
    }
    let mut body = vec![254, 253];
    body.extend([7u8; 32]); // random
    body.push(32);
    body.extend(app_id);
    body.extend([0, 0, 2, 0, 0xa9, 1, 0]); // no cookie, one suite, null compression
    let n = &(body.len() as u32).to_be_bytes()[1..];
    let mut hs = vec![1];
    hs.extend(n);
    hs.extend([0, 0, 0, 0, 0]); // message_seq, fragment_offset
    hs.extend(n);
    hs.extend(body);
    let mut d = vec![22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0];
    d.extend((hs.len() as u16).to_be_bytes());
    d.extend(hs);
    d
}

/// The first bytes of a TLS ClientHello record, as a link begins.
const TLS_CLIENT_HELLO_START: &[u8] = &[22, 3, 1, 0, 200, 1];

/// An authenticated link as the tests hold it.
#[derive(Debug, Clone, Copy)]
struct TestLink {
    conn: ConnId,
    route: u32,
    peer: SocketAddr,
}

/// The core with a driver that records what it is asked to do.
struct Sim {
    core: RelayCore,
    now: Instant,
    next_conn: u64,
    /// Bytes written per connection that the test has not taken yet.
    written: HashMap<ConnId, Vec<u8>>,
    closed: HashMap<ConnId, &'static str>,
    /// Connections the driver runs TLS on, with the bytes that began it.
    tls: HashMap<ConnId, Vec<u8>>,
    /// (device, gateway, initial bytes) of every splice asked for.
    splices: Vec<(ConnId, ConnId, Vec<u8>)>,
    ports: HashMap<FlowId, u16>,
    last_port: u16,
    /// Ports cannot be opened (a full port range).
    ports_fail: bool,
    /// Datagrams sent from flow ports: (flow, to, bytes).
    sent: Vec<(FlowId, SocketAddr, Vec<u8>)>,
}

impl Sim {
    fn new() -> Self {
        Self::with_limits("")
    }

    fn with_limits(limits: &str) -> Self {
        let now = Instant::now();
        Self {
            core: RelayCore::new(config(limits), now, UNIX_START),
            now,
            next_conn: 100,
            written: HashMap::new(),
            closed: HashMap::new(),
            tls: HashMap::new(),
            splices: Vec::new(),
            ports: HashMap::new(),
            last_port: 40_000,
            ports_fail: false,
            sent: Vec::new(),
        }
    }

    /// Carries out every effect the way the driver would.
    fn drain(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            match e {
                Effect::Write { conn, bytes } => {
                    assert!(!self.closed.contains_key(&conn), "a write to closed connection {conn:?}");
                    self.written.entry(conn).or_default().extend(bytes);
                }
                Effect::Close { conn, reason } => {
                    assert!(self.closed.insert(conn, reason).is_none(), "{conn:?} closed twice");
                }
                Effect::StartTls { conn, initial } => {
                    assert!(self.tls.insert(conn, initial).is_none(), "TLS started twice on {conn:?}");
                }
                Effect::Splice { device, gateway, initial } => {
                    assert!(!self.tls.contains_key(&gateway), "a stream is never wrapped in the link's TLS");
                    self.splices.push((device, gateway, initial));
                }
                Effect::OpenFlowPort { flow, .. } => {
                    let port = (!self.ports_fail).then(|| {
                        self.last_port += 1;
                        self.last_port
                    });
                    if let Some(p) = port {
                        self.ports.insert(flow, p);
                    }
                    self.core.handle_flow_port(flow, port, self.now);
                }
                Effect::SendDatagram { flow, to, bytes, .. } => {
                    assert!(self.ports.contains_key(&flow), "a send from a port that is not open");
                    self.core.record_forwarded(Toward::Gateway, 1, bytes.len());
                    self.sent.push((flow, to, bytes));
                }
                Effect::CloseFlowPort { flow } => {
                    assert!(self.ports.remove(&flow).is_some(), "closing a port that is not open");
                }
            }
        }
    }

    fn accept(&mut self, listener: Listener, peer: &str) -> ConnId {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        self.core.handle_accept(conn, listener, addr(peer), addr(RELAY_GATEWAY_SIDE), self.now);
        self.drain();
        conn
    }

    fn device(&mut self, peer: &str) -> ConnId {
        self.accept(Listener::Devices, peer)
    }

    fn read(&mut self, conn: ConnId, bytes: &[u8]) {
        self.core.handle_read(conn, bytes, self.now);
        self.drain();
    }

    fn send_frame(&mut self, conn: ConnId, f: &Frame) {
        self.read(conn, &f.to_vec());
    }

    /// Every frame written to `conn` since the last call.
    fn frames(&mut self, conn: ConnId) -> Vec<Frame> {
        let bytes = self.written.remove(&conn).unwrap_or_default();
        let mut frames = Vec::new();
        let mut at = 0;
        while let Ok(Some((f, n))) = next_frame(&bytes[at..]) {
            frames.push(f);
            at += n;
        }
        assert_eq!(at, bytes.len(), "only whole frames are written");
        frames
    }

    /// Lets `d` pass, a tick at a time as the driver would.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + TICK).min(end);
            self.core.handle_timeout(self.now);
            self.drain();
        }
    }

    fn counters(&self) -> Counters {
        *self.core.counters()
    }

    /// A gateway at `peer` dials in and begins TLS: the driver takes over
    /// the records, and the core is given their plaintext from now on.
    fn dial_link(&mut self, peer: &str) -> ConnId {
        let conn = self.accept(Listener::Gateways, peer);
        self.read(conn, TLS_CLIENT_HELLO_START);
        assert_eq!(self.tls.get(&conn).map(Vec::as_slice), Some(TLS_CLIENT_HELLO_START), "TLS started");
        conn
    }

    /// A gateway at `peer` dials in and says Hello; the relay's answer.
    fn hello(&mut self, peer: &str, name: &str, route_hint: u32) -> (ConnId, Vec<Frame>) {
        let conn = self.dial_link(peer);
        self.send_frame(conn, &Frame::Hello { version: proto::relay::VERSION, route_hint, name: name.into() });
        (conn, self.frames(conn))
    }

    /// A gateway of `name` at `peer` authenticates with `token`; the
    /// relay's answers to its Auth.
    fn authenticate(&mut self, peer: &str, name: &str, token: &str, route_hint: u32) -> (ConnId, Vec<Frame>) {
        let (conn, answer) = self.hello(peer, name, route_hint);
        let [Frame::Challenge { nonce }] = answer[..] else { panic!("no challenge: {answer:?}") };
        self.send_frame(conn, &Frame::Auth { mac: link_mac(token.as_bytes(), &nonce, name) });
        (conn, self.frames(conn))
    }

    /// A live link of `name` from a gateway at `peer`.
    fn link_up(&mut self, peer: &str, name: &str) -> TestLink {
        let token = if name == NAME { TOKEN } else { OTHER_TOKEN };
        let (conn, answer) = self.authenticate(peer, name, token, 0);
        let [Frame::Welcome { route, .. }] = answer[..] else { panic!("not welcomed: {answer:?}") };
        TestLink { conn, route, peer: addr(peer) }
    }

    /// A device at `peer` asks for `sni`; the link it went to gets an Open.
    fn open(&mut self, peer: &str, sni: &str) -> ConnId {
        let device = self.device(peer);
        self.read(device, &client_hello(Some(sni)));
        device
    }

    /// The Open link `l` was sent, if one.
    fn open_on(&mut self, l: TestLink) -> Option<(u64, Nonce, SocketAddr)> {
        self.frames(l.conn).into_iter().find_map(|f| match f {
            Frame::Open { stream, nonce, device } => Some((stream, nonce, device)),
            _ => None,
        })
    }

    /// The gateway of `l` dials a stream back from `from` and attaches it.
    fn attach(&mut self, from: &str, stream: u64, nonce: Nonce) -> ConnId {
        let conn = self.accept(Listener::Gateways, from);
        self.send_frame(conn, &Frame::Attach { stream, nonce });
        conn
    }
}
