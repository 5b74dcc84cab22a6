//! Sliding anti-replay window (RFC 6347 §4.1.2.6).
//!
//! The order of use is check → open → commit: a record is only marked seen
//! once it authenticated, so a forged record cannot burn a sequence number.

/// Smallest window RFC 6347 §4.1.2.6 allows.
pub const MIN_WINDOW: usize = 64;

/// A bitmap of recently seen sequence numbers below the highest one seen.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest sequence number committed, plus one (0 = nothing seen).
    top: u64,
    /// Bit `i` of the window (word i/64, bit i%64) is sequence `top - 1 - i`.
    bits: Box<[u64]>,
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow").field("top", &self.top).field("size", &self.size()).finish()
    }
}

impl ReplayWindow {
    /// A window of at least `size` sequence numbers (rounded up to a multiple
    /// of 64, and never below [`MIN_WINDOW`]).
    pub fn new(size: usize) -> Self {
        let words = size.max(MIN_WINDOW).div_ceil(64);
        Self { top: 0, bits: vec![0; words].into_boxed_slice() }
    }

    /// Number of sequence numbers the window tracks.
    pub fn size(&self) -> usize {
        self.bits.len() * 64
    }

    /// The highest sequence number committed, if any.
    pub fn highest(&self) -> Option<u64> {
        self.top.checked_sub(1)
    }

    /// Whether `seq` may be new: above the window's top, or inside it and
    /// not seen. Too old (left of the window) or already seen → `false`.
    pub fn check(&self, seq: u64) -> bool {
        if seq >= self.top {
            return true;
        }
        let back = self.top - 1 - seq;
        match usize::try_from(back) {
            Ok(back) if back < self.size() => !self.bit(back),
            _ => false,
        }
    }

    /// Marks `seq` seen. Call only after the record authenticated.
    pub fn commit(&mut self, seq: u64) {
        if seq >= self.top {
            let shift = seq - self.top + 1;
            self.shift_left(shift);
            self.top = seq + 1;
            self.set_bit(0);
        } else if let Ok(back) = usize::try_from(self.top - 1 - seq) {
            if back < self.size() {
                self.set_bit(back);
            }
        }
    }

    fn bit(&self, i: usize) -> bool {
        self.bits.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    fn set_bit(&mut self, i: usize) {
        if let Some(w) = self.bits.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// Moves every bit `n` positions towards older sequence numbers.
    fn shift_left(&mut self, n: u64) {
        let size = self.size();
        let n = match usize::try_from(n) {
            Ok(n) if n < size => n,
            _ => {
                self.bits.iter_mut().for_each(|w| *w = 0);
                return;
            }
        };
        let (words, bits) = (n / 64, n % 64);
        let len = self.bits.len();
        for i in (0..len).rev() {
            let src = i.checked_sub(words);
            let hi = src.and_then(|s| self.bits.get(s)).copied().unwrap_or(0);
            let lo = src.and_then(|s| s.checked_sub(1)).and_then(|s| self.bits.get(s)).copied().unwrap_or(0);
            let v = if bits == 0 { hi } else { (hi << bits) | (lo >> (64 - bits)) };
            if let Some(w) = self.bits.get_mut(i) {
                *w = v;
            }
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
