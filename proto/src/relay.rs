//! The relay link: what a gateway and the infrastructure relay say to each
//! other over the TCP connections the gateway dials out to (port 3101), so
//! that the organisation opens no inbound port.
//!
//! ```text
//!  gateway                                   relay
//!  ── TCP connect :3101 (the link) ───────────▶
//!  Hello { version, route_hint, name } ─────▶
//!                                     ◀─────── Challenge { nonce }
//!  Auth { HMAC(token, nonce, name) }  ───────▶
//!                                     ◀─────── Welcome { route, dtls_port } | Refused { reason }
//!          (a device connects to the relay's TCP 443 asking for `name`)
//!                                     ◀─────── Open { stream, nonce, device }
//!  ── TCP connect :3101 (one per device stream) ▶
//!  Attach { stream, nonce }, then the device's TLS bytes both ways, unmodified
//!          (a device's DTLS ClientHello carries an App-ID tagged with `route`)
//!                                     ◀─────── Allocate { flow, port, nonce, device, app_id }
//!  UDP from the shards' port to relay:port: Bind { flow, nonce }
//!          (the relay then forwards the device's datagrams from relay:port, both ways)
//!  Ping / Pong, either way, to notice a dead link
//!  Revoke { tag, expires }, either way: a cluster cookie ended at one
//!          gateway; the relay passes it to the others of the name
//!  Drain ─────────────────────────────────────▶ (no new devices to this gateway)
//! ```
//!
//! Every frame is `type (1) ‖ length (2, big-endian) ‖ body`. The relay
//! never holds a TLS or DTLS key: device bytes pass through it untouched,
//! and the gateway learns each device's session from its own handshakes.
//! The token never crosses the wire; the challenge proves the gateway
//! holds it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use aws_lc_rs::hmac;
use dtls::codec::{put_u16, put_u8, Reader, Truncated};

/// The link protocol version this build speaks.
pub const VERSION: u8 = 1;
/// The largest frame body either side sends or accepts.
pub const MAX_BODY: usize = 1024;
/// The frame header: type and length.
pub const HEADER_LEN: usize = 3;
/// The longest gateway name (a DNS host name, RFC 1035).
pub const MAX_NAME: usize = 255;
/// A relay-issued secret per stream or flow: only the gateway that was
/// told it over its authenticated link can claim the stream or flow.
pub type Nonce = [u8; 16];
/// What names a revoked session cookie on the link: a digest of it, so the
/// relay (and whoever reads its memory) learns nothing it could log in with.
pub type RevocationTag = [u8; 16];

/// A link frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Gateway → relay, first on a link: who it is, and the route it had
    /// on this relay before (0: none), which it gets back while no other
    /// link holds it, so App-IDs handed out before a link drop still route.
    Hello {
        version: u8,
        route_hint: u32,
        name: String,
    },
    /// Relay → gateway: prove you hold the token.
    Challenge {
        nonce: [u8; 32],
    },
    /// Gateway → relay: [`link_mac`] over the challenge.
    Auth {
        mac: [u8; 32],
    },
    /// Relay → gateway: the link is up. `route` tags the App-IDs of
    /// sessions that came through it ([`tag_app_id`]); `dtls_port` is the
    /// relay's UDP port for devices (the gateway's X-DTLS-Port for them).
    Welcome {
        route: u32,
        dtls_port: u16,
    },
    /// Relay → gateway, then the relay closes the link.
    Refused {
        reason: String,
    },
    /// Relay → gateway: dial a new stream for the device at `device`.
    Open {
        stream: u64,
        nonce: Nonce,
        device: SocketAddr,
    },
    /// Gateway → relay, first on a stream connection: it carries `stream`.
    Attach {
        stream: u64,
        nonce: Nonce,
    },
    /// Gateway → relay: it will not take `stream` (at its connection limit).
    Decline {
        stream: u64,
    },
    /// Relay → gateway: a device at `device` sent a DTLS ClientHello with
    /// `app_id`; open the relay's UDP `port` for it with a [`Bind`].
    Allocate {
        flow: u64,
        port: u16,
        nonce: Nonce,
        device: SocketAddr,
        app_id: Vec<u8>,
    },
    /// Gateway → relay: no session has that App-ID; drop the flow.
    Refuse {
        flow: u64,
    },
    Ping {
        token: u64,
    },
    Pong {
        token: u64,
    },
    /// Either way, on an authenticated link. Gateway → relay: a session
    /// whose cluster cookie has `tag` ended here for good; relay →
    /// gateway: one ended at another gateway of this name. `expires` is
    /// the cookie's own expiry (seconds since the Unix epoch): after it no
    /// gateway honours the cookie anyway, and the tag may be forgotten.
    Revoke {
        tag: RevocationTag,
        expires: u64,
    },
    /// Gateway → relay, on an authenticated link: this gateway is
    /// draining. The relay sends it no new device (no stream, and a
    /// device it had goes to another gateway of the name on its next
    /// connection); streams and flows it carries go on until they end.
    Drain,
}

