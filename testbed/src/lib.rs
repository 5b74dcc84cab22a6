//! End-to-end test bed shared by every crate's integration tests: a
//! namespace topology (device, gateway, org) per test, the real `corridor`
//! binary in the gateway namespace, the real `openconnect` client in the
//! device namespace, and servers in the org namespace. Everything stays
//! inside namespaces the test creates; teardown happens in `Drop`, also on
//! panic. Needs root (scripts/test.sh runs the tests so).
//!
//! Test-only code: failures panic with everything that was printed.

#![forbid(unsafe_code)]
#![allow(clippy::indexing_slicing, missing_debug_implementations)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub mod config;
pub mod cookie;
mod gateway;
pub mod lossy;
pub mod metrics;
mod ocserv;
mod second;

pub use gateway::{Gateway, GatewayOptions};
pub use ocserv::{Ocserv, OcservAuth};
pub use second::SecondDevice;

pub const GATEWAY_IP: &str = "10.10.0.1";
pub const ORG_IP: &str = "10.99.0.2";
pub const PASSWORD: &str = "correct horse battery staple";

/// The repository root (this crate lives in `testbed/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// `target/<profile>` of the running test binary (`…/deps/NAME-HASH`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).expect("test binary lives in target/<profile>/deps")
}

/// A scratch directory for one test run, under `target/tmp`.
fn scratch(name: &str) -> PathBuf {
    target_profile_dir().parent().map_or_else(std::env::temp_dir, |t| t.join("tmp")).join(name)
}

/// The `corridor` binary. Integration tests of the root package get it
/// built by cargo; other crates' tests rely on `cargo test --workspace`
/// (or `cargo build -p corridor`) having built it.
pub fn corridor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRIDOR_BIN") {
        return PathBuf::from(p);
    }
    let candidates = [target_profile_dir().join("corridor"), repo().join("target/debug/corridor")];
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!("the corridor binary is missing (looked at {candidates:?}): run `cargo build -p corridor` first")
    })
}

/// Whether the gateway under test ([`corridor_bin`]) must run in FIPS
/// mode: `CORRIDOR_EXPECT_FIPS=1` says so (scripts/test.sh sets it beside
/// `CORRIDOR_BIN` for the FIPS build of the package); unset or `0`, it must
/// not, as a plain `cargo test` build does not.
pub fn expect_fips() -> bool {
    match std::env::var("CORRIDOR_EXPECT_FIPS").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "0") => false,
        Ok("1") => true,
        other => panic!("CORRIDOR_EXPECT_FIPS={other:?}: write 1 (a FIPS build) or 0"),
    }
}

/// Writes a secret file of mode 600.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).expect("secret file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

fn require(tool: &str) {
    let ok = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    assert!(ok, "`{tool}` is missing: scripts/test.sh installs it");
}

/// Runs a command to completion and returns its output, panicking with
/// everything it printed if it failed.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ip netns exec NS PROGRAM`.
pub fn ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

/// Captured output of a background process, line by line.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn follow(&self, r: impl std::io::Read + Send + 'static) {
        let lines = self.0.clone();
        thread::spawn(move || {
            for l in BufReader::new(r).lines().map_while(Result::ok) {
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(l);
            }
        });
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|l| l.contains(needle))
    }

    /// Waits until a line contains `needle`; panics with the log otherwise.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(l) = self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("no line containing {needle:?} within {timeout:?}; log:\n{}", self.text());
    }
}

