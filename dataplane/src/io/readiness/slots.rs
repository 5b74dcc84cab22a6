//! The readiness engine's slot memory: the states a slot moves through
//! (free, held, pinned; the `readiness` module doc says what each allows)
//! and one pool of slots per direction.

use std::io;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    Busy {
        /// Handed out by a completion of the current batch.
        held: bool,
        /// Queued transmits reading from the slot.
        pins: u32,
    },
}

/// One direction's slots: one allocation, a free list and per-slot state.
#[derive(Debug)]
pub(super) struct SlotPool {
    pub(super) memory: Box<[u8]>,
    pub(super) slot_len: usize,
    /// Where a receive lands in a slot.
    pub(super) fill: Range<usize>,
    states: Box<[SlotState]>,
    /// Free slots, used last-in first-out so recently touched (cache-warm)
    /// slots are refilled first.
    free: Vec<u16>,
    /// Slots handed out in the current batch.
    handed_out: Vec<u16>,
}

impl SlotPool {
    pub(super) fn new(count: u16, slot_len: usize, fill: Range<usize>) -> io::Result<Self> {
        if count == 0 || fill.start > fill.end || fill.end > slot_len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "slot count or layout"));
        }
        let bytes = usize::from(count)
            .checked_mul(slot_len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "slot memory overflows"))?;
        Ok(Self {
            memory: vec![0u8; bytes].into_boxed_slice(),
            slot_len,
            fill,
            states: vec![SlotState::Free; usize::from(count)].into_boxed_slice(),
            free: (0..count).rev().collect(),
            handed_out: Vec::with_capacity(usize::from(count)),
        })
    }

    pub(super) fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Byte range of `range` within slot `bid`, in `memory`.
    pub(super) fn span(&self, bid: u16, range: &Range<usize>) -> Option<Range<usize>> {
        if range.start > range.end || range.end > self.slot_len || usize::from(bid) >= self.states.len() {
            return None;
        }
        let base = usize::from(bid) * self.slot_len;
        Some(base + range.start..base + range.end)
    }

    /// Takes a free slot to receive into. It stays `Free` in `states` until
    /// [`hand_out`](Self::hand_out), or goes back with [`give_back`](Self::give_back).
    pub(super) fn take_free(&mut self) -> Option<u16> {
        self.free.pop()
    }

    pub(super) fn give_back(&mut self, bid: u16) {
        self.free.push(bid);
    }

    /// A receive filled `bid`: it is the shard's for this batch.
    pub(super) fn hand_out(&mut self, bid: u16) {
        if let Some(s) = self.states.get_mut(usize::from(bid)) {
            *s = SlotState::Busy { held: true, pins: 0 };
            self.handed_out.push(bid);
        }
    }

    /// The fill area of a free slot taken by [`take_free`](Self::take_free).
    pub(super) fn fill_mut(&mut self, bid: u16) -> Option<&mut [u8]> {
        let span = self.span(bid, &self.fill.clone())?;
        self.memory.get_mut(span)
    }

    /// The whole slot, while it is held in this batch.
    pub(super) fn held_mut(&mut self, bid: u16) -> Option<&mut [u8]> {
        match self.states.get(usize::from(bid))? {
            SlotState::Busy { held: true, .. } => {
                let span = self.span(bid, &(0..self.slot_len))?;
                self.memory.get_mut(span)
            }
            _ => None,
        }
    }

    /// Pins held slot `bid` for a transmit reading `range` of it.
    pub(super) fn pin(&mut self, bid: u16, range: &Range<usize>) -> bool {
        if self.span(bid, range).is_none() {
            return false;
        }
        match self.states.get_mut(usize::from(bid)) {
            Some(SlotState::Busy { held: true, pins }) => {
                *pins += 1;
                true
            }
            _ => false,
        }
    }

    /// A transmit reading from `bid` is done.
    pub(super) fn unpin(&mut self, bid: u16) {
        let Some(state) = self.states.get_mut(usize::from(bid)) else { return };
        if let SlotState::Busy { held, pins } = state {
            *pins = pins.saturating_sub(1);
            if *pins == 0 && !*held {
                *state = SlotState::Free;
                self.free.push(bid);
            }
        }
    }

    /// The batch ended: its slots are no longer the shard's, and those no
    /// transmit still reads go back on the free list.
    pub(super) fn end_batch(&mut self) {
        for bid in self.handed_out.drain(..) {
            let Some(state) = self.states.get_mut(usize::from(bid)) else { continue };
            if let SlotState::Busy { held, pins } = state {
                *held = false;
                if *pins == 0 {
                    *state = SlotState::Free;
                    self.free.push(bid);
                }
            }
        }
    }

    /// Bytes a pinned transmit reads (valid whether or not still held).
    pub(super) fn bytes(&self, bid: u16, range: &Range<usize>) -> Option<&[u8]> {
        self.memory.get(self.span(bid, range)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_stays_out_of_the_pool_until_its_batch_ends_and_its_transmits_are_done() {
        let mut pool = SlotPool::new(2, 64, 16..64).expect("pool");
        let bid = pool.take_free().expect("free");
        pool.hand_out(bid);
        assert!(pool.held_mut(bid).is_some());
        assert!(pool.pin(bid, &(16..20)));
        assert!(pool.pin(bid, &(20..24)));
        assert!(!pool.pin(bid, &(60..65)), "beyond the slot");
        pool.end_batch();
        assert!(pool.held_mut(bid).is_none(), "the batch is over");
        assert!(!pool.pin(bid, &(16..20)), "only held slots take transmits");
        assert_eq!(pool.bytes(bid, &(16..20)).map(<[u8]>::len), Some(4), "queued transmits still read it");
        pool.unpin(bid);
        assert_eq!(pool.free_count(), 1);
        pool.unpin(bid);
        assert_eq!(pool.free_count(), 2);
        assert_eq!(pool.states[usize::from(bid)], SlotState::Free);
    }
}
