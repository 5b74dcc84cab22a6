//! Gateways behind one relay name as one service (`[cluster]`): the
//! session cookie one of them mints is honoured by every other, so a
//! device whose gateway died reconnects to a live one with the cookie it
//! holds and keeps its address, which openconnect insists on
//! (openconnect-protocol.md §6.6). No state is shared: the cookie carries
//! the session's user, group, address and age under an HMAC of the
//! cluster's secret, and each node hands out fresh addresses only from its
//! own share of the common pool, so two nodes never give out the same one.
//!
//! A node never adopts a cookie it minted itself: a session it ended
//! (logout, timeout, kill) stays ended there. The cookie carries its
//! expiry (login + `timers.session_timeout`, which `[cluster]` requires to
//! be set) and no node honours it after. An end before that (a logout, a
//! kill, the cookie grace running out) travels as a revocation: the node
//! sends the cookie's [`revocation_tag`] with its expiry over its relay
//! links, the relay passes it to the other nodes of the name and replays
//! it to those that link up later, and every node refuses a revoked
//! cookie until it expires (`core::revocation`; docs/security.md,
//! "Cookie lifecycle").

use std::net::Ipv4Addr;

use aws_lc_rs::{digest, hmac};
use dtls::codec::{put_u8, Reader};
use proto::relay::RevocationTag;

/// The configured cluster: its secret and this node's share of the pool.
#[derive(Clone, PartialEq, Eq)]
pub struct Cluster {
    pub secret: Vec<u8>,
    /// 1-based.
    pub node: u32,
    pub nodes: u32,
}

impl core::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).field("nodes", &self.nodes).finish_non_exhaustive()
    }
}

/// What a cookie says of its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieClaims {
    pub user: String,
    pub group: String,
    pub address: Ipv4Addr,
    /// When the session began, in seconds since the Unix epoch.
    pub issued: u64,
    /// When the session ends (its `timers.session_timeout` at the minting
    /// node), in seconds since the Unix epoch: no node honours it after.
    pub expires: u64,
    /// The node that minted it.
    pub node: u32,
}

const PREFIX: &str = "c2.";
const CONTEXT: &[u8] = b"corridor session cookie v2\0";
const REVOCATION_CONTEXT: &[u8] = b"corridor cookie revocation v1\0";

/// What names a cookie in a revocation: the first 16 bytes of SHA-256
/// over a context and the cookie's text. The relay that carries it, and
/// anyone who reads it, learns nothing to log in with (a cookie holds 128
/// random bits and an HMAC); a cookie has one spelling
/// ([`Cluster::verify`]), so one cookie has one tag.
pub fn revocation_tag(cookie: &str) -> RevocationTag {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(REVOCATION_CONTEXT);
    ctx.update(cookie.as_bytes());
    let mut tag = [0u8; 16];
    if let Some(head) = ctx.finish().as_ref().get(..16) {
        tag.copy_from_slice(head);
    }
    tag
}

