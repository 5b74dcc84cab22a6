//! The sessions one shard owns, found by peer address (device → network)
//! or by pool offset (network → device, an array index).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use dtls::RecordProtection;
use proto::grant::{Policy, SessionId};

use super::transmit::Batch;
use crate::messages::Tally;
use crate::sys::RawSockAddr;

#[derive(Debug)]
pub(super) struct Session {
    pub(super) id: SessionId,
    pub(super) peer: SocketAddr,
    pub(super) peer_raw: RawSockAddr,
    /// Inner source addresses must equal it.
    pub(super) address: Ipv4Addr,
    pub(super) policy: Policy,
    pub(super) record: RecordProtection,
    pub(super) rx: Tally,
    pub(super) tx: Tally,
    pub(super) last_rx: Instant,
    /// Moved packets since the last activity report.
    pub(super) active: bool,
    /// Records sealed for the peer this loop turn, not yet sent.
    pub(super) batch: Option<Batch>,
}

#[derive(Debug)]
pub(super) struct SessionTable {
    slots: Vec<Option<Session>>,
    free: Vec<u32>,
    by_peer: HashMap<SocketAddr, u32>,
    /// Pool offset → slot + 1 (0: not on this shard).
    by_offset: Box<[u32]>,
    /// Slots that became active since the last report.
    pub(super) newly_active: Vec<u32>,
}

impl SessionTable {
    pub(super) fn new(pool_len: usize) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_peer: HashMap::new(),
            by_offset: vec![0; pool_len].into_boxed_slice(),
            newly_active: Vec::new(),
        }
    }

    pub(super) fn slot_by_peer(&self, peer: &SocketAddr) -> Option<u32> {
        self.by_peer.get(peer).copied()
    }

    #[inline]
    pub(super) fn slot_by_offset(&self, offset: u32) -> Option<u32> {
        self.by_offset.get(offset as usize).and_then(|s| s.checked_sub(1))
    }

    pub(super) fn get_mut(&mut self, slot: u32) -> Option<&mut Session> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// Records traffic on `slot`, queueing it for the next activity report.
    pub(super) fn touch(&mut self, slot: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
            if !s.active {
                s.active = true;
                self.newly_active.push(slot);
            }
        }
    }

    /// Adds `session`, first removing any local session with the same id or
    /// the same peer. Returns the ids of the sessions it displaced.
    pub(super) fn insert(&mut self, session: Session) -> Vec<SessionId> {
        let mut displaced = Vec::new();
        if let Some(old) = self.remove(session.id) {
            displaced.push(old.id);
        }
        if let Some(slot) = self.slot_by_peer(&session.peer) {
            let other = self.slots.get(slot as usize).and_then(Option::as_ref).map(|s| s.id);
            if let Some(old) = other.and_then(|id| self.remove(id)) {
                displaced.push(old.id);
            }
        }
        let (id, peer) = (session.id, session.peer);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        // Room for every session to turn active in one report period, made
        // here (control's grant) rather than on the fast path's first touch.
        let needed = self.slots.len().saturating_sub(self.newly_active.len());
        self.newly_active.reserve(needed);
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = Some(session);
            self.by_peer.insert(peer, slot);
            if let Some(o) = self.by_offset.get_mut(id.0 as usize) {
                *o = slot + 1;
            }
        }
        displaced
    }

    pub(super) fn remove(&mut self, id: SessionId) -> Option<Session> {
        let slot = self.slot_by_offset(id.0)?;
        let session = self.slots.get_mut(slot as usize)?.take()?;
        if let Some(o) = self.by_offset.get_mut(id.0 as usize) {
            *o = 0;
        }
        if self.by_peer.get(&session.peer) == Some(&slot) {
            self.by_peer.remove(&session.peer);
        }
        self.free.push(slot);
        Some(session)
    }
}
