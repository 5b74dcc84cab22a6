//! The device's half of CONNECT: the request openconnect 9.01 sends with
//! its cookie (§3.1), and reading the `200` that configures the tunnel the
//! way openconnect reads it (§3.2–§3.3).

use core::fmt;
use std::net::Ipv4Addr;

use zeroize::Zeroizing;

use super::{
    decode_hex, parse_decimal, DtlsParams, RekeyMethod, APP_ID_MAX, PSK_NEGOTIATE, SESSION_COOKIE, TUNNEL_PATH,
};
use crate::http;
use crate::http_response::{Response, ResponseVersion};
use crate::ip::Ipv4Net;

/// What openconnect takes off `X-CSTP-Base-MTU` for the `X-CSTP-MTU` it
/// proposes: the worst DTLS overhead (82), UDP (8) and IPv4 (20), so
/// 1500 → 1390 as in Appendix A.1 (§7.1).
const PROPOSED_MTU_OVERHEAD: u16 = 82 + 8 + 20;

/// What the device asks for on CONNECT (§3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions<'a> {
    /// `Host:`, the gateway's name.
    pub host: &'a str,
    pub user_agent: &'a str,
    /// `X-CSTP-Hostname`: the device's own name (ocserv echoes it).
    pub hostname: &'a str,
    /// `X-CSTP-Base-MTU` (§7.1).
    pub base_mtu: u16,
    /// Offer `PSK-NEGOTIATE` DTLS.
    pub dtls: bool,
    /// The address held before, asked back on a reconnect (§6.6).
    pub previous_address: Option<Ipv4Addr>,
}

/// The CONNECT request (§3.1) carrying `cookie` as `webvpn`, the only
/// cookie sent. IPv4 only, and only the PSK-NEGOTIATE DTLS token: no
/// legacy master secret, which PSK mode ignores (§5.2).
///
/// Values are written with control characters removed, so none can start
/// a header line. The buffer is sized once and wiped on drop: the cookie is
/// a bearer token.
pub fn connect_request(o: &ConnectOptions<'_>, cookie: &str) -> Zeroizing<Vec<u8>> {
    let variable = o.host.len() + o.user_agent.len() + o.hostname.len() + cookie.len();
    let mut r = Zeroizing::new(Vec::with_capacity(512 + variable));
    r.extend_from_slice(b"CONNECT ");
    r.extend_from_slice(TUNNEL_PATH.as_bytes());
    r.extend_from_slice(b" HTTP/1.1\r\n");
    let mut h = |name: &str, value: &str| http::push_header(&mut r, name, value);
    h("Host", o.host);
    h("User-Agent", o.user_agent);
    h("Cookie", &format!("{SESSION_COOKIE}={cookie}"));
    h("X-CSTP-Version", "1");
    h("X-CSTP-Hostname", o.hostname);
    h("X-CSTP-Base-MTU", &o.base_mtu.to_string());
    h("X-CSTP-MTU", &o.base_mtu.saturating_sub(PROPOSED_MTU_OVERHEAD).to_string());
    h("X-CSTP-Address-Type", "IPv4");
    if let Some(address) = o.previous_address {
        h("X-CSTP-Address", &address.to_string());
    }
    if o.dtls {
        h("X-DTLS-CipherSuite", PSK_NEGOTIATE);
    }
    r.extend_from_slice(b"\r\n");
    r
}

