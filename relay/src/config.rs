//! The relay's TOML configuration, checked field by field: every mistake
//! names the field and the fix (`config/relay.example.toml` documents them).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A configuration mistake: which field, what is wrong, how to fix it
/// (the gateway's type: both say it the same way).
pub use service::ConfigError;

fn err(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
    ConfigError::new(field, problem, fix)
}

/// The file that documents every field, named in the fixes of type mistakes.
const EXAMPLE: &str = "config/relay.example.toml";

/// The shortest gateway token: 128 bits of secret.
pub const MIN_TOKEN_LEN: usize = service::config::MIN_RELAY_TOKEN;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    relay: RawRelay,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default, rename = "gateway")]
    gateways: Vec<RawGateway>,
    gateway_link: Option<RawGatewayLink>,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    log: service::log::RawLog,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawGatewayLink {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    listen: String,
    #[serde(default = "d_dtls_port")]
    dtls_port: u16,
    gateway_listen: String,
    #[serde(default)]
    default_name: Option<String>,
    #[serde(default = "d_user")]
    user: String,
}

fn d_dtls_port() -> u16 {
    443
}

fn d_user() -> String {
    service::sandbox::DEFAULT_USER.into()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default = "d_max_connections")]
    max_connections: usize,
    #[serde(default = "d_per_source")]
    max_connections_per_source: usize,
    #[serde(default = "d_pending_streams")]
    max_pending_streams: usize,
    #[serde(default = "d_ten")]
    hello_timeout: u32,
    #[serde(default = "d_ten")]
    attach_timeout: u32,
    #[serde(default = "d_max_flows")]
    max_flows: usize,
    #[serde(default = "d_pending_flows")]
    max_pending_flows: usize,
    #[serde(default = "d_flow_idle")]
    flow_idle_timeout: u32,
    #[serde(default = "d_link_timeout")]
    link_timeout: u32,
    #[serde(default = "d_unauthenticated")]
    max_unauthenticated: usize,
    #[serde(default = "d_unauthenticated_per_source")]
    max_unauthenticated_per_source: usize,
    #[serde(default = "d_ten")]
    auth_timeout: u32,
    #[serde(default = "d_flows_per_source")]
    max_flows_per_source: usize,
    #[serde(default = "d_flows_per_app_id")]
    max_flows_per_app_id: usize,
    #[serde(default = "d_revocations_per_name")]
    max_revocations_per_name: usize,
}