mod code {
    pub(super) const HELLO: u8 = 0x01;
    pub(super) const CHALLENGE: u8 = 0x02;
    pub(super) const AUTH: u8 = 0x03;
    pub(super) const WELCOME: u8 = 0x04;
    pub(super) const REFUSED: u8 = 0x05;
    pub(super) const OPEN: u8 = 0x10;
    pub(super) const ATTACH: u8 = 0x11;
    pub(super) const DECLINE: u8 = 0x12;
    pub(super) const ALLOCATE: u8 = 0x20;
    pub(super) const REFUSE: u8 = 0x21;
    pub(super) const PING: u8 = 0x30;
    pub(super) const PONG: u8 = 0x31;
    pub(super) const REVOKE: u8 = 0x40;
    pub(super) const DRAIN: u8 = 0x41;
}

/// Why bytes on a link are not a frame. Every one ends the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// A frame type this version does not know.
    UnknownType(u8),
    /// A body longer than [`MAX_BODY`].
    TooLong(usize),
    /// A body that does not parse as its type says.
    Malformed(u8),
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LinkError::UnknownType(t) => write!(f, "unknown link frame type {t:#04x}"),
            LinkError::TooLong(n) => write!(f, "link frame of {n} bytes (at most {MAX_BODY})"),
            LinkError::Malformed(t) => write!(f, "malformed link frame of type {t:#04x}"),
        }
    }
}

impl std::error::Error for LinkError {}

fn put_addr(out: &mut Vec<u8>, a: SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => {
            put_u8(out, 4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            put_u8(out, 6);
            out.extend_from_slice(&ip.octets());
        }
    }
    put_u16(out, a.port());
}

