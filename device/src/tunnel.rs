//! The CONNECT request and what its `200` response configures (protocol
//! reference §3).

use core::fmt;
use std::net::Ipv4Addr;

use proto::connect::{PSK_NEGOTIATE, SESSION_COOKIE, TUNNEL_PATH};
use proto::http_response::Response;

/// What the device asks for on CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions<'a> {
    pub host: &'a str,
    pub user_agent: &'a str,
    /// `X-CSTP-Base-MTU` (§7.1).
    pub base_mtu: u16,
    /// Offer `PSK-NEGOTIATE` DTLS.
    pub dtls: bool,
    /// The address held before, asked back on a reconnect (§6.6).
    pub previous_address: Option<Ipv4Addr>,
}

/// The CONNECT request (§3.1): only the `webvpn` cookie, IPv4 only, and
/// only the PSK-NEGOTIATE DTLS token (no legacy master secret).
pub fn connect_request(o: &ConnectOptions<'_>, cookie: &str) -> Vec<u8> {
    // base − 82 (worst DTLS overhead) − 8 (UDP) − 20 (IPv4), as openconnect (§7.1).
    let mtu = o.base_mtu.saturating_sub(110);
    let mut r = format!(
        "CONNECT {TUNNEL_PATH} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nCookie: {SESSION_COOKIE}={cookie}\r\n\
         X-CSTP-Version: 1\r\nX-CSTP-Hostname: device\r\nX-CSTP-Base-MTU: {}\r\nX-CSTP-MTU: {mtu}\r\n\
         X-CSTP-Address-Type: IPv4\r\n",
        o.host, o.user_agent, o.base_mtu
    );
    if let Some(a) = o.previous_address {
        r.push_str(&format!("X-CSTP-Address: {a}\r\n"));
    }
    if o.dtls {
        r.push_str(&format!("X-DTLS-CipherSuite: {PSK_NEGOTIATE}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// The DTLS half of the tunnel offer (§3.3, §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsOffer {
    pub port: u16,
    /// `X-DTLS-App-ID`, decoded: the ClientHello session_id.
    pub app_id: Vec<u8>,
    pub dpd_secs: u32,
    pub keepalive_secs: u32,
}

/// What the gateway configured (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    pub address: Ipv4Addr,
    pub netmask: Option<Ipv4Addr>,
    /// `X-CSTP-MTU`.
    pub mtu: u16,
    pub base_mtu: Option<u16>,
    pub dpd_secs: u32,
    pub keepalive_secs: u32,
    /// `None` when the gateway offered no usable PSK-NEGOTIATE DTLS (§8).
    pub dtls: Option<DtlsOffer>,
}

/// Why a CONNECT answer is unusable; openconnect aborts on each (§3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelError {
    /// Not `HTTP/1.1 200`: 401 = cookie rejected, 503 = no capacity
    /// (`X-Reason` carries why).
    Refused {
        status: u16,
        reason: String,
    },
    NoAddress,
    /// `X-CSTP-MTU` missing or zero.
    NoMtu,
    /// A number or address header that does not parse.
    BadHeader(&'static str),
    /// An App-ID that is not 1..=32 bytes of hex (§3.2).
    BadAppId,
}

impl fmt::Display for TunnelError {
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

impl std::error::Error for TunnelError {}

fn number<T: core::str::FromStr>(r: &Response, name: &'static str) -> Result<Option<T>, TunnelError> {
    r.header(name).map(|v| v.parse().map_err(|_| TunnelError::BadHeader(name))).transpose()
}

/// Reads the CONNECT response head.
pub fn parse_connect_response(r: &Response) -> Result<TunnelConfig, TunnelError> {
    if r.version != proto::http_response::ResponseVersion::Http11 || r.status != 200 {
        let reason = r.header("X-Reason").unwrap_or(&r.reason).to_string();
        return Err(TunnelError::Refused { status: r.status, reason });
    }
    // IPv6 addresses also come as X-CSTP-Address on a dual-stack gateway.
    let address = r.headers("X-CSTP-Address").find_map(|v| v.parse().ok()).ok_or(TunnelError::NoAddress)?;
    let mtu = number::<u16>(r, "X-CSTP-MTU")?.filter(|m| *m != 0).ok_or(TunnelError::NoMtu)?;
    let dtls = match (r.header("X-DTLS-Port"), r.header("X-DTLS-CipherSuite"), r.header("X-DTLS-App-ID")) {
        (Some(_), Some(PSK_NEGOTIATE), Some(app_id)) => {
            let app_id = hex(app_id).filter(|a| (1..=32).contains(&a.len())).ok_or(TunnelError::BadAppId)?;
            let port = number::<u16>(r, "X-DTLS-Port")?.unwrap_or(0);
            (port != 0).then(|| -> Result<DtlsOffer, TunnelError> {
                Ok(DtlsOffer {
                    port,
                    app_id,
                    dpd_secs: number(r, "X-DTLS-DPD")?.unwrap_or(0),
                    keepalive_secs: number(r, "X-DTLS-Keepalive")?.unwrap_or(0),
                })
            })
        }
        _ => None,
    }
    .transpose()?;
    Ok(TunnelConfig {
        address,
        netmask: number(r, "X-CSTP-Netmask")?,
        mtu,
        base_mtu: number(r, "X-CSTP-Base-MTU")?,
        dpd_secs: number(r, "X-CSTP-DPD")?.unwrap_or(0),
        keepalive_secs: number(r, "X-CSTP-Keepalive")?.unwrap_or(0),
        dtls,
    })
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| core::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
    use proto::http_response::{parse_response, BodyMode, ResponseLimits};

    /// Appendix A.1's CONNECT answer from ocserv 1.1.6.
    pub(crate) const OCSERV_CONNECT: &str = "HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\n\
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

    #[test]
    fn reads_ocserv_connect_response() {
        let c = parse_connect_response(&head(OCSERV_CONNECT)).unwrap();
        assert_eq!(c.address, Ipv4Addr::new(192, 168, 99, 121));
        assert_eq!(c.netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!((c.mtu, c.base_mtu, c.dpd_secs, c.keepalive_secs), (1434, Some(1500), 90, 32400));
        let d = c.dtls.unwrap();
        assert_eq!((d.port, d.dpd_secs, d.keepalive_secs), (443, 90, 32400));
        assert_eq!(d.app_id.len(), 32);
        assert_eq!(d.app_id[..4], [0xc3, 0x55, 0xae, 0x8c]);
    }

    #[test]
    fn refusals_and_missing_fields() {
        let r = head("HTTP/1.1 401 Cookie is not acceptable\r\nX-Reason: expired\r\n\r\n");
        assert_eq!(parse_connect_response(&r), Err(TunnelError::Refused { status: 401, reason: "expired".into() }));
        // HTTP/1.0 200 is refused by openconnect (§3.2).
        let r = head("HTTP/1.0 200 OK\r\nX-CSTP-Address: 1.2.3.4\r\nX-CSTP-MTU: 1400\r\n\r\n");
        assert!(matches!(parse_connect_response(&r), Err(TunnelError::Refused { status: 200, .. })));
        let r = head("HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1400\r\n\r\n");
        assert_eq!(parse_connect_response(&r), Err(TunnelError::NoAddress));
        let r = head("HTTP/1.1 200 CONNECTED\r\nX-CSTP-Address: 1.2.3.4\r\n\r\n");
        assert_eq!(parse_connect_response(&r), Err(TunnelError::NoMtu));
        let bad_app_id = OCSERV_CONNECT.replace("c355ae8c", "zz55ae8c");
        assert_eq!(parse_connect_response(&head(&bad_app_id)), Err(TunnelError::BadAppId));
        // No PSK-NEGOTIATE: CSTP only, not an error (§8).
        let legacy = OCSERV_CONNECT.replace("X-DTLS-CipherSuite: PSK-NEGOTIATE", "X-DTLS-CipherSuite: AES128-SHA");
        assert_eq!(parse_connect_response(&head(&legacy)).unwrap().dtls, None);
    }

    #[test]
    fn request_carries_what_the_brief_lists() {
        let o = ConnectOptions {
            host: "vpn.test",
            user_agent: "Open AnyConnect VPN Agent v9.01-3",
            base_mtu: 1500,
            dtls: true,
            previous_address: Some(Ipv4Addr::new(192, 168, 99, 5)),
        };
        let r = String::from_utf8(connect_request(&o, "C00KIE")).unwrap();
        assert!(r.starts_with("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn.test\r\n"));
        for line in [
            "Cookie: webvpn=C00KIE",
            "X-CSTP-Version: 1",
            "X-CSTP-Base-MTU: 1500",
            "X-CSTP-MTU: 1390",
            "X-CSTP-Address-Type: IPv4",
            "X-CSTP-Address: 192.168.99.5",
            "X-DTLS-CipherSuite: PSK-NEGOTIATE",
        ] {
            assert!(r.contains(&format!("\r\n{line}\r\n")), "{line} in {r}");
        }
        assert!(r.ends_with("\r\n\r\n"));
    }
}
