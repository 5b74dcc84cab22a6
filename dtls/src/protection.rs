//! Record protection for an established epoch, and the owned value that
//! carries it from the handshake to whoever moves the packets.
//!
//! # Buffer contract
//!
//! Sealing works in place on the caller's buffer:
//!
//! ```text
//! buf: [ record header (13) | explicit nonce (8 GCM, 0 ChaCha) | payload … | tag (16) ]
//!      |<------------- headroom() ------------->|             |<-tailroom()->|
//! ```
//!
//! The caller writes the payload at `buf[headroom()..]` and calls
//! [`RecordProtection::seal_in_place`]; the finished record is
//! `buf[..returned_len]`. Opening takes a buffer that starts with a record
//! and decrypts its fragment in place; [`Opened`] names the plaintext range.
//! Neither direction allocates.

use crate::crypto::{CryptoError, CryptoProvider, DefaultCrypto, NonceBytes, Open, Seal};
use crate::keys::DirectionKeys;
use crate::record::{Record, RecordHeaderRepr, HEADER_LEN, MAX_PLAINTEXT, MAX_SEQ};
use crate::replay::ReplayWindow;
use crate::suite::{AeadKind, SuiteParams, TAG_LEN};
use crate::types::{CipherSuite, ContentType, ProtocolVersion};

/// Most headroom any suite needs (GCM: header + explicit nonce).
pub const MAX_HEADROOM: usize = HEADER_LEN + 8;
/// Tailroom every suite needs (the tag).
pub const TAILROOM: usize = TAG_LEN;

/// Which end of the association this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// Everything an established epoch needs, as an owned value: the session
/// grant's cryptographic part. Keys are wiped when it is dropped.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    pub suite: CipherSuite,
    pub role: Role,
    pub epoch: u16,
    /// Our write keys.
    pub write: DirectionKeys,
    /// The peer's write keys (what we open with).
    pub read: DirectionKeys,
    /// Next sequence number we send in `epoch`.
    pub next_send_seq: u64,
    /// What we have received so far in `epoch`.
    pub replay: ReplayWindow,
}

/// Why a record could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// The buffer lacks headroom + payload + tailroom bytes.
    BufferTooSmall,
    /// The payload exceeds 2^14 bytes.
    PayloadTooLong,
    /// All 2^48 sequence numbers of the epoch were used: the association must end.
    SequenceExhausted,
    /// The AEAD refused (a non-increasing nonce in the FIPS key).
    Crypto,
}

/// Why a received record was dropped. None of these is fatal (RFC 6347
/// §4.1.2.7): the caller counts it and moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not a whole record, or too short to hold nonce and tag.
    Malformed,
    /// From an epoch other than the current one.
    WrongEpoch,
    /// Already received, or older than the replay window.
    Replayed,
    /// Authentication failed.
    BadRecordMac,
}

/// A record that was opened in place.
#[derive(Debug)]
pub struct Opened<'a> {
    pub content_type: ContentType,
    /// epoch ‖ sequence of the record.
    pub epoch_seq: u64,
    buf: &'a mut [u8],
    start: usize,
    end: usize,
    /// Bytes of the whole record in the buffer it was opened from.
    pub record_len: usize,
}

impl Opened<'_> {
    pub fn payload(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..self.end).unwrap_or_default()
    }

    /// Where the payload sits in the buffer passed to `open_in_place`.
    pub fn payload_range(&self) -> core::ops::Range<usize> {
        self.start..self.end
    }
}

/// Seals and opens records of one epoch in place.
#[derive(Debug)]
pub struct RecordProtection<P: CryptoProvider = DefaultCrypto> {
    params: SuiteParams,
    epoch: u16,
    next_seq: u64,
    sealer: P::Sealer,
    opener: P::Opener,
    write_iv: [u8; 12],
    read_iv: [u8; 12],
    replay: ReplayWindow,
}

