//! The server name a TLS ClientHello asks for (RFC 6066 §3), read from the
//! first bytes of a TCP stream without terminating TLS: what a relay needs
//! to pick a gateway (openconnect-protocol.md §9.3). The bytes stay
//! untouched; the caller forwards them once it has chosen.
//!
//! The ClientHello may span several TLS records (post-quantum key shares
//! make it large); records are joined until the handshake message is whole.

use dtls::codec::Reader;

/// TLS record content type `handshake`.
const CONTENT_HANDSHAKE: u8 = 22;
/// Handshake message type `client_hello`.
const CLIENT_HELLO: u8 = 1;
/// Extension `server_name`.
const EXT_SERVER_NAME: u16 = 0;
/// `NameType` `host_name`.
const HOST_NAME: u8 = 0;
/// The longest host name (RFC 1035 §2.3.4, RFC 6066 §3).
const MAX_HOST_NAME: usize = 255;
/// How many bytes of a stream's start are worth holding for a ClientHello:
/// four full records. A client that needs more is not an OpenConnect device.
pub const MAX_CLIENT_HELLO_BYTES: usize = 4 * (5 + 16_384);

/// What the start of a stream says so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed {
    /// Not enough bytes yet; read more (up to [`MAX_CLIENT_HELLO_BYTES`]).
    NeedMore,
    /// A whole ClientHello: the host name it asks for, if any (`None`: the
    /// client connected to an address literal and sent no SNI).
    Hello { server_name: Option<String> },
}

/// Why the stream cannot be a TLS ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SniError {
    /// The first record is not a TLS handshake record.
    NotTls,
    /// The handshake does not start with a ClientHello.
    NotClientHello,
    /// A length or field is impossible.
    Malformed,
    /// The host name is not a DNS name (RFC 6066: ASCII, no trailing dot).
    BadName,
    /// The ClientHello does not fit in [`MAX_CLIENT_HELLO_BYTES`].
    TooLong,
}

impl core::fmt::Display for SniError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SniError::NotTls => "not a TLS handshake",
            SniError::NotClientHello => "the handshake does not start with a ClientHello",
            SniError::Malformed => "malformed ClientHello",
            SniError::BadName => "the server name is not a DNS host name",
            SniError::TooLong => "ClientHello too long",
        })
    }
}

impl std::error::Error for SniError {}

