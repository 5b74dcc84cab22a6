//! CSTP framing inside the TLS stream (protocol reference §4) and the
//! one-byte framing of DTLS payloads (§5.1).
//!
//! A CSTP frame is `'S' 'T' 'F' 0x01 | length (u16 BE, payload only) |
//! type | 0x00 | payload`. The sender must put each frame in a TLS record of
//! its own (§4.3 — the client drops records holding two); the receiver gets
//! a byte stream from rustls and re-frames it with [`Deframer`].

use core::fmt;

/// Bytes 0..4 of every CSTP header (§4.1).
pub const MAGIC: [u8; 4] = *b"STF\x01";

/// CSTP header length.
pub const HEADER_LEN: usize = 8;

/// Largest payload: a frame must fit one TLS record of 16384 bytes (§4.3).
pub const MAX_PAYLOAD: usize = 16384 - 8;

/// The type byte in front of every DTLS payload (§5.1).
pub const DTLS_HEADER_LEN: usize = 1;

/// First payload byte of a client DISCONNECT that means "user logged out":
/// the cookie is to be invalidated (§4.4).
pub const DISCONNECT_LOGOUT: u8 = 0xb0;

/// First payload byte of corridor's own pause: the device ends its tunnel
/// for now (it is on a trusted network, say) and means to come back with
/// its cookie; the text after it is the reason code (`trusted_network`).
/// A gateway that does not know it takes it as a temporary disconnect,
/// which keeps the cookie too.
pub const DISCONNECT_PAUSE: u8 = 0x00;

/// A packet type code, shared by CSTP and DTLS (§4.2). Unknown codes are
/// kept as they are, so they can be reported and counted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketType(pub u8);

impl PacketType {
    /// One IP packet.
    pub const DATA: Self = Self(0x00);
    /// Dead-peer-detection request; answer with `DPD_RESP` on the same
    /// channel, echoing the payload (§4.2, §7.3).
    pub const DPD_REQ: Self = Self(0x03);
    pub const DPD_RESP: Self = Self(0x04);
    /// Session end: from the client, `0xb0` + reason; from us, empty.
    pub const DISCONNECT: Self = Self(0x05);
    /// Empty; sent when a channel has been send-idle.
    pub const KEEPALIVE: Self = Self(0x07);
    /// A compressed IP packet; never negotiated by this gateway.
    pub const COMPRESSED: Self = Self(0x08);
    /// Server kick; the client exits.
    pub const TERMINATE: Self = Self(0x09);

    /// The name of a known code.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::DATA => "DATA",
            Self::DPD_REQ => "DPD_REQ",
            Self::DPD_RESP => "DPD_RESP",
            Self::DISCONNECT => "DISCONNECT",
            Self::KEEPALIVE => "KEEPALIVE",
            Self::COMPRESSED => "COMPRESSED",
            Self::TERMINATE => "TERMINATE",
            _ => return None,
        })
    }
}

impl fmt::Debug for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "PacketType({:#04x})", self.0),
        }
    }
}

/// A broken CSTP stream. Fatal: framing is lost, so the session ends (the
/// client itself treats these as garbage and disconnects, §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CstpError {
    /// The first four bytes are not `STF\x01` (the ones seen so far).
    BadMagic,
    /// Byte 7 of the header is not zero.
    ReservedNotZero(u8),
    /// A payload length over [`MAX_PAYLOAD`].
    Oversized(usize),
}

impl fmt::Display for CstpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic => f.write_str("CSTP frame without the STF\\x01 magic"),
            Self::ReservedNotZero(b) => write!(f, "CSTP header byte 7 is {b:#04x}, not zero"),
            Self::Oversized(n) => write!(f, "CSTP payload of {n} bytes exceeds {MAX_PAYLOAD}"),
        }
    }
}

impl std::error::Error for CstpError {}

