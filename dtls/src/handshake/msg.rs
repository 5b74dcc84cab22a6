//! Handshake messages of a plain-PSK DTLS 1.2 handshake: parse and build.
//!
//! Every parser takes the message body (after the 12-byte DTLS handshake
//! header) and rejects trailing bytes.

use crate::codec::{put_prefixed_u16, put_prefixed_u8, put_u16, put_u24, put_u8, Reader, Truncated};
use crate::types::{CipherSuite, ExtensionType, HandshakeType, ProtocolVersion};

/// Bytes of the DTLS handshake header (RFC 6347 §4.2.2).
pub const HS_HEADER_LEN: usize = 12;

/// Largest handshake message we reassemble. Plain-PSK messages are far
/// smaller; the bound keeps a lying length field from reserving memory.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// One handshake fragment as it sits in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub msg_type: HandshakeType,
    pub length: u32,
    pub message_seq: u16,
    pub offset: u32,
    pub body: &'a [u8],
}

impl<'a> Fragment<'a> {
    /// Reads one fragment from `r`; the fragment must lie within the message.
    pub fn read(r: &mut Reader<'a>) -> Result<Self, Truncated> {
        let msg_type = HandshakeType(r.u8()?);
        let length = r.u24()?;
        let message_seq = r.u16()?;
        let offset = r.u24()?;
        let frag_len = r.u24()?;
        let body = r.take(usize::try_from(frag_len).map_err(|_| Truncated)?)?;
        if offset.checked_add(frag_len).is_none_or(|end| end > length) {
            return Err(Truncated);
        }
        Ok(Self { msg_type, length, message_seq, offset, body })
    }

    /// Whether this fragment is the whole message.
    pub fn is_complete(&self) -> bool {
        self.offset == 0 && usize::try_from(self.length).ok() == Some(self.body.len())
    }
}

/// Writes a handshake header for a fragment.
pub fn put_header(
    out: &mut Vec<u8>,
    msg_type: HandshakeType,
    length: usize,
    message_seq: u16,
    offset: usize,
    frag_len: usize,
) {
    put_u8(out, msg_type.0);
    put_u24(out, u32::try_from(length).unwrap_or(0));
    put_u16(out, message_seq);
    put_u24(out, u32::try_from(offset).unwrap_or(0));
    put_u24(out, u32::try_from(frag_len).unwrap_or(0));
}

/// A whole message as the transcript hashes it: header with offset 0 and
/// fragment length = length (RFC 6347 §4.2.6), then the body.
pub fn transcript_bytes(out: &mut Vec<u8>, msg_type: HandshakeType, message_seq: u16, body: &[u8]) {
    put_header(out, msg_type, body.len(), message_seq, 0, body.len());
    out.extend_from_slice(body);
}

/// A hello extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub typ: ExtensionType,
    pub data: Vec<u8>,
}

fn read_extensions(r: &mut Reader<'_>) -> Result<Vec<Extension>, Truncated> {
    let mut out = Vec::new();
    if r.is_empty() {
        return Ok(out); // RFC 5246 §7.4.1.2: the extensions block may be absent.
    }
    let mut exts = r.sub_u16()?;
    while !exts.is_empty() {
        let typ = ExtensionType(exts.u16()?);
        let data = exts.sub_u16()?.rest().to_vec();
        if out.iter().any(|e: &Extension| e.typ == typ) {
            return Err(Truncated); // RFC 5246 §7.4.1.4: no type twice.
        }
        out.push(Extension { typ, data });
    }
    Ok(out)
}

fn put_extensions(out: &mut Vec<u8>, exts: &[Extension]) {
    if exts.is_empty() {
        return;
    }
    put_prefixed_u16(out, |o| {
        for e in exts {
            put_u16(o, e.typ.0);
            put_prefixed_u16(o, |o| o.extend_from_slice(&e.data));
        }
    });
}

fn find(exts: &[Extension], typ: ExtensionType) -> Option<&Extension> {
    exts.iter().find(|e| e.typ == typ)
}

