//! The keeper's messages, sans-IO. One message is one `SOCK_SEQPACKET`
//! packet, so no framing beyond the packet is needed:
//!
//! ```text
//! kind u8 ‖ id u64 ‖ fields…      (big endian; a field is len u32 ‖ bytes)
//! ```
//!
//! The keeper reads what the network-facing worker writes, and the worker
//! is the process an attacker reaches first: every decode is bounded
//! ([`MAX_MESSAGE`], a field no longer than what is left) and total (bad
//! bytes are an error, never a panic), and it is fuzzed
//! (`fuzz/fuzz_targets/keeper_request.rs`).

use zeroize::Zeroizing;

/// The largest request the keeper accepts. A TLS signature input is a few
/// hundred bytes; a verify request a user name and a password.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// The largest reply or hello the worker accepts: a reload hands over the
/// configuration's texts (the keeper's socket buffer is sized for it).
pub const MAX_REPLY: usize = 1024 * 1024;

const SIGN: u8 = 1;
const VERIFY: u8 = 2;
const PREPARE: u8 = 3;
const COMMIT: u8 = 4;
const SIGNATURE: u8 = 0x81;
const VERDICT: u8 = 0x82;
const REFUSED: u8 = 0x83;
const PREPARED: u8 = 0x84;
const COMMITTED: u8 = 0x85;
const READY: u8 = 0xa0;
const FAILED: u8 = 0xa1;

/// What the worker asks of the keeper.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Sign `message` with the server key under the TLS `scheme`.
    Sign { id: u64, scheme: u16, message: Vec<u8> },
    /// Does `password` open `user`'s account?
    Verify { id: u64, user: String, password: Zeroizing<String> },
    /// A reload, first step: read and check the configuration, the key and
    /// the password file again, keep them aside, and hand over the texts.
    Prepare { id: u64 },
    /// A reload, second step: the worker took the configuration; serve with
    /// what was prepared from now on.
    Commit { id: u64 },
}

/// The keeper's answer to one [`Request`], by its id.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Signature {
        id: u64,
        signature: Vec<u8>,
    },
    /// `Some(group)` (the group the password file names, if any) when the
    /// password opens the account; `None` when it does not.
    Verdict {
        id: u64,
        accepted: Option<Option<String>>,
    },
    /// The keeper will not do it (a message that is no TLS signature input,
    /// a scheme the key cannot sign with, no password file, too busy).
    Refused {
        id: u64,
        reason: String,
    },
    /// The reload is prepared: every file the configuration read (its own
    /// text, secrets, certificates), and the password users that went away
    /// (removed, or locked) since the running file.
    Prepared {
        id: u64,
        texts: Vec<(String, String)>,
        removed_users: Vec<String>,
    },
    /// The prepared key and password file serve from now on.
    Committed {
        id: u64,
        key: KeyHello,
    },
}

/// The key's public facts, in the hello and after a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHello {
    /// The key's public half (DER SubjectPublicKeyInfo), so the worker
    /// checks it against the certificate.
    pub spki: Vec<u8>,
    /// The TLS signature schemes the key signs with, best first.
    pub schemes: Vec<u16>,
    /// rustls's `SignatureAlgorithm` as its wire byte.
    pub algorithm: u8,
    /// Whether a password file is loaded (password logins possible).
    pub passwords: bool,
}

/// The keeper's first message: what the worker needs to know of the key
/// it will never hold, or why the keeper could not start.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    Ready(KeyHello),
    /// A configuration mistake the keeper found, as `ConfigError`'s parts.
    Failed {
        field: String,
        problem: String,
        fix: String,
    },
}

/// A message that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl core::fmt::Display for Malformed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a malformed keeper message")
    }
}

impl std::error::Error for Malformed {}

struct Writer(Vec<u8>);

impl Writer {
    fn new(kind: u8, id: u64) -> Self {
        let mut v = Vec::with_capacity(64);
        v.push(kind);
        v.extend_from_slice(&id.to_be_bytes());
        Self(v)
    }

