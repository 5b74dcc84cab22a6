//! What each supported cipher suite means for key derivation and records.

use crate::types::CipherSuite;

/// The PRF hash of a suite (RFC 5246 §5; SHA-384 for the `_SHA384` suites).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrfHash {
    Sha256,
    Sha384,
}

impl PrfHash {
    pub(crate) fn prf(self) -> &'static aws_lc_rs::tls_prf::Algorithm {
        match self {
            PrfHash::Sha256 => &aws_lc_rs::tls_prf::P_SHA256,
            PrfHash::Sha384 => &aws_lc_rs::tls_prf::P_SHA384,
        }
    }

    pub(crate) fn digest(self) -> &'static aws_lc_rs::digest::Algorithm {
        match self {
            PrfHash::Sha256 => &aws_lc_rs::digest::SHA256,
            PrfHash::Sha384 => &aws_lc_rs::digest::SHA384,
        }
    }
}

/// The AEAD of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadKind {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

/// Everything the record layer and key schedule need to know about a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteParams {
    pub suite: CipherSuite,
    pub aead: AeadKind,
    pub prf: PrfHash,
    /// Bytes of each write key.
    pub key_len: usize,
    /// Bytes of each write IV taken from the key block: the 4-byte GCM salt
    /// (RFC 5288 §3) or the 12-byte ChaCha20 IV (RFC 7905 §2).
    pub fixed_iv_len: usize,
    /// Bytes of explicit nonce carried in every record: 8 for GCM, 0 for ChaCha20.
    pub explicit_nonce_len: usize,
}

/// Authentication tag length of every suite here.
pub const TAG_LEN: usize = 16;

impl SuiteParams {
    /// Parameters of a suite this crate implements.
    pub fn of(suite: CipherSuite) -> Option<Self> {
        let p = match suite {
            CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256 => Self {
                suite,
                aead: AeadKind::Aes128Gcm,
                prf: PrfHash::Sha256,
                key_len: 16,
                fixed_iv_len: 4,
                explicit_nonce_len: 8,
            },
            CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384 => Self {
                suite,
                aead: AeadKind::Aes256Gcm,
                prf: PrfHash::Sha384,
                key_len: 32,
                fixed_iv_len: 4,
                explicit_nonce_len: 8,
            },
            CipherSuite::TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 => Self {
                suite,
                aead: AeadKind::ChaCha20Poly1305,
                prf: PrfHash::Sha256,
                key_len: 32,
                fixed_iv_len: 12,
                explicit_nonce_len: 0,
            },
            _ => return None,
        };
        Some(p)
    }

    /// Whether a FIPS build may negotiate this suite (AES-GCM only).
    pub fn fips_approved(&self) -> bool {
        self.aead != AeadKind::ChaCha20Poly1305
    }

    /// Bytes a protected record adds to its plaintext: explicit nonce + tag.
    pub fn expansion(&self) -> usize {
        self.explicit_nonce_len + TAG_LEN
    }

    /// Bytes of key block: two keys and two IVs (no MAC keys for AEAD, RFC 5246 §6.3).
    pub fn key_block_len(&self) -> usize {
        2 * (self.key_len + self.fixed_iv_len)
    }
}

/// Suites in our default preference: AES-256-GCM first, as openconnect and
/// ocserv prefer it; ChaCha20 last (and absent in FIPS builds).
pub fn default_suites() -> Vec<CipherSuite> {
    let all = [
        CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
    ];
    all.into_iter()
        .filter(|s| SuiteParams::of(*s).is_some_and(|p| !cfg!(feature = "fips") || p.fips_approved()))
        .collect()
}
