//! Cluster cookie revocation: when a session whose cookie the cluster
//! honours ends for good here, every node must stop honouring that cookie
//! before it expires. The core remembers the cookie's tag
//! ([`crate::cluster::revocation_tag`]) until the cookie's own expiry and
//! asks the driver to tell the relays ([`Effect::RevokeCookie`]); the
//! relays pass it to the other nodes, whose drivers hand it to
//! [`Core::handle_revocation`]. A revoked cookie is refused at CONNECT
//! with the 401 of an unknown one, and a session that still holds it here
//! (a device that moved away while its old session waited out its grace)
//! is ended.

use std::time::Instant;

use proto::relay::RevocationTag;
use service::revocations::Added;

use super::{Core, Effect};
use crate::cluster::revocation_tag;
use crate::port::DataplanePort;
use crate::session::{EndReason, Session};

/// The first bytes of a tag, for log lines that match the relay's.
fn short(tag: &RevocationTag) -> String {
    tag.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Whether a session that ended so takes its cookie with it everywhere.
/// A gateway that stops ends its sessions but not their cookies: failing
/// over to a live node with the cookie is what a cluster is for. A
/// revocation that came from a peer has been sent already.
fn revokes_cookie(reason: EndReason) -> bool {
    match reason {
        EndReason::Logout
        | EndReason::AdminKill
        | EndReason::ReconnectWindowExpired
        | EndReason::IdleTimeout
        | EndReason::NeverConnected
        // A reload took the user or the group away: no peer may revive it.
        | EndReason::UserRemoved
        | EndReason::GroupRemoved
        // The cookie expires with it, unless the minting node's timeout
        // was longer than ours: then it is revoked for the rest.
        | EndReason::SessionTimeout => true,
        // A drained session lives on at the peer the device reconnects to.
        EndReason::Shutdown | EndReason::RevokedAtPeer | EndReason::Drained => false,
    }
}

impl<P: DataplanePort> Core<P> {
    /// A session that ended: if its cookie is a cluster cookie and the end
    /// is for good, it is revoked here and at every peer.
    pub(super) fn revoke_cookie_of(&mut self, s: &Session, reason: EndReason) {
        if !revokes_cookie(reason) {
            return;
        }
        let Some(claims) = self.config.cluster.as_ref().and_then(|c| c.verify(&s.cookie)) else { return };
        let tag = revocation_tag(&s.cookie);
        // The wall clock as of the last tick: a kill comes without `now`.
        let unix_now = self.wall.unix_secs;
        match self.revoked.insert(tag, claims.expires, unix_now) {
            Added::Expired | Added::Known => return,
            Added::New { evicted } => {
                if evicted {
                    self.counters.revocations_evicted += 1;
                }
            }
        }
        self.counters.cookies_revoked += 1;
        tracing::info!(
            session = %s.id,
            user = %s.user,
            reason = %reason,
            tag = %short(&tag),
            expires = claims.expires,
            "cluster cookie revoked; telling the relays"
        );
        self.effects.push_back(Effect::RevokeCookie { tag, expires: claims.expires });
    }

    /// A relay passed on another node's revocation (or replayed it as the
    /// link came up): the cookie is refused here until `expires`, and a
    /// session that still holds it here ends.
    pub fn handle_revocation(&mut self, tag: RevocationTag, expires: u64, now: Instant) {
        if self.config.cluster.is_none() {
            return;
        }
        // No cookie issued by now is adopted here past our own session
        // timeout from now, whatever a peer says: a far expiry (a
        // misconfigured or hostile peer) need not be held longer.
        let unix_now = self.unix_now(now);
        let horizon = self.config.timers.session_timeout.map_or(u64::MAX, |t| unix_now.saturating_add(t.as_secs()));
        match self.revoked.insert(tag, expires.min(horizon), unix_now) {
            Added::Expired | Added::Known => return,
            Added::New { evicted } => {
                self.counters.revocations_received += 1;
                if evicted {
                    self.counters.revocations_evicted += 1;
                    tracing::warn!(
                        held = self.revoked.len(),
                        "revocation list full: dropped the entry that expires first"
                    );
                }
            }
        }
        tracing::info!(tag = %short(&tag), expires, "cluster cookie revoked at a peer");
        if let Some(id) = self.sessions.by_revocation_tag(&tag) {
            self.end_session(id, EndReason::RevokedAtPeer);
        }
    }

    /// Whether `cookie` was revoked here or at a peer and has not expired.
    pub(super) fn is_revoked(&self, cookie: &str, now: Instant) -> bool {
        self.config.cluster.is_some() && self.revoked.contains(&revocation_tag(cookie), self.unix_now(now))
    }

    /// Revocations held (the `corridor_revocations` gauge).
    pub fn revocations_held(&self) -> usize {
        self.revoked.len()
    }

    /// Forgets revocations whose cookies have expired.
    pub(super) fn expire_revocations(&mut self, now: Instant) {
        let unix_now = self.unix_now(now);
        self.revoked.expire(unix_now);
    }
}