fn d_max_connections() -> usize {
    10_000
}
fn d_per_source() -> usize {
    64
}
fn d_pending_streams() -> usize {
    1024
}
fn d_ten() -> u32 {
    10
}
fn d_max_flows() -> usize {
    10_000
}
fn d_pending_flows() -> usize {
    1024
}
fn d_flow_idle() -> u32 {
    180
}
fn d_link_timeout() -> u32 {
    30
}
fn d_unauthenticated() -> usize {
    1024
}
fn d_unauthenticated_per_source() -> usize {
    64
}
fn d_flows_per_source() -> usize {
    64
}
fn d_flows_per_app_id() -> usize {
    4
}
fn d_revocations_per_name() -> usize {
    service::revocations::DEFAULT_CAP
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_connections: d_max_connections(),
            max_connections_per_source: d_per_source(),
            max_pending_streams: d_pending_streams(),
            hello_timeout: d_ten(),
            attach_timeout: d_ten(),
            max_flows: d_max_flows(),
            max_pending_flows: d_pending_flows(),
            flow_idle_timeout: d_flow_idle(),
            link_timeout: d_link_timeout(),
            max_unauthenticated: d_unauthenticated(),
            max_unauthenticated_per_source: d_unauthenticated_per_source(),
            auth_timeout: d_ten(),
            max_flows_per_source: d_flows_per_source(),
            max_flows_per_app_id: d_flows_per_app_id(),
            max_revocations_per_name: d_revocations_per_name(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    name: String,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    #[serde(default)]
    listen: Option<String>,
}

/// Limits that keep one source or one slow gateway from using up the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Device TCP connections held at once; more are closed at accept.
    pub max_connections: usize,
    /// Device TCP connections from one IP address at once.
    pub max_connections_per_source: usize,
    /// Device streams whose gateway has not attached yet.
    pub max_pending_streams: usize,
    /// How long a device has to send its ClientHello.
    pub hello_timeout: Duration,
    /// How long a gateway has to attach a stream it was asked to open.
    pub attach_timeout: Duration,
    /// UDP flows (one relay port per device DTLS flow).
    pub max_flows: usize,
    /// Flows whose gateway has not bound them yet.
    pub max_pending_flows: usize,
    /// A flow with no datagram either way for this long is closed.
    pub flow_idle_timeout: Duration,
    /// A gateway link silent for this long is dead (pings go every third of it).
    pub link_timeout: Duration,
    /// Gateway-port connections not yet authenticated (not yet identified
    /// as a stream, or a link before its Welcome); more are closed at accept.
    pub max_unauthenticated: usize,
    /// The same, from one IP address.
    pub max_unauthenticated_per_source: usize,
    /// How long a gateway-port connection has, from accept, to attach as a
    /// stream or to authenticate as a link.
    pub auth_timeout: Duration,
    /// UDP flows for devices at one IP address.
    pub max_flows_per_source: usize,
    /// UDP flows for one App-ID (one device session; a new port after a
    /// NAT rebinding is a new flow until the old one idles out).
    pub max_flows_per_app_id: usize,
    /// Cookie revocations held for one gateway name; a full list drops
    /// the one that expires first.
    pub max_revocations_per_name: usize,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Devices' TLS (TCP) listener.
    pub listen: SocketAddr,
    /// Devices' DTLS (UDP) port on `listen`'s address; `None`: no DTLS relaying.
    pub dtls_port: Option<u16>,
    /// Where gateways dial in (TCP).
    pub gateway_listen: SocketAddr,
    /// The name a ClientHello without SNI is routed by.
    pub default_name: Option<String>,
    /// Gateway names (lowercase) and the token their gateways prove.
    pub tokens: HashMap<String, Vec<u8>>,
    pub limits: Limits,
    pub admin_listen: Option<SocketAddr>,
    /// The link's TLS certificate chain and key (`[gateway_link]`), PEM,
    /// loaded at start ([`crate::driver::link_tls`]).
    pub link_cert: PathBuf,
    pub link_key: PathBuf,
    /// The unprivileged user the relay switches to once its sockets and
    /// link key are loaded (`[relay] user`); see [`crate::sandbox`].
    pub user: String,
}

fn addr(field: &str, v: &str, example: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| err(field, format!("`{v}` is not an address:port"), format!("use e.g. \"{example}\"")))
}

fn positive(field: &str, v: u32, default: u32) -> Result<Duration, ConfigError> {
    if v == 0 || v > 86_400 {
        return Err(err(field, format!("{v} s"), format!("use 1..=86400 seconds ({default} by default)")));
    }
    Ok(Duration::from_secs(u64::from(v)))
}

fn at_least_one(field: &str, v: usize, default: usize) -> Result<usize, ConfigError> {
    if v == 0 {
        return Err(err(field, "0", format!("allow at least 1 ({default} by default)")));
    }
    Ok(v)
}

/// A gateway name as devices put it in SNI: a DNS host name, compared lowercased.
fn check_name(field: &str, name: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= proto::relay::MAX_NAME
        && !name.ends_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !ok {
        return Err(err(
            field,
            format!("`{name}` is not a DNS host name"),
            "use the name devices connect to, e.g. \"vpn.example.com\"",
        ));
    }
    Ok(name.to_ascii_lowercase())
}

