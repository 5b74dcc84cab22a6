//! `[limits]`: the brute-force and flood defences, checked. What each does
//! and why its default is what it is: docs/security.md.

use std::time::Duration;

use super::raw::RawLimits;
use super::{err, ConfigError};

/// Points a source earns for each kind of misbehaviour (`[limits]
/// ban_points_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPoints {
    pub wrong_password: u32,
    /// Bad HTTP, a bad auth document, a bad CONNECT.
    pub malformed: u32,
    /// A TLS handshake or record that failed.
    pub tls_failure: u32,
}

/// The checked `[limits]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A source whose score reaches this is banned; 0: no bans.
    pub max_ban_score: u32,
    /// A score with no new points for this long starts again from 0.
    pub ban_reset_time: Duration,
    /// How long a banned source is refused at accept.
    pub ban_time: Duration,
    pub points: BanPoints,
    /// The least time between two password checks from one source; 0: no limit.
    pub login_interval: Duration,
    /// The first delay of a user's verdicts after a failure, doubling with
    /// each further failure; 0: no delay.
    pub failure_delay: Duration,
    pub failure_delay_max: Duration,
    /// Connections not yet carrying a tunnel, all sources together.
    pub max_preauth: usize,
    /// Connections not yet carrying a tunnel, from one source (IPv6: its /64).
    pub max_preauth_per_source: usize,
    pub tls_handshake_timeout: Duration,
    /// How long a connection may take to log in and CONNECT.
    pub auth_timeout: Duration,
    /// How long a connection the gateway closed may take to drain its last writes.
    pub close_timeout: Duration,
    /// `TCP_USER_TIMEOUT` of device connections; zero: the kernel's default.
    pub tcp_user_timeout: Duration,
    /// Live sessions one user may hold; a login past it is refused; 0: no cap.
    pub max_sessions_per_user: u32,
}

impl Default for Limits {
    fn default() -> Self {
        limits(&RawLimits::default()).unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

fn secs(v: u32) -> Duration {
    Duration::from_secs(u64::from(v))
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

pub(super) fn limits(r: &RawLimits) -> Result<Limits, ConfigError> {
    let positive = [
        ("limits.ban_reset_time", r.ban_reset_time, "1200 (ocserv's ban-reset-time)"),
        ("limits.ban_time", r.ban_time, "300 (ocserv's min-reauth-time)"),
        ("limits.tls_handshake_timeout", r.tls_handshake_timeout, "10"),
        ("limits.auth_timeout", r.auth_timeout, "60"),
        ("limits.close_timeout", r.close_timeout, "10"),
    ];
    for (field, v, default) in positive {
        if v == 0 || v > 86_400 {
            return Err(err(field, format!("{v} s"), format!("use 1..=86400 seconds ({default} by default)")));
        }
    }
    if r.max_preauth == 0 {
        return Err(err("limits.max_preauth", "0", "allow at least 1 connection logging in (1024 by default)"));
    }
    if r.max_preauth_per_source == 0 || r.max_preauth_per_source > r.max_preauth {
        return Err(err(
            "limits.max_preauth_per_source",
            format!("{} (limits.max_preauth is {})", r.max_preauth_per_source, r.max_preauth),
            "use 1..=limits.max_preauth (64 by default)",
        ));
    }
    if r.failure_delay_max_ms < r.failure_delay_ms {
        return Err(err(
            "limits.failure_delay_max_ms",
            format!("{} ms is below limits.failure_delay_ms ({} ms)", r.failure_delay_max_ms, r.failure_delay_ms),
            "make the cap at least the first delay (30000 by default)",
        ));
    }
    if r.tcp_user_timeout > 86_400 {
        return Err(err(
            "limits.tcp_user_timeout",
            format!("{} s", r.tcp_user_timeout),
            "use 0..=86400 seconds (90 by default; 0 = the kernel's default)",
        ));
    }
    let points = [
        ("limits.ban_points_wrong_password", r.ban_points_wrong_password),
        ("limits.ban_points_malformed", r.ban_points_malformed),
        ("limits.ban_points_tls_failure", r.ban_points_tls_failure),
    ];
    for (field, v) in points {
        if v > 1_000_000 {
            return Err(err(field, format!("{v} points"), "use 0..=1000000 (0: this kind never counts)"));
        }
    }
    Ok(Limits {
        max_ban_score: r.max_ban_score,
        ban_reset_time: secs(r.ban_reset_time),
        ban_time: secs(r.ban_time),
        points: BanPoints {
            wrong_password: r.ban_points_wrong_password,
            malformed: r.ban_points_malformed,
            tls_failure: r.ban_points_tls_failure,
        },
        login_interval: ms(r.login_interval_ms),
        failure_delay: ms(r.failure_delay_ms),
        failure_delay_max: ms(r.failure_delay_max_ms),
        max_preauth: r.max_preauth,
        max_preauth_per_source: r.max_preauth_per_source,
        tls_handshake_timeout: secs(r.tls_handshake_timeout),
        auth_timeout: secs(r.auth_timeout),
        close_timeout: secs(r.close_timeout),
        tcp_user_timeout: secs(r.tcp_user_timeout),
        max_sessions_per_user: r.max_sessions_per_user,
    })
}
