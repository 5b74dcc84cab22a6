//! The gateway's half of CONNECT: reading the request (§3.1) and writing
//! the response that configures the tunnel, or the refusal (§3.2–§3.3).
//!
//! The response is written byte by byte here rather than by an HTTP
//! library: openconnect matches the `X-CSTP-` / `X-DTLS-` prefixes and the
//! suffixes case-sensitively, needs the status line to begin exactly with
//! `HTTP/1.1 200 `, and aborts without an MTU or an address (§3.2).

use core::fmt;
use std::net::Ipv4Addr;

use super::{
    lower_hex, parse_decimal, DtlsParams, RekeyMethod, APP_ID_MAX, PSK_NEGOTIATE, SESSION_COOKIE, TUNNEL_PATH,
};
use crate::http::{self, HttpVersion, Request};
use crate::ip::Ipv4Net;

/// What the client asked for (§3.1).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The `webvpn` cookie value, the session's bearer token.
    pub cookie: Option<String>,
    /// `X-CSTP-Hostname`: the client's own host name.
    pub hostname: Option<String>,
    /// `X-CSTP-Base-MTU`: the client's path-MTU estimate (§7.1).
    pub base_mtu: Option<u16>,
    /// `X-CSTP-MTU`: the tunnel MTU the client proposes (ignored by ocserv
    /// when Base-MTU is present, §3.1).
    pub mtu: Option<u16>,
    /// `X-CSTP-Address-Type` lists `IPv4`, or is absent (old clients).
    pub wants_ipv4: bool,
    /// `X-DTLS-CipherSuite` has the `PSK-NEGOTIATE` token (§5.2).
    pub psk_negotiate: bool,
    /// Any of `X-DTLS-CipherSuite`, `X-DTLS12-CipherSuite`,
    /// `X-DTLS-Master-Secret` is present; `--no-dtls` sends none (§3.1).
    pub dtls_requested: bool,
    /// `X-CSTP-Address` with an IPv4 address: a reconnect asking for its old
    /// address back, which it must get (§3.2, §6.6).
    pub previous_ipv4: Option<Ipv4Addr>,
    pub user_agent: Option<String>,
    /// `X-AnyConnect-Identifier-Platform` (mobile clients, §6.2, trap 15).
    pub platform: Option<String>,
}

/// The cookie is a bearer token: `Debug` does not print it.
impl fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("cookie", &self.cookie.as_ref().map(|_| "<redacted>"))
            .field("hostname", &self.hostname)
            .field("base_mtu", &self.base_mtu)
            .field("mtu", &self.mtu)
            .field("wants_ipv4", &self.wants_ipv4)
            .field("psk_negotiate", &self.psk_negotiate)
            .field("dtls_requested", &self.dtls_requested)
            .field("previous_ipv4", &self.previous_ipv4)
            .field("user_agent", &self.user_agent)
            .field("platform", &self.platform)
            .finish()
    }
}

/// Why a request is not a usable CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectError {
    /// The method is not `CONNECT`.
    NotConnect,
    /// The target is not [`TUNNEL_PATH`].
    WrongPath,
    /// Not HTTP/1.1 (the client only speaks 1.1 here, §3.2).
    NotHttp11,
    /// `X-CSTP-Base-MTU` is not a decimal 16-bit number.
    BadBaseMtu,
    /// `X-CSTP-MTU` is not a decimal 16-bit number.
    BadMtu,
    /// `X-CSTP-Address` is neither an IPv4 nor an IPv6 address.
    BadAddress,
}

impl ConnectError {
    /// The status to answer with (via [`connect_error`]).
    pub fn status(&self) -> u16 {
        match self {
            Self::NotConnect => 405,
            Self::WrongPath => 404,
            Self::NotHttp11 | Self::BadBaseMtu | Self::BadMtu | Self::BadAddress => 400,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotConnect => "not a CONNECT request",
            Self::WrongPath => "CONNECT to an unknown path",
            Self::NotHttp11 => "CONNECT is not HTTP/1.1",
            Self::BadBaseMtu => "invalid X-CSTP-Base-MTU",
            Self::BadMtu => "invalid X-CSTP-MTU",
            Self::BadAddress => "invalid X-CSTP-Address",
        })
    }
}

