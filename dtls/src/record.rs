//! DTLS 1.2 record header (RFC 6347 §4.1) as a zero-copy view.
//!
//! ```text
//! 0      1      3      5              11     13
//! | type | ver  | epoch| sequence (48) | len  | fragment …
//! ```

use crate::types::{ContentType, ProtocolVersion};

/// Bytes of a DTLS 1.2 record header.
pub const HEADER_LEN: usize = 13;

/// Largest plaintext fragment (RFC 5246 §6.2.1).
pub const MAX_PLAINTEXT: usize = 1 << 14;

/// Largest protected fragment we accept: plaintext plus the AEAD expansion
/// (RFC 5246 §6.2.3 allows 2^14 + 2048).
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 2048;

/// Highest 48-bit sequence number.
pub const MAX_SEQ: u64 = (1 << 48) - 1;

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than a header, or than the header's length says.
    Truncated,
    /// The version's major byte is not DTLS.
    NotDtls,
    /// The length field exceeds what any peer may send.
    Oversized,
}

/// A typed view over one record at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Record<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Record<T> {
    /// Checks that `buf` starts with a complete DTLS record header and that
    /// the fragment it announces is present. Extra bytes after the record
    /// are allowed (several records share a datagram); see [`Record::total_len`].
    pub fn new_checked(buf: T) -> Result<Self, RecordError> {
        let b = buf.as_ref();
        let hdr: &[u8; HEADER_LEN] =
            b.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(RecordError::Truncated)?;
        if hdr[1] != 0xfe {
            return Err(RecordError::NotDtls);
        }
        let len = usize::from(u16::from_be_bytes([hdr[11], hdr[12]]));
        if len > MAX_CIPHERTEXT {
            return Err(RecordError::Oversized);
        }
        if b.len() < HEADER_LEN + len {
            return Err(RecordError::Truncated);
        }
        Ok(Self { buf })
    }

    fn header(&self) -> &[u8; HEADER_LEN] {
        // new_checked proved the header is there; the fallback is unreachable.
        self.buf.as_ref().first_chunk::<HEADER_LEN>().unwrap_or(&[0; HEADER_LEN])
    }

    pub fn content_type(&self) -> ContentType {
        ContentType(self.header()[0])
    }

    pub fn version(&self) -> ProtocolVersion {
        let h = self.header();
        ProtocolVersion(u16::from_be_bytes([h[1], h[2]]))
    }

    pub fn epoch(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[3], h[4]])
    }

    /// The 48-bit sequence number within the epoch.
    pub fn sequence(&self) -> u64 {
        let h = self.header();
        u64::from_be_bytes([0, 0, h[5], h[6], h[7], h[8], h[9], h[10]])
    }

    /// epoch ‖ sequence, the 64-bit number the AAD and the replay window use.
    pub fn epoch_seq(&self) -> u64 {
        (u64::from(self.epoch()) << 48) | self.sequence()
    }

    pub fn fragment_len(&self) -> usize {
        let h = self.header();
        usize::from(u16::from_be_bytes([h[11], h[12]]))
    }

    /// Header plus fragment.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.fragment_len()
    }

    pub fn fragment(&self) -> &[u8] {
        self.buf.as_ref().get(HEADER_LEN..self.total_len()).unwrap_or_default()
    }

    pub fn into_inner(self) -> T {
        self.buf
    }
}

/// What a record header holds, for building one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeaderRepr {
    pub content_type: ContentType,
    pub version: ProtocolVersion,
    pub epoch: u16,
    pub sequence: u64,
    pub length: u16,
}

impl RecordHeaderRepr {
    /// The header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let seq = self.sequence.to_be_bytes();
        h[0] = self.content_type.0;
        h[1..3].copy_from_slice(&self.version.0.to_be_bytes());
        h[3..5].copy_from_slice(&self.epoch.to_be_bytes());
        h[5..11].copy_from_slice(&seq[2..8]);
        h[11..13].copy_from_slice(&self.length.to_be_bytes());
        h
    }
}

/// Splits a datagram into its records. Iteration stops at the first bytes
/// that are not a whole record (RFC 6347 §4.1.2.7: the rest of the datagram
/// is discarded); [`Records::malformed`] tells whether that happened.
#[derive(Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl<'a> Records<'a> {
    pub fn new(datagram: &'a [u8]) -> Self {
        Self { rest: datagram, malformed: false }
    }

    /// Whether trailing bytes were not a valid record.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Record::new_checked(self.rest) {
            Ok(r) => {
                let n = r.total_len();
                let (this, rest) = self.rest.split_at(n.min(self.rest.len()));
                self.rest = rest;
                Record::new_checked(this).ok()
            }
            Err(_) => {
                self.malformed = true;
                self.rest = &[];
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let repr = RecordHeaderRepr {
            content_type: ContentType::APPLICATION_DATA,
            version: ProtocolVersion::DTLS1_2,
            epoch: 1,
            sequence: 0x0000_0102_0304_0506,
            length: 3,
        };
        let mut buf = repr.to_bytes().to_vec();
        buf.extend_from_slice(b"abc");
        let r = Record::new_checked(&buf[..]).expect("valid");
        assert_eq!(r.content_type(), ContentType::APPLICATION_DATA);
        assert_eq!(r.epoch(), 1);
        assert_eq!(r.sequence(), 0x0102_0304_0506);
        assert_eq!(r.epoch_seq(), 0x0001_0102_0304_0506);
        assert_eq!(r.fragment(), b"abc");
    }

    #[test]
    fn truncated_and_non_dtls_are_rejected() {
        assert_eq!(Record::new_checked(&[22u8, 0xfe][..]).err(), Some(RecordError::Truncated));
        let mut b = [0u8; 13];
        b[1] = 0x03;
        assert_eq!(Record::new_checked(&b[..]).err(), Some(RecordError::NotDtls));
        b[1] = 0xfe;
        b[12] = 1;
        assert_eq!(Record::new_checked(&b[..]).err(), Some(RecordError::Truncated));
    }

    #[test]
    fn datagram_with_two_records_and_garbage() {
        let mut d = Vec::new();
        for _ in 0..2 {
            d.extend_from_slice(&[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9]);
        }
        d.extend_from_slice(&[1, 2, 3]);
        let mut it = Records::new(&d);
        assert_eq!(it.by_ref().count(), 2);
        assert!(it.malformed());
    }
}