/// ClientHello (RFC 6347 §4.2.1 adds the cookie to RFC 5246 §7.4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub client_version: ProtocolVersion,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cookie: Vec<u8>,
    pub cipher_suites: Vec<CipherSuite>,
    pub compression_methods: Vec<u8>,
    pub extensions: Vec<Extension>,
}

impl ClientHello {
    pub fn parse(body: &[u8]) -> Result<Self, Truncated> {
        let mut r = Reader::new(body);
        let client_version = ProtocolVersion(r.u16()?);
        let random = r.array()?;
        let session_id = r.sub_u8()?.rest().to_vec();
        if session_id.len() > 32 {
            return Err(Truncated);
        }
        let cookie = r.sub_u8()?.rest().to_vec();
        let mut suites = r.sub_u16()?;
        if suites.remaining() % 2 != 0 || suites.is_empty() {
            return Err(Truncated);
        }
        let mut cipher_suites = Vec::with_capacity(suites.remaining() / 2);
        while !suites.is_empty() {
            cipher_suites.push(CipherSuite(suites.u16()?));
        }
        let compression_methods = r.sub_u8()?.rest().to_vec();
        if compression_methods.is_empty() {
            return Err(Truncated);
        }
        let extensions = read_extensions(&mut r)?;
        r.finish()?;
        Ok(Self { client_version, random, session_id, cookie, cipher_suites, compression_methods, extensions })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.client_version.0);
        out.extend_from_slice(&self.random);
        put_prefixed_u8(out, |o| o.extend_from_slice(&self.session_id));
        put_prefixed_u8(out, |o| o.extend_from_slice(&self.cookie));
        put_prefixed_u16(out, |o| self.cipher_suites.iter().for_each(|s| put_u16(o, s.0)));
        put_prefixed_u8(out, |o| o.extend_from_slice(&self.compression_methods));
        put_extensions(out, &self.extensions);
    }

    pub fn extension(&self, typ: ExtensionType) -> Option<&Extension> {
        find(&self.extensions, typ)
    }

    /// The OpenConnect App-ID: extension 48018 (`len(1) ‖ id`) when present,
    /// else the session_id, which openconnect 8+ uses (ocserv checks in the
    /// same order).
    pub fn app_id(&self) -> &[u8] {
        if let Some(e) = self.extension(ExtensionType::OPENCONNECT_APP_ID) {
            let mut r = Reader::new(&e.data);
            if let Ok(id) = r.sub_u8() {
                return id.rest();
            }
        }
        &self.session_id
    }

    /// Whether the client signalled secure renegotiation (RFC 5746 §3.4).
    pub fn offers_renegotiation_info(&self) -> bool {
        self.extension(ExtensionType::RENEGOTIATION_INFO).is_some()
            || self.cipher_suites.contains(&CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV)
    }
}

/// HelloVerifyRequest (RFC 6347 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloVerifyRequest {
    pub server_version: ProtocolVersion,
    pub cookie: Vec<u8>,
}

impl HelloVerifyRequest {
    pub fn parse(body: &[u8]) -> Result<Self, Truncated> {
        let mut r = Reader::new(body);
        let server_version = ProtocolVersion(r.u16()?);
        let cookie = r.sub_u8()?.rest().to_vec();
        r.finish()?;
        Ok(Self { server_version, cookie })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.server_version.0);
        put_prefixed_u8(out, |o| o.extend_from_slice(&self.cookie));
    }
}

/// ServerHello (RFC 5246 §7.4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    pub server_version: ProtocolVersion,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suite: CipherSuite,
    pub compression_method: u8,
    pub extensions: Vec<Extension>,
}