impl std::error::Error for ConnectError {}

/// Reads the tunnel request out of a parsed HTTP request (§3.1).
///
/// Malformed numbers and addresses are refused rather than ignored: the
/// client never sends them, and a reconnect with an unreadable address would
/// otherwise silently get a new one, which the client rejects (§3.2).
pub fn parse_connect(req: &Request<'_>) -> Result<ConnectRequest, ConnectError> {
    if req.method != "CONNECT" {
        return Err(ConnectError::NotConnect);
    }
    if req.path != TUNNEL_PATH {
        return Err(ConnectError::WrongPath);
    }
    if req.version != HttpVersion::Http11 {
        return Err(ConnectError::NotHttp11);
    }
    let number = |name: &str, err: ConnectError| req.header(name).map(|v| parse_decimal(v).ok_or(err)).transpose();
    let base_mtu = number("X-CSTP-Base-MTU", ConnectError::BadBaseMtu)?;
    let mtu = number("X-CSTP-MTU", ConnectError::BadMtu)?;

    let mut previous_ipv4 = None;
    for value in req.headers("X-CSTP-Address") {
        if let Ok(v4) = value.parse::<Ipv4Addr>() {
            previous_ipv4.get_or_insert(v4);
        } else if !is_ipv6_address(value) {
            return Err(ConnectError::BadAddress);
        }
    }

    let wants_ipv4 = req
        .header("X-CSTP-Address-Type")
        .is_none_or(|types| types.split(',').any(|t| t.trim().eq_ignore_ascii_case("IPv4")));
    let psk_negotiate =
        req.headers("X-DTLS-CipherSuite").flat_map(|v| v.split(':')).any(|suite| suite.trim() == PSK_NEGOTIATE);
    let dtls_requested =
        ["X-DTLS-CipherSuite", "X-DTLS12-CipherSuite", "X-DTLS-Master-Secret"].iter().any(|h| req.header(h).is_some());
    let owned = |name: &str| req.header(name).map(str::to_owned);

    Ok(ConnectRequest {
        cookie: req.cookie(SESSION_COOKIE).map(str::to_owned),
        hostname: owned("X-CSTP-Hostname"),
        base_mtu,
        mtu,
        wants_ipv4,
        psk_negotiate,
        dtls_requested,
        previous_ipv4,
        user_agent: owned("User-Agent"),
        platform: owned("X-AnyConnect-Identifier-Platform"),
    })
}

/// An IPv6 address, optionally with `/prefix` (the reconnect form of
/// `X-CSTP-Address` for the IPv6 side, which this gateway does not assign).
fn is_ipv6_address(v: &str) -> bool {
    let (addr, prefix) = v.split_once('/').unwrap_or((v, "128"));
    addr.parse::<std::net::Ipv6Addr>().is_ok() && prefix.parse::<u8>().is_ok_and(|p| p <= 128)
}

/// Everything the CONNECT response tells the client (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelParams {
    /// `X-CSTP-Server-Name`; informational.
    pub server_name: String,
    /// Echo of the client's `X-CSTP-Hostname`.
    pub hostname: Option<String>,
    /// The client's tunnel address (mandatory for the client).
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    /// The client keeps the first three.
    pub dns: Vec<Ipv4Addr>,
    pub default_domain: Option<String>,
    /// Routes into the tunnel; none at all means "default route via VPN".
    pub split_include: Vec<Ipv4Net>,
    pub split_exclude: Vec<Ipv4Net>,
    /// `X-CSTP-Base-MTU` (see [`crate::mtu`]).
    pub base_mtu: u16,
    /// `X-CSTP-MTU`: the tunnel MTU; must be non-zero (§3.2).
    pub mtu: u16,
    pub dpd_secs: u32,
    pub keepalive_secs: u32,
    /// `None` is sent as `none`; advisory for the client (§6.3).
    pub idle_timeout_secs: Option<u32>,
    /// Time left in the session; `None` is sent as `none` (§6.4).
    pub session_timeout_secs: Option<u32>,
    /// `X-CSTP-Rekey-Time` and `-Method`; `None` omits both (no rekey).
    pub rekey: Option<(u32, RekeyMethod)>,
    pub banner: Option<String>,
    /// `None` sends no `X-DTLS-*` header: a clean CSTP-only tunnel (§8).
    pub dtls: Option<DtlsParams>,
    /// The executables whose traffic may use the tunnel, one
    /// `X-Corridor-App` header each (corridor's own; openconnect ignores
    /// it); `None`: every app, no header.
    pub apps: Option<Vec<String>>,
    /// Trusted-network detection for the device; `None` sends nothing.
    pub trusted: Option<super::TrustedNetwork>,
}