    fn field(mut self, bytes: &[u8]) -> Self {
        // Every field is bounded far below u32::MAX by MAX_MESSAGE; a caller
        // that passes more gets a message the other side refuses.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The kind and id of `msg`, and a reader over its fields.
    fn open(msg: &'a [u8], limit: usize) -> Result<(u8, u64, Self), Malformed> {
        if msg.len() > limit {
            return Err(Malformed);
        }
        let (&kind, rest) = msg.split_first().ok_or(Malformed)?;
        let (id, rest) = rest.split_first_chunk::<8>().ok_or(Malformed)?;
        Ok((kind, u64::from_be_bytes(*id), Self { rest }))
    }

    fn field(&mut self) -> Result<&'a [u8], Malformed> {
        let (len, rest) = self.rest.split_first_chunk::<4>().ok_or(Malformed)?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| Malformed)?;
        if len > rest.len() {
            return Err(Malformed);
        }
        let (field, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(field)
    }

    fn text(&mut self) -> Result<String, Malformed> {
        String::from_utf8(self.field()?.to_vec()).map_err(|_| Malformed)
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(self.field()?.try_into().map_err(|_| Malformed)?))
    }

    fn flag(&mut self) -> Result<bool, Malformed> {
        match self.field()? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(Malformed),
        }
    }

    /// Every field was read: trailing bytes make the message malformed.
    fn end(self) -> Result<(), Malformed> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}

impl Request {
    pub fn id(&self) -> u64 {
        match self {
            Self::Sign { id, .. } | Self::Verify { id, .. } | Self::Prepare { id } | Self::Commit { id } => *id,
        }
    }

    /// The packet; a password in it is wiped when the packet is dropped.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(match self {
            Self::Sign { id, scheme, message } => Writer::new(SIGN, *id).field(&scheme.to_be_bytes()).field(message).0,
            Self::Verify { id, user, password } => {
                Writer::new(VERIFY, *id).field(user.as_bytes()).field(password.as_bytes()).0
            }
            Self::Prepare { id } => Writer::new(PREPARE, *id).0,
            Self::Commit { id } => Writer::new(COMMIT, *id).0,
        })
    }

    pub fn decode(msg: &[u8]) -> Result<Self, Malformed> {
        let (kind, id, mut r) = Reader::open(msg, MAX_MESSAGE)?;
        let req = match kind {
            SIGN => Self::Sign { id, scheme: r.u16()?, message: r.field()?.to_vec() },
            VERIFY => Self::Verify { id, user: r.text()?, password: Zeroizing::new(r.text()?) },
            PREPARE => Self::Prepare { id },
            COMMIT => Self::Commit { id },
            _ => return Err(Malformed),
        };
        r.end()?;
        Ok(req)
    }
}

impl Reply {
    pub fn id(&self) -> u64 {
        match self {
            Self::Signature { id, .. }
            | Self::Verdict { id, .. }
            | Self::Refused { id, .. }
            | Self::Prepared { id, .. }
            | Self::Committed { id, .. } => *id,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Signature { id, signature } => Writer::new(SIGNATURE, *id).field(signature).0,
            // Rejected: no field; accepted: one flag field, and the group if any.
            Self::Verdict { id, accepted: None } => Writer::new(VERDICT, *id).0,
            Self::Verdict { id, accepted: Some(None) } => Writer::new(VERDICT, *id).field(&[0]).0,
            Self::Verdict { id, accepted: Some(Some(group)) } => {
                Writer::new(VERDICT, *id).field(&[1]).field(group.as_bytes()).0
            }
            Self::Refused { id, reason } => Writer::new(REFUSED, *id).field(reason.as_bytes()).0,
            Self::Prepared { id, texts, removed_users } => {
                let count = u32::try_from(texts.len()).unwrap_or(u32::MAX);
                let mut w = Writer::new(PREPARED, *id).field(&count.to_be_bytes());
                for (path, text) in texts {
                    w = w.field(path.as_bytes()).field(text.as_bytes());
                }
                // User names are printable ASCII without separators: one per line.
                w.field(removed_users.join("\n").as_bytes()).0
            }
            Self::Committed { id, key } => key.write(Writer::new(COMMITTED, *id)).0,
        }
    }