impl<P: CryptoProvider> RecordProtection<P> {
    /// Builds the record layer from handed-off keys. Consumes the keys so the
    /// raw bytes are wiped as soon as the AEAD keys exist.
    pub fn new(keys: SessionKeys) -> Result<Self, CryptoError> {
        let params = SuiteParams::of(keys.suite).ok_or(CryptoError)?;
        let sealer = P::sealer(params.aead, keys.write.key())?;
        let opener = P::opener(params.aead, keys.read.key())?;
        let mut write_iv = [0u8; 12];
        let mut read_iv = [0u8; 12];
        write_iv.get_mut(..keys.write.iv().len()).ok_or(CryptoError)?.copy_from_slice(keys.write.iv());
        read_iv.get_mut(..keys.read.iv().len()).ok_or(CryptoError)?.copy_from_slice(keys.read.iv());
        Ok(Self {
            params,
            epoch: keys.epoch,
            next_seq: keys.next_send_seq,
            sealer,
            opener,
            write_iv,
            read_iv,
            replay: keys.replay.clone(),
        })
    }

    pub fn suite(&self) -> CipherSuite {
        self.params.suite
    }

    pub fn epoch(&self) -> u16 {
        self.epoch
    }

    /// Next sequence number [`seal_in_place`](Self::seal_in_place) will use.
    pub fn next_send_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn replay_window(&self) -> &ReplayWindow {
        &self.replay
    }

    /// Bytes before the payload: header plus explicit nonce.
    pub fn headroom(&self) -> usize {
        HEADER_LEN + self.params.explicit_nonce_len
    }

    /// Bytes after the payload: the tag.
    pub fn tailroom(&self) -> usize {
        TAG_LEN
    }

    /// Bytes a record adds to its payload.
    pub fn overhead(&self) -> usize {
        self.headroom() + TAG_LEN
    }

    fn nonce(&self, iv: &[u8; 12], explicit: &[u8; 8]) -> NonceBytes {
        let mut n = [0u8; 12];
        match self.params.aead {
            // RFC 5288 §3: salt(4) ‖ nonce_explicit(8).
            AeadKind::Aes128Gcm | AeadKind::Aes256Gcm => {
                n[..4].copy_from_slice(&iv[..4]);
                n[4..].copy_from_slice(explicit);
            }
            // RFC 7905 §2: iv XOR (0000 ‖ epoch ‖ seq).
            AeadKind::ChaCha20Poly1305 => {
                n = *iv;
                for (a, b) in n[4..].iter_mut().zip(explicit) {
                    *a ^= b;
                }
            }
        }
        n
    }