/// One executable allowed into the tunnel (per-app selection).
pub(super) const APP_HEADER: &str = "X-Corridor-App";

/// The complete CONNECT success response: status line, headers, blank
/// line. Send it in its own TLS record before the first CSTP frame (§4.3).
///
/// Headers follow ocserv 1.1.6's order (Appendix A.1) with exact case;
/// ocserv's headers that openconnect does not interpret are left out, as
/// are the DTLS rekey headers: without `X-DTLS-Rekey-Method` the client
/// never attempts a DTLS renegotiation, which our DTLS stack does not
/// support (§6.5). Routes are written `network/dotted-mask`.
///
/// A `dtls` whose App-ID is not 1..=32 bytes, or whose port is 0, is left
/// out entirely: the client would abort the whole CONNECT on the App-ID
/// (§3.2), and falls back to CSTP-only without DTLS headers (§8). Control
/// characters in the strings (a multi-line banner, a hostile hostname) are
/// replaced by spaces so no value can start a header line.
pub fn connect_response(p: &TunnelParams) -> Vec<u8> {
    debug_assert!(p.mtu != 0, "the client refuses a tunnel without an MTU (§3.2)");
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"HTTP/1.1 200 CONNECTED\r\n");
    let mut h = |name: &str, value: &str| http::push_header(&mut out, name, &one_line(value));
    h("X-CSTP-Version", "1");
    h("X-CSTP-Server-Name", &p.server_name);
    if let Some(hostname) = &p.hostname {
        h("X-CSTP-Hostname", hostname);
    }
    h("X-CSTP-DPD", &p.dpd_secs.to_string());
    if let Some(domain) = &p.default_domain {
        h("X-CSTP-Default-Domain", domain);
    }
    h("X-CSTP-Address", &p.address.to_string());
    h("X-CSTP-Netmask", &p.netmask.to_string());
    for dns in &p.dns {
        h("X-CSTP-DNS", &dns.to_string());
    }
    for net in &p.split_include {
        h("X-CSTP-Split-Include", &route(net));
    }
    for net in &p.split_exclude {
        h("X-CSTP-Split-Exclude", &route(net));
    }
    h("X-CSTP-Keepalive", &p.keepalive_secs.to_string());
    h("X-CSTP-Idle-Timeout", &seconds_or_none(p.idle_timeout_secs));
    if let Some((secs, method)) = p.rekey {
        h("X-CSTP-Rekey-Time", &secs.to_string());
        h("X-CSTP-Rekey-Method", method.as_str());
    }
    h("X-CSTP-Session-Timeout", &seconds_or_none(p.session_timeout_secs));
    if let Some(dtls) = p.dtls.as_ref().filter(|d| dtls_offer_valid(d)) {
        h("X-DTLS-DPD", &dtls.dpd_secs.to_string());
        h("X-DTLS-Port", &dtls.port.to_string());
        h("X-DTLS-Keepalive", &dtls.keepalive_secs.to_string());
        h("X-DTLS-App-ID", &lower_hex(&dtls.app_id));
        h("X-DTLS-CipherSuite", PSK_NEGOTIATE);
    }
    h("X-CSTP-Base-MTU", &p.base_mtu.to_string());
    h("X-CSTP-MTU", &p.mtu.to_string());
    if let Some(banner) = &p.banner {
        h("X-CSTP-Banner", banner);
    }
    for app in p.apps.iter().flatten() {
        h(APP_HEADER, app);
    }
    if let Some(t) = &p.trusted {
        h(super::TRUSTED_URL_HEADER, &t.url);
        h(super::TRUSTED_PIN_HEADER, &t.pin);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether the client will accept this DTLS offer rather than abort (§3.2)
/// or silently skip DTLS (port 0, §3.3).
pub fn dtls_offer_valid(d: &DtlsParams) -> bool {
    (1..=APP_ID_MAX).contains(&d.app_id.len()) && d.port != 0
}

/// A refusal of the CONNECT: `HTTP/1.1 {status} {reason}`, the reason
/// repeated as `X-Reason` (which the client logs on a 503, §3.2),
/// `Content-Length: 0` and `Connection: close`. Typical uses: 401 when the
/// cookie is unknown (the client gives up, no retry), 503 when no address
/// or capacity is left.
pub fn connect_error(status: u16, reason: &str) -> Vec<u8> {
    let reason = one_line(reason);
    let mut out = Vec::with_capacity(128);
    http::write_response(&mut out, status, &reason, &[("X-Reason", &reason), ("Connection", "close")], b"");
    out
}

/// `10.99.0.0/255.255.0.0`: the split-route form (§3.3).
fn route(net: &Ipv4Net) -> String {
    format!("{}/{}", net.network(), net.mask())
}

fn seconds_or_none(secs: Option<u32>) -> String {
    secs.map_or_else(|| "none".to_owned(), |s| s.to_string())
}

/// `s` with every control character replaced by a space.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request, Limits, Parsed};

    fn request(raw: &str) -> Result<ConnectRequest, ConnectError> {
        match parse_request(raw.as_bytes(), &Limits::default()) {
            Ok(Parsed::Complete { request, .. }) => parse_connect(&request),
            other => panic!("{other:?}"),
        }
    }

    fn params() -> TunnelParams {
        TunnelParams {
            server_name: "corridor".into(),
            hostname: None,
            address: Ipv4Addr::new(192, 168, 77, 10),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            dns: vec![],
            default_domain: None,
            split_include: vec![],
            split_exclude: vec![],
            base_mtu: 1500,
            mtu: 1472,
            dpd_secs: 30,
            keepalive_secs: 20,
            idle_timeout_secs: None,
            session_timeout_secs: None,
            rekey: None,
            banner: None,
            dtls: None,
            apps: None,
            trusted: None,
        }
    }

    fn lines(bytes: &[u8]) -> Vec<String> {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.ends_with("\r\n\r\n"));
        text.trim_end_matches("\r\n").split("\r\n").map(str::to_owned).collect()
    }

    #[test]
    fn minimal_request() {
        let c = request("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn.test\r\n\r\n").unwrap();
        assert_eq!(c.cookie, None);
        assert!(c.wants_ipv4, "no Address-Type: IPv4 assumed");
        assert!(!c.psk_negotiate && !c.dtls_requested);
        assert_eq!((c.base_mtu, c.mtu, c.previous_ipv4), (None, None, None));
    }

    #[test]
    fn request_refusals() {
        use ConnectError::*;
        for (raw, want) in [
            ("POST /CSCOSSLC/tunnel HTTP/1.1\r\n\r\n", NotConnect),
            ("CONNECT /tunnel HTTP/1.1\r\n\r\n", WrongPath),
            ("CONNECT /CSCOSSLC/tunnel HTTP/1.0\r\n\r\n", NotHttp11),
            ("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-Base-MTU: 65536\r\n\r\n", BadBaseMtu),
            ("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-Base-MTU: +1500\r\n\r\n", BadBaseMtu),
            ("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-MTU: big\r\n\r\n", BadMtu),
            ("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-Address: 10.0.0.256\r\n\r\n", BadAddress),
        ] {
            assert_eq!(request(raw), Err(want), "{raw:?}");
        }
        assert_eq!([NotConnect.status(), WrongPath.status(), BadMtu.status()], [405, 404, 400]);
    }

    #[test]
    fn reconnect_addresses() {
        let c = request(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-Address: 2001:db8::5\r\nX-CSTP-Address: 192.168.99.121\r\n\r\n",
        )
        .unwrap();
        assert_eq!(c.previous_ipv4, Some(Ipv4Addr::new(192, 168, 99, 121)));
        let c = request("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-Address: 2001:db8::5/64\r\n\r\n").unwrap();
        assert_eq!(c.previous_ipv4, None);
    }

    #[test]
    fn address_types_and_cipher_tokens() {
        let c = request(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-Address-Type: IPv6\r\nX-DTLS-CipherSuite: OC-DTLS1_2-AES256-GCM\r\n\r\n",
        )
        .unwrap();
        assert!(!c.wants_ipv4);
        assert!(c.dtls_requested && !c.psk_negotiate, "legacy-only offer (A.2)");
        let c = request(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-Address-Type: IPv4\r\nX-DTLS-CipherSuite: AES128-SHA:PSK-NEGOTIATE\r\n\r\n",
        )
        .unwrap();
        assert!(c.wants_ipv4 && c.psk_negotiate);
        let c = request("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-DTLS-CipherSuite: PSK-NEGOTIATEX\r\n\r\n").unwrap();
        assert!(!c.psk_negotiate, "whole tokens only");
    }

    #[test]
    fn request_debug_hides_cookie() {
        let c = request("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=SECRETTOKEN\r\n\r\n").unwrap();
        assert_eq!(c.cookie.as_deref(), Some("SECRETTOKEN"));
        assert!(!format!("{c:?}").contains("SECRETTOKEN"));
    }

    #[test]
    fn minimal_response_matches_the_verified_one() {
        // §3.3 "Verified minimal response", plus what we always send.
        let got = lines(&connect_response(&params()));
        assert_eq!(
            got,
            [
                "HTTP/1.1 200 CONNECTED",
                "X-CSTP-Version: 1",
                "X-CSTP-Server-Name: corridor",
                "X-CSTP-DPD: 30",
                "X-CSTP-Address: 192.168.77.10",
                "X-CSTP-Netmask: 255.255.255.0",
                "X-CSTP-Keepalive: 20",
                "X-CSTP-Idle-Timeout: none",
                "X-CSTP-Session-Timeout: none",
                "X-CSTP-Base-MTU: 1500",
                "X-CSTP-MTU: 1472",
            ]
        );
    }

    #[test]
    fn invalid_dtls_offers_are_dropped() {
        for (app_id, port) in [(vec![], 443), (vec![0; 33], 443), (vec![1; 32], 0)] {
            let p =
                TunnelParams { dtls: Some(DtlsParams { port, app_id, dpd_secs: 1, keepalive_secs: 1 }), ..params() };
            assert!(!lines(&connect_response(&p)).iter().any(|l| l.starts_with("X-DTLS-")));
        }
        let p = TunnelParams {
            dtls: Some(DtlsParams { port: 4443, app_id: vec![0x0a, 0xff], dpd_secs: 1, keepalive_secs: 2 }),
            ..params()
        };
        let got = lines(&connect_response(&p));
        assert!(got.contains(&"X-DTLS-App-ID: 0aff".to_owned()));
        assert!(got.contains(&"X-DTLS-Port: 4443".to_owned()));
        assert!(!got.iter().any(|l| l.contains("Rekey-Method: ssl") && l.starts_with("X-DTLS")));
    }

    #[test]
    fn values_cannot_inject_headers() {
        let p = TunnelParams {
            hostname: Some("vm\r\nX-CSTP-Address: 6.6.6.6".into()),
            banner: Some("line one\nline two".into()),
            ..params()
        };
        let got = lines(&connect_response(&p));
        assert!(got.contains(&"X-CSTP-Hostname: vm  X-CSTP-Address: 6.6.6.6".to_owned()));
        assert!(got.contains(&"X-CSTP-Banner: line one line two".to_owned()));
        assert_eq!(got.iter().filter(|l| l.starts_with("X-CSTP-Address:")).count(), 1);
    }

    #[test]
    fn error_responses() {
        assert_eq!(
            connect_error(401, "Cookie is not acceptable"),
            b"HTTP/1.1 401 Cookie is not acceptable\r\nX-Reason: Cookie is not acceptable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        let got = String::from_utf8(connect_error(503, "No address\r\navailable")).unwrap();
        assert!(got.starts_with("HTTP/1.1 503 No address  available\r\nX-Reason: No address  available\r\n"));
    }
}