/// Polls `f` until it returns `Some`, or panics with `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {timeout:?} waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// The three namespaces of one test.
pub struct Topology {
    pub prefix: String,
    pub dir: PathBuf,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Topology {
    pub fn up() -> Self {
        Self::make("up")
    }

    /// The relayed topology of `scripts/topology.sh up-relay`: two devices,
    /// a relay, two gateways behind firewalls that let nothing in, the org.
    pub fn up_relay() -> Self {
        require("nft");
        Self::make("up-relay")
    }

    fn make(verb: &str) -> Self {
        for t in ["ip", "openssl", "openconnect", "curl", "python3"] {
            require(t);
        }
        let prefix = format!("cor{}x{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = scratch(&prefix);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("tmpdir");
        run(Command::new("bash").arg(repo().join("scripts/topology.sh")).args([verb, &prefix]));
        run(Command::new("bash").arg(repo().join("scripts/certs.sh")).arg(&dir));
        Self { prefix, dir }
    }

    pub fn device(&self) -> String {
        format!("{}device", self.prefix)
    }

    pub fn gateway(&self) -> String {
        format!("{}gateway", self.prefix)
    }

    pub fn org(&self) -> String {
        format!("{}org", self.prefix)
    }

    /// Relayed topology only.
    pub fn relay(&self) -> String {
        format!("{}relay", self.prefix)
    }

    /// Relayed topology only.
    pub fn gateway2(&self) -> String {
        format!("{}gateway2", self.prefix)
    }

    /// Relayed topology only.
    pub fn device2(&self) -> String {
        format!("{}device2", self.prefix)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo().join("scripts/topology.sh")).args(["down", &self.prefix]).output();
    }
}

/// A background process killed on drop.
pub struct Proc {
    pub child: Child,
    pub log: Log,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let log = Log::default();
        if let Some(o) = child.stdout.take() {
            log.follow(o);
        }
        if let Some(e) = child.stderr.take() {
            log.follow(e);
        }
        eprintln!("spawned {name}: {cmd:?}");
        Self { child, log, name: name.into() }
    }

    /// SIGTERM, then wait up to `timeout`; SIGKILL after.
    pub fn stop(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!("----- {} log -----\n{}\n-----", self.name, self.log.text());
        }
    }
}

/// The relay's device-side address in the relayed topology (where the
/// direct topology has its gateway, so the certificate covers it too).
pub const RELAY_IP: &str = GATEWAY_IP;
/// The relay's gateway-side address.
pub const RELAY_GATEWAY_SIDE: &str = "10.20.0.1";
/// The name devices ask the relay for (the certificate's DNS name).
pub const RELAY_NAME: &str = "vpn.test";
pub(crate) const RELAY_TOKEN: &str = "testbed-relay-token-0123456789abcdef";
pub(crate) const CLUSTER_SECRET: &str = "testbed-cluster-secret-0123456789abcdef0123456789";

/// `corridor relay` in the relay namespace of [`Topology::up_relay`]: TLS
/// and DTLS on 443 for devices, 3101 for gateways, `vpn.test` registered,
/// admin on its loopback. Killed on drop.
pub struct Relay {
    pub proc: Proc,
    pub ns: String,
}

impl Relay {
    pub fn start(t: &Topology) -> Self {
        Self::start_with(t, "")
    }

    /// With more `[limits]` lines (`field = value`, fields of
    /// `scripts/lib/relay.toml.in`).
    pub fn start_with(t: &Topology, limits: &str) -> Self {
        Self::start_under(t, limits, &[], &[])
    }

    /// With more `[limits]` lines, environment variables (a service
    /// manager's `NOTIFY_SOCKET`, say) and a command the relay runs under
    /// (`setpriv --bounding-set ... --`; empty: none).
    pub fn start_under(t: &Topology, limits: &str, env: &[(String, String)], under: &[String]) -> Self {
        write_private(&t.dir.join("relay.token"), RELAY_TOKEN);
        let path = t.dir.join("relay.toml");
        fs::write(&path, config::relay_config(limits)).expect("config");
        let mut cmd = match under.split_first() {
            Some((program, args)) => {
                let mut c = ns(&t.relay(), program);
                c.args(args).arg(corridor_bin());
                c
            }
            None => ns(&t.relay(), corridor_bin()),
        };
        cmd.args(["relay", "--config"]).arg(&path).env("RUST_LOG", "info");
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let proc = Proc::spawn("corridor relay", cmd);
        // The last start-up line: the relay is confined and serving.
        proc.log.wait_for("privileges dropped", Duration::from_secs(10));
        Self { proc, ns: t.relay() }
    }

