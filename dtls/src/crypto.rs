//! The narrow seam between the record layer and the AEAD implementation.
//!
//! [`AwsLc`] is the real one. AES-GCM goes through aws-lc-rs's TLS 1.2 record
//! keys (`TlsRecordSealingKey`), which refuse a nonce that does not increase:
//! the FIPS-approved API, used in every build so the same code runs in both.
//! ChaCha20-Poly1305 uses `LessSafeKey` and does not exist in FIPS builds.
//! [`NullCrypto`] copies bytes and writes a zero tag: for fuzzing past the
//! AEAD and for measuring what the crypto itself costs.
//!
//! Dispatch is static: the record layer is generic over [`CryptoProvider`].

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::aead::{TlsProtocolId, TlsRecordOpeningKey, TlsRecordSealingKey};

use crate::suite::{AeadKind, TAG_LEN};

/// The AEAD refused: a bad key length, a nonce that did not increase, an
/// algorithm this build lacks, or (on open) a forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoError;

/// 12-byte AEAD nonce.
pub type NonceBytes = [u8; 12];

/// One direction's sealing key.
pub trait Seal {
    /// Encrypts `in_out` in place and returns the tag.
    fn seal(&mut self, nonce: &NonceBytes, aad: &[u8], in_out: &mut [u8]) -> Result<[u8; TAG_LEN], CryptoError>;
}

/// One direction's opening key.
pub trait Open {
    /// Decrypts `in_out` (ciphertext ‖ tag) in place; the plaintext is the
    /// first `in_out.len() - TAG_LEN` bytes on success.
    fn open(&self, nonce: &NonceBytes, aad: &[u8], in_out: &mut [u8]) -> Result<(), CryptoError>;
}

/// A family of sealing and opening keys.
pub trait CryptoProvider {
    type Sealer: Seal + core::fmt::Debug + Send;
    type Opener: Open + core::fmt::Debug + Send;

    fn sealer(aead: AeadKind, key: &[u8]) -> Result<Self::Sealer, CryptoError>;
    fn opener(aead: AeadKind, key: &[u8]) -> Result<Self::Opener, CryptoError>;
}

/// The provider records use unless told otherwise: [`AwsLc`], or
/// [`NullCrypto`] in a build with the `null-aead` feature, which exists only
/// for scripts/gateway-cost.sh's null forwarder (the same path with no
/// crypto, to subtract). Such a build says so in `corridor --version` and at
/// start-up, and scripts/package.sh refuses to package it.
#[cfg(not(feature = "null-aead"))]
pub type DefaultCrypto = AwsLc;
/// See the other build's `DefaultCrypto`: this build does NOT encrypt.
#[cfg(feature = "null-aead")]
pub type DefaultCrypto = NullCrypto;

/// True in a `null-aead` build: records are sent in the clear.
pub const NULL_AEAD: bool = cfg!(feature = "null-aead");

/// aws-lc-rs, the production provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLc;

#[derive(Debug)]
pub enum AwsLcSealer {
    Tls12(TlsRecordSealingKey),
    ChaCha(LessSafeKey),
}

#[derive(Debug)]
pub enum AwsLcOpener {
    Tls12(TlsRecordOpeningKey),
    ChaCha(LessSafeKey),
}

fn gcm(aead: AeadKind) -> Option<&'static aead::Algorithm> {
    match aead {
        AeadKind::Aes128Gcm => Some(&aead::AES_128_GCM),
        AeadKind::Aes256Gcm => Some(&aead::AES_256_GCM),
        AeadKind::ChaCha20Poly1305 => None,
    }
}

fn chacha(key: &[u8]) -> Result<LessSafeKey, CryptoError> {
    if cfg!(feature = "fips") {
        return Err(CryptoError);
    }
    let k = UnboundKey::new(&aead::CHACHA20_POLY1305, key).map_err(|_| CryptoError)?;
    Ok(LessSafeKey::new(k))
}

impl CryptoProvider for AwsLc {
    type Sealer = AwsLcSealer;
    type Opener = AwsLcOpener;

    fn sealer(aead: AeadKind, key: &[u8]) -> Result<Self::Sealer, CryptoError> {
        match gcm(aead) {
            Some(alg) => TlsRecordSealingKey::new(alg, TlsProtocolId::TLS12, key)
                .map(AwsLcSealer::Tls12)
                .map_err(|_| CryptoError),
            None => chacha(key).map(AwsLcSealer::ChaCha),
        }
    }

    fn opener(aead: AeadKind, key: &[u8]) -> Result<Self::Opener, CryptoError> {
        match gcm(aead) {
            Some(alg) => TlsRecordOpeningKey::new(alg, TlsProtocolId::TLS12, key)
                .map(AwsLcOpener::Tls12)
                .map_err(|_| CryptoError),
            None => chacha(key).map(AwsLcOpener::ChaCha),
        }
    }
}

impl Seal for AwsLcSealer {
    #[inline]
    fn seal(&mut self, nonce: &NonceBytes, aad: &[u8], in_out: &mut [u8]) -> Result<[u8; TAG_LEN], CryptoError> {
        let nonce = Nonce::assume_unique_for_key(*nonce);
        let tag = match self {
            AwsLcSealer::Tls12(k) => k.seal_in_place_separate_tag(nonce, Aad::from(aad), in_out),
            AwsLcSealer::ChaCha(k) => k.seal_in_place_separate_tag(nonce, Aad::from(aad), in_out),
        }
        .map_err(|_| CryptoError)?;
        tag.as_ref().try_into().map_err(|_| CryptoError)
    }
}

impl Open for AwsLcOpener {
    #[inline]
    fn open(&self, nonce: &NonceBytes, aad: &[u8], in_out: &mut [u8]) -> Result<(), CryptoError> {
        let nonce = Nonce::assume_unique_for_key(*nonce);
        match self {
            AwsLcOpener::Tls12(k) => k.open_in_place(nonce, Aad::from(aad), in_out).map(|_| ()),
            AwsLcOpener::ChaCha(k) => k.open_in_place(nonce, Aad::from(aad), in_out).map(|_| ()),
        }
        .map_err(|_| CryptoError)
    }
}

/// No encryption: plaintext stays as it is and the tag is zero. Never use it
/// on a network; it exists for fuzzing and for cost measurements.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullCrypto;

/// Key-less sealer/opener of [`NullCrypto`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NullKey;

impl CryptoProvider for NullCrypto {
    type Sealer = NullKey;
    type Opener = NullKey;

    fn sealer(_: AeadKind, _: &[u8]) -> Result<NullKey, CryptoError> {
        Ok(NullKey)
    }

    fn opener(_: AeadKind, _: &[u8]) -> Result<NullKey, CryptoError> {
        Ok(NullKey)
    }
}

impl Seal for NullKey {
    fn seal(&mut self, _: &NonceBytes, _: &[u8], _: &mut [u8]) -> Result<[u8; TAG_LEN], CryptoError> {
        Ok([0; TAG_LEN])
    }
}

impl Open for NullKey {
    fn open(&self, _: &NonceBytes, _: &[u8], in_out: &mut [u8]) -> Result<(), CryptoError> {
        let tag_at = in_out.len().checked_sub(TAG_LEN).ok_or(CryptoError)?;
        match in_out.get(tag_at..) {
            Some(tag) if tag.iter().all(|b| *b == 0) => Ok(()),
            _ => Err(CryptoError),
        }
    }
}
