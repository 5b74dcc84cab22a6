//! Stateless HelloVerifyRequest cookies (RFC 6347 §4.2.1).
//!
//! A cookie is `HMAC-SHA256(secret, peer ‖ ClientHello fields)`: the server
//! keeps no state for a client until it proves it can receive at its
//! address. The secret rotates; cookies made under the previous secret stay
//! valid for one more period so a rotation never fails a handshake in flight.

use std::time::{Duration, Instant};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;

use crate::handshake::msg::ClientHello;

/// Bytes of a cookie we issue.
pub(crate) const COOKIE_LEN: usize = 32;

/// The rotating cookie secret.
#[derive(Debug)]
pub(crate) struct CookieSecret {
    current: hmac::Key,
    previous: Option<hmac::Key>,
    rotated_at: Instant,
    period: Duration,
}

fn fresh_key() -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, &crate::random_array::<32>())
}

impl CookieSecret {
    pub(crate) fn new(now: Instant, period: Duration) -> Self {
        Self { current: fresh_key(), previous: None, rotated_at: now, period }
    }

    fn rotate_if_due(&mut self, now: Instant) {
        if now.saturating_duration_since(self.rotated_at) >= self.period {
            let old = core::mem::replace(&mut self.current, fresh_key());
            self.previous = Some(old);
            self.rotated_at = now;
        }
    }

    fn mac(key: &hmac::Key, peer: &[u8], ch: &ClientHello) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(&u16::try_from(peer.len()).unwrap_or(u16::MAX).to_be_bytes());
        ctx.update(peer);
        ctx.update(&ch.client_version.0.to_be_bytes());
        ctx.update(&ch.random);
        ctx.update(&[u8::try_from(ch.session_id.len()).unwrap_or(u8::MAX)]);
        ctx.update(&ch.session_id);
        for s in &ch.cipher_suites {
            ctx.update(&s.0.to_be_bytes());
        }
        ctx.update(&ch.compression_methods);
        ctx.sign()
    }

    /// The cookie for this client at this address.
    pub(crate) fn issue(&mut self, now: Instant, peer: &[u8], ch: &ClientHello) -> [u8; COOKIE_LEN] {
        self.rotate_if_due(now);
        let mut out = [0u8; COOKIE_LEN];
        let tag = Self::mac(&self.current, peer, ch);
        out.copy_from_slice(tag.as_ref().get(..COOKIE_LEN).unwrap_or(&[0; COOKIE_LEN]));
        out
    }

    /// Whether the ClientHello carries a cookie we issued to this address.
    pub(crate) fn verify(&mut self, now: Instant, peer: &[u8], ch: &ClientHello) -> bool {
        self.rotate_if_due(now);
        if ch.cookie.len() != COOKIE_LEN {
            return false;
        }
        let ok = |k: &hmac::Key| {
            let tag = Self::mac(k, peer, ch);
            verify_slices_are_equal(tag.as_ref().get(..COOKIE_LEN).unwrap_or_default(), &ch.cookie).is_ok()
        };
        ok(&self.current) || self.previous.as_ref().is_some_and(ok)
    }
}
