//! The captured exchanges of protocol reference Appendix A, replayed through
//! the wire formats byte for byte.
//!
//! Requests are the `>` lines of the captures joined with CRLF (openconnect
//! ends every line so), bodies the `>` body lines joined with LF plus the
//! final LF that the Content-Length counts. Anonymised values are kept as
//! the capture prints them (`<COOKIE-BASE64>` …), with one exception noted
//! at `A1_PASSWORD_REPLY`.

// Test helpers: a panic is how they report a failed expectation.
#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use std::net::Ipv4Addr;

use proto::auth::{self, AuthDocType, AuthForm, FieldKind, FormField, FormInput, InputKind};
use proto::connect::{self, DtlsParams, RekeyMethod, TunnelParams};
use proto::cstp::{self, Deframer, DisconnectKind, Frame, PacketType};
use proto::http::{self, HttpVersion, Limits, Parsed, Request};
use proto::http_response::{self, BodyMode, ResponseLimits};
use proto::ip::Ipv4Net;
use proto::mtu;

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

const INIT_BODY: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<config-auth client=\"vpn\" type=\"init\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version>",
    "<device-id>linux-64</device-id><capabilities><auth-method>single-sign-on-v2</auth-method>",
    "<auth-method>single-sign-on-external-browser</auth-method></capabilities>",
    "<group-access>https://vpn.test/</group-access></config-auth>\n",
);

/// A.1, first request: `POST /` with the `init` document.
const A1_INIT: &str = concat!(
    "POST / HTTP/1.1\r\n",
    "Host: vpn.test\r\n",
    "User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n",
    "Accept: */*\r\n",
    "Accept-Encoding: identity\r\n",
    "X-Transcend-Version: 1\r\n",
    "X-Aggregate-Auth: 1\r\n",
    "X-Support-HTTP-Auth: true\r\n",
    "X-AnyConnect-STRAP-Pubkey: <base64 P-256 SubjectPublicKeyInfo>\r\n",
    "X-AnyConnect-STRAP-DH-Pubkey: <base64 P-256 SubjectPublicKeyInfo>\r\n",
    "X-Pad: 000000000000000000000\r\n",
    "Content-Type: application/xml; charset=utf-8\r\n",
    "Content-Length: 363\r\n",
    "\r\n",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<config-auth client=\"vpn\" type=\"init\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version>",
    "<device-id>linux-64</device-id><capabilities><auth-method>single-sign-on-v2</auth-method>",
    "<auth-method>single-sign-on-external-browser</auth-method></capabilities>",
    "<group-access>https://vpn.test/</group-access></config-auth>\n",
);

/// A.1, second request: the user name.
const A1_USERNAME_REPLY: &str = concat!(
    "POST /auth HTTP/1.1\r\n",
    "Host: vpn.test\r\n",
    "User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n",
    "Accept: */*\r\n",
    "Accept-Encoding: identity\r\n",
    "X-Transcend-Version: 1\r\n",
    "X-Aggregate-Auth: 1\r\n",
    "X-Support-HTTP-Auth: true\r\n",
    "X-AnyConnect-STRAP-Pubkey: <base64 P-256 SubjectPublicKeyInfo>\r\n",
    "X-AnyConnect-STRAP-DH-Pubkey: <base64 P-256 SubjectPublicKeyInfo>\r\n",
    "X-Pad: 0000000000000000000\r\n",
    "Content-Type: application/xml; charset=utf-8\r\n",
    "Content-Length: 365\r\n",
    "\r\n",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<config-auth client=\"vpn\" type=\"auth-reply\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version>",
    "<device-id>linux-64</device-id><capabilities><auth-method>single-sign-on-v2</auth-method>",
    "<auth-method>single-sign-on-external-browser</auth-method></capabilities>",
    "<auth><username>testuser</username></auth></config-auth>\n",
);

