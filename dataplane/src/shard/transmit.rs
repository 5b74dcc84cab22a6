//! Network → device sends with UDP GSO: the records one loop turn seals for
//! a peer are laid back to back in one buffer and leave in one `sendmsg`
//! carrying a `UDP_SEGMENT` size, instead of one syscall each. The kernel
//! cuts the buffer into datagrams of that size, the last possibly shorter,
//! so a batch takes records of one length and then at most one shorter one
//! (a TSO super-packet's segments are exactly that shape).

use dtls::ContentType;
use proto::cstp::PacketType;

use super::sessions::{Session, SessionTable};
use crate::counters::ShardCounters;
use crate::sys::RawSockAddr;

/// Bytes one batch holds: one `sendmsg` is one UDP send, GSO or not, and
/// its payload stays under the 65 507-byte IPv4 UDP limit.
pub(super) const BATCH_BYTES: usize = 65_000;
/// Datagrams per batch: `UDP_MAX_SEGMENTS` was 64 before Linux 6.9.
pub(super) const BATCH_SEGMENTS: usize = 64;
/// Batch buffers per shard: peers that can have a batch open in one loop
/// turn, plus sends still in the kernel. Beyond it packets go out one
/// datagram each, sealed where they were read.
pub(super) const BATCH_BUFFERS: usize = 128;

/// Records for one peer, sealed in place in `buf`.
#[derive(Debug)]
pub(super) struct Batch {
    buf: Vec<u8>,
    used: usize,
    /// Length of the first record: the GSO segment size.
    segment: usize,
    count: usize,
    /// A record shorter than `segment` joined: it must be the last.
    closed: bool,
}

impl Batch {
    /// Whether a record of `len` bytes may join, with at most `max_count`
    /// records per batch (1 where the kernel refused GSO).
    pub(super) fn fits(&self, len: usize, max_count: usize) -> bool {
        self.used + len <= self.buf.len()
            && (self.count == 0 || (!self.closed && len <= self.segment && self.count < max_count))
    }

    /// The `len` bytes the next record is sealed in.
    pub(super) fn room(&mut self, len: usize) -> Option<&mut [u8]> {
        self.buf.get_mut(self.used..self.used + len)
    }

    /// A record of `len` bytes was sealed in [`room`](Self::room).
    pub(super) fn commit(&mut self, len: usize) {
        if self.count == 0 {
            self.segment = len;
        } else if len < self.segment {
            self.closed = true;
        }
        self.used += len;
        self.count += 1;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(super) fn datagrams(&self) -> usize {
        self.count
    }

    /// The buffer, the bytes to send and the GSO segment size (none for a
    /// single record).
    pub(super) fn into_send(self) -> (Vec<u8>, usize, Option<u16>) {
        let segment = (self.count > 1).then(|| u16::try_from(self.segment).unwrap_or(u16::MAX));
        (self.buf, self.used, segment)
    }
}

/// The shard's batch buffers, all allocated at start-up; one moves into a
/// send and comes back with its completion.
#[derive(Debug)]
pub(super) struct BatchBuffers {
    spare: Vec<Vec<u8>>,
    /// Buffers out of `spare` (in a batch or in the kernel).
    in_use: usize,
    limit: usize,
}

impl BatchBuffers {
    pub(super) fn new(limit: usize) -> Self {
        Self { spare: (0..limit).map(|_| vec![0u8; BATCH_BYTES]).collect(), in_use: 0, limit }
    }

    /// An empty batch, if a buffer is free.
    pub(super) fn open(&mut self) -> Option<Batch> {
        let buf = match self.spare.pop() {
            Some(b) => b,
            // Replaces a buffer lost with a refused send.
            None if self.in_use < self.limit => vec![0u8; BATCH_BYTES],
            None => return None,
        };
        self.in_use += 1;
        Some(Batch { buf, used: 0, segment: 0, count: 0, closed: false })
    }

    /// A buffer back from the kernel, or from an empty batch. Buffers of
    /// another size (cross-shard frames, CSTP packets) are not ours.
    pub(super) fn give(&mut self, buf: Vec<u8>) {
        if buf.len() == BATCH_BYTES && self.in_use > 0 {
            self.in_use -= 1;
            self.spare.push(buf);
        }
    }

    /// A buffer went with a send the engine refused.
    pub(super) fn lost(&mut self) {
        self.in_use = self.in_use.saturating_sub(1);
    }
}

/// The batches of one shard: open ones (one per session with records this
/// turn) and closed ones waiting to be handed to the engine.
#[derive(Debug)]
pub(super) struct Transmit {
    pub(super) buffers: BatchBuffers,
    /// Closed batches with their peers, in the order they must leave.
    pub(super) ready: Vec<(RawSockAddr, Batch)>,
    /// Session slots that opened a batch this turn.
    open: Vec<u32>,
    /// Records per batch: [`BATCH_SEGMENTS`], or 1 once the kernel refused GSO.
    max_count: usize,
}

impl Transmit {
    pub(super) fn new(buffers: usize) -> Self {
        Self {
            buffers: BatchBuffers::new(buffers),
            ready: Vec::with_capacity(buffers),
            open: Vec::with_capacity(buffers),
            max_count: BATCH_SEGMENTS,
        }
    }