    pub fn decode(msg: &[u8]) -> Result<Self, Malformed> {
        let (kind, id, mut r) = Reader::open(msg, MAX_REPLY)?;
        let reply = match kind {
            SIGNATURE => Self::Signature { id, signature: r.field()?.to_vec() },
            VERDICT if r.rest.is_empty() => Self::Verdict { id, accepted: None },
            VERDICT => {
                let group = if r.flag()? { Some(r.text()?) } else { None };
                Self::Verdict { id, accepted: Some(group) }
            }
            REFUSED => Self::Refused { id, reason: r.text()? },
            PREPARED => {
                let count = u32::from_be_bytes(r.field()?.try_into().map_err(|_| Malformed)?);
                let mut texts = Vec::new();
                for _ in 0..count {
                    // Each text costs at least its two length prefixes: a
                    // count past what is left fails here, not in an allocation.
                    texts.push((r.text()?, r.text()?));
                }
                let users = r.text()?;
                let removed_users = users.split('\n').filter(|u| !u.is_empty()).map(str::to_owned).collect();
                Self::Prepared { id, texts, removed_users }
            }
            COMMITTED => Self::Committed { id, key: KeyHello::read(&mut r)? },
            _ => return Err(Malformed),
        };
        r.end()?;
        Ok(reply)
    }
}

