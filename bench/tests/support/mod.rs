//! A namespace topology (device, gateway, org) with the real `corridor`
//! gateway and `corridor bench reflect`, after the device crate's harness
//! in `device/tests/support/mod.rs`. Teardown happens in `Drop`, also on panic.

#![allow(dead_code, unreachable_pub, missing_debug_implementations)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const GATEWAY_IP: &str = "10.10.0.1";
pub const ORG_IP: &str = "10.99.0.2";
pub const PASSWORD: &str = "correct horse battery staple";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/<profile>`, from this test binary's own path (`…/deps/test-hash`).
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).expect("test binary lives in target/<profile>/deps")
}

/// The `corridor` gateway binary; it is not a dependency of this crate, so
/// it must have been built first.
pub fn corridor_bin() -> PathBuf {
    let candidates = [target_profile_dir().join("corridor"), repo().join("target/debug/corridor")];
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!("the corridor gateway binary is missing (looked at {candidates:?}): run `cargo build -p corridor` first")
    })
}

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

pub fn ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

/// Lines a background process printed.
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

pub struct Topology {
    pub prefix: String,
    pub dir: PathBuf,
}

impl Topology {
    pub fn up() -> Self {
        let prefix = format!("ld{}x", std::process::id() % 100_000);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&prefix);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("tmpdir");
        run(Command::new("bash").arg(repo().join("scripts/topology.sh")).args(["up", &prefix]));
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
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo().join("scripts/topology.sh")).args(["down", &self.prefix]).output();
    }
}

/// A background process, killed on drop; its log is printed on panic.
pub struct Proc {
    pub child: Child,
    pub log: Log,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let log = Log::default();
        if let Some(o) = child.stdout.take() {
            log.follow(o);
        }
        if let Some(e) = child.stderr.take() {
            log.follow(e);
        }
        Self { child, log, name: name.into() }
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

/// `corridor gateway` in the gateway namespace, user alice, DTLS on.
pub fn start_gateway(t: &Topology) -> Proc {
    let bin = corridor_bin();
    let passwd = t.dir.join("passwd");
    // One shared user: the gateway allows many sessions per user.
    let mut p = Command::new(&bin)
        .args(["passwd", "--iterations", "1000", "--file"])
        .arg(&passwd)
        .arg("alice")
        .stdin(Stdio::piped())
        .spawn()
        .expect("corridor passwd");
    p.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("write");
    assert!(p.wait().expect("wait").success());
    let config = format!(
        r#"[server]
listen = "{GATEWAY_IP}:443"
dtls_port = 443
cert = "server.crt"
key = "server.key"
[auth]
password_file = "passwd"
[network]
pool = "192.168.99.0/24"
tun_name = "cor0"
[timers]
dpd = 30
idle_timeout = 1200
cookie_grace = 60
[dataplane]
shards = 1
pin_cores = false
[admin]
listen = "127.0.0.1:9443"
[[group]]
name = "default"
allowed = ["10.99.0.0/24"]
split_include = ["10.99.0.0/24"]
"#
    );
    let path = t.dir.join("gateway.toml");
    fs::write(&path, config).expect("config");
    let mut cmd = ns(&t.gateway(), &bin);
    cmd.args(["gateway", "--config"]).arg(&path).env("RUST_LOG", "info");
    let proc = Proc::spawn("corridor gateway", cmd);
    proc.log.wait_for("gateway started", Duration::from_secs(10));
    proc
}

/// `corridor bench reflect` at ORG_IP:9000 in the org namespace.
pub fn start_reflector(t: &Topology) -> Proc {
    let mut cmd = ns(&t.org(), corridor_bin());
    cmd.args(["bench", "reflect", "--listen", &format!("{ORG_IP}:9000")]);
    let p = Proc::spawn("corridor bench reflect", cmd);
    p.log.wait_for("reflecting on", Duration::from_secs(10));
    p
}
