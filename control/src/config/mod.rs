//! The gateway's TOML configuration: parsed, checked, and turned into the
//! values the rest of the control plane uses. Every mistake names the field
//! and says how to fix it; `corridor gateway` exits with status 2 on one.
//! `config/gateway.example.toml` documents every field.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::ip::Ipv4Net;

pub use service::config::{secret, MIN_RELAY_TOKEN};
pub use service::ConfigError;

fn err(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
    ConfigError::new(field, problem, fix)
}

/// The file that documents every field, named in the fixes of type mistakes.
const EXAMPLE: &str = "config/gateway.example.toml";

mod effective;
mod files;
mod limits;
mod raw;
mod reload;
pub use files::{check_private, Disk, Files, Recorder, Replay};
pub use limits::{BanPoints, Limits};
use raw::*;
pub use raw::{MAX_VERIFY_QUEUE, MAX_VERIFY_THREADS};

/// A group: what its devices may reach and which routes they are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// What its devices may reach (`allowed`, less the gateway's addresses
    /// and the pool unless `client_to_client`), checked per packet by
    /// [`Policy::admit`](proto::grant::Policy::admit).
    pub policy: proto::grant::Policy,
    pub split_include: Vec<Ipv4Net>,
    pub split_exclude: Vec<Ipv4Net>,
    /// Per-app selection: the executables whose traffic may use the tunnel
    /// (sent to the device, which enforces it: `corridor connect`); `None`:
    /// every app (`apps = "all"`, the default).
    pub apps: Option<Vec<String>>,
    /// Trusted-network detection sent to the device (`trusted_url` and
    /// `trusted_pin`); `None`: none.
    pub trusted: Option<proto::connect::TrustedNetwork>,
}

/// `trusted_url` and `trusted_pin`: both or neither; an https URL and a
/// `pin-sha256:` pin of 32 bytes.
fn trusted(
    field: &dyn Fn(&str) -> String,
    url: &str,
    pin: &str,
) -> Result<Option<proto::connect::TrustedNetwork>, ConfigError> {
    match (url.is_empty(), pin.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => {
            return Err(err(
                &field("trusted_pin"),
                "missing",
                "set the pin-sha256: of the trusted URL's server key beside trusted_url",
            ))
        }
        (true, false) => {
            return Err(err(
                &field("trusted_url"),
                "missing",
                "set an https:// URL inside the organisation beside trusted_pin",
            ))
        }
        (false, false) => {}
    }
    if !url.starts_with("https://") || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(err(
            &field("trusted_url"),
            format!("`{url}` is not an https:// URL"),
            "write https://HOST[:PORT]/ of a server only reachable inside",
        ));
    }
    let Some(parsed) = service::pin::parse_pin(pin) else {
        return Err(err(
            &field("trusted_pin"),
            format!("`{pin}` is not a key pin"),
            "write pin-sha256: and the base64 SHA-256 of the server's SubjectPublicKeyInfo",
        ));
    };
    Ok(Some(proto::connect::TrustedNetwork {
        url: url.to_owned(),
        pin: format!("pin-sha256:{}", service::pin::pin_base64(&parsed)),
    }))
}

/// Per-app selection: `"all"` (or absent) → None; a list of absolute paths.
fn apps(field: &str, v: Option<&toml::Value>) -> Result<Option<Vec<String>>, ConfigError> {
    let fix =
        "write \"all\" (every app, the default) or a list of executables' absolute paths, e.g. [\"/usr/bin/ssh\"]";
    let list = match v {
        None => return Ok(None),
        Some(toml::Value::String(s)) if s == "all" => return Ok(None),
        Some(toml::Value::Array(a)) => a,
        Some(other) => return Err(err(field, format!("`{other}` is neither \"all\" nor a list"), fix)),
    };
    if list.is_empty() {
        return Err(err(field, "an empty list lets no app use the tunnel", fix));
    }
    let mut paths = Vec::with_capacity(list.len());
    for item in list {
        match item.as_str() {
            Some(p) if p.starts_with('/') && !p.chars().any(char::is_control) => paths.push(p.to_owned()),
            _ => return Err(err(field, format!("`{item}` is not an absolute path"), fix)),
        }
    }
    Ok(Some(paths))
}

