//! Cluster cookies an operator revoked at this node. A session adopted
//! from another node's cookie ([`Core::adopt`](super::Core)) and then
//! killed here would otherwise be adopted again on the device's next
//! CONNECT: the cookie still verifies. Its text is kept until the cookie's
//! own expiry, after which no node honours it anyway. Other nodes are not
//! told (see [`crate::cluster`]).

use std::collections::HashMap;

#[derive(Debug, Default)]
pub(super) struct Revoked {
    /// Cookie text → its expiry, in seconds since the Unix epoch.
    until: HashMap<String, u64>,
}

impl Revoked {
    pub(super) fn revoke(&mut self, cookie: &str, expires: u64) {
        self.until.insert(cookie.to_owned(), expires);
    }

    pub(super) fn contains(&self, cookie: &str) -> bool {
        self.until.contains_key(cookie)
    }

    /// Forgets cookies past their expiry: nothing honours them any more.
    pub(super) fn prune(&mut self, unix_now: u64) {
        self.until.retain(|_, expires| *expires > unix_now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_cookie_is_held_until_its_expiry() {
        let mut r = Revoked::default();
        r.revoke("c2.aa.bb", 1_000);
        assert!(r.contains("c2.aa.bb") && !r.contains("c2.aa.bc"));
        r.prune(999);
        assert!(r.contains("c2.aa.bb"));
        r.prune(1_000);
        assert!(!r.contains("c2.aa.bb"));
    }
}
