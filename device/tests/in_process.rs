//! The device library against corridor in one process, over a lossy
//! network: the real control plane and data plane (`control::Gateway` on a
//! thread, TUN and all), a [`DeviceSession`] driven by this test over real
//! TCP (straight to the gateway) and UDP, and between the device's UDP
//! socket and the gateway's DTLS port a userspace relay that drops,
//! duplicates and reorders datagrams by a fixed pattern (`tc netem` is not
//! available here; DESIGN.md, Testing).
//!
//! The device logs in, brings the tunnel up, gets DTLS up through the relay
//! (its handshake retransmits over the losses), then pings the gateway's
//! own TUN address: the echo requests go over DTLS into the TUN, the kernel
//! answers, and the replies come back from the TUN over DTLS. On a lossy
//! path only a majority of them must return, each matching a request.
//!
//! Needs root (the gateway creates a TUN) and a working 127.0.0.1; run it
//! inside a private network namespace, as `scripts/test.sh` does:
//! `unshare --net -- bash -c 'ip link set lo up && cargo test -p corridor-device --test in_process'`.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use device::{Channel, DeviceConfig, DeviceSession, DisconnectReason, Event, Phase};
use proto::ip::{internet_checksum, IpProtocol, Ipv4Packet};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
/// The server certificate in `testdata` names this host.
const HOST: &str = "vpn.test";
const POOL: &str = "10.200.0.0/24";
/// The pool's first host: the gateway's address on its TUN.
const GATEWAY_TUN_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const TUN_NAME: &str = "cdev-inproc";

const PINGS: u16 = 50;
/// On a path that loses about a fifth of the datagrams each way, about
/// two thirds of the pings come back; fewer than half means something
/// other than the relay is losing them.
const MIN_REPLIES: usize = 25;
const ICMP_ID: u16 = 0x4331;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;

/// How long each phase may take before the test fails, saying which.
const STARTUP: Duration = Duration::from_secs(20);
const LOGIN_AND_CONNECT: Duration = Duration::from_secs(20);
/// The device's first DTLS retransmission waits 1 s and doubles.
const DTLS_UP: Duration = Duration::from_secs(40);
const PING_ROUND: Duration = Duration::from_secs(20);
/// Once this long passes with no new reply, the missing ones are lost.
const QUIET: Duration = Duration::from_secs(2);
const LOGOUT: Duration = Duration::from_secs(10);
const SHUTDOWN: Duration = Duration::from_secs(15);
/// The longest a socket read blocks, so every loop re-checks its deadline.
const READ_SLICE: Duration = Duration::from_millis(2);

