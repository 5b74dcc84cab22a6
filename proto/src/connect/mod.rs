//! The CONNECT request that turns the HTTPS connection into a tunnel, and
//! the response that configures it (protocol reference §3, traps §10.2–4),
//! both directions:
//!
//! - the gateway's half ([`parse_connect`], [`connect_response`],
//!   [`connect_error`]) reads what the client asks for and answers with the
//!   tunnel's configuration or a refusal;
//! - the device's half ([`connect_request`], [`parse_connect_response`])
//!   asks as openconnect 9.01 does and reads the answer as openconnect
//!   does: exact header case, the same mandatory headers (§3.2).
//!
//! Each half's tests read the other half's output.

mod client;
mod server;

pub use client::{connect_request, parse_connect_response, ConnectOptions, ConnectResponseError, TunnelConfig};
pub use server::{
    connect_error, connect_response, dtls_offer_valid, parse_connect, ConnectError, ConnectRequest, TunnelParams,
};

/// Trusted-network detection, corridor's own (openconnect ignores it): a
/// device that reaches `url` directly, its server presenting the key of
/// `pin` (`pin-sha256:…`), is on the organisation's network and ends its
/// tunnel until it leaves (`X-Corridor-Trusted-URL`, `-Pin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedNetwork {
    pub url: String,
    pub pin: String,
}

pub(crate) const TRUSTED_URL_HEADER: &str = "X-Corridor-Trusted-URL";
pub(crate) const TRUSTED_PIN_HEADER: &str = "X-Corridor-Trusted-Pin";

/// The only tunnel path openconnect requests (§3.1).
pub const TUNNEL_PATH: &str = "/CSCOSSLC/tunnel";

/// The session cookie's name, the one cookie replayed on CONNECT (§2.6).
pub const SESSION_COOKIE: &str = "webvpn";

/// The `X-DTLS-CipherSuite` token offering DTLS-PSK with the exporter key
/// (§5.2, §5.3), and our answer selecting it.
pub const PSK_NEGOTIATE: &str = "PSK-NEGOTIATE";

/// App-ID bounds the client enforces; anything else fails the CONNECT (§3.2).
pub const APP_ID_MAX: usize = 32;

/// How the client renews keys after `X-CSTP-Rekey-Time` (§6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RekeyMethod {
    /// Re-handshake the live TLS session: under TLS 1.3 a KeyUpdate, under
    /// TLS 1.2 a renegotiation (which rustls refuses) — offer only on 1.3.
    Ssl,
    /// Close TLS and reconnect with the cookie.
    NewTunnel,
}

impl RekeyMethod {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ssl => "ssl",
            Self::NewTunnel => "new-tunnel",
        }
    }

    /// Reads `X-CSTP-Rekey-Method`; `none` and anything unknown mean no
    /// rekey, as for openconnect (§6.5).
    pub fn from_header(value: &str) -> Option<Self> {
        match value {
            "ssl" => Some(Self::Ssl),
            "new-tunnel" => Some(Self::NewTunnel),
            _ => None,
        }
    }
}

/// The DTLS half of a tunnel offer (§3.3, §5.3): what the gateway writes
/// and the device reads. Only PSK-NEGOTIATE: no legacy session resumption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsParams {
    /// UDP port on the address the client reached over TLS.
    pub port: u16,
    /// The session's identifier in the DTLS ClientHello's `session_id`:
    /// 1..=32 bytes, lower-case hex on the wire. Not secret.
    pub app_id: Vec<u8>,
    pub dpd_secs: u32,
    pub keepalive_secs: u32,
}

/// Decimal digits only, for the numeric headers both ways (`str::parse`
/// would also take a `+`).
fn parse_decimal<T: core::str::FromStr>(v: &str) -> Option<T> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Lower-case hex, as ocserv sends the App-ID (Appendix A.1).
fn lower_hex(bytes: &[u8]) -> String {
    let digit = |nibble: u8| char::from_digit(u32::from(nibble), 16).unwrap_or('0');
    bytes.iter().flat_map(|&b| [digit(b >> 4), digit(b & 0x0f)]).collect()
}

/// The bytes of an even-length hex string, either case.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let high = char::from(*pair.first()?).to_digit(16)?;
            let low = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(high * 16 + low).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_both_ways() {
        let bytes = [0x00, 0x0a, 0xc3, 0xff];
        assert_eq!(lower_hex(&bytes), "000ac3ff");
        assert_eq!(decode_hex("000aC3ff").as_deref(), Some(&bytes[..]));
        for bad in ["0", "zz", "+1", "0g", "\u{e9}0"] {
            assert_eq!(decode_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers_and_rekey_methods() {
        assert_eq!(parse_decimal::<u16>("1500"), Some(1500));
        for bad in ["", "+1", "-1", "65536", "1 "] {
            assert_eq!(parse_decimal::<u16>(bad), None, "{bad:?}");
        }
        for m in [RekeyMethod::Ssl, RekeyMethod::NewTunnel] {
            assert_eq!(RekeyMethod::from_header(m.as_str()), Some(m));
        }
        assert_eq!(RekeyMethod::from_header("none"), None);
    }
}