/// What the gateway configured (§3.3), as the device reads it: headers the
/// gateway may leave out are `Option`s or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    /// `X-CSTP-Server-Name`; informational.
    pub server_name: Option<String>,
    /// `X-CSTP-Hostname`: the echo of the device's.
    pub hostname: Option<String>,
    /// The first IPv4 `X-CSTP-Address`.
    pub address: Ipv4Addr,
    pub netmask: Option<Ipv4Addr>,
    /// IPv4 `X-CSTP-DNS` values, in order.
    pub dns: Vec<Ipv4Addr>,
    pub default_domain: Option<String>,
    /// IPv4 `X-CSTP-Split-Include` routes; none means everything.
    pub split_include: Vec<Ipv4Net>,
    pub split_exclude: Vec<Ipv4Net>,
    /// The largest `X-CSTP-MTU`, non-zero.
    pub mtu: u16,
    pub base_mtu: Option<u16>,
    /// `X-CSTP-DPD`; 0 when absent (no DPD).
    pub dpd_secs: u32,
    /// `X-CSTP-Keepalive`; 0 when absent.
    pub keepalive_secs: u32,
    /// `X-CSTP-Idle-Timeout`; `None` when absent or `none`.
    pub idle_timeout_secs: Option<u32>,
    /// `X-CSTP-Session-Timeout`; `None` when absent or `none`.
    pub session_timeout_secs: Option<u32>,
    /// `X-CSTP-Rekey-Time` and a method that renews keys; `None`: no rekey.
    pub rekey: Option<(u32, RekeyMethod)>,
    pub banner: Option<String>,
    /// `None` when the gateway offered no usable PSK-NEGOTIATE DTLS (§8).
    pub dtls: Option<DtlsParams>,
    /// `X-Corridor-App` values: the executables whose traffic may use the
    /// tunnel; `None` (no such header, as from any other gateway): all.
    pub apps: Option<Vec<String>>,
    /// Trusted-network detection, when the gateway sent both its headers.
    pub trusted: Option<super::TrustedNetwork>,
}

/// Why a CONNECT answer is unusable; openconnect aborts on each (§3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectResponseError {
    /// Not `HTTP/1.1 200`: 401 = cookie rejected, 503 = no capacity
    /// (`X-Reason` carries why).
    Refused { status: u16, reason: String },
    /// No IPv4 `X-CSTP-Address` ("No IP address received").
    NoAddress,
    /// `X-CSTP-MTU` missing or zero ("No MTU received").
    NoMtu,
    /// A number, address or route header that does not parse; its name.
    BadHeader(&'static str),
    /// An `X-DTLS-App-ID` that is not 1..=32 bytes of hex.
    BadAppId,
}

impl fmt::Display for ConnectResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { status, reason } => write!(f, "CONNECT refused: {status} {reason}"),
            Self::NoAddress => f.write_str("CONNECT response has no IPv4 X-CSTP-Address"),
            Self::NoMtu => f.write_str("CONNECT response has no X-CSTP-MTU"),
            Self::BadHeader(h) => write!(f, "CONNECT response header {h} does not parse"),
            Self::BadAppId => f.write_str("X-DTLS-App-ID is not 1..=32 bytes of hex"),
        }
    }
}

impl std::error::Error for ConnectResponseError {}

