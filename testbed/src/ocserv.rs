//! Debian's ocserv beside the gateway: the peer corridor is measured
//! against, started and stopped by `scripts/ocserv-peer.sh`.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{repo, require, Topology, PASSWORD};

/// How users log in to an [`Ocserv`] (`OCSERV_PEER_AUTH` of
/// `scripts/ocserv-peer.sh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcservAuth {
    /// `alice` with [`PASSWORD`] (`plain[passwd=…]`).
    Password,
    /// A client certificate signed by the topology's `ca.crt` and nothing
    /// else (`auth = "certificate"`); the user name is the certificate's CN
    /// (`carol` for the topology's `client.crt`).
    Certificate,
}

impl OcservAuth {
    fn knob(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Certificate => "certificate",
        }
    }
}

/// Debian's ocserv 1.1.6 in the gateway namespace, started by
/// `scripts/ocserv-peer.sh`: the same address (`GATEWAY_IP`, TCP and UDP
/// 443), certificates, pool (192.168.99.0/24) and org route as a [`Gateway`],
/// password login for `alice` with [`PASSWORD`] (or certificate login, see
/// [`Ocserv::start_with`]), DTLS-PSK offered. Stopped on drop (before the
/// [`Topology`] goes, if declared after it).
pub struct Ocserv {
    /// ocserv.conf, ocpasswd, its socket and pid files, ocserv.log.
    pub rundir: PathBuf,
    pub ns: String,
}

impl Ocserv {
    /// Password login ([`OcservAuth::Password`]). Returns once ocserv
    /// listens; panics with its log if it does not.
    pub fn start(t: &Topology) -> Self {
        Self::start_with(t, OcservAuth::Password)
    }

    /// Returns once ocserv listens with `auth` as its login; panics with its
    /// log if it does not.
    pub fn start_with(t: &Topology, auth: OcservAuth) -> Self {
        for tool in ["ocserv", "ocpasswd", "runuser", "ss"] {
            require(tool);
        }
        // ocserv's workers run as `nobody` and connect to a socket in the
        // run directory, so every directory above it must be searchable by
        // them: a checkout under /root is not. /tmp always is.
        let rundir = std::env::temp_dir().join(format!("corridor-ocserv-{}", t.prefix));
        let _ = fs::remove_dir_all(&rundir);
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("scripts/ocserv-peer.sh"))
            .args(["start", &t.prefix])
            .arg(&t.dir)
            .arg(&rundir)
            .env("OCSERV_PEER_DEBUG", "2")
            .env("OCSERV_PEER_AUTH", auth.knob())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("scripts/ocserv-peer.sh");
        if let Some(mut stdin) = child.stdin.take() {
            if auth == OcservAuth::Password {
                stdin.write_all(format!("{PASSWORD}\n").as_bytes()).expect("password to ocserv-peer.sh");
            }
        }
        let out = child.wait_with_output().expect("scripts/ocserv-peer.sh");
        let this = Self { rundir, ns: t.gateway() };
        assert!(
            out.status.success(),
            "ocserv did not start ({}):\n{}\n{}\nlog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            this.log()
        );
        eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim_end());
        this
    }

    /// What ocserv logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.rundir.join("ocserv.log")).unwrap_or_default()
    }

    /// Waits until a log line contains `needle`; panics with the log otherwise.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(l) = log.lines().find(|l| l.contains(needle)) {
                return l.to_string();
            }
            assert!(Instant::now() < end, "no line containing {needle:?} in ocserv.log within {timeout:?}:\n{log}");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Ocserv {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo().join("scripts/ocserv-peer.sh")).arg("stop").arg(&self.rundir).output();
        if thread::panicking() {
            eprintln!("----- ocserv log -----\n{}\n-----", self.log());
        }
        let _ = fs::remove_dir_all(&self.rundir);
    }
}