impl Config {
    /// Reads and checks a configuration file; token files are relative to it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (text, base) = service::config::read(path)?;
        Self::parse_in(&text, base)
    }

    /// As [`Config::load`], with the configuration as it takes effect, as
    /// TOML: every field after its defaults, the link certificate's paths
    /// resolved, and gateway tokens shown by where they come from, never
    /// by value. `corridor relay --check-config` prints it.
    pub fn load_effective(path: &Path) -> Result<(Self, String), ConfigError> {
        let (text, base) = service::config::read(path)?;
        let config = Self::parse_in(&text, base)?;
        let mut raw: Raw = service::config::from_toml(&text, EXAMPLE)?;
        if let Some(link) = &mut raw.gateway_link {
            link.cert = base.join(&link.cert);
            link.key = base.join(&link.key);
        }
        let effective = service::config::effective_toml(&raw, |table| {
            if let Some(toml::Value::Array(gateways)) = table.get_mut("gateway") {
                for g in gateways.iter_mut().filter_map(toml::Value::as_table_mut) {
                    service::config::redact_secret(g, "token_file", "token", base);
                }
            }
        })?;
        Ok((config, effective))
    }

    /// Parses configuration text; `base` is where relative token and
    /// certificate files are. A mistake names its field and, where the
    /// file has it, its line.
    pub fn parse_in(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: Raw = service::config::from_toml(text, EXAMPLE)?;
        Self::check(&raw, base).map_err(|e| service::config::locate(text, e))
    }

    fn check(raw: &Raw, base: &Path) -> Result<Self, ConfigError> {
        let listen = addr("relay.listen", &raw.relay.listen, "0.0.0.0:443")?;
        let gateway_listen = addr("relay.gateway_listen", &raw.relay.gateway_listen, "0.0.0.0:3101")?;
        if gateway_listen == listen {
            return Err(err(
                "relay.gateway_listen",
                "the same address as relay.listen",
                "gateways dial another port, 3101 by default",
            ));
        }
        service::sandbox::check_user("relay.user", "relay", &raw.relay.user)?;
        let default_name = match &raw.relay.default_name {
            Some(n) => Some(check_name("relay.default_name", n)?),
            None => None,
        };
        let mut tokens = HashMap::new();
        for (i, g) in raw.gateways.iter().enumerate() {
            let f = |k: &str| format!("gateway[{i}].{k}");
            let name = check_name(&f("name"), &g.name)?;
            let token = service::config::secret(
                &format!("gateway[{i}]"),
                g.token_file.as_deref(),
                g.token.as_deref(),
                base,
                MIN_TOKEN_LEN,
                "a file holding the secret the gateways of this name share",
            )?;
            if tokens.insert(name.clone(), token).is_some() {
                return Err(err(
                    &f("name"),
                    format!("`{name}` is listed twice"),
                    "list each name once; every gateway of that name uses its token",
                ));
            }
        }
        if tokens.is_empty() {
            return Err(err(
                "gateway",
                "no [[gateway]]",
                "add a [[gateway]] with the name devices ask for and a token_file",
            ));
        }
        if let Some(n) = &default_name {
            if !tokens.contains_key(n) {
                return Err(err(
                    "relay.default_name",
                    format!("`{n}` is no [[gateway]] name"),
                    "name one of the [[gateway]] entries",
                ));
            }
        }
        let l = &raw.limits;
        let limits = Limits {
            max_connections: at_least_one("limits.max_connections", l.max_connections, d_max_connections())?,
            max_connections_per_source: at_least_one(
                "limits.max_connections_per_source",
                l.max_connections_per_source,
                d_per_source(),
            )?,
            max_pending_streams: at_least_one(
                "limits.max_pending_streams",
                l.max_pending_streams,
                d_pending_streams(),
            )?,
            hello_timeout: positive("limits.hello_timeout", l.hello_timeout, d_ten())?,
            attach_timeout: positive("limits.attach_timeout", l.attach_timeout, d_ten())?,
            max_flows: at_least_one("limits.max_flows", l.max_flows, d_max_flows())?,
            max_pending_flows: at_least_one("limits.max_pending_flows", l.max_pending_flows, d_pending_flows())?,
            flow_idle_timeout: positive("limits.flow_idle_timeout", l.flow_idle_timeout, d_flow_idle())?,
            link_timeout: positive("limits.link_timeout", l.link_timeout, d_link_timeout())?,
            max_unauthenticated: at_least_one(
                "limits.max_unauthenticated",
                l.max_unauthenticated,
                d_unauthenticated(),
            )?,
            max_unauthenticated_per_source: at_least_one(
                "limits.max_unauthenticated_per_source",
                l.max_unauthenticated_per_source,
                d_unauthenticated_per_source(),
            )?,
            auth_timeout: positive("limits.auth_timeout", l.auth_timeout, d_ten())?,
            max_flows_per_source: at_least_one(
                "limits.max_flows_per_source",
                l.max_flows_per_source,
                d_flows_per_source(),
            )?,
            max_flows_per_app_id: at_least_one(
                "limits.max_flows_per_app_id",
                l.max_flows_per_app_id,
                d_flows_per_app_id(),
            )?,
            max_revocations_per_name: at_least_one(
                "limits.max_revocations_per_name",
                l.max_revocations_per_name,
                d_revocations_per_name(),
            )?,
        };
        if limits.link_timeout < Duration::from_secs(3) {
            return Err(err("limits.link_timeout", "under 3 s", "use at least 3 seconds (30 by default)"));
        }
        let admin_listen = match &raw.admin.listen {
            Some(a) => Some(addr("admin.listen", a, "127.0.0.1:9101")?),
            None => None,
        };
        let Some(link) = &raw.gateway_link else {
            return Err(err(
                "gateway_link",
                "missing: gateway links run over TLS and need the relay's certificate",
                "add [gateway_link] cert = \"relay-link.crt\" and key = \"relay-link.key\" (PEM); \
                 the gateways pin its key (the relay logs the pin at start)",
            ));
        };
        Ok(Self {
            listen,
            dtls_port: (raw.relay.dtls_port != 0).then_some(raw.relay.dtls_port),
            gateway_listen,
            default_name,
            tokens,
            limits,
            admin_listen,
            link_cert: base.join(&link.cert),
            link_key: base.join(&link.key),
            user: raw.relay.user.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[relay]
listen = "0.0.0.0:443"
gateway_listen = "0.0.0.0:3101"
[[gateway]]
name = "VPN.example.test"
token = "0123456789abcdef0123"
[gateway_link]
cert = "link.crt"
key = "link.key"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_in(text, Path::new("."))
    }

    #[test]
    fn a_good_config_gets_defaults() {
        let c = parse(GOOD).expect("valid");
        assert_eq!(c.dtls_port, Some(443));
        assert!(c.tokens.contains_key("vpn.example.test"), "names are lowercased");
        assert_eq!(c.limits.max_connections_per_source, 64);
        assert_eq!(c.limits.flow_idle_timeout, Duration::from_secs(180));
        assert_eq!(c.limits.auth_timeout, Duration::from_secs(10));
        assert_eq!((c.limits.max_unauthenticated, c.limits.max_unauthenticated_per_source), (1024, 64));
        assert_eq!((c.limits.max_flows_per_source, c.limits.max_flows_per_app_id), (64, 4));
        assert_eq!(c.limits.max_revocations_per_name, 65_536);
        assert_eq!(c.link_cert, Path::new("./link.crt"));
        assert_eq!(c.user, "corridor");
    }

    #[test]
    fn mistakes_name_the_field() {
        let cases = [
            (GOOD.replace("0123456789abcdef0123", "short"), "gateway[0].token_file"),
            (GOOD.replace("\"0.0.0.0:3101\"", "\"0.0.0.0:443\""), "relay.gateway_listen"),
            (GOOD.replace("\"0.0.0.0:443\"", "\"nowhere\""), "relay.listen"),
            (GOOD.replace("VPN.example.test", "bad name!"), "gateway[0].name"),
            (format!("{GOOD}[limits]\nmax_flows = 0\n"), "limits.max_flows"),
            (format!("{GOOD}[limits]\nlink_timeout = 1\n"), "limits.link_timeout"),
            (GOOD.replace("gateway_listen", "default_name = \"other.test\"\ngateway_listen"), "relay.default_name"),
            (GOOD.replace("gateway_listen", "user = \"root\"\ngateway_listen"), "relay.user"),
            (GOOD.replace("gateway_listen", "user = \"\"\ngateway_listen"), "relay.user"),
            (GOOD.replace("token = ", "token_file = \"x\"\ntoken = "), "gateway[0].token_file"),
            (GOOD.replace("[gateway_link]\ncert = \"link.crt\"\nkey = \"link.key\"\n", ""), "gateway_link"),
            (format!("{GOOD}[limits]\nauth_timeout = 0\n"), "limits.auth_timeout"),
            (format!("{GOOD}[limits]\nmax_unauthenticated_per_source = 0\n"), "limits.max_unauthenticated_per_source"),
            (format!("{GOOD}[limits]\nmax_flows_per_app_id = 0\n"), "limits.max_flows_per_app_id"),
            (format!("{GOOD}[limits]\nmax_revocations_per_name = 0\n"), "limits.max_revocations_per_name"),
        ];
        for (text, field) in cases {
            let e = parse(&text).expect_err(field);
            assert_eq!(e.field, field, "{e}");
            assert!(!e.fix.is_empty());
        }
        let e = parse(&GOOD.replace("[[gateway]]", "[[gateway]]\nbogus = 1")).expect_err("unknown field");
        assert!(e.problem.contains("bogus"), "{e}");
    }

    #[test]
    fn type_mistakes_name_the_field_path_and_its_line() {
        for (text, field, at) in [
            (
                GOOD.replace("listen = \"0.0.0.0:443\"", "listen = \"0.0.0.0:443\"\ndtls_port = 70000"),
                "relay.dtls_port",
                "line 4, column 13: ",
            ),
            (format!("{GOOD}[limits]\nmax_flows = \"many\"\n"), "limits.max_flows", "line 12, column 13: "),
            (GOOD.replace("[[gateway]]", "[[gateway]]\nbogus = 1"), "gateway[0].bogus", "line 6, column 1: "),
        ] {
            let e = parse(&text).expect_err(field);
            assert_eq!(e.field, field, "{e}");
            assert!(e.problem.starts_with(at), "{e}");
            assert!(e.fix.contains("config/relay.example.toml"), "{e}");
        }
        let e = parse(&GOOD.replace("VPN.example.test", "bad name!")).expect_err("a checked mistake");
        assert!(e.problem.starts_with("line 6: "), "checked mistakes gain their line: {e}");
    }

    #[test]
    fn the_effective_configuration_redacts_tokens() {
        let dir = std::env::temp_dir().join(format!("corridor-relay-effective-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("b.token"), "fedcba9876543210fedcba\n").expect("token");
        let text = format!("{GOOD}[[gateway]]\nname = \"b.test\"\ntoken_file = \"b.token\"\n");
        std::fs::write(dir.join("relay.toml"), &text).expect("config");
        let got = Config::load_effective(&dir.join("relay.toml"));
        let _ = std::fs::remove_dir_all(&dir);
        let (_, shown) = got.expect("valid");
        assert!(!shown.contains("0123456789abcdef0123") && !shown.contains("fedcba"), "{shown}");
        let t: toml::Table = shown.parse().expect("TOML");
        let tokens: Vec<_> = t["gateway"]
            .as_array()
            .expect("gateways")
            .iter()
            .map(|g| g.get("token").and_then(toml::Value::as_str).map(str::to_owned))
            .collect();
        assert_eq!(
            tokens,
            [Some("<redacted inline>".to_owned()), Some(format!("<redacted, from {}>", dir.join("b.token").display()))]
        );
        assert_eq!(t["limits"].get("max_flows").and_then(toml::Value::as_integer), Some(10_000), "defaults shown");
        assert_eq!(t["relay"].get("dtls_port").and_then(toml::Value::as_integer), Some(443));
        assert_eq!(t["relay"].get("user").and_then(toml::Value::as_str), Some("corridor"), "the user shown");
        let cert = t["gateway_link"].get("cert").and_then(toml::Value::as_str).map(str::to_owned);
        assert_eq!(cert, Some(dir.join("link.crt").display().to_string()));
    }

    /// The shipped example must stay valid (its token file is beside it).
    #[test]
    fn the_example_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let text = std::fs::read_to_string(dir.join("relay.example.toml")).expect("config/relay.example.toml");
        let c = Config::parse_in(&text, &dir).expect("config/relay.example.toml is valid");
        assert_eq!(c.tokens.len(), 1);
    }
}