/// Reads a CONNECT response head (§3.2).
///
/// As openconnect: only `HTTP/1.1 200` opens a tunnel; `X-CSTP-*` and
/// `X-DTLS-*` names are matched with their exact case; an address and a
/// non-zero MTU are mandatory; a malformed App-ID fails the whole CONNECT.
/// IPv6 addresses, DNS servers and routes are skipped (the device is
/// IPv4-only); any other value that does not parse is an error, not a guess.
pub fn parse_connect_response(r: &Response) -> Result<TunnelConfig, ConnectResponseError> {
    use ConnectResponseError::BadHeader;
    if r.version != ResponseVersion::Http11 || r.status != 200 {
        let reason = r.header("X-Reason").unwrap_or(&r.reason).to_owned();
        return Err(ConnectResponseError::Refused { status: r.status, reason });
    }
    let ipv4 = |name: &'static str| -> Result<Vec<Ipv4Addr>, ConnectResponseError> {
        values(r, name).filter(|v| !v.contains(':')).map(|v| v.parse().map_err(|_| BadHeader(name))).collect()
    };
    let routes = |name: &'static str| -> Result<Vec<Ipv4Net>, ConnectResponseError> {
        values(r, name).filter(|v| !v.contains(':')).map(|v| route(v).ok_or(BadHeader(name))).collect()
    };
    let text = |name: &'static str| first(r, name).map(str::to_owned);

    let address = ipv4("X-CSTP-Address")?.into_iter().next().ok_or(ConnectResponseError::NoAddress)?;
    let mut mtu = 0;
    for value in values(r, "X-CSTP-MTU") {
        mtu = mtu.max(parse_decimal::<u16>(value).ok_or(BadHeader("X-CSTP-MTU"))?);
    }
    if mtu == 0 {
        return Err(ConnectResponseError::NoMtu);
    }
    let rekey_method = first(r, "X-CSTP-Rekey-Method").and_then(RekeyMethod::from_header);
    let rekey = number::<u32>(r, "X-CSTP-Rekey-Time")?.filter(|&secs| secs > 0).zip(rekey_method);

    Ok(TunnelConfig {
        server_name: text("X-CSTP-Server-Name"),
        hostname: text("X-CSTP-Hostname"),
        address,
        netmask: first(r, "X-CSTP-Netmask").map(|v| v.parse().map_err(|_| BadHeader("X-CSTP-Netmask"))).transpose()?,
        dns: ipv4("X-CSTP-DNS")?,
        default_domain: text("X-CSTP-Default-Domain"),
        split_include: routes("X-CSTP-Split-Include")?,
        split_exclude: routes("X-CSTP-Split-Exclude")?,
        mtu,
        base_mtu: number(r, "X-CSTP-Base-MTU")?,
        dpd_secs: number(r, "X-CSTP-DPD")?.unwrap_or(0),
        keepalive_secs: number(r, "X-CSTP-Keepalive")?.unwrap_or(0),
        idle_timeout_secs: seconds_or_none(r, "X-CSTP-Idle-Timeout")?,
        session_timeout_secs: seconds_or_none(r, "X-CSTP-Session-Timeout")?,
        rekey,
        banner: text("X-CSTP-Banner"),
        dtls: dtls_offer(r)?,
        apps: {
            let apps: Vec<String> = values(r, super::server::APP_HEADER).map(str::to_owned).collect();
            (!apps.is_empty()).then_some(apps)
        },
        trusted: first(r, super::TRUSTED_URL_HEADER)
            .zip(first(r, super::TRUSTED_PIN_HEADER))
            .map(|(url, pin)| super::TrustedNetwork { url: url.to_owned(), pin: pin.to_owned() }),
    })
}

/// The PSK-NEGOTIATE offer, if any (§3.3, §5.2). A missing port, port 0 or
/// another cipher suite is no offer (CSTP only, §8); a bad App-ID fails the
/// CONNECT even then, as it does for openconnect (§3.2).
fn dtls_offer(r: &Response) -> Result<Option<DtlsParams>, ConnectResponseError> {
    let app_id = first(r, "X-DTLS-App-ID")
        .map(|v| decode_hex(v).filter(|id| (1..=APP_ID_MAX).contains(&id.len())).ok_or(ConnectResponseError::BadAppId))
        .transpose()?;
    let port = number::<u16>(r, "X-DTLS-Port")?.filter(|&p| p != 0);
    let (Some(app_id), Some(port), Some(PSK_NEGOTIATE)) = (app_id, port, first(r, "X-DTLS-CipherSuite")) else {
        return Ok(None);
    };
    Ok(Some(DtlsParams {
        port,
        app_id,
        dpd_secs: number(r, "X-DTLS-DPD")?.unwrap_or(0),
        keepalive_secs: number(r, "X-DTLS-Keepalive")?.unwrap_or(0),
    }))
}

/// Every value of `name`, matched with its exact case as openconnect
/// matches `X-CSTP-` and `X-DTLS-` headers (§3.2).
fn values<'r>(r: &'r Response, name: &'r str) -> impl Iterator<Item = &'r str> + 'r {
    r.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn first<'r>(r: &'r Response, name: &'r str) -> Option<&'r str> {
    values(r, name).next()
}

fn number<T: core::str::FromStr>(r: &Response, name: &'static str) -> Result<Option<T>, ConnectResponseError> {
    first(r, name).map(|v| parse_decimal(v).ok_or(ConnectResponseError::BadHeader(name))).transpose()
}

