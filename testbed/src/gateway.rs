//! `corridor gateway` in a test's gateway namespace: its configuration,
//! its admin endpoint (`/metrics`) and its ctl socket (`corridor ctl`).

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{config, corridor_bin, ns, run, write_private, Proc, Topology};
use crate::{CLUSTER_SECRET, GATEWAY_IP, PASSWORD, RELAY_TOKEN};

/// Settings a test may change in the gateway's configuration
/// ([`config::gateway_config`] writes it from `scripts/lib/gateway.toml.in`).
#[derive(Clone)]
pub struct GatewayOptions {
    pub dtls: bool,
    pub idle_timeout: u32,
    pub client_ca: bool,
    pub allowed: Vec<String>,
    pub shards: usize,
    pub dpd: u32,
    /// `[dataplane] offloads`.
    pub offloads: bool,
    /// Relayed topology: which gateway (1 or 2) this is; it listens on its
    /// relay-side address and dials the [`Relay`] (`[[relay]]`). 0: direct.
    pub relayed: u8,
    /// Relayed gateways 1 and 2 as one `[cluster]`: shared cookies, split pool.
    pub cluster: bool,
    /// The `[limits]` of a gateway under `corridor bench` (one user logging
    /// in many times from one address): no session cap, no login pace.
    pub load_generator: bool,
    /// `[[group]] client_to_client` (left out, the default false, when unset).
    pub client_to_client: bool,
    /// `[admin] listen`; [`Gateway::admin`] asks 127.0.0.1:9443, which a
    /// wildcard address covers too.
    pub admin_listen: String,
    /// The test-only fault hook: this shard panics on its first
    /// authorisation (`CORRIDOR_TEST_SHARD_FAULT`).
    pub shard_fault: Option<u16>,
    /// `[admin] ctl_socket`, relative to the topology directory; empty:
    /// `NAME.ctl.sock` beside the gateway's `NAME.toml`.
    pub ctl_socket: String,
    /// `[[relay]] pin_sha256`; empty: the topology's `relay-link.pin`
    /// (scripts/certs.sh), read by [`Gateway::start`].
    pub relay_pin: String,
    /// Where the gateway dials its relay, when not the relay itself (a
    /// proxy in the way); `address:port`.
    pub relay_via: Option<String>,
    /// `[log] format = "json"` (text when false).
    pub log_json: bool,
    /// The group pushes no split-include routes: devices send everything.
    pub full_tunnel: bool,
    /// `[[group]] apps`: empty for "all".
    pub apps: Vec<String>,
    /// `[[group]] trusted_url` and `trusted_pin`.
    pub trusted: Option<(String, String)>,
    /// `[network] dns` and `default_domain` pushed to devices.
    pub dns: Vec<String>,
    pub default_domain: String,
    /// `[timers] session_timeout`; `None`: the gateway's default.
    pub session_timeout: Option<u32>,
    /// `[timers] cookie_grace`.
    pub cookie_grace: u32,
    /// More environment variables (a service manager's `NOTIFY_SOCKET`,
    /// `WATCHDOG_USEC`).
    pub env: Vec<(String, String)>,
    /// A command the gateway runs under (`setpriv --bounding-set ... --`);
    /// empty: none.
    pub under: Vec<String>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            dtls: true,
            idle_timeout: 1200,
            client_ca: true,
            allowed: vec!["10.99.0.0/24".into()],
            shards: 2,
            dpd: 30,
            offloads: true,
            relayed: 0,
            cluster: false,
            load_generator: false,
            client_to_client: false,
            admin_listen: "127.0.0.1:9443".into(),
            shard_fault: None,
            ctl_socket: String::new(),
            relay_pin: String::new(),
            relay_via: None,
            log_json: false,
            full_tunnel: false,
            apps: Vec::new(),
            trusted: None,
            dns: Vec::new(),
            default_domain: String::new(),
            session_timeout: None,
            cookie_grace: 60,
            env: Vec::new(),
            under: Vec::new(),
        }
    }
}

pub struct Gateway {
    pub proc: Proc,
    pub ns: String,
    /// The address it listens on (TCP 443), in its namespace.
    pub listen: String,
    /// Its `[admin] ctl_socket`, for [`Gateway::ctl`].
    pub ctl_socket: PathBuf,
}

