//! Unguessable values from the system CSPRNG (through aws-lc-rs): the
//! nonces of link challenges, streams and flows, cookies and App-IDs.

/// `N` random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // AWS-LC aborts rather than fail; an error here would mean no entropy.
    aws_lc_rs::rand::fill(&mut b).expect("the system CSPRNG failed");
    b
}

/// A fresh unguessable token of `N` random bytes as lowercase hex.
pub fn random_hex<const N: usize>() -> String {
    random_bytes::<N>().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_fresh_and_hex_is_lowercase_and_twice_as_long() {
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
        let h = random_hex::<32>();
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{h}");
    }
}