/// A number of seconds, or `none` (§3.3).
fn seconds_or_none(r: &Response, name: &'static str) -> Result<Option<u32>, ConnectResponseError> {
    match first(r, name) {
        None | Some("none") => Ok(None),
        Some(v) => parse_decimal(v).map(Some).ok_or(ConnectResponseError::BadHeader(name)),
    }
}

/// `10.99.0.0/255.255.0.0` (ocserv's form) or `10.99.0.0/16`.
fn route(v: &str) -> Option<Ipv4Net> {
    let (address, mask) = v.split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix = match mask.parse::<Ipv4Addr>() {
        Ok(mask) => {
            let bits = u32::from(mask);
            let prefix = bits.leading_ones();
            // A mask is contiguous ones: nothing may remain once they are shifted out.
            if bits.checked_shl(prefix).unwrap_or(0) != 0 {
                return None;
            }
            u8::try_from(prefix).ok()?
        }
        Err(_) => parse_decimal(mask)?,
    };
    Ipv4Net::new(address, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_response::{parse_response, BodyMode, ResponseLimits};

    /// Appendix A.1's CONNECT answer from ocserv 1.1.6.
    const OCSERV_CONNECT: &str = "HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\n\
X-CSTP-Server-Name: ocserv 1.1.6\r\nX-CSTP-Hostname: vm\r\nX-CSTP-DPD: 90\r\n\
X-CSTP-Default-Domain: example.test\r\nX-CSTP-Address: 192.168.99.121\r\nX-CSTP-Netmask: 255.255.255.0\r\n\
X-CSTP-DNS: 192.168.99.1\r\nX-CSTP-Split-Include: 10.99.0.0/255.255.0.0\r\nX-CSTP-Tunnel-All-DNS: false\r\n\
X-CSTP-Client-Bypass-Protocol: false\r\nX-CSTP-Split-Exclude: 10.99.5.0/255.255.255.0\r\n\
X-CSTP-Keepalive: 32400\r\nX-CSTP-Idle-Timeout: 1200\r\nX-CSTP-Smartcard-Removal-Disconnect: true\r\n\
X-CSTP-Rekey-Time: 172820\r\nX-CSTP-Rekey-Method: ssl\r\nX-CSTP-Session-Timeout: 86400\r\n\
X-CSTP-Session-Timeout-Remaining: 86400\r\nX-CSTP-Disconnected-Timeout: none\r\nX-CSTP-Keep: true\r\n\
X-CSTP-TCP-Keepalive: true\r\nX-CSTP-License: accept\r\nX-DTLS-DPD: 90\r\nX-DTLS-Port: 443\r\n\
X-DTLS-Rekey-Time: 172830\r\nX-DTLS-Rekey-Method: ssl\r\nX-DTLS-Keepalive: 32400\r\n\
X-DTLS-App-ID: c355ae8c3eb0ce4d56b422e23226462ad942cad5becdd01dd6cf3d1cf8e25258\r\n\
X-DTLS-CipherSuite: PSK-NEGOTIATE\r\nX-CSTP-Base-MTU: 1500\r\nX-CSTP-MTU: 1434\r\n\
X-CSTP-Banner: Welcome to the test gateway\r\n\r\n";

    fn head(s: &str) -> Response {
        parse_response(s.as_bytes(), BodyMode::HeadOnly, &ResponseLimits::default()).unwrap().unwrap().0
    }

    fn net(a: [u8; 4], prefix: u8) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::from(a), prefix).unwrap()
    }

    #[test]
    fn reads_ocserv_connect_response() {
        let c = parse_connect_response(&head(OCSERV_CONNECT)).unwrap();
        assert_eq!(c.address, Ipv4Addr::new(192, 168, 99, 121));
        assert_eq!(c.netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!((c.mtu, c.base_mtu, c.dpd_secs, c.keepalive_secs), (1434, Some(1500), 90, 32400));
        assert_eq!((c.server_name.as_deref(), c.hostname.as_deref()), (Some("ocserv 1.1.6"), Some("vm")));
        assert_eq!(c.dns, [Ipv4Addr::new(192, 168, 99, 1)]);
        assert_eq!((c.split_include, c.split_exclude), (vec![net([10, 99, 0, 0], 16)], vec![net([10, 99, 5, 0], 24)]));
        assert_eq!((c.idle_timeout_secs, c.session_timeout_secs), (Some(1200), Some(86400)));
        assert_eq!(c.rekey, Some((172_820, RekeyMethod::Ssl)));
        assert_eq!(c.banner.as_deref(), Some("Welcome to the test gateway"));
        let d = c.dtls.unwrap();
        assert_eq!((d.port, d.dpd_secs, d.keepalive_secs), (443, 90, 32400));
        assert_eq!(d.app_id.len(), 32);
        assert_eq!(d.app_id[..4], [0xc3, 0x55, 0xae, 0x8c]);
    }

    #[test]
    fn refusals_and_missing_fields() {
        use ConnectResponseError::*;
        let r = head("HTTP/1.1 401 Cookie is not acceptable\r\nX-Reason: expired\r\n\r\n");
        assert_eq!(parse_connect_response(&r), Err(Refused { status: 401, reason: "expired".into() }));
        // HTTP/1.0 200 is refused by openconnect (§3.2).
        let r = head("HTTP/1.0 200 OK\r\nX-CSTP-Address: 1.2.3.4\r\nX-CSTP-MTU: 1400\r\n\r\n");
        assert!(matches!(parse_connect_response(&r), Err(Refused { status: 200, .. })));
        for (response, want) in [
            ("X-CSTP-MTU: 1400\r\n", NoAddress),
            ("X-CSTP-Address: 2001:db8::5\r\nX-CSTP-MTU: 1400\r\n", NoAddress),
            ("X-CSTP-Address: 1.2.3.4\r\n", NoMtu),
            ("X-CSTP-Address: 1.2.3.4\r\nX-CSTP-MTU: 0\r\n", NoMtu),
            // Case matters, as for openconnect (§3.2).
            ("X-CSTP-Address: 1.2.3.4\r\nX-Cstp-Mtu: 1400\r\n", NoMtu),
            ("X-CSTP-Address: 1.2.3.4\r\nX-CSTP-MTU: +1400\r\n", BadHeader("X-CSTP-MTU")),
            ("X-CSTP-Address: 1.2.3.256\r\nX-CSTP-MTU: 1400\r\n", BadHeader("X-CSTP-Address")),
            ("X-CSTP-Address: 1.2.3.4\r\nX-CSTP-MTU: 1400\r\nX-CSTP-DPD: soon\r\n", BadHeader("X-CSTP-DPD")),
            ("X-CSTP-Address: 1.2.3.4\r\nX-CSTP-MTU: 1400\r\nX-CSTP-Netmask: /24\r\n", BadHeader("X-CSTP-Netmask")),
            (
                "X-CSTP-Address: 1.2.3.4\r\nX-CSTP-MTU: 1400\r\nX-CSTP-Split-Include: 10.0.0.0/255.0.255.0\r\n",
                BadHeader("X-CSTP-Split-Include"),
            ),
            (
                "X-CSTP-Address: 1.2.3.4\r\nX-CSTP-MTU: 1400\r\nX-CSTP-Idle-Timeout: never\r\n",
                BadHeader("X-CSTP-Idle-Timeout"),
            ),
        ] {
            let r = head(&format!("HTTP/1.1 200 CONNECTED\r\n{response}\r\n"));
            assert_eq!(parse_connect_response(&r), Err(want), "{response:?}");
        }
        for bad in ["zz55ae8c", ""] {
            let bad_app_id =
                OCSERV_CONNECT.replace("c355ae8c3eb0ce4d56b422e23226462ad942cad5becdd01dd6cf3d1cf8e25258", bad);
            assert_eq!(parse_connect_response(&head(&bad_app_id)), Err(BadAppId), "{bad:?}");
        }
        // No PSK-NEGOTIATE: CSTP only, not an error (§8); the App-ID is still checked.
        let legacy = OCSERV_CONNECT.replace("X-DTLS-CipherSuite: PSK-NEGOTIATE", "X-DTLS-CipherSuite: AES128-SHA");
        assert_eq!(parse_connect_response(&head(&legacy)).unwrap().dtls, None);
        let no_port = OCSERV_CONNECT.replace("X-DTLS-Port: 443", "X-DTLS-Port: 0");
        assert_eq!(parse_connect_response(&head(&no_port)).unwrap().dtls, None);
    }

    #[test]
    fn minimal_response_and_ipv6_values() {
        // §3.3's verified minimal response, with dual-stack extras skipped.
        let c = parse_connect_response(&head(
            "HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\nX-CSTP-Address: 2001:db8::5\r\n\
             X-CSTP-Address: 192.168.77.10\r\nX-CSTP-Netmask: 255.255.255.0\r\nX-CSTP-MTU: 1400\r\nX-CSTP-MTU: 1300\r\n\
             X-CSTP-DPD: 30\r\nX-CSTP-Keepalive: 20\r\nX-CSTP-DNS: 2001:db8::1\r\nX-CSTP-Split-Include: 2001:db8::/48\r\n\
             X-CSTP-Split-Include: 10.0.0.0/8\r\nX-CSTP-Idle-Timeout: none\r\nX-CSTP-Rekey-Time: 60\r\n\
             X-CSTP-Rekey-Method: none\r\n\r\n",
        ))
        .unwrap();
        assert_eq!((c.address, c.mtu, c.dpd_secs, c.keepalive_secs), (Ipv4Addr::new(192, 168, 77, 10), 1400, 30, 20));
        assert!(c.dns.is_empty());
        assert_eq!(c.split_include, [net([10, 0, 0, 0], 8)]);
        assert_eq!((c.idle_timeout_secs, c.rekey, c.base_mtu, c.dtls), (None, None, None, None));
    }

    #[test]
    fn routes_both_forms() {
        assert_eq!(route("10.99.0.0/255.255.0.0"), Some(net([10, 99, 0, 0], 16)));
        assert_eq!(route("10.99.0.0/16"), Some(net([10, 99, 0, 0], 16)));
        assert_eq!(route("0.0.0.0/0.0.0.0"), Some(net([0, 0, 0, 0], 0)));
        assert_eq!(route("1.2.3.4/255.255.255.255"), Some(net([1, 2, 3, 4], 32)));
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/0.255.0.0", "10.0.0.0/+8", "x/8"] {
            assert_eq!(route(bad), None, "{bad}");
        }
    }

    #[test]
    fn request_carries_what_openconnect_sends() {
        let o = ConnectOptions {
            host: "vpn.test",
            user_agent: "Open AnyConnect VPN Agent v9.01-3",
            hostname: "vm",
            base_mtu: 1500,
            dtls: true,
            previous_address: Some(Ipv4Addr::new(192, 168, 99, 5)),
        };
        let r = String::from_utf8(connect_request(&o, "C00KIE").to_vec()).unwrap();
        assert!(r.starts_with("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn.test\r\n"));
        for line in [
            "Cookie: webvpn=C00KIE",
            "X-CSTP-Version: 1",
            "X-CSTP-Hostname: vm",
            "X-CSTP-Base-MTU: 1500",
            "X-CSTP-MTU: 1390",
            "X-CSTP-Address-Type: IPv4",
            "X-CSTP-Address: 192.168.99.5",
            "X-DTLS-CipherSuite: PSK-NEGOTIATE",
        ] {
            assert!(r.contains(&format!("\r\n{line}\r\n")), "{line} in {r}");
        }
        assert!(r.ends_with("\r\n\r\n"));
        let plain = ConnectOptions { dtls: false, previous_address: None, ..o };
        let r = String::from_utf8(connect_request(&plain, "C00KIE\r\nX-Evil: 1").to_vec()).unwrap();
        assert!(!r.contains("X-DTLS") && !r.contains("X-CSTP-Address:") && !r.contains("\r\nX-Evil"), "{r}");
    }
}