/// A.1, third request: the password. The capture's `REDACTED` is two bytes
/// shorter than the real password its Content-Length (367) counted, so the
/// vector uses the ten-byte stand-in `REDACTED12` and the length holds.
const A1_PASSWORD_REPLY: &str = concat!(
    "POST /auth HTTP/1.1\r\n",
    "Host: vpn.test\r\n",
    "User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n",
    "Cookie: webvpncontext=<SID-BASE64>\r\n",
    "Accept: */*\r\n",
    "Accept-Encoding: identity\r\n",
    "X-Transcend-Version: 1\r\n",
    "X-Aggregate-Auth: 1\r\n",
    "X-Support-HTTP-Auth: true\r\n",
    "X-AnyConnect-STRAP-Pubkey: <base64 P-256 SubjectPublicKeyInfo>\r\n",
    "X-AnyConnect-STRAP-DH-Pubkey: <base64 P-256 SubjectPublicKeyInfo>\r\n",
    "X-Pad: 00000000000000000\r\n",
    "Content-Type: application/xml; charset=utf-8\r\n",
    "Content-Length: 367\r\n",
    "\r\n",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<config-auth client=\"vpn\" type=\"auth-reply\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version>",
    "<device-id>linux-64</device-id><capabilities><auth-method>single-sign-on-v2</auth-method>",
    "<auth-method>single-sign-on-external-browser</auth-method></capabilities>",
    "<auth><password>REDACTED12</password></auth></config-auth>\n",
);

const A1_CIPHER_SUITES: &str = "PSK-NEGOTIATE:OC-DTLS1_2-AES256-GCM:OC2-DTLS1_2-CHACHA20-POLY1305:OC-DTLS1_2-AES128-GCM:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA";

/// A.1, fourth request on the same connection: the CONNECT.
const A1_CONNECT: &str = concat!(
    "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n",
    "Host: vpn.test\r\n",
    "User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n",
    "Cookie: webvpn=<COOKIE-BASE64>\r\n",
    "X-CSTP-Version: 1\r\n",
    "X-CSTP-Hostname: vm\r\n",
    "X-AnyConnect-STRAP-Verify: <base64 ECDSA signature>\r\n",
    "X-AnyConnect-STRAP-Pubkey: <base64 P-256 SubjectPublicKeyInfo>\r\n",
    "X-CSTP-Accept-Encoding: oc-lz4,lzs\r\n",
    "X-CSTP-Base-MTU: 1500\r\n",
    "X-CSTP-MTU: 1390\r\n",
    "X-CSTP-Address-Type: IPv6,IPv4\r\n",
    "X-CSTP-Full-IPv6-Capability: true\r\n",
    "X-DTLS-Master-Secret: <96 uppercase hex digits = 48 random bytes>\r\n",
    "X-DTLS-CipherSuite: PSK-NEGOTIATE:OC-DTLS1_2-AES256-GCM:OC2-DTLS1_2-CHACHA20-POLY1305:OC-DTLS1_2-AES128-GCM:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA\r\n",
    "X-DTLS12-CipherSuite: ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-GCM-SHA256:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA\r\n",
    "X-DTLS-Accept-Encoding: oc-lz4,lzs\r\n",
    "\r\n",
);

/// A.1, the server's answer to the user-name step (Content-Length 306).
const A1_USERNAME_FORM: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<config-auth client=\"vpn\" type=\"auth-request\">\n",
    "<version who=\"sg\">0.1(1)</version>\n",
    "<auth id=\"main\">\n",
    "<message>Please enter your username.</message>\n",
    "<form method=\"post\" action=\"/auth\">\n",
    "<input type=\"text\" name=\"username\" label=\"Username:\" />\n",
    "</form></auth>\n",
    "</config-auth>",
);

/// A.1, the server's success document (Content-Length 233).
const A1_SUCCESS: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<config-auth client=\"vpn\" type=\"complete\">\n",
    "<version who=\"sg\">0.1(1)</version>\n",
    "<auth id=\"success\">\n",
    "<title>SSL VPN Service</title><banner>Welcome to the test gateway</banner></auth></config-auth>\n",
);

/// A.1, ocserv's CONNECT response as the client logged it.
const A1_RESPONSE: &[&str] = &[
    "HTTP/1.1 200 CONNECTED",
    "X-CSTP-Version: 1",
    "X-CSTP-Server-Name: ocserv 1.1.6",
    "X-CSTP-Hostname: vm",
    "X-CSTP-DPD: 90",
    "X-CSTP-Default-Domain: example.test",
    "X-CSTP-Address: 192.168.99.121",
    "X-CSTP-Netmask: 255.255.255.0",
    "X-CSTP-DNS: 192.168.99.1",
    "X-CSTP-Split-Include: 10.99.0.0/255.255.0.0",
    "X-CSTP-Tunnel-All-DNS: false",
    "X-CSTP-Client-Bypass-Protocol: false",
    "X-CSTP-Split-Exclude: 10.99.5.0/255.255.255.0",
    "X-CSTP-Keepalive: 32400",
    "X-CSTP-Idle-Timeout: 1200",
    "X-CSTP-Smartcard-Removal-Disconnect: true",
    "X-CSTP-Rekey-Time: 172820",
    "X-CSTP-Rekey-Method: ssl",
    "X-CSTP-Session-Timeout: 86400",
    "X-CSTP-Session-Timeout-Remaining: 86400",
    "X-CSTP-Disconnected-Timeout: none",
    "X-CSTP-Keep: true",
    "X-CSTP-TCP-Keepalive: true",
    "X-CSTP-License: accept",
    "X-DTLS-DPD: 90",
    "X-DTLS-Port: 443",
    "X-DTLS-Rekey-Time: 172830",
    "X-DTLS-Rekey-Method: ssl",
    "X-DTLS-Keepalive: 32400",
    "X-DTLS-App-ID: c355ae8c3eb0ce4d56b422e23226462ad942cad5becdd01dd6cf3d1cf8e25258",
    "X-DTLS-CipherSuite: PSK-NEGOTIATE",
    "X-CSTP-Base-MTU: 1500",
    "X-CSTP-MTU: 1434",
    "X-CSTP-Banner: Welcome to the test gateway",
];