impl KeyHello {
    fn write(&self, w: Writer) -> Writer {
        let schemes: Vec<u8> = self.schemes.iter().flat_map(|s| s.to_be_bytes()).collect();
        w.field(&self.spki).field(&schemes).field(&[self.algorithm]).field(&[u8::from(self.passwords)])
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, Malformed> {
        let spki = r.field()?.to_vec();
        let raw = r.field()?;
        if raw.len() % 2 != 0 {
            return Err(Malformed);
        }
        let schemes = raw.chunks_exact(2).filter_map(|c| <[u8; 2]>::try_from(c).ok()).map(u16::from_be_bytes).collect();
        let algorithm = match r.field()? {
            [a] => *a,
            _ => return Err(Malformed),
        };
        Ok(Self { spki, schemes, algorithm, passwords: r.flag()? })
    }
}

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Ready(key) => key.write(Writer::new(READY, 0)).0,
            Self::Failed { field, problem, fix } => {
                Writer::new(FAILED, 0).field(field.as_bytes()).field(problem.as_bytes()).field(fix.as_bytes()).0
            }
        }
    }

    pub fn decode(msg: &[u8]) -> Result<Self, Malformed> {
        let (kind, _, mut r) = Reader::open(msg, MAX_REPLY)?;
        let hello = match kind {
            READY => Self::Ready(KeyHello::read(&mut r)?),
            FAILED => Self::Failed { field: r.text()?, problem: r.text()?, fix: r.text()? },
            _ => return Err(Malformed),
        };
        r.end()?;
        Ok(hello)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests() -> Vec<Request> {
        vec![
            Request::Sign { id: 7, scheme: 0x0403, message: vec![0x20; 98] },
            Request::Sign { id: u64::MAX, scheme: 0, message: vec![] },
            Request::Verify { id: 1, user: "alice".into(), password: Zeroizing::new("s3cret:é".into()) },
            Request::Verify { id: 2, user: String::new(), password: Zeroizing::new(String::new()) },
            Request::Prepare { id: 3 },
            Request::Commit { id: 4 },
        ]
    }

    fn replies() -> Vec<Reply> {
        vec![
            Reply::Signature { id: 3, signature: vec![1, 2, 3] },
            Reply::Verdict { id: 4, accepted: None },
            Reply::Verdict { id: 5, accepted: Some(None) },
            Reply::Verdict { id: 6, accepted: Some(Some("staff".into())) },
            Reply::Refused { id: 8, reason: "not a TLS signature input".into() },
            Reply::Prepared {
                id: 9,
                texts: vec![("/etc/corridor/gateway.toml".into(), "[server]\n".into()), ("/k".into(), String::new())],
                removed_users: vec!["bob".into(), "carol".into()],
            },
            Reply::Prepared { id: 10, texts: vec![], removed_users: vec![] },
            Reply::Committed {
                id: 11,
                key: KeyHello { spki: vec![1], schemes: vec![0x0403], algorithm: 3, passwords: false },
            },
        ]
    }

    #[test]
    fn a_request_has_one_layout() {
        let bytes = Request::Sign { id: 0x0102, scheme: 0x0403, message: b"ab".to_vec() }.encode();
        assert_eq!(&bytes[..], &[1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 2, 4, 3, 0, 0, 0, 2, b'a', b'b'][..]);
    }

    #[test]
    fn everything_round_trips() {
        for r in requests() {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
        for r in replies() {
            assert_eq!(Reply::decode(&r.encode()), Ok(r));
        }
        for h in [
            Hello::Ready(KeyHello {
                spki: vec![0x30, 1, 0],
                schemes: vec![0x0403, 0x0804],
                algorithm: 3,
                passwords: true,
            }),
            Hello::Failed { field: "server.key".into(), problem: "mode 644".into(), fix: "chmod 600 k".into() },
        ] {
            assert_eq!(Hello::decode(&h.encode()), Ok(h));
        }
    }

    #[test]
    fn every_prefix_and_every_extension_is_malformed() {
        for r in requests() {
            let bytes = r.encode();
            for cut in 0..bytes.len() {
                assert_eq!(Request::decode(&bytes[..cut]), Err(Malformed), "{r:?} cut at {cut}");
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert_eq!(Request::decode(&longer), Err(Malformed));
        }
        for r in replies() {
            let bytes = r.encode();
            // A verdict's rejection is the bare header, so its prefixes
            // down to the header are other verdicts, never garbage.
            for cut in 0..9 {
                assert_eq!(Reply::decode(&bytes[..cut]), Err(Malformed));
            }
        }
    }

    #[test]
    fn bounds_and_kinds_are_enforced() {
        assert_eq!(Request::decode(&vec![SIGN; MAX_MESSAGE + 1]), Err(Malformed));
        // A field length past the end, and one near u32::MAX.
        assert_eq!(Request::decode(&[SIGN, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 4, 3]), Err(Malformed));
        assert_eq!(Request::decode(&[SIGN, 0, 0, 0, 0, 0, 0, 0, 1, 255, 255, 255, 255]), Err(Malformed));
        // A reply kind is no request, and the other way round.
        assert_eq!(Request::decode(&Reply::Verdict { id: 1, accepted: None }.encode()), Err(Malformed));
        assert_eq!(Reply::decode(&Request::Sign { id: 1, scheme: 1, message: vec![] }.encode()), Err(Malformed));
        // A user name that is not UTF-8.
        let bad = Writer::new(VERIFY, 1).field(&[0xff]).field(b"pw").0;
        assert_eq!(Request::decode(&bad), Err(Malformed));
        // A scheme field of the wrong width.
        let bad = Writer::new(SIGN, 1).field(&[4]).field(b"m").0;
        assert_eq!(Request::decode(&bad), Err(Malformed));
    }

    #[test]
    fn mutations_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for r in requests() {
            let bytes = r.encode().to_vec();
            for _ in 0..2000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut m = bytes.clone();
                let at = usize::try_from(seed % m.len() as u64).unwrap_or(0);
                m[at] ^= u8::try_from(seed >> 56).unwrap_or(1) | 1;
                let _ = Request::decode(&m);
                let _ = Reply::decode(&m);
                let _ = Hello::decode(&m);
            }
        }
    }
}