/// Reads the ClientHello at the start of `stream` (everything received so
/// far) and returns the server name it asks for.
pub fn sniff(stream: &[u8]) -> Result<Sniffed, SniError> {
    let mut message = Vec::new();
    let mut r = Reader::new(stream);
    loop {
        // The record header: type, legacy version, length.
        let Ok(header) = r.array::<5>() else { return need_more(stream) };
        let [typ, major, _minor, hi, lo] = header;
        // RFC 8446 §5.1: handshake messages may be split over records but
        // never interleaved with other types; SSL 2 hellos are not TLS.
        if typ != CONTENT_HANDSHAKE || major != 3 {
            return Err(SniError::NotTls);
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 || len > 16_384 + 256 {
            return Err(SniError::Malformed);
        }
        let Ok(fragment) = r.take(len) else { return need_more(stream) };
        message.extend_from_slice(fragment);
        let mut m = Reader::new(&message);
        let (Ok(msg_type), Ok(body_len)) = (m.u8(), m.u24()) else { continue };
        if msg_type != CLIENT_HELLO {
            return Err(SniError::NotClientHello);
        }
        let Ok(body) = m.take(body_len as usize) else {
            if 4 + body_len as usize > MAX_CLIENT_HELLO_BYTES {
                return Err(SniError::TooLong);
            }
            continue;
        };
        return server_name(body).map(|server_name| Sniffed::Hello { server_name });
    }
}

fn need_more(stream: &[u8]) -> Result<Sniffed, SniError> {
    if stream.len() >= MAX_CLIENT_HELLO_BYTES {
        Err(SniError::TooLong)
    } else {
        Ok(Sniffed::NeedMore)
    }
}

/// The `host_name` of the server_name extension of a ClientHello body
/// (RFC 8446 §4.1.2 layout, which TLS 1.2 shares).
fn server_name(body: &[u8]) -> Result<Option<String>, SniError> {
    let bad = |_| SniError::Malformed;
    let mut r = Reader::new(body);
    r.take(2 + 32).map_err(bad)?; // legacy_version, random
    r.sub_u8().map_err(bad)?; // legacy_session_id
    r.sub_u16().map_err(bad)?; // cipher_suites
    r.sub_u8().map_err(bad)?; // legacy_compression_methods
    if r.is_empty() {
        return Ok(None); // a hello without extensions (TLS 1.2 allows it)
    }
    let mut exts = r.sub_u16().map_err(bad)?;
    r.finish().map_err(bad)?;
    while !exts.is_empty() {
        let typ = exts.u16().map_err(bad)?;
        let mut data = exts.sub_u16().map_err(bad)?;
        if typ != EXT_SERVER_NAME {
            continue;
        }
        // RFC 6066 §3: a list, at most one name per type; only host_name exists.
        let mut list = data.sub_u16().map_err(bad)?;
        data.finish().map_err(bad)?;
        while !list.is_empty() {
            let name_type = list.u8().map_err(bad)?;
            let name = list.sub_u16().map_err(bad)?.rest();
            if name_type == HOST_NAME {
                return host_name(name).map(Some);
            }
        }
        return Ok(None);
    }
    Ok(None)
}

/// A DNS host name as RFC 6066 allows it, lowercased: SNI is compared
/// case-insensitively (RFC 4343).
fn host_name(raw: &[u8]) -> Result<String, SniError> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_HOST_NAME
        && raw.last() != Some(&b'.')
        && raw.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !ok {
        return Err(SniError::BadName);
    }
    Ok(String::from_utf8_lossy(raw).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello body with the given extensions block (None: no block).
    fn hello_body(extensions: Option<&[u8]>) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(32);
        b.extend_from_slice(&[9; 32]);
        b.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2b]);
        b.extend_from_slice(&[1, 0]);
        if let Some(e) = extensions {
            b.extend_from_slice(&(e.len() as u16).to_be_bytes());
            b.extend_from_slice(e);
        }
        b
    }

    fn ext(typ: u16, data: &[u8]) -> Vec<u8> {
        let mut e = typ.to_be_bytes().to_vec();
        e.extend_from_slice(&(data.len() as u16).to_be_bytes());
        e.extend_from_slice(data);
        e
    }

    fn sni_ext(name: &[u8]) -> Vec<u8> {
        let mut entry = vec![HOST_NAME];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name);
        let mut list = (entry.len() as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&entry);
        ext(EXT_SERVER_NAME, &list)
    }

    /// The handshake message split into records of at most `per_record` bytes.
    fn records(body: &[u8], per_record: usize) -> Vec<u8> {
        let mut msg = vec![CLIENT_HELLO];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(body);
        let mut out = Vec::new();
        for chunk in msg.chunks(per_record) {
            out.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    fn openconnect_like(name: &[u8]) -> Vec<u8> {
        // openconnect 9.01's extension order (§9.3), SNI in the middle.
        let mut e = Vec::new();
        for t in [5u16, 10, 11, 13, 35, 51, 43, 65281] {
            e.extend_from_slice(&ext(t, &[0, 0]));
        }
        e.extend_from_slice(&sni_ext(name));
        for t in [45u16, 28, 21] {
            e.extend_from_slice(&ext(t, &[0, 1, 0]));
        }
        records(&hello_body(Some(&e)), 16_384)
    }

    #[test]
    fn reads_the_host_name_lowercased() {
        let s = sniff(&openconnect_like(b"VPN.Example.test")).expect("valid");
        assert_eq!(s, Sniffed::Hello { server_name: Some("vpn.example.test".into()) });
    }

    #[test]
    fn every_prefix_asks_for_more() {
        let full = openconnect_like(b"vpn.test");
        for n in 0..full.len() {
            assert_eq!(sniff(&full[..n]), Ok(Sniffed::NeedMore), "prefix of {n} bytes");
        }
    }

    #[test]
    fn a_hello_split_over_records_is_joined() {
        let mut e = sni_ext(b"vpn.test");
        e.extend_from_slice(&ext(51, &[0x11; 1200])); // a post-quantum key share
        let stream = records(&hello_body(Some(&e)), 100);
        assert_eq!(sniff(&stream), Ok(Sniffed::Hello { server_name: Some("vpn.test".into()) }));
    }

    #[test]
    fn no_sni_is_none_not_an_error() {
        let e = ext(13, &[0, 2, 4, 3]);
        assert_eq!(sniff(&records(&hello_body(Some(&e)), 16_384)), Ok(Sniffed::Hello { server_name: None }));
        assert_eq!(sniff(&records(&hello_body(None), 16_384)), Ok(Sniffed::Hello { server_name: None }));
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n\r\n"), Err(SniError::NotTls));
        let mut finished = records(&hello_body(None), 16_384);
        finished[5] = 20;
        assert_eq!(sniff(&finished), Err(SniError::NotClientHello));
        assert_eq!(sniff(&openconnect_like(b"evil\0name")), Err(SniError::BadName));
        assert_eq!(sniff(&openconnect_like(b"trailing.dot.")), Err(SniError::BadName));
        // An extension whose length runs past the block.
        let mut e = sni_ext(b"vpn.test");
        e[3] = 0xff;
        assert_eq!(sniff(&records(&hello_body(Some(&e)), 16_384)), Err(SniError::Malformed));
        // A handshake that claims more than the relay will hold.
        let mut huge = vec![CONTENT_HANDSHAKE, 3, 1, 0, 4, CLIENT_HELLO, 0xff, 0xff];
        huge.push(0xff);
        assert_eq!(sniff(&huge), Err(SniError::TooLong));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let full = openconnect_like(b"vpn.test");
        for i in 0..full.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut m = full.clone();
                m[i] = v;
                let _ = sniff(&m);
            }
        }
    }
}