#[test]
fn device_logs_in_and_pings_through_a_lossy_relay_to_corridor_in_process() {
    require_root_and_loopback();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();

    let dir = Scratch::new();
    let gateway = GatewayThread::start(&dir);
    let device_udp = UdpSocket::bind("127.0.0.1:0").expect("device UDP socket");
    let device_udp_addr = device_udp.local_addr().expect("device UDP address");
    let relay = Relay::start(device_udp_addr, gateway.dtls);
    // The CONNECT answer names the gateway's DTLS port; this device's DTLS
    // goes to the relay instead, which forwards to that port.
    device_udp.connect(relay.device_side).expect("connect the device's UDP to the relay");
    device_udp.set_read_timeout(Some(READ_SLICE)).expect("UDP read timeout");
    let tcp = TcpStream::connect_timeout(&gateway.tls, Duration::from_secs(5)).expect("TCP to the gateway");
    tcp.set_read_timeout(Some(READ_SLICE)).expect("TCP read timeout");
    tcp.set_write_timeout(Some(Duration::from_secs(5))).expect("TCP write timeout");
    let mut d = Driver::new(DeviceSession::new(device_config()).expect("device session"), tcp, device_udp);

    // Login and CONNECT, straight over TCP.
    let mut logged_in = false;
    let (address, dtls_port) = d.until("login and CONNECT", LOGIN_AND_CONNECT, |event| match event {
        Event::LoggedIn => {
            logged_in = true;
            None
        }
        Event::TunnelUp { address, dtls_port, app_id, .. } => {
            assert!(app_id.is_some_and(|a| !a.is_empty()), "CONNECT gave DTLS without an App-ID");
            Some((address, dtls_port))
        }
        other => panic!("unexpected before the tunnel came up: {other:?}"),
    });
    assert!(logged_in, "TunnelUp without LoggedIn first");
    let pool: proto::ip::Ipv4Net = POOL.parse().expect("pool");
    assert!(pool.contains(address) && address != GATEWAY_TUN_ADDRESS, "{address} is not a device address in {POOL}");
    assert_eq!(dtls_port, Some(gateway.dtls.port()), "CONNECT offered DTLS on the configured port");

    // DTLS through the relay: the first datagrams of the handshake are
    // among those it drops and duplicates, so it completes by retransmission.
    let suite = d.until("DTLS up through the lossy relay", DTLS_UP, |event| match event {
        Event::DtlsUp { suite } => Some(suite),
        other => panic!("unexpected while DTLS came up: {other:?}"),
    });
    assert!(d.session.is_dtls_up());
    let handshake = d.session.dtls_stats().expect("a DTLS connection");
    assert!(handshake.retransmits > 0, "the relay drops handshake datagrams, yet nothing was resent: {handshake:?}");

    // A burst of echo requests to the gateway's TUN address, over DTLS.
    let start = Instant::now();
    for seq in 0..PINGS {
        let request = icmp_echo_request(address, GATEWAY_TUN_ADDRESS, ICMP_ID, seq, &ping_payload(seq));
        match d.session.send_packet(start, &request) {
            Ok(Channel::Dtls) => {}
            other => panic!("ping {seq} did not go over DTLS: {other:?}"),
        }
        d.flush();
    }
    let mut replies = BTreeSet::new();
    let mut other_packets = 0u64;
    let mut last_news = Instant::now();
    let round_ends = last_news + PING_ROUND;
    while replies.len() < usize::from(PINGS) && last_news.elapsed() < QUIET {
        assert!(Instant::now() < round_ends, "the ping round ran past {PING_ROUND:?}; {}", d.context());
        for event in d.turn() {
            match event {
                Event::Packet(p) => match echo_reply_seq(&p, address) {
                    Some(seq) => {
                        assert!(replies.insert(seq), "echo reply {seq} delivered twice: DTLS let a replay through");
                        last_news = Instant::now();
                    }
                    None => other_packets += 1,
                },
                Event::DpdResponse(_) => {}
                other => panic!("unexpected during the ping round: {other:?}; {}", d.context()),
            }
        }
    }
    eprintln!(
        "{} of {PINGS} echo replies over DTLS ({other_packets} other packets); suite {suite:?}; {}",
        replies.len(),
        d.context()
    );
    assert!(replies.len() >= MIN_REPLIES, "only {} of {PINGS} echo replies came back; {}", replies.len(), d.context());
    let stats = d.session.stats();
    assert_eq!(stats.dtls_packets_in, replies.len() as u64 + other_packets, "{stats:?}");
    assert_eq!(stats.cstp_packets_in, 0, "everything came over DTLS: {stats:?}");
    let dtls = d.session.dtls_stats().expect("a DTLS connection");
    assert!(dtls.replayed >= 1, "the relay duplicated records to the device; none was dropped as a replay: {dtls:?}");

    // The gateway counted what the relay did to the data records rather
    // than failing: duplicates are replay drops, and the session lives on.
    let metrics = admin_get(gateway.admin, "/metrics");
    let m = |name: &str| metric(&metrics, name);
    let replays = testbed::metrics::sum(&metrics, "corridor_shard_drops_total", &[("reason", "replay")]);
    assert!(replays >= 1, "duplicated records are counted as replays:\n{metrics}");
    assert!(
        m("corridor_shard_rx_records_total") >= replies.len() as u64,
        "every answered ping reached the shard as a record:\n{metrics}"
    );
    assert!(m("corridor_shard_tun_writes_total") >= replies.len() as u64, "{metrics}");
    assert!(m("corridor_shard_tun_reads_total") >= replies.len() as u64, "{metrics}");
    assert_eq!(m("corridor_sessions"), 1, "the session survived the losses:\n{metrics}");
    let logins = testbed::metrics::sum(&metrics, "corridor_logins_total", &[("method", "password"), ("outcome", "ok")]);
    assert_eq!(logins, 1, "{metrics}");
    assert_eq!(
        testbed::metrics::sum(&metrics, "corridor_shard_handshakes_total", &[("outcome", "established")]),
        1,
        "one DTLS handshake, established on the shard despite the losses:\n{metrics}"
    );
    assert_eq!(m("corridor_shard_io_errors_total") + m("corridor_shard_seal_errors_total"), 0, "{metrics}");
    // The operator's view, over the ctl socket (`corridor ctl sessions`).
    let sessions = ctl(&gateway.ctl_socket, &control::ctl::Request::Sessions);
    let listed = match &sessions {
        control::ctl::Response::Sessions { sessions } => sessions.as_slice(),
        other => panic!("not a session list: {other:?}"),
    };
    assert_eq!(listed.len(), 1, "{sessions:?}");
    assert_eq!((listed[0].user.as_str(), listed[0].address), (USER, address), "{sessions:?}");
    assert_eq!(listed[0].channel, control::ctl::Channel::Dtls, "{sessions:?}");

    // Logout: DISCONNECT over CSTP; the gateway ends the session and closes.
    d.session.disconnect(Instant::now());
    let reason = d.until("the device to close", LOGOUT, |event| match event {
        Event::Disconnected(r) => Some(r),
        _ => None,
    });
    assert_eq!(reason, DisconnectReason::Logout);
    assert_eq!(d.session.phase(), Phase::Closed);
    d.wait_for_tcp_eof(LOGOUT);
    let metrics = admin_get(gateway.admin, "/metrics");
    assert_eq!(metric(&metrics, "corridor_sessions"), 0, "the session ended on logout:\n{metrics}");
    assert_eq!(metric(&metrics, "corridor_pool_addresses_in_use"), 0, "{metrics}");

    let counters = gateway.stop();
    assert_eq!((counters.logins_password_ok, counters.logins_password_failed), (1, 0), "{counters:?}");
    assert_eq!((counters.connects, counters.sessions_ended), (1, 1), "{counters:?}");
    assert_eq!(counters.cstp_protocol_errors, 0, "{counters:?}");

    let [to_gateway, to_device] = relay.stop();
    eprintln!("relay: device -> gateway {to_gateway:?}; gateway -> device {to_device:?}");
    for (way, s) in [("device -> gateway", to_gateway), ("gateway -> device", to_device)] {
        assert!(s.dropped > 0 && s.duplicated > 0 && s.reordered > 0, "the relay impaired {way}: {s:?}");
    }
}

