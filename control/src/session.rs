//! Sessions: one per logged-in device, from login to teardown. A session
//! outlives its TLS connections (openconnect reconnects with the cookie and
//! must get the same address back) and owns its pool address, its App-ID
//! and the DTLS key of its current CONNECT.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use dataplane::{ShardId, Tally};
use proto::grant::SessionId;
use proto::relay::RevocationTag;

use crate::cluster::revocation_tag;
use crate::core::{ConnId, RelayRoute};

/// Why a session ended; logged with the session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Logout,
    IdleTimeout,
    SessionTimeout,
    ReconnectWindowExpired,
    /// Logged in, never CONNECTed within `timers.connect_grace`.
    NeverConnected,
    AdminKill,
    /// Another cluster node revoked its cookie (a logout or kill there).
    RevokedAtPeer,
    Shutdown,
    /// A reload's password file no longer has the user (removed or locked).
    UserRemoved,
    /// A reload's configuration no longer has the session's group.
    GroupRemoved,
    /// The gateway drains (`corridor ctl drain`, or stopping with relays or
    /// a cluster): the tunnel was closed without DISCONNECT so the device
    /// reconnects, elsewhere, with its cookie.
    Drained,
}

impl EndReason {
    /// The stable machine code of the reason, for logs (the `reason_code`
    /// field; docs/operations.md lists them) and for tools that read them.
    pub fn code(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::SessionTimeout => "session_timeout",
            EndReason::ReconnectWindowExpired => "cookie_grace_expired",
            EndReason::NeverConnected => "connect_grace_expired",
            EndReason::AdminKill => "admin_kill",
            EndReason::RevokedAtPeer => "revoked_at_peer",
            EndReason::Shutdown => "shutdown",
            EndReason::UserRemoved => "user_removed",
            EndReason::GroupRemoved => "group_removed",
            EndReason::Drained => "drained",
        }
    }
}

impl core::fmt::Display for EndReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EndReason::Logout => "client logout",
            EndReason::IdleTimeout => "idle timeout",
            EndReason::SessionTimeout => "session timeout",
            EndReason::ReconnectWindowExpired => "no reconnect within the cookie grace period",
            EndReason::NeverConnected => "no CONNECT within the connect grace period after login",
            EndReason::AdminKill => "administrator",
            EndReason::RevokedAtPeer => "cookie revoked at another cluster node",
            EndReason::Shutdown => "gateway shutdown",
            EndReason::UserRemoved => "user_removed: the user is no longer in the password file",
            EndReason::GroupRemoved => "group_removed: the session's group is no longer configured",
            EndReason::Drained => "drained: the gateway drains; the device may reconnect elsewhere with its cookie",
        })
    }
}

/// Where the session's DTLS channel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsState {
    None,
    /// `shard` completed the handshake with `peer` at `since`, agreeing on
    /// `suite`, and holds the channel.
    Granted {
        shard: ShardId,
        peer: SocketAddr,
        since: Instant,
        suite: dtls::CipherSuite,
    },
}

#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    pub user: String,
    pub group: String,
    pub cookie: String,
    pub address: Ipv4Addr,
    pub app_id: [u8; 32],
    pub created: Instant,
    /// Last DATA in either direction on either channel (idle timeout).
    pub last_data: Instant,
    /// The TLS connection carrying CSTP, once CONNECT succeeded.
    pub conn: Option<ConnId>,
    /// When the session last lost its TLS connection.
    pub detached_at: Option<Instant>,
    /// A CONNECT has carried it (until then it waits `timers.connect_grace`,
    /// not `cookie_grace`).
    pub connected: bool,
    pub dtls: DtlsState,
    /// Where its latest CONNECT came from (the device as the relay reports
    /// it, when relayed) and through which relay link: for the operator.
    pub peer: Option<SocketAddr>,
    pub via: Option<RelayRoute>,
    pub mtu: u16,
    pub traffic: Traffic,
    pub drops_spoofed: u64,
    pub drops_policy: u64,
}