/// A.3 (`--no-dtls`): CONNECT with the Cookie and STRAP lines removed by
/// the capture.
const A3_CONNECT: &str = concat!(
    "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n",
    "Host: vpn.test\r\n",
    "User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n",
    "X-CSTP-Version: 1\r\n",
    "X-CSTP-Hostname: vm\r\n",
    "X-CSTP-Accept-Encoding: oc-lz4,lzs\r\n",
    "X-CSTP-Base-MTU: 1500\r\n",
    "X-CSTP-MTU: 1390\r\n",
    "X-CSTP-Address-Type: IPv6,IPv4\r\n",
    "X-CSTP-Full-IPv6-Capability: true\r\n",
    "\r\n",
);

const A3_RESPONSE: &[&str] = &[
    "HTTP/1.1 200 CONNECTED",
    "X-CSTP-Version: 1",
    "X-CSTP-Server-Name: ocserv 1.1.6",
    "X-CSTP-Hostname: vm",
    "X-CSTP-DPD: 90",
    "X-CSTP-Default-Domain: example.test",
    "X-CSTP-Address: 192.168.99.121",
    "X-CSTP-Netmask: 255.255.255.0",
    "X-CSTP-DNS: 192.168.99.1",
    "X-CSTP-Split-Include: 10.99.0.0/255.255.0.0",
    "X-CSTP-Tunnel-All-DNS: false",
    "X-CSTP-Client-Bypass-Protocol: false",
    "X-CSTP-Split-Exclude: 10.99.5.0/255.255.255.0",
    "X-CSTP-Keepalive: 32400",
    "X-CSTP-Idle-Timeout: 1200",
    "X-CSTP-Smartcard-Removal-Disconnect: true",
    "X-CSTP-Rekey-Time: 172795",
    "X-CSTP-Rekey-Method: ssl",
    "X-CSTP-Session-Timeout: 86400",
    "X-CSTP-Session-Timeout-Remaining: 86400",
    "X-CSTP-Disconnected-Timeout: none",
    "X-CSTP-Keep: true",
    "X-CSTP-TCP-Keepalive: true",
    "X-CSTP-License: accept",
    "X-CSTP-Base-MTU: 1500",
    "X-CSTP-MTU: 1472",
    "X-CSTP-Banner: Welcome to the test gateway",
];

/// ocserv headers openconnect does not interpret (§3.3) and the DTLS rekey
/// pair we must not offer (§6.5): everything ocserv sends that we do not.
const NOT_SENT: &[&str] = &[
    "X-CSTP-Tunnel-All-DNS",
    "X-CSTP-Client-Bypass-Protocol",
    "X-CSTP-Smartcard-Removal-Disconnect",
    "X-CSTP-Session-Timeout-Remaining",
    "X-CSTP-Disconnected-Timeout",
    "X-CSTP-Keep",
    "X-CSTP-TCP-Keepalive",
    "X-CSTP-License",
    "X-DTLS-Rekey-Time",
    "X-DTLS-Rekey-Method",
];

/// A.4 (certificate login): the `init` POST, STRAP lines removed.
const A4_INIT: &str = concat!(
    "POST / HTTP/1.1\r\n",
    "Host: vpn.test\r\n",
    "User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n",
    "Accept: */*\r\n",
    "Accept-Encoding: identity\r\n",
    "X-Transcend-Version: 1\r\n",
    "X-Aggregate-Auth: 1\r\n",
    "X-Support-HTTP-Auth: true\r\n",
    "X-Pad: 000000000000000000000\r\n",
    "Content-Type: application/xml; charset=utf-8\r\n",
    "Content-Length: 363\r\n",
    "\r\n",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<config-auth client=\"vpn\" type=\"init\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version>",
    "<device-id>linux-64</device-id><capabilities><auth-method>single-sign-on-v2</auth-method>",
    "<auth-method>single-sign-on-external-browser</auth-method></capabilities>",
    "<group-access>https://vpn.test/</group-access></config-auth>\n",
);