    /// The admin endpoint, from inside the relay namespace.
    pub fn admin(&self, path: &str) -> String {
        let out = run(ns(&self.ns, "curl").args(["-sS", &format!("http://127.0.0.1:9101{path}")]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A counter or gauge of /metrics, summed over all its label sets.
    pub fn metric(&self, name: &str) -> u64 {
        self.metric_with(name, &[])
    }

    /// A counter or gauge of /metrics, summed over the label sets that
    /// carry every `(label, value)` of `filter`.
    pub fn metric_with(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        metrics::sum(&self.metrics(), name, filter)
    }

    /// The /metrics page.
    pub fn metrics(&self) -> String {
        self.admin("/metrics")
    }

    /// Waits until `n` gateway links are up.
    pub fn wait_links(&self, n: u64, timeout: Duration) {
        wait_until(&format!("{n} gateway links up at the relay"), timeout, || {
            (self.metric("corridor_relay_links") == n).then_some(())
        });
    }
}

/// How the client logs in.
pub enum Login<'a> {
    Password(&'a str, &'a str),
    Certificate,
    /// No login: a session cookie ([`cookie::authenticate`]) given on stdin.
    Cookie(&'a str),
}

/// A real openconnect client in the device namespace.
pub struct Client {
    pub proc: Proc,
    pub ns: String,
    pub address: String,
}

impl Client {
    pub fn connect(t: &Topology, login: Login<'_>, extra: &[&str]) -> Self {
        let mut c = Self::spawn(t, login, extra, "tun0");
        c.address = c.wait_address(Duration::from_secs(30));
        c.wait_route("tun0", Duration::from_secs(10));
        c
    }

    /// Waits until the org network is routed through `ifname`: the
    /// client's script sets the address first and the split routes after,
    /// so traffic sent on the address alone can race the route.
    pub fn wait_route(&self, ifname: &str, timeout: Duration) {
        let ns = self.ns.clone();
        let via = format!("dev {ifname} ");
        wait_until("the route to the org network through the tunnel", timeout, || {
            let out = Command::new("ip").args(["-n", &ns, "-4", "route", "get", ORG_IP]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).contains(&via).then_some(())
        });
    }

    pub fn spawn(t: &Topology, login: Login<'_>, extra: &[&str], ifname: &str) -> Self {
        Self::spawn_in(t, &t.device(), &format!("https://{GATEWAY_IP}/"), login, extra, ifname)
    }

    /// A client in the device namespace `namespace` through the relay:
    /// `https://vpn.test/` resolved to the relay, so its TLS carries SNI.
    pub fn connect_relayed(t: &Topology, namespace: &str, login: Login<'_>) -> Self {
        let resolve = format!("--resolve={RELAY_NAME}:{RELAY_IP}");
        let mut c = Self::spawn_in(t, namespace, &format!("https://{RELAY_NAME}/"), login, &[&resolve], "tun0");
        c.address = c.wait_address(Duration::from_secs(30));
        c.wait_route("tun0", Duration::from_secs(10));
        c
    }

    pub fn spawn_in(t: &Topology, namespace: &str, url: &str, login: Login<'_>, extra: &[&str], ifname: &str) -> Self {
        let mut cmd = ns(namespace, "openconnect");
        cmd.args(["--protocol=anyconnect", "-v", "--non-inter", "--interface", ifname, "--cafile"])
            .arg(t.dir.join("ca.crt"));
        let mut on_stdin = None;
        match login {
            Login::Password(user, pw) => {
                cmd.args(["--user", user, "--passwd-on-stdin"]);
                on_stdin = Some(pw.to_string());
            }
            Login::Certificate => {
                cmd.arg("-c").arg(t.dir.join("client.crt")).arg("-k").arg(t.dir.join("client.key"));
            }
            Login::Cookie(cookie) => {
                cmd.arg("--cookie-on-stdin");
                on_stdin = Some(cookie.to_string());
            }
        }
        cmd.args(extra).arg(url);
        let mut proc = Proc::spawn(&format!("openconnect ({namespace})"), cmd);
        if let Some(pw) = on_stdin {
            if let Some(mut stdin) = proc.child.stdin.take() {
                let _ = stdin.write_all(format!("{pw}\n").as_bytes());
            }
        }
        Self { proc, ns: namespace.to_owned(), address: String::new() }
    }

    /// The tunnel address once the client configured its interface.
    pub fn wait_address(&self, timeout: Duration) -> String {
        let ns = self.ns.clone();
        wait_until("the client's tunnel address", timeout, || {
            let out = Command::new("ip").args(["-n", &ns, "-4", "-o", "addr", "show"]).output().ok()?;
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .find(|w| w.starts_with("192.168.99."))
                .map(|w| w.split('/').next().unwrap_or(w).to_string())
        })
    }

    /// Ends the client the way a user does (SIGINT → logout).
    pub fn disconnect(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.proc.child.id().to_string()]).status();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.proc.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("openconnect did not exit after SIGINT:\n{}", self.proc.log.text());
    }
}

/// A file server and a UDP echo server in the org namespace.
pub struct Org {
    pub http: Proc,
    pub udp: Proc,
    pub dir: PathBuf,
}

impl Org {
    pub fn start(t: &Topology) -> Self {
        let dir = t.dir.join("www");
        fs::create_dir_all(&dir).expect("www");
        fs::write(dir.join("index.html"), "<h1>org intranet</h1>\n").expect("page");
        let mut http = ns(&t.org(), "python3");
        http.args(["-m", "http.server", "--bind", ORG_IP, "8080", "--directory"]).arg(&dir);
        let http = Proc::spawn("org http", http);
        let mut udp = ns(&t.org(), "python3");
        udp.args([
            "-c",
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('10.99.0.2',9000))\nprint('ready',flush=True)\nwhile True:\n d,a=s.recvfrom(65535)\n print('from',a[0],flush=True)\n s.sendto(d,a)",
        ]);
        let udp = Proc::spawn("org udp echo", udp);
        udp.log.wait_for("ready", Duration::from_secs(10));
        wait_until("the org HTTP server", Duration::from_secs(10), || {
            Command::new("ip")
                .args(["netns", "exec", &t.org(), "curl", "-s", "-o", "/dev/null", &format!("http://{ORG_IP}:8080/")])
                .status()
                .ok()
                .filter(|s| s.success())
        });
        Self { http, udp, dir }
    }

