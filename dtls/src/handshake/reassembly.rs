//! Handshake message reassembly (RFC 6347 §4.2.3): fragments of any size,
//! in any order, duplicated or overlapping, become whole messages handed out
//! strictly in `message_seq` order.

use super::msg::{Fragment, MAX_MESSAGE_LEN};
use crate::types::HandshakeType;

/// How many messages past the next expected one are buffered.
const MAX_AHEAD: u16 = 4;

/// A whole handshake message and the epoch its fragments came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) msg_type: HandshakeType,
    pub(crate) message_seq: u16,
    pub(crate) epoch: u16,
    pub(crate) body: Vec<u8>,
}

/// What happened to a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// Stored (or already had those bytes).
    Accepted,
    /// Part of a message already delivered: the peer is retransmitting,
    /// which RFC 6347 §4.2.4 answers by retransmitting our last flight.
    Old,
    /// Too far ahead, too large, or inconsistent with earlier fragments.
    Dropped,
}

#[derive(Debug)]
struct Partial {
    message_seq: u16,
    msg_type: HandshakeType,
    epoch: u16,
    body: Vec<u8>,
    /// Received byte ranges, sorted and merged.
    have: Vec<(usize, usize)>,
}

impl Partial {
    fn add(&mut self, offset: usize, data: &[u8]) {
        let end = offset + data.len();
        if let Some(dst) = self.body.get_mut(offset..end) {
            dst.copy_from_slice(data);
        }
        self.have.push((offset, end));
        self.have.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.have.len());
        for &(s, e) in &self.have {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.have = merged;
    }

    fn complete(&self) -> bool {
        self.body.is_empty() || self.have.first() == Some(&(0, self.body.len()))
    }
}

#[derive(Debug)]
pub(crate) struct Reassembler {
    next_seq: u16,
    pending: Vec<Partial>,
}

impl Reassembler {
    pub(crate) fn new(next_seq: u16) -> Self {
        Self { next_seq, pending: Vec::new() }
    }

    /// The `message_seq` the next delivered message will have.
    #[cfg(test)]
    pub(crate) fn next_seq(&self) -> u16 {
        self.next_seq
    }

    pub(crate) fn insert(&mut self, epoch: u16, f: &Fragment<'_>) -> Inserted {
        if f.message_seq < self.next_seq {
            return Inserted::Old;
        }
        if f.message_seq - self.next_seq >= MAX_AHEAD {
            return Inserted::Dropped;
        }
        let (Ok(length), Ok(offset)) = (usize::try_from(f.length), usize::try_from(f.offset)) else {
            return Inserted::Dropped;
        };
        if length > MAX_MESSAGE_LEN {
            return Inserted::Dropped;
        }
        let p = match self.pending.iter_mut().position(|p| p.message_seq == f.message_seq) {
            Some(i) => match self.pending.get_mut(i) {
                Some(p) => p,
                None => return Inserted::Dropped,
            },
            None => {
                self.pending.push(Partial {
                    message_seq: f.message_seq,
                    msg_type: f.msg_type,
                    epoch,
                    body: vec![0; length],
                    have: Vec::new(),
                });
                match self.pending.last_mut() {
                    Some(p) => p,
                    None => return Inserted::Dropped,
                }
            }
        };
        if p.msg_type != f.msg_type || p.body.len() != length || p.epoch != epoch {
            return Inserted::Dropped;
        }
        p.add(offset, f.body);
        Inserted::Accepted
    }

    /// The next message, once all of it has arrived.
    pub(crate) fn pop(&mut self) -> Option<Message> {
        let i = self.pending.iter().position(|p| p.message_seq == self.next_seq && p.complete())?;
        let p = self.pending.swap_remove(i);
        self.next_seq = self.next_seq.wrapping_add(1);
        Some(Message { msg_type: p.msg_type, message_seq: p.message_seq, epoch: p.epoch, body: p.body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(seq: u16, len: u32, off: u32, body: &[u8]) -> Fragment<'_> {
        Fragment { msg_type: HandshakeType::SERVER_HELLO, length: len, message_seq: seq, offset: off, body }
    }

    #[test]
    fn out_of_order_overlapping_fragments_reassemble() {
        let mut r = Reassembler::new(1);
        let msg: Vec<u8> = (0..100u8).collect();
        assert_eq!(r.insert(0, &frag(1, 100, 60, &msg[60..])), Inserted::Accepted);
        assert!(r.pop().is_none());
        assert_eq!(r.insert(0, &frag(1, 100, 10, &msg[10..70])), Inserted::Accepted);
        assert_eq!(r.insert(0, &frag(1, 100, 0, &msg[..20])), Inserted::Accepted);
        let m = r.pop().expect("complete");
        assert_eq!(m.body, msg);
        assert_eq!(r.next_seq(), 2);
        assert_eq!(r.insert(0, &frag(1, 100, 0, &msg[..20])), Inserted::Old);
    }

    #[test]
    fn messages_are_delivered_in_sequence_order() {
        let mut r = Reassembler::new(0);
        r.insert(0, &frag(1, 1, 0, b"b"));
        assert!(r.pop().is_none());
        r.insert(0, &frag(0, 1, 0, b"a"));
        assert_eq!(r.pop().map(|m| m.body), Some(b"a".to_vec()));
        assert_eq!(r.pop().map(|m| m.body), Some(b"b".to_vec()));
        assert_eq!(r.insert(0, &frag(9, 1, 0, b"z")), Inserted::Dropped);
    }

    #[test]
    fn inconsistent_fragments_are_dropped() {
        let mut r = Reassembler::new(0);
        r.insert(0, &frag(0, 10, 0, b"abc"));
        assert_eq!(r.insert(0, &frag(0, 11, 3, b"def")), Inserted::Dropped);
        assert_eq!(r.insert(1, &frag(0, 10, 3, b"def")), Inserted::Dropped);
    }
}
