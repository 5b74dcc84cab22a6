//! Sliding anti-replay window (RFC 6347 §4.1.2.6).
//!
//! The order of use is check → open → commit: a record is only marked seen
//! once it authenticated, so a forged record cannot burn a sequence number.

/// Smallest window RFC 6347 §4.1.2.6 allows.
pub const MIN_WINDOW: usize = 64;

/// A ring of bits over the most recent sequence numbers: bit `seq % bits`
/// says whether `seq` was seen. Advancing the top clears only the words it
/// passes, so the common case (next sequence number) touches one word.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest sequence number committed (meaningful once `seen_any`).
    top: u64,
    seen_any: bool,
    /// Window size in sequence numbers (a multiple of 64).
    size: u64,
    /// `size / 64 + 1` words rounded up to a power of two, so that every
    /// sequence number in `(top - size, top]` has its own bit.
    bits: Box<[u64]>,
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow").field("top", &self.highest()).field("size", &self.size).finish()
    }
}

impl ReplayWindow {
    /// A window of at least `size` sequence numbers (rounded up to a multiple
    /// of 64, and never below [`MIN_WINDOW`]).
    pub fn new(size: usize) -> Self {
        let words = size.max(MIN_WINDOW).div_ceil(64);
        let ring = (words + 1).next_power_of_two();
        Self { top: 0, seen_any: false, size: words as u64 * 64, bits: vec![0; ring].into_boxed_slice() }
    }

    /// Number of sequence numbers the window tracks.
    pub fn size(&self) -> usize {
        usize::try_from(self.size).unwrap_or(usize::MAX)
    }

    /// The highest sequence number committed, if any.
    pub fn highest(&self) -> Option<u64> {
        self.seen_any.then_some(self.top)
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let mask = self.bits.len() - 1;
        (usize::try_from(seq / 64).unwrap_or(0) & mask, 1 << (seq % 64))
    }

    /// Whether `seq` may be new: above the window's top, or inside it and
    /// not seen. Too old (left of the window) or already seen → `false`.
    #[inline]
    pub fn check(&self, seq: u64) -> bool {
        if !self.seen_any || seq > self.top {
            return true;
        }
        if self.top - seq >= self.size {
            return false;
        }
        let (w, b) = self.slot(seq);
        self.bits.get(w).is_some_and(|word| word & b == 0)
    }

    /// Marks `seq` seen. Call only after the record authenticated.
    #[inline]
    pub fn commit(&mut self, seq: u64) {
        if !self.seen_any || seq > self.top {
            let (from, to) = if self.seen_any { (self.top / 64, seq / 64) } else { (seq / 64, seq / 64) };
            let words = self.bits.len() as u64;
            // Clear the words of every block the top moves into.
            let advance = (to - from).min(words);
            for block in (to + 1 - advance)..=to {
                let (w, _) = self.slot(block * 64);
                if let Some(word) = self.bits.get_mut(w) {
                    *word = 0;
                }
            }
            if !self.seen_any {
                let (w, _) = self.slot(seq);
                if let Some(word) = self.bits.get_mut(w) {
                    *word = 0;
                }
            }
            self.top = seq;
            self.seen_any = true;
        } else if self.top - seq >= self.size {
            return;
        }
        let (w, b) = self.slot(seq);
        if let Some(word) = self.bits.get_mut(w) {
            *word |= b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_too_old_are_refused() {
        let mut w = ReplayWindow::new(64);
        assert!(w.check(0));
        w.commit(0);
        assert!(!w.check(0));
        w.commit(100);
        assert!(!w.check(36), "left of the window");
        assert!(w.check(37));
        w.commit(37);
        assert!(!w.check(37));
        assert!(w.check(99));
        assert!(!w.check(100));
    }

    #[test]
    fn reordering_inside_a_large_window() {
        let mut w = ReplayWindow::new(200);
        assert_eq!(w.size(), 256);
        for s in (0..300u64).rev().step_by(3) {
            w.commit(s + 1000);
        }
        for s in (0..300u64).rev().step_by(3) {
            assert!(!w.check(s + 1000) || s + 1000 < 1299 - 255);
        }
        // Sequence numbers never committed inside the window are still new.
        assert!(w.check(1298));
        w.commit(1298);
        assert!(!w.check(1298));
    }

    #[test]
    fn commit_without_check_is_idempotent() {
        let mut w = ReplayWindow::new(64);
        w.commit(5);
        w.commit(5);
        w.commit(3);
        assert_eq!(w.highest(), Some(5));
        assert!(!w.check(3));
        assert!(w.check(4));
    }

    #[test]
    fn model_check_against_a_set() {
        // Compare against a straightforward reference: seen-set plus top.
        let mut w = ReplayWindow::new(128);
        let mut seen = std::collections::BTreeSet::new();
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let top: u64 = seen.iter().next_back().copied().unwrap_or(0);
            let seq = (top + 40).saturating_sub(x % 200);
            let expect = seen.is_empty() || seq > top || (top - seq < 128 && !seen.contains(&seq));
            assert_eq!(w.check(seq), expect, "seq {seq} top {top}");
            if expect {
                w.commit(seq);
                seen.insert(seq);
            }
        }
    }
}
