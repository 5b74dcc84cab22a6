//! The TLS 1.2 key schedule as DTLS 1.2 uses it: PSK premaster (RFC 4279 §2),
//! master secret with or without the session hash (RFC 5246 §8.1, RFC 7627 §4),
//! key block (RFC 5246 §6.3) and Finished (RFC 5246 §7.4.9).
//!
//! The PRF is aws-lc-rs's `tls_prf`. The AWS-LC FIPS module counts it as
//! an approved service only under the label `extended master secret`
//! (RFC 7627), that is when the client offered EMS; openconnect's
//! PSK-NEGOTIATE profile does not (docs/operations.md, the FIPS build).

use zeroize::{Zeroize, Zeroizing};

use crate::suite::{PrfHash, SuiteParams};

/// Bytes of a master secret.
pub const MASTER_LEN: usize = 48;

/// Bytes of Finished verify_data in TLS 1.2.
pub const VERIFY_DATA_LEN: usize = 12;

/// The PRF failed: only possible with an empty secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrfError;

/// `PRF(secret, label, seed)[..len]` (RFC 5246 §5).
pub fn prf(
    hash: PrfHash,
    secret: &[u8],
    label: &[u8],
    seed: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, PrfError> {
    let s = aws_lc_rs::tls_prf::Secret::new(hash.prf(), secret).map_err(|_| PrfError)?;
    let out = s.derive(label, seed, len).map_err(|_| PrfError)?;
    Ok(Zeroizing::new(out.as_ref().to_vec()))
}

/// Plain-PSK premaster secret: `uint16(N) ‖ N zero bytes ‖ uint16(N) ‖ psk`
/// (RFC 4279 §2).
pub fn psk_premaster(psk: &[u8]) -> Zeroizing<Vec<u8>> {
    let n = u16::try_from(psk.len()).unwrap_or(u16::MAX).to_be_bytes();
    let mut pms = Zeroizing::new(Vec::with_capacity(4 + 2 * psk.len()));
    pms.extend_from_slice(&n);
    pms.resize(2 + psk.len(), 0);
    pms.extend_from_slice(&n);
    pms.extend_from_slice(psk);
    pms
}

/// How the master secret is bound to the handshake.
#[derive(Debug, Clone, Copy)]
pub enum MasterSeed<'a> {
    /// RFC 5246 §8.1: `client_random ‖ server_random`.
    Randoms { client: &'a [u8; 32], server: &'a [u8; 32] },
    /// RFC 7627 §4: the hash of the handshake through ClientKeyExchange.
    SessionHash(&'a [u8]),
}

/// The 48-byte master secret.
pub fn master_secret(
    hash: PrfHash,
    premaster: &[u8],
    seed: MasterSeed<'_>,
) -> Result<Zeroizing<[u8; MASTER_LEN]>, PrfError> {
    let out = match seed {
        MasterSeed::Randoms { client, server } => {
            let mut s = [0u8; 64];
            s[..32].copy_from_slice(client);
            s[32..].copy_from_slice(server);
            prf(hash, premaster, b"master secret", &s, MASTER_LEN)?
        }
        MasterSeed::SessionHash(h) => prf(hash, premaster, b"extended master secret", h, MASTER_LEN)?,
    };
    let mut m = Zeroizing::new([0u8; MASTER_LEN]);
    m.copy_from_slice(out.get(..MASTER_LEN).ok_or(PrfError)?);
    Ok(m)
}

/// One direction's record key and IV.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectionKeys {
    key: [u8; 32],
    key_len: u8,
    iv: [u8; 12],
    iv_len: u8,
}

impl core::fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DirectionKeys").field("key_len", &self.key_len).finish_non_exhaustive()
    }
}

impl Drop for DirectionKeys {
    fn drop(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

impl DirectionKeys {
    /// Keys from raw bytes: at most 32 bytes of key and 12 of IV.
    pub fn new(key: &[u8], iv: &[u8]) -> Option<Self> {
        let mut k = Self {
            key: [0; 32],
            key_len: u8::try_from(key.len()).ok()?,
            iv: [0; 12],
            iv_len: u8::try_from(iv.len()).ok()?,
        };
        k.key.get_mut(..key.len())?.copy_from_slice(key);
        k.iv.get_mut(..iv.len())?.copy_from_slice(iv);
        Some(k)
    }

    pub fn key(&self) -> &[u8] {
        self.key.get(..usize::from(self.key_len)).unwrap_or_default()
    }

    /// The fixed IV: the 4-byte GCM salt or the 12-byte ChaCha20 IV.
    pub fn iv(&self) -> &[u8] {
        self.iv.get(..usize::from(self.iv_len)).unwrap_or_default()
    }
}

/// Client- and server-write keys from the key block.
#[derive(Debug, Clone)]
pub struct KeyBlock {
    pub client_write: DirectionKeys,
    pub server_write: DirectionKeys,
}

/// `key_block = PRF(master, "key expansion", server_random ‖ client_random)`,
/// split as client key, server key, client IV, server IV (RFC 5246 §6.3; no
/// MAC keys for AEAD suites, RFC 5288 §3).
pub fn key_block(
    params: &SuiteParams,
    master: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> Result<KeyBlock, PrfError> {
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(server_random);
    seed[32..].copy_from_slice(client_random);
    let kb = prf(params.prf, master, b"key expansion", &seed, params.key_block_len())?;
    let (k, i) = (params.key_len, params.fixed_iv_len);
    let part = |from: usize, len: usize| kb.get(from..from + len).ok_or(PrfError);
    Ok(KeyBlock {
        client_write: DirectionKeys::new(part(0, k)?, part(2 * k, i)?).ok_or(PrfError)?,
        server_write: DirectionKeys::new(part(k, k)?, part(2 * k + i, i)?).ok_or(PrfError)?,
    })
}

/// Which side's Finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishedLabel {
    Client,
    Server,
}

/// `verify_data = PRF(master, label, Hash(handshake_messages))[..12]`.
pub fn verify_data(
    hash: PrfHash,
    master: &[u8],
    label: FinishedLabel,
    transcript_hash: &[u8],
) -> Result<[u8; VERIFY_DATA_LEN], PrfError> {
    let label: &[u8] = match label {
        FinishedLabel::Client => b"client finished",
        FinishedLabel::Server => b"server finished",
    };
    let out = prf(hash, master, label, transcript_hash, VERIFY_DATA_LEN)?;
    let mut v = [0u8; VERIFY_DATA_LEN];
    v.copy_from_slice(out.get(..VERIFY_DATA_LEN).ok_or(PrfError)?);
    Ok(v)
}

/// Hash of a transcript with the suite's PRF hash.
pub fn transcript_hash(hash: PrfHash, transcript: &[u8]) -> aws_lc_rs::digest::Digest {
    aws_lc_rs::digest::digest(hash.digest(), transcript)
}