/// Session timers (seconds on the wire, `Duration` here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub dpd: Duration,
    pub keepalive: Duration,
    /// `None`: no idle timeout.
    pub idle_timeout: Option<Duration>,
    pub session_timeout: Option<Duration>,
    /// How long a session (and its address) survives without a TLS
    /// connection, for openconnect's reconnect with the same cookie.
    pub cookie_grace: Duration,
    /// How long a login's session (and its address) waits for its first
    /// CONNECT.
    pub connect_grace: Duration,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server_name: String,
    pub listen: SocketAddr,
    /// `None`: DTLS off, CSTP only.
    pub dtls_port: Option<u16>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub banner: Option<String>,
    /// TLS connections held at once; more are closed at accept.
    pub max_connections: usize,
    /// The unprivileged user the network-facing process runs as
    /// (`[server] user`); see [`crate::sandbox`].
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub max_login_attempts: u32,
    /// Password verifier threads; 0 = automatic (half the cores, 1..=4).
    pub verify_threads: usize,
    /// Password checks that may wait for a verifier; more logins are
    /// answered "busy".
    pub verify_queue: usize,
    pub pool: Ipv4Net,
    /// The gateway's own address on the TUN: the pool's first host.
    pub gateway_address: Ipv4Addr,
    pub dns: Vec<Ipv4Addr>,
    pub default_domain: Option<String>,
    pub tun_name: String,
    pub link_mtu: u16,
    pub timers: Timers,
    pub shards: usize,
    pub pin_cores: bool,
    pub ring_entries: u32,
    /// Kernel offloads in the data plane (`[dataplane] offloads`).
    pub offloads: bool,
    /// The shards' I/O engine (`[dataplane] io`).
    pub io: dataplane::IoBackend,
    /// The TUN steering program (`[dataplane] steering`).
    pub steering: bool,
    /// The shards' batch-forming wait (`[dataplane] batch_wait_us`).
    pub batch_wait: Duration,
    pub groups: Vec<Group>,
    /// The first group, used when a user names none.
    pub default_group: Group,
    /// The admin HTTP endpoint (`/metrics`, `/healthz`), if enabled.
    pub admin_listen: Option<SocketAddr>,
    /// The `corridor ctl` unix socket (`[admin] ctl_socket`).
    pub ctl_socket: PathBuf,
    /// Relays to dial out to (`[[relay]]`).
    pub relays: Vec<crate::relay_link::RelayTarget>,
    /// Gateways sharing cookies and a pool (`[cluster]`).
    pub cluster: Option<crate::cluster::Cluster>,
    /// Brute-force and flood defences (`[limits]`).
    pub limits: Limits,
}

/// The gateway's own addresses that devices must not reach through the
/// tunnel ([`Policy::gateway`](proto::grant::Policy::gateway)): its TUN
/// address and the IPv4 addresses it listens on (a wildcard listen address
/// names none).
fn gateway_addresses(tun: Ipv4Addr, listen: SocketAddr, admin: Option<SocketAddr>) -> Vec<Ipv4Addr> {
    let mut out = vec![tun];
    for a in [Some(listen), admin].into_iter().flatten() {
        if let std::net::IpAddr::V4(v4) = a.ip() {
            if !v4.is_unspecified() && !out.contains(&v4) {
                out.push(v4);
            }
        }
    }
    out
}

fn nets(field: &str, v: &[String]) -> Result<Vec<Ipv4Net>, ConfigError> {
    v.iter()
        .map(|s| {
            s.parse::<Ipv4Net>().map_err(|e| err(field, format!("`{s}`: {e}"), "write networks as \"10.99.0.0/16\""))
        })
        .collect()
}