/// The 8-byte header for a payload of `payload_len` bytes.
///
/// The caller guarantees `payload_len <= MAX_PAYLOAD` (checked by a debug
/// assertion); larger values are clamped rather than wrapped, so a bug
/// yields a short frame, never a length that lies about a different frame.
/// Use [`write_frame`] where the length is not already known to fit.
pub fn header(t: PacketType, payload_len: usize) -> [u8; HEADER_LEN] {
    debug_assert!(payload_len <= MAX_PAYLOAD, "CSTP payload of {payload_len} bytes");
    let [hi, lo] = u16::try_from(payload_len.min(MAX_PAYLOAD)).unwrap_or(0).to_be_bytes();
    let [m0, m1, m2, m3] = MAGIC;
    [m0, m1, m2, m3, hi, lo, t.0, 0]
}

/// Appends one complete frame. Write the result to TLS as one record.
pub fn write_frame(out: &mut Vec<u8>, t: PacketType, payload: &[u8]) -> Result<(), CstpError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(CstpError::Oversized(payload.len()));
    }
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&header(t, payload.len()));
    out.extend_from_slice(payload);
    Ok(())
}

/// One received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub packet_type: PacketType,
    pub payload: Vec<u8>,
}

/// The most headroom [`Deframer::next_frame_with_headroom`] gives (more is
/// cut to this).
pub const MAX_HEADROOM: usize = 64;
static ZEROS: [u8; MAX_HEADROOM] = [0; MAX_HEADROOM];

/// Re-frames the decrypted TLS byte stream into CSTP frames.
///
/// Call [`push`](Self::push) with each read, then [`next_frame`](Self::next_frame)
/// until it returns `None`. Memory is what was pushed and not yet framed:
/// at most one read plus one incomplete frame (≤ [`HEADER_LEN`] +
/// [`MAX_PAYLOAD`]) when drained after every push, whatever the peer sends —
/// a bad header is refused as soon as its bytes arrive, before any payload
/// is buffered for it.
///
/// After an error the stream is unusable: the deframer keeps returning that
/// error and ignores further input; end the session.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    /// Start of the unframed bytes in `buf`.
    start: usize,
    failed: Option<CstpError>,
}

impl Deframer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// The next complete frame, `None` if more bytes are needed, or the
    /// (sticky) error that ended the stream.
    #[inline]
    pub fn next_frame(&mut self) -> Option<Result<Frame, CstpError>> {
        self.next_frame_with_headroom(0)
    }

    /// As [`next_frame`](Self::next_frame), with `headroom` (at most
    /// [`MAX_HEADROOM`]) zero bytes in front of the payload in [`Frame::payload`]: room for a header the
    /// receiver puts before the packet (the TUN's virtio header), so the
    /// payload is copied out of the stream once and never again.
    pub fn next_frame_with_headroom(&mut self, headroom: usize) -> Option<Result<Frame, CstpError>> {
        if let Some(e) = self.failed {
            return Some(Err(e));
        }
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let payload_len = match check_header(pending) {
            Ok(Some(len)) => len,
            Ok(None) => return None,
            Err(e) => {
                self.failed = Some(e);
                self.buf = Vec::new();
                self.start = 0;
                return Some(Err(e));
            }
        };
        let [_, _, _, _, _, _, packet_type, _] = array_at::<HEADER_LEN>(pending, 0)?;
        let body = pending.get(HEADER_LEN..HEADER_LEN + payload_len)?;
        let room = ZEROS.get(..headroom).unwrap_or(&ZEROS);
        let mut payload = Vec::with_capacity(room.len() + body.len());
        payload.extend_from_slice(room);
        payload.extend_from_slice(body);
        self.start += HEADER_LEN + payload_len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Some(Ok(Frame { packet_type: PacketType(packet_type), payload }))
    }
}

/// Validates as much of a header as `bytes` holds; the payload length once
/// all eight bytes are there.
fn check_header(bytes: &[u8]) -> Result<Option<usize>, CstpError> {
    let seen = bytes.len().min(MAGIC.len());
    if bytes.get(..seen) != MAGIC.get(..seen) {
        return Err(CstpError::BadMagic);
    }
    let Some([_, _, _, _, hi, lo, _, reserved]) = array_at::<HEADER_LEN>(bytes, 0) else {
        return Ok(None);
    };
    if reserved != 0 {
        return Err(CstpError::ReservedNotZero(reserved));
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_PAYLOAD {
        return Err(CstpError::Oversized(len));
    }
    Ok(Some(len))
}

/// `N` bytes of `bytes` from `at`, if there are that many.
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// What a client's DISCONNECT means for the session (§4.4, ocserv's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectKind {
    /// First byte `0xb0`: the user logged out; invalidate the cookie.
    Logout,
    /// Empty: Cisco clients disconnect like this before reconnecting; keep
    /// the cookie and the address for the reconnect grace period.
    Temporary,
    /// Anything else: an error on the client's side.
    Other,
}