fn parse(buf: &[u8]) -> (Request<'_>, usize) {
    match http::parse_request(buf, &Limits::default()) {
        Ok(Parsed::Complete { request, consumed }) => (request, consumed),
        other => panic!("expected a complete request, got {other:?}"),
    }
}

fn common_auth_headers(r: &Request<'_>) {
    assert_eq!(r.version, HttpVersion::Http11);
    assert!(r.keep_alive());
    assert_eq!(r.header("Host"), Some("vpn.test"));
    assert_eq!(r.header("user-agent"), Some("Open AnyConnect VPN Agent v9.01-3"));
    assert_eq!(r.header("Accept"), Some("*/*"));
    assert_eq!(r.header("Accept-Encoding"), Some("identity"));
    assert_eq!(r.header("X-Transcend-Version"), Some("1"));
    assert_eq!(r.header("X-Aggregate-Auth"), Some("1"));
    assert_eq!(r.header("X-Support-HTTP-Auth"), Some("true"));
    assert_eq!(r.header("Content-Type"), Some("application/xml; charset=utf-8"));
    assert!(r.header("X-Pad").is_some_and(|p| p.bytes().all(|b| b == b'0')));
    assert_eq!(r.header("content-length").and_then(|v| v.parse().ok()), Some(r.body.len()));
}

fn check_init(raw: &str) {
    let (r, consumed) = parse(raw.as_bytes());
    assert_eq!(consumed, raw.len());
    assert_eq!((r.method, r.path), ("POST", "/"));
    common_auth_headers(&r);
    assert_eq!(r.body, INIT_BODY.as_bytes());
    assert_eq!(r.body.len(), 363);

    let a = auth::parse_client_auth(r.body).unwrap();
    assert_eq!(a.doc_type, AuthDocType::Init);
    assert_eq!(a.client_version.as_deref(), Some("v9.01-3"));
    assert_eq!(a.device_id.as_deref(), Some("linux-64"));
    assert_eq!(a.group_access.as_deref(), Some("https://vpn.test/"));
    assert_eq!((a.username, a.password, a.group_select, a.opaque), (None, None, None, None));
}

#[test]
fn a1_init_post() {
    let (r, _) = parse(A1_INIT.as_bytes());
    assert_eq!(r.header("X-AnyConnect-STRAP-Pubkey"), Some("<base64 P-256 SubjectPublicKeyInfo>"));
    assert_eq!(r.header("x-anyconnect-strap-dh-pubkey"), Some("<base64 P-256 SubjectPublicKeyInfo>"));
    assert_eq!(r.header("X-Pad"), Some("000000000000000000000"));
    assert_eq!(r.cookie("webvpncontext"), None);
    check_init(A1_INIT);
}

#[test]
fn a4_init_post() {
    let (r, _) = parse(A4_INIT.as_bytes());
    assert_eq!(r.header("X-AnyConnect-STRAP-Pubkey"), None);
    check_init(A4_INIT);
}

#[test]
fn a1_username_reply() {
    let (r, consumed) = parse(A1_USERNAME_REPLY.as_bytes());
    assert_eq!(consumed, A1_USERNAME_REPLY.len());
    assert_eq!((r.method, r.path), ("POST", "/auth"));
    common_auth_headers(&r);
    assert_eq!(r.body.len(), 365);
    let a = auth::parse_client_auth(r.body).unwrap();
    assert_eq!(a.doc_type, AuthDocType::AuthReply);
    assert_eq!(a.username.as_deref(), Some("testuser"));
    assert_eq!(a.password, None);
    assert_eq!((a.client_version.as_deref(), a.device_id.as_deref()), (Some("v9.01-3"), Some("linux-64")));
    assert_eq!(a.group_access, None);
}

