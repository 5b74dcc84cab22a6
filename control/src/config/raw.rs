//! The configuration file as serde reads it, with its defaults. Checked
//! and turned into [`Config`](super::Config) by `Config::parse`; written
//! back, defaults and all, by `--check-config` (`super::effective`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) auth: RawAuth,
    pub(super) network: RawNetwork,
    #[serde(default)]
    pub(super) timers: RawTimers,
    #[serde(default)]
    pub(super) dataplane: RawDataplane,
    #[serde(default, rename = "group")]
    pub(super) groups: Vec<RawGroup>,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default, rename = "relay")]
    pub(super) relays: Vec<RawRelay>,
    #[serde(default)]
    pub(super) cluster: Option<RawCluster>,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) log: service::log::RawLog,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) secret_file: PathBuf,
    pub(super) node: u32,
    pub(super) nodes: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    pub(super) address: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) token_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) token: Option<String>,
    #[serde(default)]
    pub(super) pin_sha256: Option<String>,
    #[serde(default)]
    pub(super) ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    #[serde(default)]
    pub(super) listen: Option<String>,
    #[serde(default = "default_ctl_socket")]
    pub(super) ctl_socket: PathBuf,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self { listen: None, ctl_socket: default_ctl_socket() }
    }
}

fn default_ctl_socket() -> PathBuf {
    PathBuf::from(crate::ctl::DEFAULT_SOCKET)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    #[serde(default = "default_name")]
    pub(super) name: String,
    pub(super) listen: String,
    #[serde(default = "default_dtls_port")]
    pub(super) dtls_port: u16,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    #[serde(default)]
    pub(super) banner: Option<String>,
    #[serde(default = "default_max_connections")]
    pub(super) max_connections: usize,
    #[serde(default = "default_user")]
    pub(super) user: String,
}

pub(super) fn default_user() -> String {
    "corridor".into()
}

pub(super) fn default_max_connections() -> usize {
    10_000
}

pub(super) fn default_name() -> String {
    "corridor".into()
}

pub(super) fn default_dtls_port() -> u16 {
    443
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    #[serde(default)]
    pub(super) password_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) client_ca: Option<PathBuf>,
    #[serde(default)]
    pub(super) max_login_attempts: Option<u32>,
    #[serde(default)]
    pub(super) verify_threads: usize,
    #[serde(default = "d_verify_queue")]
    pub(super) verify_queue: usize,
}

impl RawAuth {
    /// Failed logins a connection may make before it is closed: 3 unless
    /// set, and never fewer than 1.
    pub(super) fn max_login_attempts(&self) -> u32 {
        self.max_login_attempts.unwrap_or(3).max(1)
    }
}

pub(super) fn d_verify_queue() -> usize {
    1024
}

/// The most password verifier threads: each burns a core for the length of
/// a PBKDF2 run, and the data plane needs those cores.
pub const MAX_VERIFY_THREADS: usize = 64;
/// The longest verifier queue: past this many waiting logins a device is
/// better told "busy" at once than made to wait out the login timeout.
pub const MAX_VERIFY_QUEUE: usize = 65_536;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub(super) pool: String,
    #[serde(default)]
    pub(super) dns: Vec<String>,
    #[serde(default)]
    pub(super) default_domain: Option<String>,
    #[serde(default = "default_tun")]
    pub(super) tun_name: String,
    #[serde(default = "default_link_mtu")]
    pub(super) link_mtu: u16,
}

pub(super) fn default_tun() -> String {
    "corridor0".into()
}