// ---------------------------------------------------------------------------
// Preconditions and scratch space.

/// Fails, never skips: a test that passes without running proves nothing.
fn require_root_and_loopback() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(
        euid,
        Some("0"),
        "this test creates a TUN and needs root, in a private network namespace: run scripts/test.sh, or \
         `unshare --net -- bash -c 'ip link set lo up && cargo test -p corridor-device --test in_process'` as root"
    );
    let probe = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1 (is lo up? `ip link set lo up`)");
    probe.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let me = probe.local_addr().expect("address");
    let echoed = probe.send_to(b"lo?", me).and_then(|_| probe.recv(&mut [0u8; 8]));
    assert!(echoed.is_ok(), "127.0.0.1 does not carry datagrams ({echoed:?}): bring lo up with `ip link set lo up`");
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("corridor-device-in-process-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

/// A port on 127.0.0.1 that was free a moment ago (the test runs in its
/// own network namespace, where nothing else takes it meanwhile).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("probe a free UDP port").port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("probe a free TCP port").port()
}

// ---------------------------------------------------------------------------
// The gateway, on its own thread.

struct GatewayThread {
    /// The TLS listener.
    tls: SocketAddr,
    /// The data plane's UDP port, where DTLS is offered.
    dtls: SocketAddr,
    admin: SocketAddr,
    ctl_socket: PathBuf,
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<Result<control::gateway::ControlCounters, String>>,
    thread: Option<JoinHandle<()>>,
}