/// What a session carried: CSTP counted by control, DTLS by the shard that
/// holds its grant. A shard counts each grant from zero, so the counts of
/// the grants before the current one are kept apart and added.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    pub cstp_rx: Tally,
    pub cstp_tx: Tally,
    /// The current grant's totals, as its shard last reported them.
    pub dtls_rx: Tally,
    pub dtls_tx: Tally,
    /// The totals of the grants that came before it.
    pub earlier_rx: Tally,
    pub earlier_tx: Tally,
}

impl Traffic {
    /// From the device, both channels.
    pub fn rx(&self) -> Tally {
        self.cstp_rx + self.dtls_rx + self.earlier_rx
    }

    /// To the device, both channels.
    pub fn tx(&self) -> Tally {
        self.cstp_tx + self.dtls_tx + self.earlier_tx
    }

    /// Over DTLS, every grant: `(from the device, to the device)`.
    pub fn dtls(&self) -> (Tally, Tally) {
        (self.dtls_rx + self.earlier_rx, self.dtls_tx + self.earlier_tx)
    }

    /// A new grant begins counting from zero: the current one's totals
    /// become history.
    pub fn new_grant(&mut self) {
        self.earlier_rx = self.earlier_rx + core::mem::take(&mut self.dtls_rx);
        self.earlier_tx = self.earlier_tx + core::mem::take(&mut self.dtls_tx);
    }
}

impl Session {
    /// A session with no connection yet: it waits for its CONNECT as a
    /// detached one waits for its reconnect. `created` may lie in the past
    /// (a session another cluster node began).
    pub fn new(
        id: SessionId,
        user: String,
        group: String,
        cookie: String,
        address: Ipv4Addr,
        created: Instant,
        now: Instant,
    ) -> Self {
        Self {
            id,
            user,
            group,
            cookie,
            address,
            app_id: random_bytes::<32>(),
            created,
            last_data: now,
            conn: None,
            detached_at: Some(now),
            connected: false,
            dtls: DtlsState::None,
            peer: None,
            via: None,
            mtu: 0,
            traffic: Traffic::default(),
            drops_spoofed: 0,
            drops_policy: 0,
        }
    }
}

/// All sessions, by id (= pool slot), cookie, the cookie's revocation tag
/// and App-ID.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: HashMap<SessionId, Session>,
    by_cookie: HashMap<String, SessionId>,
    by_tag: HashMap<RevocationTag, SessionId>,
    by_app_id: HashMap<[u8; 32], SessionId>,
}

impl Sessions {
    pub fn insert(&mut self, s: Session) {
        self.by_cookie.insert(s.cookie.clone(), s.id);
        self.by_tag.insert(revocation_tag(&s.cookie), s.id);
        self.by_app_id.insert(s.app_id, s.id);
        self.by_id.insert(s.id, s);
    }

    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        let s = self.by_id.remove(&id)?;
        self.by_cookie.remove(&s.cookie);
        self.by_tag.remove(&revocation_tag(&s.cookie));
        self.by_app_id.remove(&s.app_id);
        Some(s)
    }

    /// The session whose cookie has this revocation tag.
    pub fn by_revocation_tag(&self, tag: &RevocationTag) -> Option<SessionId> {
        self.by_tag.get(tag).copied()
    }

    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.by_id.get_mut(&id)
    }

    pub fn by_cookie(&self, cookie: &str) -> Option<SessionId> {
        self.by_cookie.get(cookie).copied()
    }

    pub fn by_app_id(&self, app_id: &[u8]) -> Option<SessionId> {
        let key: [u8; 32] = app_id.try_into().ok()?;
        self.by_app_id.get(&key).copied()
    }

    /// Gives a session a new App-ID (a CONNECT through another relay link
    /// retags it); the old one no longer finds it.
    pub fn replace_app_id(&mut self, id: SessionId, app_id: [u8; 32]) {
        let Some(s) = self.by_id.get_mut(&id) else { return };
        self.by_app_id.remove(&s.app_id);
        s.app_id = app_id;
        self.by_app_id.insert(app_id, id);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.by_id.values()
    }

    pub fn ids(&self) -> Vec<SessionId> {
        self.by_id.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

pub use service::{random_bytes, random_hex};
