//! Cookie revocations between the gateways of one name (a `[cluster]`):
//! a gateway that ends a session for good sends its cookie's tag (a
//! digest, never the cookie) with the cookie's expiry; the relay passes it
//! at once to every other authenticated link of that name and keeps it,
//! per name, until that expiry, so a gateway that links up later (a
//! restart, a redial) is told after its Welcome, [`REPLAY_BATCH`] frames
//! a tick so a long list never outgrows the link's outbox. The lists are
//! bounded (`limits.max_revocations_per_name`; a full one drops what
//! expires first) and live in memory only: a relay restart forgets them,
//! and the gateways send theirs again when they link up.

use std::collections::HashMap;
use std::time::Instant;

use proto::relay::{Frame, RevocationTag};
use service::revocations::{Added, Cursor, Revocations};

use super::{ConnId, Effect, RelayCore};

/// Revocations replayed to a link per tick: 2048 frames are 55 KiB, a
/// fifth of what a link's outbox holds, and a full list of 65 536 takes
/// eight seconds.
pub(super) const REPLAY_BATCH: usize = 2048;

/// The revocation list of every name that has one.
#[derive(Debug, Default)]
pub(super) struct ByName(HashMap<String, Revocations>);

impl ByName {
    /// Entries held, over every name.
    pub(super) fn len(&self) -> usize {
        self.0.values().map(Revocations::len).sum()
    }
}

/// The first bytes of a tag, for log lines that the gateways' lines match.
fn short(tag: &RevocationTag) -> String {
    tag.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

impl RelayCore {
    /// An authenticated link of `name` revoked a cookie.
    pub(super) fn on_revoke(&mut self, conn: ConnId, tag: RevocationTag, expires: u64, now: Instant) {
        let Some(name) = self.links.get(&conn).map(|l| l.name.clone()) else { return };
        let unix_now = self.unix_now(now);
        let cap = self.config.limits.max_revocations_per_name;
        let list = self.revocations.0.entry(name.clone()).or_insert_with(|| Revocations::new(cap));
        match list.insert(tag, expires, unix_now) {
            Added::Expired => {
                self.counters.revocations_stale += 1;
                return;
            }
            // Passed on when it was new, or replayed since: every link of
            // the name has it.
            Added::Known => {
                self.counters.revocations_repeated += 1;
                return;
            }
            Added::New { evicted } => {
                self.counters.revocations += 1;
                if evicted {
                    self.counters.revocations_evicted += 1;
                    tracing::warn!(name = %name, cap, "revocation list full: dropped the entry that expires first");
                }
            }
        }
        let others: Vec<ConnId> = self
            .links
            .iter()
            .filter(|(c, l)| **c != conn && l.name == name && l.route().is_some())
            .map(|(c, _)| *c)
            .collect();
        for other in &others {
            self.send(*other, &Frame::Revoke { tag, expires });
        }
        self.counters.revocations_forwarded += others.len() as u64;
        tracing::info!(name = %name, tag = %short(&tag), expires, passed_to = others.len(), "cookie revoked by a gateway");
    }

    /// A link came up: it is told its name's revocations, the first
    /// batch now and the rest a batch a tick ([`Self::continue_replays`]).
    pub(super) fn start_replay(&mut self, conn: ConnId, now: Instant) {
        if let Some(l) = self.links.get_mut(&conn) {
            l.replay = Some(Cursor::default());
        }
        self.replay_batch(conn, now);
    }

    /// The next batch for every link still being told.
    pub(super) fn continue_replays(&mut self, now: Instant) {
        let replaying: Vec<ConnId> = self.links.iter().filter(|(_, l)| l.replay.is_some()).map(|(c, _)| *c).collect();
        for conn in replaying {
            self.replay_batch(conn, now);
        }
    }

    fn replay_batch(&mut self, conn: ConnId, now: Instant) {
        let unix_now = self.unix_now(now);
        let Some(l) = self.links.get_mut(&conn) else { return };
        let Some(mut cursor) = l.replay else { return };
        let batch = match self.revocations.0.get(&l.name) {
            Some(list) => list.next_batch(&mut cursor, REPLAY_BATCH),
            None => Vec::new(),
        };
        l.replay = (batch.len() == REPLAY_BATCH).then_some(cursor);
        let mut bytes = Vec::new();
        let mut sent = 0;
        for (tag, expires) in batch.into_iter().filter(|(_, e)| *e > unix_now) {
            Frame::Revoke { tag, expires }.write(&mut bytes);
            sent += 1;
        }
        if sent == 0 {
            return;
        }
        self.counters.revocations_replayed += sent;
        if l.replay.is_none() {
            tracing::info!(name = %l.name, peer = %l.peer, "revocations replayed to a gateway link");
        }
        self.effects.push_back(Effect::Write { conn, bytes });
    }

    /// Forgets revocations whose cookies have expired.
    pub(super) fn expire_revocations(&mut self, now: Instant) {
        let unix_now = self.unix_now(now);
        self.revocations.0.retain(|_, list| {
            list.expire(unix_now);
            !list.is_empty()
        });
    }
}