impl GatewayThread {
    /// Writes the configuration, certificates and password file into `dir`
    /// and starts `control::Gateway` there: one shard, no pinning, a TUN
    /// on the pool's first host.
    fn start(dir: &Scratch) -> Self {
        for f in ["server.crt", "server.key"] {
            std::fs::copy(testdata(f), dir.path().join(f)).unwrap_or_else(|e| panic!("copy testdata/{f}: {e}"));
        }
        // The gateway refuses a private key other users may read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("server.key"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600 server.key");
        let mut passwords = control::passwd::PasswordFile::default();
        // Few iterations: the test checks the login path, not PBKDF2's cost.
        passwords.set(control::passwd::Entry::new(USER, PASSWORD, None, 1000).expect("password entry"));
        passwords.store(&dir.path().join("passwd")).expect("password file");
        let dtls = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
        let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
        let toml = format!(
            r#"[server]
listen = "127.0.0.1:0"
dtls_port = {dtls_port}
cert = "server.crt"
key = "server.key"
[auth]
password_file = "passwd"
verify_threads = 1
[network]
pool = "{POOL}"
tun_name = "{TUN_NAME}"
[dataplane]
shards = 1
pin_cores = false
ring_entries = 64
[admin]
listen = "{admin}"
ctl_socket = "ctl.sock"
[[group]]
name = "default"
allowed = ["{GATEWAY_TUN_ADDRESS}/32"]
split_include = ["{POOL}"]
# The pings go to the gateway's own TUN address, which the implicit deny
# keeps devices from unless their group lifts it.
client_to_client = true
"#,
            dtls_port = dtls.port(),
        );
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, toml).expect("write gateway.toml");
        let config = control::Config::load(&path).unwrap_or_else(|e| panic!("gateway.toml: {e}"));

        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("gateway".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    let gateway = match control::Gateway::start(config, control::Secrets::Local) {
                        Ok(g) => g,
                        Err(e) => {
                            let _ = started_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = started_tx.send(gateway.local_addr().map_err(|e| e.to_string()));
                    let _ = done_tx.send(gateway.run(&stop).map_err(|e| e.to_string()));
                }
            })
            .expect("spawn the gateway thread");
        let tls = match started_rx.recv_timeout(STARTUP) {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => panic!("the gateway did not start: {e} (it needs root, /dev/net/tun and io_uring)"),
            Err(e) => panic!("the gateway did not start within {STARTUP:?}: {e}"),
        };
        Self { tls, dtls, admin, ctl_socket: dir.path().join("ctl.sock"), stop, done, thread: Some(thread) }
    }

    /// Sets the stop flag and waits (bounded) for `run` to return.
    fn stop(mut self) -> control::gateway::ControlCounters {
        self.stop.store(true, Ordering::Relaxed);
        let counters = match self.done.recv_timeout(SHUTDOWN) {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("the gateway's run failed: {e}"),
            Err(e) => panic!("the gateway did not stop within {SHUTDOWN:?}: {e}"),
        };
        if let Some(t) = self.thread.take() {
            t.join().expect("the gateway thread panicked");
        }
        counters
    }
}

impl Drop for GatewayThread {
    /// On a failed assertion: stop the gateway rather than leave it running.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One plain-HTTP request to the admin endpoint; the body of the answer.
fn admin_get(admin: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(5)).expect("connect to the admin endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).expect("admin request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("admin answer");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_string()
}

/// One request over the ctl socket, as `corridor ctl --json` makes it.
fn ctl(socket: &Path, request: &control::ctl::Request) -> control::ctl::Response {
    let out = control::ctl::client::run(socket, true, request);
    assert_eq!(out.code, 0, "{request:?}: {out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{request:?}: not JSON ({e}): {}", out.stdout))
}

/// A metric summed over its label sets (0 when absent).
fn metric(text: &str, name: &str) -> u64 {
    testbed::metrics::sum(text, name, &[])
}

// ---------------------------------------------------------------------------
// The device.

fn device_config() -> DeviceConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(testdata("ca.crt")).expect("testdata/ca.crt") {
        roots.add(c.expect("testdata/ca.crt")).expect("CA certificate");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(HOST).expect("server name");
    DeviceConfig::new(Arc::new(tls), name, HOST, USER, PASSWORD)
}