    /// From now on one record per send: the kernel refused a GSO send.
    pub(super) fn without_gso(&mut self) {
        self.max_count = 1;
    }

    pub(super) fn gso(&self) -> bool {
        self.max_count > 1
    }

    /// Seals one DATA record into `session`'s batch (table slot `s`); `write`
    /// puts the IPv4 packet, at most `max_ip_len` bytes, at the start of the
    /// slice it gets and returns its length (None: drop it, counted as
    /// `drop_offload`). A full batch is closed and a fresh one opened. False
    /// when no buffer is free: nothing was written.
    pub(super) fn seal(
        &mut self,
        s: u32,
        session: &mut Session,
        counters: &mut ShardCounters,
        max_ip_len: usize,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let record_len = session.record.overhead() + 1 + max_ip_len;
        if !session.batch.as_ref().is_some_and(|b| b.fits(record_len, self.max_count)) {
            self.close(session);
            let Some(fresh) = self.buffers.open() else { return false };
            if !fresh.fits(record_len, self.max_count) {
                counters.drop_oversize += 1;
                self.buffers.give(fresh.into_send().0);
                return true;
            }
            session.batch = Some(fresh);
            self.open.push(s);
        }
        let Session { record, batch: Some(batch), tx, .. } = session else { return false };
        let head = record.headroom();
        let Some(room) = batch.room(record_len) else { return false };
        let Some(len) = room.get_mut(head + 1..).and_then(write) else {
            counters.drop_offload += 1;
            return true;
        };
        if let Some(t) = room.get_mut(head) {
            *t = PacketType::DATA.0;
        }
        match record.seal_in_place(ContentType::APPLICATION_DATA, room, len + 1) {
            Ok(n) => {
                batch.commit(n);
                tx.add(len);
            }
            Err(dtls::SealError::BufferTooSmall | dtls::SealError::PayloadTooLong) => counters.drop_oversize += 1,
            Err(_) => counters.seal_errors += 1,
        }
        true
    }

    /// Moves `session`'s batch, if it has records, to the ready list.
    pub(super) fn close(&mut self, session: &mut Session) {
        match session.batch.take() {
            Some(b) if b.is_empty() => self.buffers.give(b.into_send().0),
            Some(b) => self.ready.push((session.peer_raw, b)),
            None => {}
        }
    }

    /// Closes the batch of every session that opened one this turn.
    pub(super) fn close_all(&mut self, sessions: &mut SessionTable) {
        let mut open = core::mem::take(&mut self.open);
        for s in open.drain(..) {
            if let Some(session) = sessions.get_mut(s) {
                self.close(session);
            }
        }
        self.open = open;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_equal_records_then_one_shorter() {
        let mut buffers = BatchBuffers::new(2);
        let mut b = buffers.open().expect("a buffer");
        assert!(b.fits(1000, BATCH_SEGMENTS));
        b.commit(1000);
        assert!(b.fits(1000, BATCH_SEGMENTS) && !b.fits(1001, BATCH_SEGMENTS));
        b.commit(1000);
        b.commit(400);
        assert!(!b.fits(400, BATCH_SEGMENTS), "nothing after a shorter record");
        assert_eq!(b.datagrams(), 3);
        let (buf, used, segment) = b.into_send();
        assert_eq!((used, segment), (2400, Some(1000)));
        buffers.give(buf);
        assert_eq!(buffers.in_use, 0);
    }

    #[test]
    fn limits_hold() {
        let mut buffers = BatchBuffers::new(1);
        let mut b = buffers.open().expect("a buffer");
        assert!(buffers.open().is_none(), "one buffer only");
        b.commit(100);
        assert!(!b.fits(100, 1), "GSO refused: one record per send");
        for _ in 1..BATCH_SEGMENTS {
            b.commit(100);
        }
        assert!(!b.fits(100, BATCH_SEGMENTS), "segment limit");
        let (_, _, segment) = b.into_send();
        assert_eq!(segment, Some(100));
        buffers.lost();
        assert!(buffers.open().is_some(), "a lost buffer is replaced");
        let mut big = BatchBuffers::new(1).open().expect("a buffer");
        assert!(!big.fits(BATCH_BYTES + 1, BATCH_SEGMENTS));
        big.commit(BATCH_BYTES);
        assert!(!big.fits(1, BATCH_SEGMENTS), "byte limit");
        buffers.give(vec![0u8; 10]);
    }
}