#[test]
fn a1_password_reply() {
    let (r, consumed) = parse(A1_PASSWORD_REPLY.as_bytes());
    assert_eq!(consumed, A1_PASSWORD_REPLY.len());
    common_auth_headers(&r);
    assert_eq!(r.body.len(), 367);
    assert_eq!(r.cookie("webvpncontext"), Some("<SID-BASE64>"));
    assert_eq!(r.cookie("webvpn"), None);
    let a = auth::parse_client_auth(r.body).unwrap();
    assert_eq!(a.doc_type, AuthDocType::AuthReply);
    assert_eq!(a.username, None);
    assert_eq!(a.password.as_deref().map(String::as_str), Some("REDACTED12"));
    let answers = auth::parse_auth_answers(r.body).unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].name, "password");
}

#[test]
fn a1_connect_request() {
    let (r, consumed) = parse(A1_CONNECT.as_bytes());
    assert_eq!(consumed, A1_CONNECT.len());
    assert!(r.body.is_empty());
    assert_eq!(r.header("X-CSTP-Version"), Some("1"));
    assert_eq!(r.header("X-CSTP-Accept-Encoding"), Some("oc-lz4,lzs"));
    assert_eq!(r.header("X-CSTP-Full-IPv6-Capability"), Some("true"));
    assert_eq!(r.header("X-DTLS-Master-Secret"), Some("<96 uppercase hex digits = 48 random bytes>"));
    assert_eq!(r.header("X-DTLS-CipherSuite"), Some(A1_CIPHER_SUITES));
    assert_eq!(r.header("X-DTLS-Accept-Encoding"), Some("oc-lz4,lzs"));
    assert_eq!(r.header("X-AnyConnect-STRAP-Verify"), Some("<base64 ECDSA signature>"));

    let c = connect::parse_connect(&r).unwrap();
    assert_eq!(c.cookie.as_deref(), Some("<COOKIE-BASE64>"));
    assert_eq!(c.hostname.as_deref(), Some("vm"));
    assert_eq!(c.base_mtu, Some(1500));
    assert_eq!(c.mtu, Some(1390));
    assert!(c.wants_ipv4);
    assert!(c.psk_negotiate);
    assert!(c.dtls_requested);
    assert_eq!(c.previous_ipv4, None);
    assert_eq!(c.user_agent.as_deref(), Some("Open AnyConnect VPN Agent v9.01-3"));
    assert_eq!(c.platform, None);
}

#[test]
fn a3_connect_request_without_dtls() {
    let (r, consumed) = parse(A3_CONNECT.as_bytes());
    assert_eq!(consumed, A3_CONNECT.len());
    let c = connect::parse_connect(&r).unwrap();
    assert_eq!(c.cookie, None);
    assert_eq!(c.hostname.as_deref(), Some("vm"));
    assert_eq!((c.base_mtu, c.mtu), (Some(1500), Some(1390)));
    assert!(c.wants_ipv4);
    assert!(!c.psk_negotiate);
    assert!(!c.dtls_requested);
}

#[test]
fn a1_one_connection_carries_every_request() {
    // POST /, POST /auth, POST /auth, CONNECT, then the first CSTP frame.
    let mut stream = [A1_INIT, A1_USERNAME_REPLY, A1_PASSWORD_REPLY, A1_CONNECT].concat().into_bytes();
    stream.extend_from_slice(&cstp::header(PacketType::DATA, 84));
    let mut at = 0;
    let mut seen = Vec::new();
    while let Ok(Parsed::Complete { request, consumed }) = http::parse_request(&stream[at..], &Limits::default()) {
        seen.push((request.method, request.path));
        at += consumed;
        if request.method == "CONNECT" {
            break;
        }
    }
    assert_eq!(seen, [("POST", "/"), ("POST", "/auth"), ("POST", "/auth"), ("CONNECT", "/CSCOSSLC/tunnel")]);
    assert_eq!(&stream[at..], &[0x53, 0x54, 0x46, 0x01, 0x00, 0x54, 0x00, 0x00]);
}

#[test]
fn a1_forms_are_byte_exact() {
    let form = AuthForm {
        message: "Please enter your username.".into(),
        error: None,
        action: "/auth".into(),
        fields: vec![FormField {
            kind: FieldKind::Text,
            name: "username".into(),
            label: "Username:".into(),
            value: None,
        }],
        groups: vec![],
    };
    let doc = auth::auth_request_xml(&form);
    assert_eq!(doc, A1_USERNAME_FORM);
    assert_eq!(doc.len(), 306, "ocserv's Content-Length");

    let password = AuthForm {
        message: "Please enter your password.".into(),
        fields: vec![FormField {
            kind: FieldKind::Password,
            name: "password".into(),
            label: "Password:".into(),
            value: None,
        }],
        ..form
    };
    assert_eq!(auth::auth_request_xml(&password).len(), 310, "ocserv's Content-Length");

    let success = auth::auth_success_xml(Some("Welcome to the test gateway"));
    assert_eq!(success, A1_SUCCESS);
    assert_eq!(success.len(), 233, "ocserv's Content-Length");
}

