//! Certificate pins as openconnect writes them (`--servercert
//! pin-sha256:…`): the SHA-256 of a certificate's SubjectPublicKeyInfo,
//! base64. The relay prints the pin of its link certificate at start; the
//! gateway's `[[relay]] pin_sha256` holds it. Pinning the key, not the
//! certificate, lets the relay renew its certificate with the same key.

use aws_lc_rs::digest;

/// A SubjectPublicKeyInfo SHA-256.
pub type Pin = [u8; 32];

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The pin of a DER SubjectPublicKeyInfo.
pub fn spki_pin(spki_der: &[u8]) -> Pin {
    let d = digest::digest(&digest::SHA256, spki_der);
    let mut pin = [0u8; 32];
    pin.copy_from_slice(d.as_ref());
    pin
}

/// `pin` in standard base64 with padding (44 characters), as configured.
pub fn pin_base64(pin: &Pin) -> String {
    let mut out = String::with_capacity(44);
    for chunk in pin.chunks(3) {
        let b = [chunk.first().copied(), chunk.get(1).copied(), chunk.get(2).copied()];
        let n =
            (u32::from(b[0].unwrap_or(0)) << 16) | (u32::from(b[1].unwrap_or(0)) << 8) | u32::from(b[2].unwrap_or(0));
        for (i, present) in [true, true, b[1].is_some(), b[2].is_some()].into_iter().enumerate() {
            let sextet = (n >> (18 - 6 * i)) & 63;
            out.push(if present { B64.get(sextet as usize).map_or('=', |&c| char::from(c)) } else { '=' });
        }
    }
    out
}

/// Reads a pin: base64 of the 32 bytes (padding optional), or 64 hex
/// digits, either optionally after `pin-sha256:` (openconnect's form).
pub fn parse_pin(text: &str) -> Option<Pin> {
    let t = text.trim();
    let t = t.strip_prefix("pin-sha256:").unwrap_or(t);
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut pin = [0u8; 32];
        for (i, byte) in pin.iter_mut().enumerate() {
            *byte = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        return Some(pin);
    }
    let t = t.trim_end_matches('=');
    if t.len() != 43 {
        return None;
    }
    let mut bits: u32 = 0;
    let mut n_bits = 0;
    let mut out = Vec::with_capacity(33);
    for c in t.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        n_bits += 6;
        if n_bits >= 8 {
            n_bits -= 8;
            out.push((bits >> n_bits) as u8);
            bits &= (1 << n_bits) - 1;
        }
    }
    // 43 characters carry 258 bits: the last two must be zero.
    if bits != 0 {
        return None;
    }
    out.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_round_trip_in_both_spellings() {
        let pin: Pin = core::array::from_fn(|i| (i * 37 + 5) as u8);
        let b64 = pin_base64(&pin);
        assert_eq!(b64.len(), 44);
        assert!(b64.ends_with('='));
        assert_eq!(parse_pin(&b64), Some(pin));
        assert_eq!(parse_pin(&format!("pin-sha256:{}", b64.trim_end_matches('='))), Some(pin));
        let hex: String = pin.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_pin(&hex.to_uppercase()), Some(pin));
    }

    /// `printf abc | openssl dgst -sha256 -binary | base64`.
    #[test]
    fn the_base64_is_openssls() {
        assert_eq!(pin_base64(&spki_pin(b"abc")), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    }

    #[test]
    fn bad_pins_are_refused() {
        for bad in [
            "",
            "short",
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa1=",
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAF!0=",
        ] {
            assert_eq!(parse_pin(bad), None, "{bad}");
        }
    }
}
