//! Revoked session cookies, held by tag until each cookie's own expiry:
//! the gateway keeps the ones it must refuse, the relay the ones it
//! replays to a gateway that links up later. Both hold them the same way,
//! so the rule is written once: an entry lives until `expires` (seconds
//! since the Unix epoch) and no longer, and a full list drops the entry
//! that expires first, since it protects for the shortest time.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

/// The tag of a revoked cookie (`proto::relay::RevocationTag`: the same
/// bytes; `service` does not depend on `proto`).
pub type Tag = [u8; 16];

/// The default cap: 65 536 entries, about 4 MiB with both indexes.
pub const DEFAULT_CAP: usize = 65_536;

/// What [`Revocations::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A tag not held before. `evicted`: the list was full, and the entry
    /// that expires first went (that may be this one, if it does).
    New { evicted: bool },
    /// Held already (its expiry is kept at the later of the two).
    Known,
    /// Its expiry has passed: there is nothing left to refuse.
    Expired,
}

/// A place in a list's expiry order, for sending a long list a part at a
/// time (a link's outbox holds 256 KiB; a full list is 1.7 MiB of frames).
/// Entries added behind the cursor meanwhile are not visited: whoever
/// replays a list also sends what is added to it as it comes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor(Option<(u64, Tag)>);

/// A bounded set of tags, each until its expiry.
#[derive(Debug, Clone)]
pub struct Revocations {
    cap: usize,
    by_tag: HashMap<Tag, u64>,
    by_expiry: BTreeSet<(u64, Tag)>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self::new(DEFAULT_CAP)
    }
}

impl Revocations {
    /// An empty list holding at most `cap` (at least one) entries.
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.max(1), by_tag: HashMap::new(), by_expiry: BTreeSet::new() }
    }

    /// Holds `tag` until `expires`, unless that has passed by `unix_now`.
    pub fn insert(&mut self, tag: Tag, expires: u64, unix_now: u64) -> Added {
        if expires <= unix_now {
            return Added::Expired;
        }
        if let Some(held) = self.by_tag.get_mut(&tag) {
            if expires > *held {
                self.by_expiry.remove(&(*held, tag));
                *held = expires;
                self.by_expiry.insert((expires, tag));
            }
            return Added::Known;
        }
        self.by_tag.insert(tag, expires);
        self.by_expiry.insert((expires, tag));
        let evicted = self.by_tag.len() > self.cap;
        if evicted {
            if let Some((_, first)) = self.by_expiry.pop_first() {
                self.by_tag.remove(&first);
            }
        }
        Added::New { evicted }
    }

    /// Whether `tag` is revoked at `unix_now`.
    pub fn contains(&self, tag: &Tag, unix_now: u64) -> bool {
        self.by_tag.get(tag).is_some_and(|e| *e > unix_now)
    }

    /// Forgets every entry whose expiry has passed; how many went.
    pub fn expire(&mut self, unix_now: u64) -> usize {
        let mut gone = 0;
        while let Some(&(expires, tag)) = self.by_expiry.first() {
            if expires > unix_now {
                break;
            }
            self.by_expiry.pop_first();
            self.by_tag.remove(&tag);
            gone += 1;
        }
        gone
    }

    /// Every entry, `(tag, expires)`, the first to expire first.
    pub fn iter(&self) -> impl Iterator<Item = (Tag, u64)> + '_ {
        self.by_expiry.iter().map(|(e, t)| (*t, *e))
    }

    /// Up to `n` entries after `cursor`, the first to expire first, and
    /// the cursor moved past them; fewer than `n` means the end was reached.
    pub fn next_batch(&self, cursor: &mut Cursor, n: usize) -> Vec<(Tag, u64)> {
        let from = cursor.0.map_or(Bound::Unbounded, Bound::Excluded);
        let batch: Vec<(Tag, u64)> =
            self.by_expiry.range((from, Bound::Unbounded)).take(n).map(|(e, t)| (*t, *e)).collect();
        if let Some((t, e)) = batch.last() {
            cursor.0 = Some((*e, *t));
        }
        batch
    }

    pub fn len(&self) -> usize {
        self.by_tag.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn tag(n: u8) -> Tag {
        [n; 16]
    }

    #[test]
    fn an_entry_lives_until_its_expiry_and_no_longer() {
        let mut r = Revocations::default();
        assert_eq!(r.insert(tag(1), NOW + 10, NOW), Added::New { evicted: false });
        assert_eq!(r.insert(tag(1), NOW + 5, NOW), Added::Known);
        assert_eq!(r.insert(tag(2), NOW, NOW), Added::Expired, "already over");
        assert!(r.contains(&tag(1), NOW + 9));
        assert!(!r.contains(&tag(1), NOW + 10), "not past its expiry, even before it is pruned");
        assert_eq!(r.expire(NOW + 9), 0);
        assert_eq!(r.expire(NOW + 10), 1);
        assert!(r.is_empty());
    }

    #[test]
    fn a_later_expiry_for_a_held_tag_extends_it() {
        let mut r = Revocations::default();
        r.insert(tag(1), NOW + 10, NOW);
        assert_eq!(r.insert(tag(1), NOW + 20, NOW), Added::Known);
        assert_eq!(r.expire(NOW + 15), 0);
        assert_eq!(r.iter().collect::<Vec<_>>(), [(tag(1), NOW + 20)]);
    }

    #[test]
    fn a_list_is_walked_in_batches() {
        let mut r = Revocations::default();
        for n in 0..5 {
            r.insert(tag(n), NOW + 10 - u64::from(n), NOW);
        }
        let mut at = Cursor::default();
        let first = r.next_batch(&mut at, 2);
        assert_eq!(first, [(tag(4), NOW + 6), (tag(3), NOW + 7)]);
        // Added behind the cursor: not visited; ahead of it: visited.
        r.insert(tag(9), NOW + 1, NOW);
        r.insert(tag(8), NOW + 100, NOW);
        let rest: Vec<Tag> =
            [r.next_batch(&mut at, 2), r.next_batch(&mut at, 2)].concat().iter().map(|e| e.0).collect();
        assert_eq!(rest, [tag(2), tag(1), tag(0), tag(8)]);
        assert!(r.next_batch(&mut at, 2).is_empty());
    }

    #[test]
    fn a_full_list_drops_what_expires_first() {
        let mut r = Revocations::new(3);
        for (n, e) in [(1, 30), (2, 10), (3, 20)] {
            assert_eq!(r.insert(tag(n), NOW + e, NOW), Added::New { evicted: false });
        }
        assert_eq!(r.insert(tag(4), NOW + 40, NOW), Added::New { evicted: true });
        assert!(!r.contains(&tag(2), NOW), "the first to expire went");
        assert_eq!(r.len(), 3);
        // A newcomer that would expire before everything held is the one dropped.
        assert_eq!(r.insert(tag(5), NOW + 1, NOW), Added::New { evicted: true });
        assert!(!r.contains(&tag(5), NOW));
        let order: Vec<u64> = r.iter().map(|(_, e)| e - NOW).collect();
        assert_eq!(order, [20, 30, 40]);
    }
}