#[test]
fn auth_documents_carry_what_the_client_looks_for() {
    // §2.4: an <auth> with an id, a POST form with an action, named inputs
    // with known types, the group_list select; §2.6: <auth id="success">.
    let form = AuthForm {
        message: "Please enter your username and password.".into(),
        error: Some("Login failed.".into()),
        action: "/auth".into(),
        fields: vec![
            FormField { kind: FieldKind::Text, name: "username".into(), label: "Username:".into(), value: None },
            FormField { kind: FieldKind::Password, name: "password".into(), label: "Password:".into(), value: None },
            FormField { kind: FieldKind::Hidden, name: "step".into(), label: String::new(), value: Some("2".into()) },
        ],
        groups: vec!["staff".into()],
    };
    let doc = auth::auth_request_xml(&form);
    assert!(doc.starts_with(XML_DECLARATION));
    for needle in [
        "<config-auth client=\"vpn\" type=\"auth-request\">",
        "<auth id=\"main\">",
        "<message>Please enter your username and password.</message>",
        "<error>Login failed.</error>",
        "<form method=\"post\" action=\"/auth\">",
        "<select name=\"group_list\" label=\"Group:\">",
        "<option value=\"staff\">staff</option>",
        "<input type=\"text\" name=\"username\" label=\"Username:\" />",
        "<input type=\"password\" name=\"password\" label=\"Password:\" />",
        "<input type=\"hidden\" name=\"step\" label=\"\" value=\"2\" />",
    ] {
        assert!(doc.contains(needle), "missing {needle} in\n{doc}");
    }
    // A client answering this form (§2.5) is read back.
    let reply = concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<config-auth client=\"vpn\" type=\"auth-reply\" aggregate-auth-version=\"2\">",
        "<version who=\"vpn\">v9.01-3</version><device-id>linux-64</device-id>",
        "<auth><username>testuser</username><password>p&lt;&amp;&gt;</password><step>2</step></auth>",
        "<group-select>staff</group-select></config-auth>\n",
    );
    let a = auth::parse_client_auth(reply.as_bytes()).unwrap();
    assert_eq!(a.username.as_deref(), Some("testuser"));
    assert_eq!(a.password.as_deref().map(String::as_str), Some("p<&>"));
    assert_eq!(a.group_select.as_deref(), Some("staff"));
    let answers = auth::parse_auth_answers(reply.as_bytes()).unwrap();
    assert_eq!(answers.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["username", "password", "step"]);
    assert_eq!(answers[2].value.as_str(), "2");

    let failure = auth::auth_failure_xml("Access denied");
    assert!(failure.contains("<auth id=\"failure\">") && failure.contains("<error>Access denied</error>"));
    assert!(!failure.contains("<form") && !failure.contains("<input"));
}

/// The body of a captured POST.
fn body(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").unwrap().1
}

#[test]
fn a1_device_documents_are_byte_exact() {
    // What the device's half writes is what openconnect 9.01 sent.
    assert_eq!(auth::init_xml("https://vpn.test/"), INIT_BODY);
    assert_eq!(*auth::auth_reply_xml(&[("username", "testuser")], None), body(A1_USERNAME_REPLY));
    assert_eq!(*auth::auth_reply_xml(&[("password", "REDACTED12")], None), body(A1_PASSWORD_REPLY));
}

#[test]
fn a1_gateway_documents_read_by_the_device() {
    let form = auth::parse_server_auth(A1_USERNAME_FORM.as_bytes()).unwrap();
    assert_eq!((form.id.as_str(), form.message.as_deref()), ("main", Some("Please enter your username.")));
    let form = form.form.unwrap();
    assert_eq!(form.action, "/auth");
    assert_eq!(
        form.inputs,
        [FormInput { kind: InputKind::Text, name: "username".into(), label: "Username:".into(), value: None }]
    );
    let success = auth::parse_server_auth(A1_SUCCESS.as_bytes()).unwrap();
    assert!(success.is_success());
    assert_eq!(success.banner.as_deref(), Some("Welcome to the test gateway"));
}