fn read_addr(r: &mut Reader<'_>) -> Result<SocketAddr, Truncated> {
    let ip = match r.u8()? {
        4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
        6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
        _ => return Err(Truncated),
    };
    Ok(SocketAddr::new(ip, r.u16()?))
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn read_u64(r: &mut Reader<'_>) -> Result<u64, Truncated> {
    Ok(u64::from_be_bytes(r.array()?))
}

/// `s` cut to at most `max` bytes on a character boundary.
fn clipped(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

impl Frame {
    /// Appends the frame to `out`. Text fields longer than the format
    /// allows are cut; an App-ID is at most 32 bytes by the protocol.
    pub fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        let typ = match self {
            Frame::Hello { version, route_hint, name } => {
                let name = clipped(name, MAX_NAME);
                put_u8(out, *version);
                put_u32(out, *route_hint);
                put_u8(out, name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                code::HELLO
            }
            Frame::Challenge { nonce } => {
                out.extend_from_slice(nonce);
                code::CHALLENGE
            }
            Frame::Auth { mac } => {
                out.extend_from_slice(mac);
                code::AUTH
            }
            Frame::Welcome { route, dtls_port } => {
                put_u32(out, *route);
                put_u16(out, *dtls_port);
                code::WELCOME
            }
            Frame::Refused { reason } => {
                out.extend_from_slice(clipped(reason, MAX_BODY).as_bytes());
                code::REFUSED
            }
            Frame::Open { stream, nonce, device } => {
                put_u64(out, *stream);
                out.extend_from_slice(nonce);
                put_addr(out, *device);
                code::OPEN
            }
            Frame::Attach { stream, nonce } => {
                put_u64(out, *stream);
                out.extend_from_slice(nonce);
                code::ATTACH
            }
            Frame::Decline { stream } => {
                put_u64(out, *stream);
                code::DECLINE
            }
            Frame::Allocate { flow, port, nonce, device, app_id } => {
                let app_id = app_id.get(..app_id.len().min(crate::connect::APP_ID_MAX)).unwrap_or_default();
                put_u64(out, *flow);
                put_u16(out, *port);
                out.extend_from_slice(nonce);
                put_addr(out, *device);
                put_u8(out, app_id.len() as u8);
                out.extend_from_slice(app_id);
                code::ALLOCATE
            }
            Frame::Refuse { flow } => {
                put_u64(out, *flow);
                code::REFUSE
            }
            Frame::Ping { token } => {
                put_u64(out, *token);
                code::PING
            }
            Frame::Pong { token } => {
                put_u64(out, *token);
                code::PONG
            }
            Frame::Revoke { tag, expires } => {
                out.extend_from_slice(tag);
                put_u64(out, *expires);
                code::REVOKE
            }
            Frame::Drain => code::DRAIN,
        };
        let len = (out.len() - start - HEADER_LEN) as u16;
        if let Some(h) = out.get_mut(start..start + HEADER_LEN) {
            h.copy_from_slice(&[typ, (len >> 8) as u8, len as u8]);
        }
    }

    /// The frame as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write(&mut v);
        v
    }

    fn parse(typ: u8, body: &[u8]) -> Result<Self, LinkError> {
        let mut r = Reader::new(body);
        let frame = Self::parse_body(typ, &mut r).map_err(|_| LinkError::Malformed(typ))?;
        r.finish().map_err(|_| LinkError::Malformed(typ))?;
        Ok(frame)
    }

    fn parse_body(typ: u8, r: &mut Reader<'_>) -> Result<Self, Truncated> {
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| Truncated);
        Ok(match typ {
            code::HELLO => {
                let version = r.u8()?;
                let route_hint = u32::from_be_bytes(r.array()?);
                let name = text(r.sub_u8()?.rest())?;
                Frame::Hello { version, route_hint, name }
            }
            code::CHALLENGE => Frame::Challenge { nonce: r.array()? },
            code::AUTH => Frame::Auth { mac: r.array()? },
            code::WELCOME => Frame::Welcome { route: u32::from_be_bytes(r.array()?), dtls_port: r.u16()? },
            code::REFUSED => Frame::Refused { reason: text(r.take(r.remaining())?)? },
            code::OPEN => Frame::Open { stream: read_u64(r)?, nonce: r.array()?, device: read_addr(r)? },
            code::ATTACH => Frame::Attach { stream: read_u64(r)?, nonce: r.array()? },
            code::DECLINE => Frame::Decline { stream: read_u64(r)? },
            code::ALLOCATE => {
                let flow = read_u64(r)?;
                let port = r.u16()?;
                let nonce = r.array()?;
                let device = read_addr(r)?;
                let app_id = r.sub_u8()?.rest().to_vec();
                if app_id.len() > crate::connect::APP_ID_MAX {
                    return Err(Truncated);
                }
                Frame::Allocate { flow, port, nonce, device, app_id }
            }
            code::REFUSE => Frame::Refuse { flow: read_u64(r)? },
            code::PING => Frame::Ping { token: read_u64(r)? },
            code::PONG => Frame::Pong { token: read_u64(r)? },
            code::REVOKE => Frame::Revoke { tag: r.array()?, expires: read_u64(r)? },
            code::DRAIN => Frame::Drain,
            _ => return Err(Truncated),
        })
    }
}

fn known(typ: u8) -> bool {
    matches!(
        typ,
        code::HELLO
            | code::CHALLENGE
            | code::AUTH
            | code::WELCOME
            | code::REFUSED
            | code::OPEN
            | code::ATTACH
            | code::DECLINE
            | code::ALLOCATE
            | code::REFUSE
            | code::PING
            | code::PONG
            | code::REVOKE
            | code::DRAIN
    )
}

/// The next whole frame at the start of `buf`, and how many bytes it took;
/// `Ok(None)` when more bytes are needed. After an error the link is done.
pub fn next_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, LinkError> {
    let [typ, hi, lo] = match buf.get(..HEADER_LEN) {
        Some(&[t, h, l]) => [t, h, l],
        _ => return Ok(None),
    };
    if !known(typ) {
        return Err(LinkError::UnknownType(typ));
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_BODY {
        return Err(LinkError::TooLong(len));
    }
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else { return Ok(None) };
    Frame::parse(typ, body).map(|f| Some((f, HEADER_LEN + len)))
}

/// What [`Frame::Auth`] carries: HMAC-SHA256 under the gateway's token over
/// the relay's challenge and the name it registers, so a MAC for one name
/// or challenge is worth nothing for another.
pub fn link_mac(token: &[u8], nonce: &[u8; 32], name: &str) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"corridor relay link v1\0");
    ctx.update(nonce);
    ctx.update(name.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// Checks a [`Frame::Auth`] MAC in constant time.
pub fn verify_link_mac(token: &[u8], nonce: &[u8; 32], name: &str, mac: &[u8; 32]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token);
    let mut msg = b"corridor relay link v1\0".to_vec();
    msg.extend_from_slice(nonce);
    msg.extend_from_slice(name.as_bytes());
    hmac::verify(&key, &msg, mac).is_ok()
}