    /// A random file of `mb` MiB served over HTTP; returns its sha256.
    pub fn file(&self, name: &str, mb: usize) -> String {
        let path = self.dir.join(name);
        run(Command::new("sh").arg("-c").arg(format!("head -c {}M /dev/urandom > {}", mb, path.display())));
        sha256(&path)
    }
}

/// The key pin of a PEM certificate as openconnect prints it
/// (`pin-sha256:` and the base64 SHA-256 of its SubjectPublicKeyInfo),
/// computed by OpenSSL, not by our own code.
pub fn spki_pin(cert: &Path) -> String {
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        cert.display()
    )));
    format!("pin-sha256:{}", String::from_utf8_lossy(&out.stdout).trim())
}

pub fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// Sends the file at `path` over one TCP connection from `namespace` to a
/// sink in the org namespace (port 9100) and returns the sha256 of what the
/// sink received.
pub fn tcp_upload_sha256(t: &Topology, namespace: &str, path: &Path) -> String {
    let mut sink = ns(&t.org(), "python3");
    sink.args([
        "-c",
        &format!(
            "import socket,hashlib\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{ORG_IP}',9100))\ns.listen(1)\nprint('ready',flush=True)\nc,_=s.accept()\nh=hashlib.sha256()\nwhile True:\n d=c.recv(1<<20)\n if not d: break\n h.update(d)\nprint('sha256',h.hexdigest(),flush=True)"
        ),
    ]);
    let sink = Proc::spawn("org tcp sink", sink);
    sink.log.wait_for("ready", Duration::from_secs(10));
    let send = format!(
        "import socket\ns=socket.create_connection(('{ORG_IP}',9100),timeout=60)\ns.sendall(open('{}','rb').read())\ns.close()",
        path.display()
    );
    run(ns(namespace, "python3").args(["-c", &send]));
    let line = sink.log.wait_for("sha256 ", Duration::from_secs(60));
    line.split_whitespace().last().unwrap_or_default().to_string()
}

/// Sends `count` datagrams to the org echo server from `namespace` and
/// returns how many came back identical.
pub fn udp_echo(namespace: &str, count: usize) -> usize {
    let script = format!(
        "import socket,os\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(2)\nok=0\nfor i in range({count}):\n d=os.urandom(100+i%1200)\n s.sendto(d,('{ORG_IP}',9000))\n try:\n  r,_=s.recvfrom(65535)\n  ok+=r==d\n except socket.timeout:\n  pass\nprint(ok)"
    );
    let out = run(ns(namespace, "python3").args(["-c", &script]));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}