fn relays(
    raw: &[RawRelay],
    base: &Path,
    files: &dyn Files,
) -> Result<Vec<crate::relay_link::RelayTarget>, ConfigError> {
    if raw.len() > crate::relay_link::MAX_RELAYS {
        return Err(err(
            "relay",
            format!("{} [[relay]] entries", raw.len()),
            format!("use at most {}", crate::relay_link::MAX_RELAYS),
        ));
    }
    let mut out: Vec<crate::relay_link::RelayTarget> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let f = |k: &str| format!("relay[{i}].{k}");
        let address: SocketAddr = r.address.parse().map_err(|_| {
            err(
                &f("address"),
                format!("`{}` is not an address:port", r.address),
                "use the relay's gateway port, e.g. \"203.0.113.7:3101\"",
            )
        })?;
        let name_ok = !r.name.is_empty()
            && r.name.len() <= proto::relay::MAX_NAME
            && r.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !name_ok {
            return Err(err(
                &f("name"),
                format!("`{}` is not a DNS host name", r.name),
                "use the name devices connect to, e.g. \"vpn.example.com\"",
            ));
        }
        let from_file = match &r.token_file {
            Some(p) => {
                Some(files.read(&f("token_file"), &if p.is_relative() { base.join(p) } else { p.clone() }, true)?)
            }
            None => None,
        };
        if r.token.is_some() {
            tracing::warn!(
                field = %f("token"),
                "an inline relay token sits in the configuration file; move it to a token_file of mode 600"
            );
        }
        // A file's text (read through `files`, trimmed of its newline)
        // stands in for an inline token; both or neither is refused below.
        let (file, inline) = match (&from_file, &r.token) {
            (Some(text), None) => (None, Some(text.trim())),
            _ => (r.token_file.as_deref(), r.token.as_deref()),
        };
        let token = secret(
            &format!("relay[{i}]"),
            file,
            inline,
            base,
            MIN_RELAY_TOKEN,
            "the secret of this name on the relay (its [[gateway]] token_file)",
        )?;
        let trust = relay_trust(r, base, files, &f)?;
        let name = r.name.to_ascii_lowercase();
        if out.iter().any(|o| o.address == address && o.name == name) {
            return Err(err(
                &f("address"),
                format!("{address} with name `{name}` is listed twice"),
                "list each relay once",
            ));
        }
        out.push(crate::relay_link::RelayTarget { address, name, token, trust });
    }
    Ok(out)
}

/// How the gateway checks a relay's link certificate: `pin_sha256` and/or
/// `ca_file`, at least one.
fn relay_trust(
    r: &RawRelay,
    base: &Path,
    files: &dyn Files,
    f: &dyn Fn(&str) -> String,
) -> Result<crate::relay_link::RelayTrust, ConfigError> {
    let pin = match &r.pin_sha256 {
        Some(p) => Some(service::pin::parse_pin(p).ok_or_else(|| {
            err(
                &f("pin_sha256"),
                format!("`{p}` is not a SHA-256 pin"),
                "give the SPKI SHA-256 in base64 (44 characters, as the relay logs it: link_pin_sha256) or 64 hex digits",
            )
        })?),
        None => None,
    };
    let ca = match &r.ca_file {
        Some(file) => {
            let path = base.join(file);
            let text = files.read(&f("ca_file"), &path, false)?;
            crate::tls::certificates(&f("ca_file"), &path, text.as_bytes()).map_err(|e| ConfigError {
                fix: "give the PEM CA certificate that signed the relay's link certificate".into(),
                ..e
            })?
        }
        None => Vec::new(),
    };
    if pin.is_none() && ca.is_empty() {
        return Err(err(
            &f("pin_sha256"),
            "the relay's link certificate is not pinned",
            "set pin_sha256 to the pin the relay logs at start (link_pin_sha256), or ca_file to the CA of its link certificate",
        ));
    }
    let trust = crate::relay_link::RelayTrust { pin, ca };
    if let Err(e) = crate::relay_link::tls::client_config(SocketAddr::from(([0, 0, 0, 0], 0)), &trust) {
        return Err(err(&f("ca_file"), e.to_string(), "give a valid CA certificate"));
    }
    Ok(trust)
}

fn cluster(c: &RawCluster, base: &Path, files: &dyn Files) -> Result<crate::cluster::Cluster, ConfigError> {
    if c.nodes == 0 || c.nodes > 64 {
        return Err(err("cluster.nodes", format!("{}", c.nodes), "count the gateways that share the name: 1..=64"));
    }
    if c.node == 0 || c.node > c.nodes {
        return Err(err(
            "cluster.node",
            format!("{} of {}", c.node, c.nodes),
            format!("number the gateways 1..={} and give each its own", c.nodes),
        ));
    }
    let p = if c.secret_file.is_relative() { base.join(&c.secret_file) } else { c.secret_file.clone() };
    let secret = files.read("cluster.secret_file", &p, true)?.trim().as_bytes().to_vec();
    if secret.len() < 32 {
        return Err(err(
            "cluster.secret_file",
            format!("the secret has {} bytes", secret.len()),
            "use at least 32 random bytes, e.g. `openssl rand -hex 32`",
        ));
    }
    Ok(crate::cluster::Cluster { secret, node: c.node, nodes: c.nodes })
}

