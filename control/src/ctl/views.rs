//! What the gateway reports over the ctl socket: owned snapshots the
//! control thread fills in and the admin thread writes out as JSON.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A shard that has not turned its loop for this long is stuck (a turn
/// happens at least once a second while it is up).
pub const SHARD_STALL: Duration = Duration::from_secs(5);

/// `corridor ctl status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    /// When the gateway started, in seconds since the Unix epoch.
    pub started: u64,
    pub uptime_s: u64,
    /// Whether the gateway's TLS runs in FIPS mode: aws-lc does and rustls
    /// calls the TLS configuration FIPS ([`crate::tls::fips`]).
    pub fips: bool,
    pub shards: Vec<ShardView>,
    /// The shards' I/O engine and its set-up.
    pub io: String,
    pub offloads: String,
    pub steering: String,
    pub sessions: usize,
    /// TLS connections held (logging in, or carrying CSTP).
    pub connections: usize,
    pub relays: Vec<RelayView>,
    /// Sources refused at accept now.
    pub banned_sources: usize,
}

impl Status {
    /// What is wrong with the gateway, one line each (empty: healthy).
    pub fn problems(&self) -> Vec<String> {
        shard_problems(&self.shards)
    }
}

/// Each shard that is down or stuck, in words (`GET /healthz` and `status`).
pub fn shard_problems(shards: &[ShardView]) -> Vec<String> {
    shards
        .iter()
        .filter_map(|s| {
            if !s.up {
                Some(format!("shard {} is down (its thread ended)", s.shard))
            } else if Duration::from_millis(s.last_turn_ms) >= SHARD_STALL {
                Some(format!("shard {} has not turned its loop for {} ms", s.shard, s.last_turn_ms))
            } else {
                None
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardView {
    pub shard: u16,
    /// Its loop runs (`corridor_shard_up`).
    pub up: bool,
    /// Milliseconds since its loop last turned.
    pub last_turn_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayView {
    /// The relay's gateway port.
    pub address: SocketAddr,
    /// The name this gateway registers there.
    pub name: String,
    /// `up`, `waiting` (to redial), `connecting`, `await_challenge`, `await_welcome`.
    pub state: String,
}

/// Which channel carries a session's data now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// DTLS, on its shard.
    Dtls,
    /// CSTP over the TLS connection (no DTLS, or the device fell back).
    Cstp,
    /// No connection: the session waits for the device to reconnect with its cookie.
    None,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Dtls => "dtls",
            Channel::Cstp => "cstp",
            Channel::None => "none",
        }
    }
}

/// One session. Its traffic is CSTP counted by control and DTLS counted by
/// its shard (reported at most once a second, so up to a second behind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: String,
    pub user: String,
    pub group: String,
    pub address: Ipv4Addr,
    /// The TLS peer of its latest CONNECT (the device, as the relay
    /// reports it when relayed).
    pub peer: Option<SocketAddr>,
    /// `direct`, or `relay ADDRESS` (the relay's gateway port).
    pub via: String,
    pub channel: Channel,
    /// The shard holding its DTLS channel.
    pub shard: Option<u16>,
    /// Where its DTLS datagrams come from (the relay's flow port when relayed).
    pub dtls_peer: Option<SocketAddr>,
    /// The cipher suite of the channel carrying its data.
    pub cipher: Option<String>,
    /// When it began (its login), in seconds since the Unix epoch.
    pub since: u64,
    pub age_s: u64,
    /// When data last moved either way, in seconds since the Unix epoch.
    pub last_activity: u64,
    pub idle_s: u64,
    /// Seconds it has waited for a reconnect, while it has no connection.
    pub detached_s: Option<u64>,
    /// Bytes of IP packets from the device (CSTP + DTLS).
    pub bytes_in: u64,
    /// Bytes of IP packets to the device (CSTP + DTLS).
    pub bytes_out: u64,
    /// IP packets from the device (CSTP + DTLS).
    pub packets_in: u64,
    /// Packets to the device (CSTP + DTLS).
    pub packets_out: u64,
    /// CSTP packets from the device dropped for a source other than its
    /// address, and for a destination its group may not reach (over DTLS
    /// these are the shards' `corridor_shard_drops_total` reasons).
    pub drops_spoofed: u64,
    pub drops_policy: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanView {
    /// An IPv4 address, or an IPv6 /64.
    pub source: String,
    pub score: u32,
    /// Refused at accept now.
    pub banned: bool,
    /// Seconds until the ban ends.
    pub remaining_s: Option<u64>,
}

/// The address the ban table keys `address` under, in words.
pub fn source_of(address: IpAddr) -> String {
    crate::core::Source::of(address).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_or_stuck_shard_is_a_problem() {
        let ok = ShardView { shard: 0, up: true, last_turn_ms: 20 };
        assert!(shard_problems(&[ok]).is_empty());
        let down = ShardView { shard: 1, up: false, last_turn_ms: 20 };
        let stuck = ShardView { shard: 2, up: true, last_turn_ms: 6000 };
        assert_eq!(
            shard_problems(&[ok, down, stuck]),
            ["shard 1 is down (its thread ended)", "shard 2 has not turned its loop for 6000 ms"]
        );
    }
}