impl Gateway {
    pub fn start(t: &Topology, o: &GatewayOptions) -> Self {
        let passwd = t.dir.join("passwd");
        for user in ["alice", "bob"] {
            let mut p = Command::new(corridor_bin())
                .args(["passwd", "--iterations", "1000", "--file"])
                .arg(&passwd)
                .arg(user)
                .stdin(Stdio::piped())
                .spawn()
                .expect("corridor passwd");
            p.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("write");
            assert!(p.wait().expect("wait").success());
        }
        let (listen, namespace, file) = match o.relayed {
            0 => (GATEWAY_IP.to_owned(), t.gateway(), "gateway.toml".to_owned()),
            n => (
                format!("10.20.0.{}", n + 1),
                if n == 1 { t.gateway() } else { t.gateway2() },
                format!("gateway{n}.toml"),
            ),
        };
        // Secrets readable by their owner only: the gateway refuses others.
        if o.relayed != 0 {
            write_private(&t.dir.join("relay.token"), RELAY_TOKEN);
        }
        if o.cluster {
            write_private(&t.dir.join("cluster.key"), CLUSTER_SECRET);
        }
        let mut o = o.clone();
        if o.relayed != 0 && o.relay_pin.is_empty() {
            o.relay_pin = fs::read_to_string(t.dir.join("relay-link.pin")).expect("relay-link.pin").trim().to_owned();
        }
        if o.ctl_socket.is_empty() {
            o.ctl_socket = file.replace(".toml", ".ctl.sock");
        }
        let ctl_socket = t.dir.join(&o.ctl_socket);
        let path = t.dir.join(file);
        fs::write(&path, config::gateway_config(&o, &listen)).expect("config");
        let mut cmd = match o.under.split_first() {
            Some((program, args)) => {
                let mut c = ns(&namespace, program);
                c.args(args).arg(corridor_bin());
                c
            }
            None => ns(&namespace, corridor_bin()),
        };
        cmd.args(["gateway", "--config"]).arg(&path).env("RUST_LOG", "info");
        cmd.envs(o.env.iter().map(|(k, v)| (k, v)));
        if let Some(shard) = o.shard_fault {
            cmd.env("CORRIDOR_TEST_SHARD_FAULT", shard.to_string());
        }
        let proc = Proc::spawn(&format!("corridor gateway ({namespace})"), cmd);
        // The last start-up line: the worker is confined and serving.
        proc.log.wait_for("privileges dropped", Duration::from_secs(10));
        Self { proc, ns: namespace, listen, ctl_socket }
    }

    /// The admin endpoint, from inside the gateway namespace.
    pub fn admin(&self, method: &str, path: &str) -> String {
        let out = run(ns(&self.ns, "curl").args(["-sS", "-X", method, &format!("http://127.0.0.1:9443{path}")]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sum of a counter over all its label sets.
    pub fn metric(&self, name: &str) -> u64 {
        self.metric_with(name, &[])
    }

    /// Sum of a counter over the label sets that carry every
    /// `(label, value)` of `filter`: `metric_with("corridor_shard_drops_total",
    /// &[("reason", "policy")])`.
    pub fn metric_with(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        crate::metrics::sum(&self.admin("GET", "/metrics"), name, filter)
    }

    /// `corridor ctl --socket SOCKET --json ARGS...`: its exit status and
    /// the JSON it printed (it prints JSON whatever happens).
    pub fn ctl(&self, args: &[&str]) -> (i32, Value) {
        let out = Command::new(corridor_bin())
            .arg("ctl")
            .arg("--socket")
            .arg(&self.ctl_socket)
            .arg("--json")
            .args(args)
            .output()
            .expect("corridor ctl");
        let text = String::from_utf8_lossy(&out.stdout);
        let json = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("corridor ctl {args:?} printed no JSON ({e}):\n{text}\n{}", String::from_utf8_lossy(&out.stderr))
        });
        (out.status.code().unwrap_or(-1), json)
    }

    /// `corridor ctl ARGS...`, which must succeed: its JSON.
    pub fn ctl_ok(&self, args: &[&str]) -> Value {
        let (code, json) = self.ctl(args);
        assert_eq!(code, 0, "corridor ctl {args:?}: {json}");
        json
    }

    /// Every session, as `corridor ctl --json sessions` lists them.
    pub fn sessions(&self) -> Vec<Value> {
        match self.ctl_ok(&["sessions"]).get_mut("sessions").map(Value::take) {
            Some(Value::Array(list)) => list,
            other => panic!("no session list: {other:?}"),
        }
    }

    /// The session of `user`, if it has one.
    pub fn session_of(&self, user: &str) -> Option<Value> {
        self.sessions().into_iter().find(|s| s["user"] == user)
    }
}