    /// Seals the `payload_len` bytes at `buf[headroom()..]` as one record of
    /// `content_type` and returns the record's total length from `buf[0]`.
    pub fn seal_in_place(
        &mut self,
        content_type: ContentType,
        buf: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, SealError> {
        if payload_len > MAX_PLAINTEXT {
            return Err(SealError::PayloadTooLong);
        }
        let seq = self.next_seq;
        if seq > MAX_SEQ {
            return Err(SealError::SequenceExhausted);
        }
        let head = self.headroom();
        let total = head + payload_len + TAG_LEN;
        let buf = buf.get_mut(..total).ok_or(SealError::BufferTooSmall)?;
        let epoch_seq = (u64::from(self.epoch) << 48) | seq;
        let explicit = epoch_seq.to_be_bytes();
        let nonce = self.nonce(&self.write_iv, &explicit);
        let aad = aad(epoch_seq, content_type, payload_len);
        let (hdr, rest) = buf.split_at_mut(head);
        let (payload, tag_out) = rest.split_at_mut(payload_len);
        let tag = self.sealer.seal(&nonce, &aad, payload).map_err(|_| SealError::Crypto)?;
        tag_out.copy_from_slice(&tag);
        let repr = RecordHeaderRepr {
            content_type,
            version: ProtocolVersion::DTLS1_2,
            epoch: self.epoch,
            sequence: seq,
            length: u16::try_from(total - HEADER_LEN).map_err(|_| SealError::PayloadTooLong)?,
        };
        let (h, nonce_out) = hdr.split_at_mut(HEADER_LEN);
        h.copy_from_slice(&repr.to_bytes());
        // RFC 5288 §3 lets the explicit nonce be the sequence number; using
        // epoch ‖ seq keeps it unique per key and strictly increasing, which
        // the FIPS TLS 1.2 key checks.
        if let Some(dst) = nonce_out.get_mut(..self.params.explicit_nonce_len) {
            dst.copy_from_slice(explicit.get(..dst.len()).unwrap_or_default());
        }
        self.next_seq = seq + 1;
        Ok(total)
    }

    /// Opens the record at the start of `buf` in place, in the order the
    /// replay window needs: check, open, commit (RFC 6347 §4.1.2.6).
    pub fn open_in_place<'a>(&mut self, buf: &'a mut [u8]) -> Result<Opened<'a>, OpenError> {
        let (content_type, epoch, epoch_seq, record_len) = {
            let r = Record::new_checked(&*buf).map_err(|_| OpenError::Malformed)?;
            (r.content_type(), r.epoch(), r.epoch_seq(), r.total_len())
        };
        if epoch != self.epoch {
            return Err(OpenError::WrongEpoch);
        }
        let seq = epoch_seq & MAX_SEQ;
        if !self.replay.check(seq) {
            return Err(OpenError::Replayed);
        }
        let explicit_len = self.params.explicit_nonce_len;
        let frag_len = record_len - HEADER_LEN;
        let plain_len = frag_len.checked_sub(explicit_len + TAG_LEN).ok_or(OpenError::Malformed)?;
        let explicit: [u8; 8] = if explicit_len == 8 {
            buf.get(HEADER_LEN..HEADER_LEN + 8).and_then(|s| s.try_into().ok()).ok_or(OpenError::Malformed)?
        } else {
            epoch_seq.to_be_bytes()
        };
        let nonce = self.nonce(&self.read_iv, &explicit);
        let aad = aad(epoch_seq, content_type, plain_len);
        let start = HEADER_LEN + explicit_len;
        let sealed = buf.get_mut(start..record_len).ok_or(OpenError::Malformed)?;
        self.opener.open(&nonce, &aad, sealed).map_err(|_| OpenError::BadRecordMac)?;
        self.replay.commit(seq);
        Ok(Opened { content_type, epoch_seq, buf, start, end: start + plain_len, record_len })
    }

    /// The state to hand on, with the current sequence number and window.
    pub fn export(&self, role: Role, write: DirectionKeys, read: DirectionKeys) -> SessionKeys {
        SessionKeys {
            suite: self.params.suite,
            role,
            epoch: self.epoch,
            write,
            read,
            next_send_seq: self.next_seq,
            replay: self.replay.clone(),
        }
    }
}

/// Additional data: `seq_num(8) ‖ type ‖ version ‖ length` (RFC 5246
/// §6.2.3.3), where DTLS's `seq_num` is epoch ‖ sequence (RFC 6347 §4.1.2.1).
fn aad(epoch_seq: u64, content_type: ContentType, plain_len: usize) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(&epoch_seq.to_be_bytes());
    a[8] = content_type.0;
    a[9..11].copy_from_slice(&ProtocolVersion::DTLS1_2.0.to_be_bytes());
    a[11..].copy_from_slice(&u16::try_from(plain_len).unwrap_or(u16::MAX).to_be_bytes());
    a
}

/// Appends a sealed record of `payload` to `out` (allocating path for the
/// handshake and for small control messages).
pub(crate) fn seal_to_vec<P: CryptoProvider>(
    p: &mut RecordProtection<P>,
    content_type: ContentType,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    let at = out.len();
    let head = p.headroom();
    out.resize(at + head + payload.len() + TAG_LEN, 0);
    let buf = out.get_mut(at..).ok_or(SealError::BufferTooSmall)?;
    buf.get_mut(head..head + payload.len()).ok_or(SealError::BufferTooSmall)?.copy_from_slice(payload);
    let n = p.seal_in_place(content_type, buf, payload.len())?;
    out.truncate(at + n);
    Ok(())
}

// A grant crosses threads: both halves must be `Send`.
const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<RecordProtection>();
    is_send::<SessionKeys>();
};