/// The first byte of an App-ID that carries a relay route.
const ROUTE_TAG: u8 = 0xc0;

/// Writes `route` into the head of a 32-byte App-ID (the rest stays
/// random): the relay reads it from the DTLS ClientHello to pick the
/// gateway link, with no shared state (openconnect-protocol.md §9.3).
pub fn tag_app_id(app_id: &mut [u8; 32], route: u32) {
    let [a, b, c, d] = route.to_be_bytes();
    app_id[..5].copy_from_slice(&[ROUTE_TAG, a, b, c, d]);
}

/// The route an App-ID was tagged with, if any.
pub fn app_id_route(app_id: &[u8]) -> Option<u32> {
    match app_id {
        [ROUTE_TAG, a, b, c, d, ..] if app_id.len() == 32 => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// The magic at the start of a [`Bind`] datagram.
pub const BIND_MAGIC: &[u8; 8] = b"CRLYBIND";

/// The datagram a gateway sends from its DTLS port to the port an
/// [`Frame::Allocate`] named: it opens the gateway's firewall for the
/// relay's replies (they are then "established") and tells the relay the
/// gateway's address for the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind {
    pub flow: u64,
    pub nonce: Nonce,
}

impl Bind {
    pub const LEN: usize = 8 + 8 + 16;

    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(BIND_MAGIC);
        b[8..16].copy_from_slice(&self.flow.to_be_bytes());
        b[16..].copy_from_slice(&self.nonce);
        b
    }

    /// A bind datagram, or `None` for anything else (a DTLS record never
    /// starts with the magic: its first byte is a content type, 20..=25).
    pub fn parse(d: &[u8]) -> Option<Self> {
        let mut r = Reader::new(d);
        if r.take(8).ok()? != BIND_MAGIC {
            return None;
        }
        let flow = read_u64(&mut r).ok()?;
        let nonce = r.array().ok()?;
        r.finish().ok()?;
        Some(Self { flow, nonce })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_frame() -> Vec<Frame> {
        let v4: SocketAddr = "10.10.0.2:50000".parse().expect("addr");
        let v6: SocketAddr = "[2001:db8::7]:443".parse().expect("addr");
        vec![
            Frame::Hello { version: VERSION, route_hint: 0x0102_0304, name: "vpn.example.test".into() },
            Frame::Challenge { nonce: [3; 32] },
            Frame::Auth { mac: [4; 32] },
            Frame::Welcome { route: 0xdead_beef, dtls_port: 443 },
            Frame::Refused { reason: "bad token".into() },
            Frame::Open { stream: 7, nonce: [5; 16], device: v4 },
            Frame::Open { stream: u64::MAX, nonce: [6; 16], device: v6 },
            Frame::Attach { stream: 7, nonce: [5; 16] },
            Frame::Decline { stream: 9 },
            Frame::Allocate { flow: 11, port: 40_001, nonce: [8; 16], device: v4, app_id: vec![0xc0; 32] },
            Frame::Refuse { flow: 11 },
            Frame::Ping { token: 1 },
            Frame::Pong { token: 1 },
            Frame::Revoke { tag: [0x5c; 16], expires: 1_800_000_000 },
            Frame::Drain,
            Frame::Revoke { tag: [0; 16], expires: u64::MAX },
        ]
    }

    #[test]
    fn every_frame_round_trips_and_needs_all_its_bytes() {
        for f in every_frame() {
            let bytes = f.to_vec();
            assert_eq!(next_frame(&bytes), Ok(Some((f.clone(), bytes.len()))), "{f:?}");
            for n in 0..bytes.len() {
                assert_eq!(next_frame(&bytes[..n]), Ok(None), "{f:?} cut at {n}");
            }
        }
    }

    #[test]
    fn frames_follow_each_other_in_a_stream() {
        let mut stream = Vec::new();
        for f in every_frame() {
            f.write(&mut stream);
        }
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((f, n)) = next_frame(&stream[at..]).expect("valid") {
            got.push(f);
            at += n;
        }
        assert_eq!(got, every_frame());
    }

    #[test]
    fn byte_exact_attach() {
        let b = Frame::Attach { stream: 0x0102, nonce: [0xaa; 16] }.to_vec();
        let mut want = vec![0x11, 0, 24, 0, 0, 0, 0, 0, 0, 1, 2];
        want.extend_from_slice(&[0xaa; 16]);
        assert_eq!(b, want);
    }

    #[test]
    fn byte_exact_revoke() {
        let tag: RevocationTag = core::array::from_fn(|i| i as u8);
        let b = Frame::Revoke { tag, expires: 0x0102_0304_0506_0708 }.to_vec();
        let mut want = vec![0x40, 0, 24];
        want.extend(0u8..16);
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b, want);
        // A short or long body is no Revoke.
        let mut short = want.clone();
        short[2] = 23;
        short.pop();
        assert_eq!(next_frame(&short), Err(LinkError::Malformed(code::REVOKE)));
        let mut long = want;
        long[2] = 25;
        long.push(0);
        assert_eq!(next_frame(&long), Err(LinkError::Malformed(code::REVOKE)));
    }

    #[test]
    fn bad_frames_are_named() {
        assert_eq!(next_frame(&[0x99, 0, 0]), Err(LinkError::UnknownType(0x99)));
        assert_eq!(next_frame(&[code::PING, 0x04, 0x01]), Err(LinkError::TooLong(1025)));
        assert_eq!(next_frame(&[code::PING, 0, 2, 0, 0]), Err(LinkError::Malformed(code::PING)));
        // Trailing bytes inside a body are an error, not ignored.
        let mut b = Frame::Decline { stream: 1 }.to_vec();
        b[2] += 1;
        b.push(0);
        assert_eq!(next_frame(&b), Err(LinkError::Malformed(code::DECLINE)));
        // An address family that does not exist.
        let mut b = Frame::Open { stream: 1, nonce: [0; 16], device: "1.2.3.4:5".parse().expect("a") }.to_vec();
        b[HEADER_LEN + 24] = 5;
        assert_eq!(next_frame(&b), Err(LinkError::Malformed(code::OPEN)));
        // Not UTF-8.
        assert_eq!(next_frame(&[code::REFUSED, 0, 1, 0xff]), Err(LinkError::Malformed(code::REFUSED)));
    }

    #[test]
    fn mutated_frames_never_panic() {
        for f in every_frame() {
            let bytes = f.to_vec();
            for i in 0..bytes.len() {
                for v in [0u8, 1, 0x7f, 0xff] {
                    let mut m = bytes.clone();
                    m[i] = v;
                    let _ = next_frame(&m);
                }
            }
        }
    }

    #[test]
    fn the_mac_binds_token_challenge_and_name() {
        let mac = link_mac(b"secret", &[1; 32], "vpn.test");
        assert!(verify_link_mac(b"secret", &[1; 32], "vpn.test", &mac));
        assert!(!verify_link_mac(b"secreT", &[1; 32], "vpn.test", &mac));
        assert!(!verify_link_mac(b"secret", &[2; 32], "vpn.test", &mac));
        assert!(!verify_link_mac(b"secret", &[1; 32], "vpn.tesu", &mac));
    }

    #[test]
    fn app_id_routes() {
        let mut id = [0x5a; 32];
        assert_eq!(app_id_route(&id), None);
        tag_app_id(&mut id, 0x0102_0304);
        assert_eq!(app_id_route(&id), Some(0x0102_0304));
        assert_eq!(&id[5..], &[0x5a; 27]);
        assert_eq!(app_id_route(&id[..31]), None, "only full-length App-IDs are ours");
    }

    #[test]
    fn bind_round_trips_and_rejects_dtls() {
        let b = Bind { flow: 42, nonce: [9; 16] };
        assert_eq!(Bind::parse(&b.to_bytes()), Some(b));
        assert_eq!(Bind::parse(&b.to_bytes()[..31]), None);
        let mut dtls_hello = vec![22, 0xfe, 0xff];
        dtls_hello.resize(60, 0);
        assert_eq!(Bind::parse(&dtls_hello), None);
    }
}