/// Drives a [`DeviceSession`] over real sockets: the session's call order
/// (crate docs), with every read bounded by [`READ_SLICE`].
struct Driver {
    session: DeviceSession,
    tcp: TcpStream,
    /// Connected to the relay.
    udp: UdpSocket,
    tcp_eof: bool,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Driver {
    fn new(session: DeviceSession, tcp: TcpStream, udp: UdpSocket) -> Self {
        Self { session, tcp, udp, tcp_eof: false, out: Vec::new(), buf: vec![0u8; 65_536] }
    }

    /// Writes what the session has for TCP and UDP.
    fn flush(&mut self) {
        self.out.clear();
        if !self.tcp_eof && self.session.poll_tls(&mut self.out) {
            self.tcp.write_all(&self.out).unwrap_or_else(|e| panic!("TCP write: {e}"));
        }
        while self.session.poll_datagram(&mut self.out) {
            // The relay is local and always listening; a failed send is a lost datagram.
            let _ = self.udp.send(&self.out);
        }
    }

    /// One round: due timers, one TCP read, the UDP datagrams waiting;
    /// returns the events they raised.
    fn turn(&mut self) -> Vec<Event> {
        let now = Instant::now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        self.flush();
        if !self.tcp_eof {
            match self.tcp.read(&mut self.buf) {
                Ok(0) => {
                    self.tcp_eof = true;
                    self.session.handle_connection_lost(Instant::now());
                }
                Ok(n) => self.session.handle_tls(Instant::now(), self.buf.get(..n).unwrap_or_default()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("TCP read: {e}"),
            }
            self.flush();
        }
        loop {
            match self.udp.recv(&mut self.buf) {
                Ok(n) => {
                    self.session.handle_datagram(Instant::now(), self.buf.get(..n).unwrap_or_default());
                    self.flush();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => panic!("UDP recv: {e}"),
            }
        }
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    /// Turns until `pick` takes an event, failing after `limit`.
    fn until<T>(&mut self, what: &str, limit: Duration, mut pick: impl FnMut(Event) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            for event in self.turn() {
                if let Some(v) = pick(event) {
                    return v;
                }
            }
            assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}; {}", self.context());
        }
    }

    /// Turns until the gateway closes the TCP connection.
    fn wait_for_tcp_eof(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.tcp_eof {
            let _ = self.turn();
            assert!(Instant::now() < deadline, "the gateway did not close TCP within {limit:?}; {}", self.context());
        }
    }

    fn context(&self) -> String {
        format!(
            "device phase {:?}, stats {:?}, DTLS {:?}",
            self.session.phase(),
            self.session.stats(),
            self.session.dtls_stats()
        )
    }
}

// ---------------------------------------------------------------------------
// ICMP echo, built and checked here.

fn ping_payload(seq: u16) -> Vec<u8> {
    let mut p = b"corridor in-process ping ".to_vec();
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0u8..32).map(|i| i.wrapping_mul(7).wrapping_add(seq as u8)));
    p
}

/// An IPv4 ICMP echo request with correct header and ICMP checksums.
fn icmp_echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut icmp = vec![ICMP_ECHO_REQUEST, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let sum = internet_checksum(&icmp).to_be_bytes();
    icmp.splice(2..4, sum);

    let total = u16::try_from(20 + icmp.len()).expect("small packet");
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes()); // identification
    p.extend_from_slice(&[0x40, 0, 64, IpProtocol::ICMP.0, 0, 0]); // DF, TTL, protocol, checksum
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = internet_checksum(&p).to_be_bytes();
    p.splice(10..12, sum);
    p.extend_from_slice(&icmp);
    p
}

/// The sequence number of an echo reply from the gateway's TUN address to
/// `device`, checked against the request it answers; `None` for a packet
/// that is no echo reply at all. A reply that matches no request fails.
fn echo_reply_seq(packet: &[u8], device: Ipv4Addr) -> Option<u16> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    let icmp = ip.payload();
    if ip.protocol() != IpProtocol::ICMP || icmp.first() != Some(&ICMP_ECHO_REPLY) {
        return None;
    }
    assert_eq!((ip.src(), ip.dst()), (GATEWAY_TUN_ADDRESS, device), "echo reply addresses");
    assert_eq!(internet_checksum(packet.get(..ip.header_len()).unwrap_or_default()), 0, "IPv4 header checksum");
    assert_eq!(internet_checksum(icmp), 0, "ICMP checksum of {icmp:02x?}");
    let field = |at: usize| icmp.get(at..at + 2).and_then(|b| <[u8; 2]>::try_from(b).ok()).map(u16::from_be_bytes);
    assert_eq!(field(4), Some(ICMP_ID), "echo reply identifier");
    let seq = field(6).expect("echo reply sequence number");
    assert!(seq < PINGS, "echo reply to a request never sent: seq {seq}");
    assert_eq!(icmp.get(8..), Some(ping_payload(seq).as_slice()), "echo reply {seq} payload");
    Some(seq)
}

// ---------------------------------------------------------------------------

#[path = "in_process/relay.rs"]
mod relay;
use relay::Relay;