pub(super) fn default_link_mtu() -> u16 {
    1500
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimers {
    #[serde(default = "d_dpd")]
    pub(super) dpd: u32,
    #[serde(default = "d_keepalive")]
    pub(super) keepalive: u32,
    #[serde(default = "d_idle")]
    pub(super) idle_timeout: u32,
    #[serde(default = "d_session")]
    pub(super) session_timeout: u32,
    #[serde(default = "d_grace")]
    pub(super) cookie_grace: u32,
    #[serde(default = "d_connect_grace")]
    pub(super) connect_grace: u32,
}

pub(super) fn d_dpd() -> u32 {
    90
}
pub(super) fn d_keepalive() -> u32 {
    32400
}
pub(super) fn d_idle() -> u32 {
    1200
}
pub(super) fn d_session() -> u32 {
    86400
}
pub(super) fn d_grace() -> u32 {
    300
}
pub(super) fn d_connect_grace() -> u32 {
    60
}

impl Default for RawTimers {
    fn default() -> Self {
        Self {
            dpd: d_dpd(),
            keepalive: d_keepalive(),
            idle_timeout: d_idle(),
            session_timeout: d_session(),
            cookie_grace: d_grace(),
            connect_grace: d_connect_grace(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataplane {
    #[serde(default)]
    pub(super) shards: usize,
    #[serde(default = "d_true")]
    pub(super) pin_cores: bool,
    #[serde(default = "d_ring")]
    pub(super) ring_entries: u32,
    #[serde(default = "d_true")]
    pub(super) offloads: bool,
    #[serde(default = "d_io")]
    pub(super) io: String,
    #[serde(default = "d_true")]
    pub(super) steering: bool,
    #[serde(default = "d_batch_wait")]
    pub(super) batch_wait_us: u32,
}

pub(super) fn d_true() -> bool {
    true
}
pub(super) fn d_ring() -> u32 {
    1024
}
pub(super) fn d_batch_wait() -> u32 {
    // Off: scripts/gateway-cost.sh found no gain from batch forming where
    // GRO and USO already batch, and a loss at saturation (PERF.md).
    0
}
pub(super) fn d_io() -> String {
    "auto".to_owned()
}

impl Default for RawDataplane {
    fn default() -> Self {
        Self {
            shards: 0,
            pin_cores: true,
            ring_entries: d_ring(),
            offloads: true,
            io: d_io(),
            steering: true,
            batch_wait_us: d_batch_wait(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub(super) name: String,
    #[serde(default)]
    pub(super) allowed: Vec<String>,
    #[serde(default)]
    pub(super) split_include: Vec<String>,
    #[serde(default)]
    pub(super) split_exclude: Vec<String>,
    /// A bool, checked in `Config::parse` so that a mistake names the field.
    #[serde(default)]
    pub(super) client_to_client: Option<toml::Value>,
    /// `"all"` or a list of executables' absolute paths, checked in
    /// `Config::parse`.
    #[serde(default)]
    pub(super) apps: Option<toml::Value>,
    /// Trusted-network detection: an https URL reachable only inside, and
    /// the pin of its server's key. Both or neither.
    #[serde(default)]
    pub(super) trusted_url: String,
    #[serde(default)]
    pub(super) trusted_pin: String,
}

/// `[limits]`: brute-force and flood defences (docs/security.md). Times in
/// seconds unless the name says `_ms`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default = "d_max_ban_score")]
    pub(super) max_ban_score: u32,
    #[serde(default = "d_ban_reset_time")]
    pub(super) ban_reset_time: u32,
    #[serde(default = "d_ban_time")]
    pub(super) ban_time: u32,
    #[serde(default = "d_points_wrong_password")]
    pub(super) ban_points_wrong_password: u32,
    #[serde(default = "d_points_malformed")]
    pub(super) ban_points_malformed: u32,
    #[serde(default = "d_points_tls_failure")]
    pub(super) ban_points_tls_failure: u32,
    #[serde(default = "d_login_interval_ms")]
    pub(super) login_interval_ms: u32,
    #[serde(default = "d_failure_delay_ms")]
    pub(super) failure_delay_ms: u32,
    #[serde(default = "d_failure_delay_max_ms")]
    pub(super) failure_delay_max_ms: u32,
    #[serde(default = "d_max_preauth")]
    pub(super) max_preauth: usize,
    #[serde(default = "d_max_preauth_per_source")]
    pub(super) max_preauth_per_source: usize,
    #[serde(default = "d_tls_handshake_timeout")]
    pub(super) tls_handshake_timeout: u32,
    #[serde(default = "d_auth_timeout")]
    pub(super) auth_timeout: u32,
    #[serde(default = "d_close_timeout")]
    pub(super) close_timeout: u32,
    #[serde(default = "d_tcp_user_timeout")]
    pub(super) tcp_user_timeout: u32,
    #[serde(default = "d_max_sessions_per_user")]
    pub(super) max_sessions_per_user: u32,
}

pub(super) fn d_max_ban_score() -> u32 {
    80
}
pub(super) fn d_ban_reset_time() -> u32 {
    1200
}
pub(super) fn d_ban_time() -> u32 {
    300
}
pub(super) fn d_points_wrong_password() -> u32 {
    10
}
pub(super) fn d_points_malformed() -> u32 {
    10
}
pub(super) fn d_points_tls_failure() -> u32 {
    5
}
pub(super) fn d_login_interval_ms() -> u32 {
    100
}
pub(super) fn d_failure_delay_ms() -> u32 {
    100
}
pub(super) fn d_failure_delay_max_ms() -> u32 {
    30_000
}
pub(super) fn d_max_preauth() -> usize {
    1024
}
pub(super) fn d_max_preauth_per_source() -> usize {
    64
}
pub(super) fn d_tls_handshake_timeout() -> u32 {
    10
}
pub(super) fn d_auth_timeout() -> u32 {
    60
}
pub(super) fn d_close_timeout() -> u32 {
    10
}
pub(super) fn d_tcp_user_timeout() -> u32 {
    90
}
pub(super) fn d_max_sessions_per_user() -> u32 {
    2
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_ban_score: d_max_ban_score(),
            ban_reset_time: d_ban_reset_time(),
            ban_time: d_ban_time(),
            ban_points_wrong_password: d_points_wrong_password(),
            ban_points_malformed: d_points_malformed(),
            ban_points_tls_failure: d_points_tls_failure(),
            login_interval_ms: d_login_interval_ms(),
            failure_delay_ms: d_failure_delay_ms(),
            failure_delay_max_ms: d_failure_delay_max_ms(),
            max_preauth: d_max_preauth(),
            max_preauth_per_source: d_max_preauth_per_source(),
            tls_handshake_timeout: d_tls_handshake_timeout(),
            auth_timeout: d_auth_timeout(),
            close_timeout: d_close_timeout(),
            tcp_user_timeout: d_tcp_user_timeout(),
            max_sessions_per_user: d_max_sessions_per_user(),
        }
    }
}
