//! The Internet checksum (RFC 1071), eight bytes per step.
//!
//! Every packet a TUN offload hands over costs a checksum per segment: the
//! sum over the segment is the one per-byte pass left on that path, so it
//! reads 64-bit words instead of 16-bit ones. This is correct because the
//! one's-complement sum is arithmetic modulo `0xffff` and `2^16 ≡ 1`: a
//! 32-bit half of a word is congruent to the sum of its two 16-bit words
//! (RFC 1071 §2(C), "parallel summation"), so adding the halves into a
//! 64-bit accumulator and folding the carries back at the end gives the
//! same result as adding 16-bit words one by one.
//!
//! The words are read little-endian and the folded result byte-swapped
//! once: the sum is byte-order independent (RFC 1071 §2(B)), and this way
//! the loop is plain additions that the compiler vectorises, with no byte
//! swap per word.
//!
//! A partial sum is a `u32`: not yet folded to 16 bits, congruent to the
//! one's-complement sum of big-endian 16-bit words, and ready to be passed
//! as `initial` to another [`sum`] (over data that followed an *even* number
//! of bytes) or to [`fold`].

use std::net::Ipv4Addr;

/// Bytes summed into one accumulator before its carries are folded: 8192
/// words of at most `2^33` each stay below `2^46`, so the accumulator never
/// overflows however long the input.
const BLOCK: usize = 1 << 16;

/// The one's-complement sum of `bytes` as big-endian 16-bit words (an odd
/// last byte padded with a zero on its right), added to `initial`.
///
/// `initial` is a partial sum from [`sum`] or [`pseudo_header_v4`]; when it
/// covers bytes that precede `bytes`, there must be an even number of them
/// for the words to line up.
pub fn sum(bytes: &[u8], initial: u32) -> u32 {
    let mut total = u64::from(initial);
    for block in bytes.chunks(BLOCK) {
        let le = fold(fold_to_u32(sum_le(block)));
        total = u64::from(fold_to_u32(total + u64::from(le.swap_bytes())));
    }
    fold_to_u32(total)
}

/// Folds a partial sum to 16 bits: the one's-complement sum itself. Invert
/// it (`!fold(..)`) for the checksum field of a header whose field was zero
/// while summing.
pub fn fold(partial: u32) -> u16 {
    let mut s = partial;
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    u16::try_from(s).unwrap_or(u16::MAX)
}

/// The partial sum of the IPv4 pseudo-header (RFC 9293 §3.1, RFC 768) that
/// TCP and UDP checksums cover: source, destination, zero, protocol, and the
/// length of the TCP or UDP header plus payload.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, l4_len: u16) -> u32 {
    let word = |a: Ipv4Addr| {
        let x = u32::from(a);
        (x >> 16) + (x & 0xffff)
    };
    word(src) + word(dst) + u32::from(protocol) + u32::from(l4_len)
}

/// The sum of `block` as little-endian 32-bit halves of 64-bit words; at
/// most [`BLOCK`] bytes, so below `2^46`.
fn sum_le(block: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut words = block.chunks_exact(8);
    for w in &mut words {
        if let Some(a) = w.first_chunk::<8>() {
            let v = u64::from_le_bytes(*a);
            acc += (v >> 32) + (v & 0xffff_ffff);
        }
    }
    // The tail, zero-padded on the right: in place, its bytes keep their
    // position in the 16-bit words, so an odd last byte is the high half of
    // its big-endian word, as RFC 1071 wants.
    let rest = words.remainder();
    let mut last = [0u8; 8];
    if let Some(dst) = last.get_mut(..rest.len()) {
        dst.copy_from_slice(rest);
    }
    let v = u64::from_le_bytes(last);
    acc + (v >> 32) + (v & 0xffff_ffff)
}

/// Folds a 64-bit accumulator to 32 bits, keeping it congruent modulo
/// `0xffff` (`2^32 ≡ 1`). Two rounds suffice: after the first the value is
/// below `2^33`, and the second cannot carry again.
fn fold_to_u32(x: u64) -> u32 {
    let x = (x & 0xffff_ffff) + (x >> 32);
    let x = (x & 0xffff_ffff) + (x >> 32);
    u32::try_from(x).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 read literally: 16-bit big-endian words, end-around carry.
    fn naive(bytes: &[u8], initial: u32) -> u16 {
        let mut s = u64::from(initial);
        for w in bytes.chunks(2) {
            let hi = u64::from(w[0]);
            let lo = if w.len() == 2 { u64::from(w[1]) } else { 0 };
            s += (hi << 8) | lo;
        }
        // Folded after the loop, not only inside it: an initial sum above
        // 0xffff with no bytes still needs its carries added back.
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&b, 0)), 0xddf2);
        assert_eq!(fold(sum(&b[..7], 0)), 0xddf2 - 0xf7);
        // The header with its checksum in place sums to all ones.
        let with_check = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7, 0x22, 0x0d];
        assert_eq!(fold(sum(&with_check, 0)), 0xffff);
    }

    #[test]
    fn edge_values() {
        assert_eq!(fold(sum(&[], 0)), 0);
        assert_eq!(fold(sum(&[0xff; 2], 0)), 0xffff);
        assert_eq!(fold(sum(&[0xff; 65535], 0)), naive(&[0xff; 65535], 0));
        assert_eq!(fold(sum(&[0xff; 3 * BLOCK + 7], u32::MAX)), naive(&[0xff; 3 * BLOCK + 7], u32::MAX));
        assert_eq!(fold(u32::MAX), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
    }

    #[test]
    fn pseudo_header_is_the_sum_of_its_bytes() {
        let (s, d) = (Ipv4Addr::new(192, 168, 99, 121), Ipv4Addr::new(10, 99, 0, 1));
        let mut ph = Vec::new();
        ph.extend_from_slice(&s.octets());
        ph.extend_from_slice(&d.octets());
        ph.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(fold(pseudo_header_v4(s, d, 6, 1500)), naive(&ph, 0));
    }

    proptest! {
        #[test]
        fn equals_the_naive_sum(
            bytes in prop::collection::vec(any::<u8>(), 0..3000),
            initial in any::<u32>(),
            cut in any::<prop::sample::Index>(),
        ) {
            prop_assert_eq!(fold(sum(&bytes, initial)), naive(&bytes, initial));
            // Sums compose over an even-length prefix.
            let at = cut.index(bytes.len() + 1) & !1;
            prop_assert_eq!(fold(sum(&bytes[at..], sum(&bytes[..at], initial))), naive(&bytes, initial));
        }

        #[test]
        fn pseudo_header_equals_the_naive_sum(s in any::<u32>(), d in any::<u32>(), p in any::<u8>(), l in any::<u16>()) {
            let mut ph = Vec::new();
            ph.extend_from_slice(&s.to_be_bytes());
            ph.extend_from_slice(&d.to_be_bytes());
            ph.extend_from_slice(&[0, p]);
            ph.extend_from_slice(&l.to_be_bytes());
            prop_assert_eq!(fold(pseudo_header_v4(s.into(), d.into(), p, l)), naive(&ph, 0));
        }
    }
}