/// Classifies the payload of a DISCONNECT frame.
pub fn classify_disconnect(payload: &[u8]) -> DisconnectKind {
    match payload.first() {
        None => DisconnectKind::Temporary,
        Some(&DISCONNECT_LOGOUT) => DisconnectKind::Logout,
        Some(_) => DisconnectKind::Other,
    }
}

/// The reason code after a pause's `0x00`, if it is one: a short word of
/// lowercase letters, digits and `_` (anything else is no code).
pub fn pause_reason(payload: &[u8]) -> Option<&str> {
    let code = core::str::from_utf8(payload.strip_prefix(&[DISCONNECT_PAUSE])?).ok()?;
    (!code.is_empty()
        && code.len() <= 32
        && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then_some(code)
}

/// The text after a logout's `0xb0` (e.g. `Aborted by caller`), if UTF-8.
pub fn disconnect_reason(payload: &[u8]) -> Option<&str> {
    core::str::from_utf8(payload.strip_prefix(&[DISCONNECT_LOGOUT])?).ok()
}

/// Splits a DTLS record's plaintext into type and payload (§5.1); `None`
/// for an empty record. There is no length field: the record is the packet.
pub fn dtls_type(record_payload: &[u8]) -> Option<(PacketType, &[u8])> {
    let (&t, payload) = record_payload.split_first()?;
    Some((PacketType(t), payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_reasons_are_short_words() {
        assert_eq!(pause_reason(b"\x00trusted_network"), Some("trusted_network"));
        assert_eq!(pause_reason(b"\x00"), None);
        assert_eq!(pause_reason(b"\xb0trusted_network"), None, "a logout is no pause");
        assert_eq!(pause_reason(b"\x00Trusted Network"), None);
        assert_eq!(pause_reason(b"\x00a\nb"), None);
        assert_eq!(pause_reason(&[&[0u8][..], &[b'a'; 33][..]].concat()), None);
    }

    fn frames(d: &mut Deframer) -> Vec<Result<Frame, CstpError>> {
        std::iter::from_fn(|| d.next_frame()).take(100).collect()
    }

    #[test]
    fn names_in_debug() {
        assert_eq!(format!("{:?}", PacketType::DPD_REQ), "DPD_REQ");
        assert_eq!(format!("{:?}", PacketType::TERMINATE), "TERMINATE");
        assert_eq!(format!("{:?}", PacketType(6)), "PacketType(0x06)");
        let known = [0u8, 3, 4, 5, 7, 8, 9];
        assert!((0..=255u8).all(|c| PacketType(c).name().is_some() == known.contains(&c)));
    }

    #[test]
    fn headers() {
        // §4.1: 84-byte ping; §4.2: empty DPD-RESP; A.5: server kick.
        assert_eq!(header(PacketType::DATA, 84), [0x53, 0x54, 0x46, 0x01, 0x00, 0x54, 0x00, 0x00]);
        assert_eq!(header(PacketType::DPD_RESP, 0), [0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x04, 0x00]);
        assert_eq!(header(PacketType::DISCONNECT, 0), [0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x05, 0x00]);
        assert_eq!(header(PacketType::DATA, MAX_PAYLOAD)[4..6], [0x3f, 0xf8]);
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "CSTP payload"))]
    fn oversized_header_is_clamped() {
        assert_eq!(header(PacketType::DATA, 70_000)[4..6], [0x3f, 0xf8]);
    }

    #[test]
    fn write_and_read_back() {
        let mut out = Vec::new();
        write_frame(&mut out, PacketType::KEEPALIVE, &[]).unwrap();
        write_frame(&mut out, PacketType::DATA, &[0x45; MAX_PAYLOAD]).unwrap();
        assert_eq!(write_frame(&mut out, PacketType::DATA, &[0; MAX_PAYLOAD + 1]), Err(CstpError::Oversized(16377)));
        assert_eq!(out.len(), 2 * HEADER_LEN + MAX_PAYLOAD);
        let mut d = Deframer::new();
        d.push(&out);
        let got = frames(&mut d);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Ok(Frame { packet_type: PacketType::KEEPALIVE, payload: vec![] }));
        assert_eq!(got[1].as_ref().unwrap().payload.len(), MAX_PAYLOAD);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn byte_by_byte() {
        let mut stream = Vec::new();
        write_frame(&mut stream, PacketType::DPD_REQ, b"probe").unwrap();
        write_frame(&mut stream, PacketType::DATA, &[1, 2, 3]).unwrap();
        let mut d = Deframer::new();
        let mut got = Vec::new();
        for b in &stream {
            d.push(std::slice::from_ref(b));
            got.extend(frames(&mut d));
        }
        assert_eq!(
            got,
            [
                Ok(Frame { packet_type: PacketType::DPD_REQ, payload: b"probe".to_vec() }),
                Ok(Frame { packet_type: PacketType::DATA, payload: vec![1, 2, 3] }),
            ]
        );
    }

    #[test]
    fn errors_are_early_and_sticky() {
        let mut d = Deframer::new();
        d.push(b"ST");
        assert_eq!(d.next_frame(), None);
        d.push(b"G");
        assert_eq!(d.next_frame(), Some(Err(CstpError::BadMagic)));
        d.push(&header(PacketType::DATA, 0));
        assert_eq!(d.next_frame(), Some(Err(CstpError::BadMagic)), "unusable after an error");
        assert_eq!(d.buffered(), 0);

        let mut d = Deframer::new();
        d.push(&[0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x07, 0x01]);
        assert_eq!(d.next_frame(), Some(Err(CstpError::ReservedNotZero(1))));

        let mut d = Deframer::new();
        d.push(&[0x53, 0x54, 0x46, 0x01, 0x3f, 0xf9, 0x00, 0x00]);
        assert_eq!(d.next_frame(), Some(Err(CstpError::Oversized(16377))), "refused before the payload");
        let mut d = Deframer::new();
        d.push(&[0x53, 0x54, 0x46, 0x02]);
        assert_eq!(d.next_frame(), Some(Err(CstpError::BadMagic)));
    }

    #[test]
    fn disconnects() {
        let bye = b"\xb0Aborted by caller";
        assert_eq!(classify_disconnect(bye), DisconnectKind::Logout);
        assert_eq!(disconnect_reason(bye), Some("Aborted by caller"));
        assert_eq!(classify_disconnect(b""), DisconnectKind::Temporary);
        assert_eq!(classify_disconnect(b"\x01"), DisconnectKind::Other);
        assert_eq!(disconnect_reason(b"\x01x"), None);
    }

    #[test]
    fn dtls_framing() {
        assert_eq!(dtls_type(&[0x00, 0x45, 0x00]), Some((PacketType::DATA, &[0x45, 0x00][..])));
        assert_eq!(dtls_type(&[0x04]), Some((PacketType::DPD_RESP, &[][..])));
        assert_eq!(dtls_type(&[]), None);
    }

    #[test]
    fn headroom_goes_in_front_of_the_payload_only() {
        let mut wire = Vec::new();
        write_frame(&mut wire, PacketType::DATA, b"packet").unwrap();
        write_frame(&mut wire, PacketType::DPD_REQ, b"").unwrap();
        let mut d = Deframer::new();
        d.push(&wire);
        let f = d.next_frame_with_headroom(12).unwrap().unwrap();
        assert_eq!(
            (f.packet_type, &f.payload[..12], &f.payload[12..]),
            (PacketType::DATA, &[0u8; 12][..], &b"packet"[..])
        );
        let f = d.next_frame_with_headroom(12).unwrap().unwrap();
        assert_eq!((f.packet_type, f.payload), (PacketType::DPD_REQ, vec![0u8; 12]));
        assert!(d.next_frame_with_headroom(12).is_none());
    }
}