#[test]
fn a1_and_a3_connect_responses_read_by_the_device() {
    let read = |lines: &[&str]| {
        let head = format!("{}\r\n\r\n", lines.join("\r\n"));
        let (r, _) = http_response::parse_response(head.as_bytes(), BodyMode::HeadOnly, &ResponseLimits::default())
            .unwrap()
            .unwrap();
        connect::parse_connect_response(&r).unwrap()
    };
    let a1 = read(A1_RESPONSE);
    assert_eq!((a1.address, a1.mtu, a1.base_mtu), (Ipv4Addr::new(192, 168, 99, 121), 1434, Some(1500)));
    assert_eq!(a1.dtls, a1_params().dtls);
    assert_eq!(a1.rekey, Some((172_820, RekeyMethod::Ssl)));
    let a3 = read(A3_RESPONSE);
    assert_eq!((a3.mtu, a3.dtls), (1472, None));
    assert_eq!((a3.split_include, a3.split_exclude), (a1.split_include, a1.split_exclude));
}

fn a1_params() -> TunnelParams {
    let (base_mtu, mtu) = mtu::tunnel_mtu(1500, Some(1500), mtu::DTLS_AES_GCM_OVERHEAD);
    TunnelParams {
        server_name: "ocserv 1.1.6".into(),
        hostname: Some("vm".into()),
        address: Ipv4Addr::new(192, 168, 99, 121),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        dns: vec![Ipv4Addr::new(192, 168, 99, 1)],
        default_domain: Some("example.test".into()),
        split_include: vec![Ipv4Net::new(Ipv4Addr::new(10, 99, 0, 0), 16).unwrap()],
        split_exclude: vec![Ipv4Net::new(Ipv4Addr::new(10, 99, 5, 0), 24).unwrap()],
        base_mtu,
        mtu,
        dpd_secs: 90,
        keepalive_secs: 32400,
        idle_timeout_secs: Some(1200),
        session_timeout_secs: Some(86400),
        rekey: Some((172_820, RekeyMethod::Ssl)),
        banner: Some("Welcome to the test gateway".into()),
        dtls: Some(DtlsParams {
            port: 443,
            app_id: hex("c355ae8c3eb0ce4d56b422e23226462ad942cad5becdd01dd6cf3d1cf8e25258"),
            dpd_secs: 90,
            keepalive_secs: 32400,
        }),
        apps: None,
        trusted: None,
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn response_lines(bytes: &[u8]) -> Vec<&str> {
    let text = std::str::from_utf8(bytes).unwrap();
    let head = text.strip_suffix("\r\n\r\n").expect("ends with a blank line");
    assert!(!head.contains("\r\n\r\n"), "one blank line, at the end");
    assert!(!head.split("\r\n").any(|l| l.contains(['\r', '\n'])), "CRLF line ends only");
    head.split("\r\n").collect()
}

/// ocserv's lines without the headers we deliberately leave out.
fn expected(ocserv: &[&'static str]) -> Vec<&'static str> {
    ocserv.iter().copied().filter(|l| !NOT_SENT.iter().any(|h| l.split(':').next() == Some(h))).collect()
}

#[test]
fn a1_connect_response_exact_lines_and_order() {
    let response = connect::connect_response(&a1_params());
    assert!(response.starts_with(b"HTTP/1.1 200 "), "§3.2: exactly this prefix");
    assert_eq!(response_lines(&response), expected(A1_RESPONSE));
    // Case matters to the client (§3.2): compare a few byte-exactly.
    for line in ["X-CSTP-MTU: 1434", "X-CSTP-Base-MTU: 1500", "X-DTLS-CipherSuite: PSK-NEGOTIATE", "X-CSTP-DPD: 90"] {
        assert!(response.windows(line.len()).any(|w| w == line.as_bytes()), "{line}");
    }
    assert!(!response_lines(&response).iter().any(|l| l.starts_with("X-DTLS-Rekey")));
}

#[test]
fn a3_connect_response_exact_lines_and_order() {
    let (base_mtu, mtu) = mtu::cstp_only(1500, Some(1500));
    let params = TunnelParams { base_mtu, mtu, rekey: Some((172_795, RekeyMethod::Ssl)), dtls: None, ..a1_params() };
    let response = connect::connect_response(&params);
    let lines = response_lines(&response);
    assert_eq!(lines, expected(A3_RESPONSE));
    assert!(!lines.iter().any(|l| l.starts_with("X-DTLS")), "CSTP-only: no DTLS header at all (§8)");
}

#[test]
fn connect_refusals() {
    let unauthorized = connect::connect_error(401, "Cookie is not acceptable");
    assert!(unauthorized.starts_with(b"HTTP/1.1 401 Cookie is not acceptable\r\n"));
    let busy = String::from_utf8(connect::connect_error(503, "Server is busy")).unwrap();
    assert!(busy.starts_with("HTTP/1.1 503 Server is busy\r\n"));
    assert!(busy.contains("\r\nX-Reason: Server is busy\r\n"));
    assert!(busy.ends_with("\r\n\r\n"));
}

/// An IPv4 echo request of `len` bytes, as in the A.3 pings.
fn ping(len: u16) -> Vec<u8> {
    let mut p = vec![0u8; usize::from(len)];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[9] = 1;
    p
}

#[test]
fn a3_cstp_records() {
    // §4.1 / A.3: one frame per record.
    let mut record = Vec::new();
    cstp::write_frame(&mut record, PacketType::DATA, &ping(84)).unwrap();
    assert_eq!(&record[..12], &[0x53, 0x54, 0x46, 0x01, 0x00, 0x54, 0x00, 0x00, 0x45, 0x00, 0x00, 0x54]);
    let mut big = Vec::new();
    cstp::write_frame(&mut big, PacketType::DATA, &ping(1378)).unwrap();
    assert_eq!(&big[..12], &[0x53, 0x54, 0x46, 0x01, 0x05, 0x62, 0x00, 0x00, 0x45, 0x00, 0x05, 0x62]);
    let bye: &[u8] = b"\x53\x54\x46\x01\x00\x12\x05\x00\xb0Aborted by caller";

    let mut d = Deframer::new();
    for chunk in [&record[..], &record[..], &big[..], bye] {
        d.push(chunk);
    }
    let frames: Vec<Frame> = std::iter::from_fn(|| d.next_frame()).map(Result::unwrap).collect();
    let summary: Vec<_> = frames.iter().map(|f| (f.packet_type, f.payload.len())).collect();
    assert_eq!(
        summary,
        [(PacketType::DATA, 84), (PacketType::DATA, 84), (PacketType::DATA, 1378), (PacketType::DISCONNECT, 18)]
    );
    let ping_view = proto::ip::Ipv4Packet::new_checked(&frames[0].payload[..]).unwrap();
    assert_eq!(ping_view.total_len(), 84);
    assert_eq!(cstp::classify_disconnect(&frames[3].payload), DisconnectKind::Logout);
    assert_eq!(cstp::disconnect_reason(&frames[3].payload), Some("Aborted by caller"));
}

#[test]
fn a5_server_kick_and_a6_keepalives() {
    assert_eq!(cstp::header(PacketType::DISCONNECT, 0), [0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x05, 0x00]);
    // A.6: the client's DPD answer, and two keepalives in one read (what the
    // client refuses to receive in one record, we must still re-frame).
    let mut d = Deframer::new();
    d.push(&[0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x04, 0x00]);
    d.push(&[0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x07, 0x00, 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x07, 0x00]);
    let types: Vec<_> = std::iter::from_fn(|| d.next_frame()).map(|f| f.unwrap().packet_type).collect();
    assert_eq!(types, [PacketType::DPD_RESP, PacketType::KEEPALIVE, PacketType::KEEPALIVE]);
}

#[test]
fn appendix_b_dtls_probe_fills_the_mtu() {
    // The first DTLS probe: 1435 bytes of plaintext, type 3 + the 1434-byte
    // tunnel MTU, which fills a 1472-byte UDP payload with AES-GCM.
    let mut probe = vec![0u8; 1435];
    probe[0] = 0x03;
    probe[1..5].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let (t, payload) = cstp::dtls_type(&probe).unwrap();
    assert_eq!((t, payload.len()), (PacketType::DPD_REQ, 1434));
    let (_, mtu) = mtu::tunnel_mtu(1500, Some(1500), mtu::DTLS_AES_GCM_OVERHEAD);
    assert_eq!(usize::from(mtu), payload.len());
    assert_eq!(probe.len() + usize::from(mtu::DTLS_AES_GCM_OVERHEAD), 1472);
    // Decrypted DATA records start `00 45 …` (§5.1).
    let (t, ip) = cstp::dtls_type(&[0x00, 0x45, 0x00, 0x00, 0x54]).unwrap();
    assert_eq!((t, ip[0]), (PacketType::DATA, 0x45));
}

#[test]
fn mtu_values_from_the_captures() {
    assert_eq!(mtu::tunnel_mtu(1500, Some(1500), mtu::DTLS_AES_GCM_OVERHEAD), (1500, 1434));
    assert_eq!(mtu::cstp_only(1500, Some(1500)), (1500, 1472));
}