fn mac(secret: &[u8], payload: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(CONTEXT);
    ctx.update(payload);
    ctx.sign()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The bytes of lowercase hex, as [`hex`] writes it and nothing else: a
/// cookie has one spelling, so whatever is keyed by its text (a revoked
/// cookie) cannot be passed by another (`from_str_radix` alone would also
/// take upper case and a `+` sign).
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

impl Cluster {
    /// A cookie for a new session. `nonce` makes two sessions of one user
    /// at one second different cookies.
    /// `claims.node` is ignored: the cookie names this node.
    pub fn mint(&self, claims: &CookieClaims, nonce: &[u8; 16]) -> String {
        let mut p = Vec::new();
        p.extend_from_slice(&self.node.to_be_bytes());
        p.extend_from_slice(&claims.issued.to_be_bytes());
        p.extend_from_slice(&claims.expires.to_be_bytes());
        p.extend_from_slice(&claims.address.octets());
        for text in [&claims.user, &claims.group] {
            let t = text.as_bytes().get(..text.len().min(255)).unwrap_or_default();
            put_u8(&mut p, t.len() as u8);
            p.extend_from_slice(t);
        }
        p.extend_from_slice(nonce);
        let tag = mac(&self.secret, &p);
        format!("{PREFIX}{}.{}", hex(&p), hex(tag.as_ref()))
    }

    /// The claims of a cookie this cluster minted, or `None` for anything
    /// else (a node-local cookie, a forgery, a cookie of another cluster).
    pub fn verify(&self, cookie: &str) -> Option<CookieClaims> {
        let (payload, tag) = cookie.strip_prefix(PREFIX)?.split_once('.')?;
        let payload = unhex(payload)?;
        let tag = unhex(tag)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.secret);
        let mut msg = CONTEXT.to_vec();
        msg.extend_from_slice(&payload);
        hmac::verify(&key, &msg, &tag).ok()?;
        let mut r = Reader::new(&payload);
        let node = u32::from_be_bytes(r.array().ok()?);
        let issued = u64::from_be_bytes(r.array().ok()?);
        let expires = u64::from_be_bytes(r.array().ok()?);
        let address = Ipv4Addr::from(r.array::<4>().ok()?);
        let user = String::from_utf8(r.sub_u8().ok()?.rest().to_vec()).ok()?;
        let group = String::from_utf8(r.sub_u8().ok()?.rest().to_vec()).ok()?;
        r.take(16).ok()?;
        r.finish().ok()?;
        Some(CookieClaims { user, group, address, issued, expires, node })
    }

    /// Whether pool offset `i` is this node's to hand out fresh.
    pub fn owns_offset(&self, i: usize) -> bool {
        self.nodes <= 1 || (i % self.nodes as usize) as u32 == self.node - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(secret: &[u8]) -> Cluster {
        Cluster { secret: secret.to_vec(), node: 1, nodes: 2 }
    }

    fn claims() -> CookieClaims {
        CookieClaims {
            user: "alice".into(),
            group: "staff".into(),
            address: Ipv4Addr::new(192, 168, 99, 7),
            issued: 1_700_000_000,
            expires: 1_700_086_400,
            node: 1,
        }
    }

    #[test]
    fn a_minted_cookie_verifies_at_every_node_of_the_cluster() {
        let a = cluster(b"0123456789abcdef0123456789abcdef");
        let b = Cluster { node: 2, ..a.clone() };
        let cookie = a.mint(&claims(), &[7; 16]);
        assert!(cookie.starts_with("c2.") && cookie.bytes().all(|c| c.is_ascii_hexdigit() || c == b'.' || c == b'c'));
        assert_eq!(b.verify(&cookie), Some(claims()));
        assert_ne!(a.mint(&claims(), &[8; 16]), cookie, "the nonce makes cookies unique");
        let from_b = b.verify(&b.mint(&claims(), &[7; 16])).expect("valid");
        assert_eq!(from_b.node, 2, "a cookie names the node that minted it, whatever the claims say");
    }

    #[test]
    fn forgeries_and_strangers_are_refused() {
        let a = cluster(b"0123456789abcdef0123456789abcdef");
        let cookie = a.mint(&claims(), &[7; 16]);
        assert_eq!(cluster(b"another secret of 32 bytes......").verify(&cookie), None, "another cluster");
        // Any changed payload byte breaks the MAC.
        let (head, tag) = cookie.rsplit_once('.').expect("two parts");
        for i in 3..head.len() {
            let mut b = head.as_bytes().to_vec();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let forged = format!("{}.{tag}", String::from_utf8(b).expect("ascii"));
            assert_eq!(a.verify(&forged), None, "byte {i}");
        }
        for junk in ["", "c2.", "c2..", "c2.zz.zz", "0123abcd", &cookie[..cookie.len() - 1]] {
            assert_eq!(a.verify(junk), None, "{junk}");
        }
    }

    /// Found by the `cluster_cookie` fuzz target: `+a` and `A` in place of
    /// `0a` and `a` gave other spellings of a valid cookie.
    #[test]
    fn a_cookie_has_one_spelling() {
        let a = cluster(b"0123456789abcdef0123456789abcdef");
        let cookie = a.mint(&claims(), &[0x0a; 16]);
        let (head, tag) = cookie.rsplit_once('.').expect("two parts");
        let plus = format!("{}.{tag}", head.replacen("0a", "+a", 1));
        let upper = format!("{head}.{}", tag.to_uppercase());
        for other in [plus, upper] {
            assert_ne!(other, cookie);
            assert_eq!(a.verify(&other), None, "{other}");
        }
        assert_eq!(a.verify(&cookie).map(|c| c.user), Some("alice".into()));
    }

    #[test]
    fn a_revocation_tag_names_one_cookie_and_is_not_it() {
        let a = cluster(b"0123456789abcdef0123456789abcdef");
        let cookie = a.mint(&claims(), &[7; 16]);
        let tag = revocation_tag(&cookie);
        assert_eq!(tag, revocation_tag(&cookie), "one cookie, one tag");
        assert_ne!(tag, revocation_tag(&a.mint(&claims(), &[8; 16])));
        let hex_tag = hex(&tag);
        assert!(!cookie.contains(&hex_tag), "the tag is no part of the cookie");
        // Pinned: every node of a cluster must derive the same tag, whatever its version.
        assert_eq!(hex(&revocation_tag("c2.00.00")), "fbe441785cc727d058239f95b4a11368");
    }

    #[test]
    fn nodes_share_the_pool_without_overlap() {
        let one = cluster(b"s");
        let two = Cluster { node: 2, ..one.clone() };
        for i in 0..64 {
            assert!(one.owns_offset(i) != two.owns_offset(i), "offset {i}");
        }
        assert!(Cluster { node: 1, nodes: 1, secret: vec![] }.owns_offset(5));
    }
}