fn secs(v: u32) -> Option<Duration> {
    (v > 0).then(|| Duration::from_secs(u64::from(v)))
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, &Disk)
    }

    /// Reads and checks a configuration file, reaching it and every file it
    /// names through `files` (the keeper's recorder and the worker's replay
    /// on reload: [`Files`]).
    pub fn load_with(path: &Path, files: &dyn Files) -> Result<Self, ConfigError> {
        let text = files
            .read("(file)", path, false)
            .map_err(|e| ConfigError { fix: "pass an existing file with --config".into(), ..e })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_file_text(&text, base, files)
    }

    /// As [`Config::load`], with the configuration as it takes effect, as
    /// TOML: every field after its defaults, relative paths resolved, and
    /// secrets (relay tokens, the cluster secret) shown by where they come
    /// from, never by value. `corridor gateway --check-config` prints it.
    pub fn load_effective(path: &Path) -> Result<(Self, String), ConfigError> {
        let (text, base) = service::config::read(path)?;
        let config = Self::from_file_text(&text, base, &Disk)?;
        let raw: RawConfig = service::config::from_toml(&text, EXAMPLE)?;
        Ok((config, effective::effective(raw, base)?))
    }

    fn from_file_text(text: &str, base: &Path, files: &dyn Files) -> Result<Self, ConfigError> {
        let mut c = Self::parse_with(text, base, files)?;
        for p in [
            Some(&mut c.cert),
            Some(&mut c.key),
            c.password_file.as_mut(),
            c.client_ca.as_mut(),
            Some(&mut c.ctl_socket),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        c.check_files(files).map_err(|e| service::config::locate(text, e))?;
        Ok(c)
    }

    /// Parses and checks configuration text (paths are not checked here;
    /// relay token files are read relative to the working directory).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, Path::new("."), &Disk)
    }

    /// As [`Config::parse`], with the files it names relative to `base`,
    /// read through `files`. A mistake names its field and, where the file
    /// has it, its line.
    fn parse_with(text: &str, base: &Path, files: &dyn Files) -> Result<Self, ConfigError> {
        let raw: RawConfig = service::config::from_toml(text, EXAMPLE)?;
        Self::check(raw, base, files).map_err(|e| service::config::locate(text, e))
    }

    fn check(raw: RawConfig, base: &Path, files: &dyn Files) -> Result<Self, ConfigError> {
        let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
            err("server.listen", format!("`{}` is not an address:port", raw.server.listen), "use e.g. \"0.0.0.0:443\"")
        })?;
        let pool: Ipv4Net =
            raw.network.pool.parse().map_err(|e| {
                err("network.pool", format!("`{}`: {e}", raw.network.pool), "use e.g. \"192.168.99.0/24\"")
            })?;
        if !(8..=30).contains(&pool.prefix) {
            return Err(err(
                "network.pool",
                format!("prefix /{} is unusable", pool.prefix),
                "use a prefix between /8 and /30",
            ));
        }
        if pool.addr != pool.network() {
            return Err(err(
                "network.pool",
                format!("{} has host bits set", raw.network.pool),
                format!("use {}", pool),
            ));
        }
        let io = match raw.dataplane.io.as_str() {
            "auto" => dataplane::IoBackend::Auto,
            "io_uring" => dataplane::IoBackend::IoUring,
            "readiness" => dataplane::IoBackend::Readiness,
            other => {
                return Err(err(
                    "dataplane.io",
                    format!("`{other}` is not an I/O engine"),
                    "use \"auto\" (io_uring, else readiness), \"io_uring\" or \"readiness\"",
                ))
            }
        };
        if Duration::from_micros(u64::from(raw.dataplane.batch_wait_us)) > dataplane::MAX_BATCH_WAIT {
            return Err(err(
                "dataplane.batch_wait_us",
                format!("{} µs is longer than a batch may wait", raw.dataplane.batch_wait_us),
                "use 0 (no batching) to 1000",
            ));
        }
        let gateway_address = Ipv4Addr::from(u32::from(pool.network()) + 1);
        let dns = raw
            .network
            .dns
            .iter()
            .map(|s| {
                s.parse().map_err(|_| {
                    err("network.dns", format!("`{s}` is not an IPv4 address"), "list addresses like \"192.168.99.1\"")
                })
            })
            .collect::<Result<Vec<Ipv4Addr>, _>>()?;
        if !(1280..=9000).contains(&raw.network.link_mtu) {
            return Err(err(
                "network.link_mtu",
                format!("{} is out of range", raw.network.link_mtu),
                "use 1280..=9000 (1500 for Ethernet)",
            ));
        }
        service::sandbox::check_user("server.user", "gateway", &raw.server.user)?;
        if raw.server.max_connections == 0 {
            return Err(err("server.max_connections", "0", "allow at least 1 connection (10000 by default)"));
        }
        let t = &raw.timers;
        if t.dpd == 0 || t.dpd > 3600 {
            return Err(err("timers.dpd", format!("{} s", t.dpd), "use 1..=3600 seconds (90 is ocserv's default)"));
        }
        if t.keepalive == 0 {
            return Err(err("timers.keepalive", "0", "use a positive number of seconds (32400 by default)"));
        }
        let tun = &raw.network.tun_name;
        if tun.is_empty() || tun.len() > 15 || !tun.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(err("network.tun_name", format!("`{tun}`"), "use 1-15 characters of [A-Za-z0-9_-]"));
        }
        if raw.auth.password_file.is_none() && raw.auth.client_ca.is_none() {
            return Err(err("auth", "no login method", "set auth.password_file, auth.client_ca, or both"));
        }
        if raw.auth.verify_threads > MAX_VERIFY_THREADS {
            return Err(err(
                "auth.verify_threads",
                format!("{} threads", raw.auth.verify_threads),
                format!("use 1..={MAX_VERIFY_THREADS}, or 0 for half the cores (at most 4)"),
            ));
        }
        if !(1..=MAX_VERIFY_QUEUE).contains(&raw.auth.verify_queue) {
            return Err(err(
                "auth.verify_queue",
                format!("{} queued checks", raw.auth.verify_queue),
                format!("use 1..={MAX_VERIFY_QUEUE} (1024 by default)"),
            ));
        }
        let admin_listen = match &raw.admin.listen {
            Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
                err(
                    "admin.listen",
                    format!("`{a}` is not an address:port"),
                    "use e.g. \"127.0.0.1:9443\" (keep it off public addresses)",
                )
            })?),
            None => None,
        };
        if raw.admin.ctl_socket.as_os_str().is_empty() {
            return Err(err(
                "admin.ctl_socket",
                "empty",
                format!("leave it out for {}, or give the socket's path", crate::ctl::DEFAULT_SOCKET),
            ));
        }
        let gateway_addresses = gateway_addresses(gateway_address, listen, admin_listen);
        let mut groups = Vec::new();
        for (i, g) in raw.groups.iter().enumerate() {
            let f = |k: &str| format!("group[{i}].{k}");
            if g.name.is_empty() || groups.iter().any(|x: &Group| x.name == g.name) {
                return Err(err(
                    &f("name"),
                    format!("`{}` is empty or repeated", g.name),
                    "give every group a unique name",
                ));
            }
            let allowed = nets(&f("allowed"), &g.allowed)?;
            if allowed.is_empty() {
                return Err(err(
                    &f("allowed"),
                    "empty: the group could reach nothing",
                    "list the networks its devices may reach, e.g. [\"10.99.0.0/16\"]",
                ));
            }
            let client_to_client = match &g.client_to_client {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(other) => {
                    return Err(err(
                        &f("client_to_client"),
                        format!("`{other}` is not true or false"),
                        "write true (devices may reach each other and the gateway) or false (the default)",
                    ))
                }
            };
            groups.push(Group {
                name: g.name.clone(),
                policy: proto::grant::Policy {
                    allowed,
                    gateway: gateway_addresses.clone(),
                    pool: Some(pool),
                    client_to_client,
                },
                split_include: nets(&f("split_include"), &g.split_include)?,
                split_exclude: nets(&f("split_exclude"), &g.split_exclude)?,
                apps: apps(&f("apps"), g.apps.as_ref())?,
                trusted: trusted(&f, &g.trusted_url, &g.trusted_pin)?,
            });
        }
        let relays = relays(&raw.relays, base, files)?;
        let cluster = match &raw.cluster {
            Some(c) => Some(cluster(c, base, files)?),
            None => None,
        };
        // A cookie any node honours must end somewhere: without a session
        // timeout a cookie logged out at one node would live forever at the others.
        if cluster.is_some() && t.session_timeout == 0 {
            return Err(err(
                "timers.session_timeout",
                "0 (never) with [cluster]: other nodes would honour its cookies forever",
                "set a session timeout, e.g. 86400",
            ));
        }
        let limits = limits::limits(&raw.limits)?;
        let max_login_attempts = raw.auth.max_login_attempts();
        let Some(default_group) = groups.first().cloned() else {
            return Err(err("group", "no [[group]]", "add at least one [[group]] with a name and allowed networks"));
        };
        Ok(Self {
            server_name: raw.server.name,
            listen,
            dtls_port: (raw.server.dtls_port != 0).then_some(raw.server.dtls_port),
            cert: raw.server.cert,
            key: raw.server.key,
            banner: raw.server.banner,
            max_connections: raw.server.max_connections,
            user: raw.server.user,
            password_file: raw.auth.password_file,
            client_ca: raw.auth.client_ca,
            max_login_attempts,
            verify_threads: raw.auth.verify_threads,
            verify_queue: raw.auth.verify_queue,
            pool,
            gateway_address,
            dns,
            default_domain: raw.network.default_domain,
            tun_name: raw.network.tun_name,
            link_mtu: raw.network.link_mtu,
            timers: Timers {
                dpd: Duration::from_secs(u64::from(t.dpd)),
                keepalive: Duration::from_secs(u64::from(t.keepalive)),
                idle_timeout: secs(t.idle_timeout),
                session_timeout: secs(t.session_timeout),
                cookie_grace: Duration::from_secs(u64::from(t.cookie_grace)),
                connect_grace: Duration::from_secs(u64::from(t.connect_grace)),
            },
            shards: raw.dataplane.shards,
            pin_cores: raw.dataplane.pin_cores,
            ring_entries: raw.dataplane.ring_entries,
            offloads: raw.dataplane.offloads,
            io,
            steering: raw.dataplane.steering,
            batch_wait: Duration::from_micros(u64::from(raw.dataplane.batch_wait_us)),
            groups,
            default_group,
            admin_listen,
            ctl_socket: raw.admin.ctl_socket,
            relays,
            cluster,
            limits,
        })
    }

    fn check_files(&self, files: &dyn Files) -> Result<(), ConfigError> {
        files.check("server.cert", &self.cert, false)?;
        files.check("server.key", &self.key, true)?;
        if let Some(p) = &self.password_file {
            files.check("auth.password_file", p, true)?;
        }
        if let Some(p) = &self.client_ca {
            files.check("auth.client_ca", p, false)?;
        }
        crate::admin::socket::check_path(&self.ctl_socket)
    }

    /// The group `name` names, or the first one (the default) when it names
    /// none. `None` for a name no `[[group]]` has: never the default's
    /// access for a group that was mistyped or removed.
    pub fn group(&self, name: Option<&str>) -> Option<&Group> {
        match name {
            None => Some(&self.default_group),
            Some(n) => self.groups.iter().find(|g| g.name == n),
        }
    }

    /// Every password-file user whose group no `[[group]]` defines, as
    /// one mistake (`corridor gateway --check-config` fails on it; at run
    /// time such a user's logins are refused).
    pub fn check_password_groups(&self, file: &crate::passwd::PasswordFile) -> Result<(), ConfigError> {
        let bad: Vec<String> = file
            .entries()
            .filter_map(|e| {
                let g = e.group.as_deref()?;
                self.group(Some(g)).is_none().then(|| format!("{} (group `{g}`)", e.user))
            })
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        Err(err(
            "auth.password_file",
            format!("users name groups no [[group]] defines: {}", bad.join(", ")),
            "add those [[group]]s, or move the users with `corridor passwd --group NAME`",
        ))
    }
}

#[cfg(test)]
mod tests;