impl ServerHello {
    pub fn parse(body: &[u8]) -> Result<Self, Truncated> {
        let mut r = Reader::new(body);
        let server_version = ProtocolVersion(r.u16()?);
        let random = r.array()?;
        let session_id = r.sub_u8()?.rest().to_vec();
        if session_id.len() > 32 {
            return Err(Truncated);
        }
        let cipher_suite = CipherSuite(r.u16()?);
        let compression_method = r.u8()?;
        let extensions = read_extensions(&mut r)?;
        r.finish()?;
        Ok(Self { server_version, random, session_id, cipher_suite, compression_method, extensions })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.server_version.0);
        out.extend_from_slice(&self.random);
        put_prefixed_u8(out, |o| o.extend_from_slice(&self.session_id));
        put_u16(out, self.cipher_suite.0);
        put_u8(out, self.compression_method);
        put_extensions(out, &self.extensions);
    }

    pub fn extension(&self, typ: ExtensionType) -> Option<&Extension> {
        find(&self.extensions, typ)
    }
}

/// A `u16`-length-prefixed opaque: the PSK ServerKeyExchange hint and the
/// ClientKeyExchange identity (RFC 4279 §2) have this shape.
pub fn parse_psk_opaque(body: &[u8]) -> Result<Vec<u8>, Truncated> {
    let mut r = Reader::new(body);
    let v = r.sub_u16()?.rest().to_vec();
    r.finish()?;
    Ok(v)
}

pub fn encode_psk_opaque(out: &mut Vec<u8>, v: &[u8]) {
    put_prefixed_u16(out, |o| o.extend_from_slice(v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Reader;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    /// openconnect 9.01's PSK-NEGOTIATE ClientHello (reference capture, KAT-2 c2s 1).
    #[test]
    fn openconnect_client_hello_parses_and_round_trips() {
        let d = unhex("16feff0000000000000000009b0100008f000000000000008ffefd817fdc4dae76296eab2f4fda03a974a2746a5178d2c1cc9babbbb58cbff84c41200123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef00001000a9ccabc0a5008d00a8c0a4008c00ae01000035000d00220020040108090804040308070501080a0805050308080601080b080606030201020300230000ff01000100001c00024000");
        let mut r = Reader::new(&d[13..]);
        let f = Fragment::read(&mut r).expect("fragment");
        assert!(f.is_complete());
        assert_eq!(f.msg_type, HandshakeType::CLIENT_HELLO);
        let ch = ClientHello::parse(f.body).expect("hello");
        assert_eq!(ch.client_version, ProtocolVersion::DTLS1_2);
        assert_eq!(ch.app_id(), unhex("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
        assert_eq!(ch.cipher_suites.first(), Some(&CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384));
        assert!(ch.extension(ExtensionType::EXTENDED_MASTER_SECRET).is_none());
        assert!(ch.extension(ExtensionType::RECORD_SIZE_LIMIT).is_some());
        let mut again = Vec::new();
        ch.encode(&mut again);
        assert_eq!(again, f.body);
    }

    #[test]
    fn legacy_app_id_extension_wins_over_session_id() {
        let ch = ClientHello {
            client_version: ProtocolVersion::DTLS1_2,
            random: [1; 32],
            session_id: vec![9; 32],
            cookie: vec![],
            cipher_suites: vec![CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256],
            compression_methods: vec![0],
            extensions: vec![Extension { typ: ExtensionType::OPENCONNECT_APP_ID, data: vec![3, 7, 7, 7] }],
        };
        assert_eq!(ch.app_id(), [7, 7, 7]);
    }

    #[test]
    fn fragment_outside_its_message_is_rejected() {
        // length 4, offset 3, fragment length 2.
        let d = [1u8, 0, 0, 4, 0, 0, 0, 0, 3, 0, 0, 2, 0xaa, 0xbb];
        assert!(Fragment::read(&mut Reader::new(&d)).is_err());
    }

    #[test]
    fn duplicate_extensions_are_a_decode_error() {
        let mut body = Vec::new();
        ServerHello {
            server_version: ProtocolVersion::DTLS1_2,
            random: [0; 32],
            session_id: vec![],
            cipher_suite: CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256,
            compression_method: 0,
            extensions: vec![
                Extension { typ: ExtensionType::EXTENDED_MASTER_SECRET, data: vec![] },
                Extension { typ: ExtensionType::EXTENDED_MASTER_SECRET, data: vec![] },
            ],
        }
        .encode(&mut body);
        assert!(ServerHello::parse(&body).is_err());
    }
}
