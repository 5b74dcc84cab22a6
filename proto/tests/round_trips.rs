//! Both halves of each message agree: what the gateway's half writes, the
//! device's half reads back unchanged, and the other way round.

// Test helpers: a panic is how they report a failed expectation.
#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use std::net::Ipv4Addr;

use proptest::prelude::*;

use proto::auth::{self, AuthDocType, AuthForm, FieldKind, FormField, FormInput, ServerAuth, ServerForm};
use proto::connect::{self, ConnectOptions, DtlsParams, RekeyMethod, TunnelConfig, TunnelParams};
use proto::http::{self, Limits, Parsed};
use proto::http_response::{self, BodyMode, ResponseLimits};
use proto::ip::Ipv4Net;

/// What the device's half should read from `form`.
fn as_received(form: &AuthForm) -> ServerAuth {
    ServerAuth {
        id: "main".into(),
        message: (!form.message.is_empty()).then(|| form.message.clone()),
        error: form.error.clone(),
        banner: None,
        form: Some(ServerForm {
            action: if form.action.is_empty() { "/".into() } else { form.action.clone() },
            inputs: form
                .fields
                .iter()
                .map(|f| FormInput {
                    kind: f.kind.into(),
                    name: f.name.clone(),
                    label: f.label.clone(),
                    value: f.value.clone(),
                })
                .collect(),
            groups: form.groups.clone(),
        }),
        session_token: None,
        opaque: None,
    }
}

fn field(kind: FieldKind, name: &str, label: &str, value: Option<&str>) -> FormField {
    FormField { kind, name: name.into(), label: label.into(), value: value.map(str::to_owned) }
}

#[test]
fn auth_request_reads_back_as_the_same_form() {
    let forms = [
        AuthForm {
            message: "Please enter your username and password.".into(),
            error: None,
            action: "/auth".into(),
            fields: vec![
                field(FieldKind::Text, "username", "Username:", None),
                field(FieldKind::Password, "password", "Password:", None),
            ],
            groups: vec![],
        },
        AuthForm {
            message: String::new(),
            error: Some("Login failed. <try & again>".into()),
            action: "/auth?step=2&x=\"y\"".into(),
            fields: vec![
                field(FieldKind::Hidden, "state", "", Some("a\"b<c>&'d\ne\tf")),
                field(FieldKind::Password, "otp", "Code:", Some("")),
            ],
            groups: vec!["staff".into(), "R&D \"lab\"".into()],
        },
        AuthForm { message: "x".into(), error: None, action: String::new(), fields: vec![], groups: vec![] },
    ];
    for form in forms {
        let doc = auth::auth_request_xml(&form);
        assert_eq!(auth::parse_server_auth(doc.as_bytes()), Ok(as_received(&form)), "{doc}");
    }
}

#[test]
fn success_and_failure_read_back() {
    let success = auth::parse_server_auth(auth::auth_success_xml(Some("Hello & welcome")).as_bytes()).unwrap();
    assert!(success.is_success());
    assert_eq!((success.banner.as_deref(), success.form), (Some("Hello & welcome"), None));
    let failure = auth::parse_server_auth(auth::auth_failure_xml("Locked <out>").as_bytes()).unwrap();
    assert!(!failure.is_success());
    assert_eq!((failure.error.as_deref(), failure.form), (Some("Locked <out>"), None));
}

#[test]
fn init_reads_back() {
    let init = auth::init_xml("https://vpn.test/grp?a=1&b=2");
    let a = auth::parse_client_auth(init.as_bytes()).unwrap();
    assert_eq!(a.doc_type, AuthDocType::Init);
    assert_eq!(a.group_access.as_deref(), Some("https://vpn.test/grp?a=1&b=2"));
    assert_eq!((a.client_version.as_deref(), a.device_id.as_deref()), (Some("v9.01-3"), Some("linux-64")));
}

#[test]
fn auth_reply_answers_the_form_it_read() {
    // The gateway asks, the device reads the form and answers each input,
    // the gateway reads the answers: user name, password, hidden state.
    let form = AuthForm {
        message: String::new(),
        error: None,
        action: "/auth".into(),
        fields: vec![
            field(FieldKind::Text, "username", "Username:", None),
            field(FieldKind::Password, "password", "Password:", None),
            field(FieldKind::Hidden, "state", "", Some("s&1")),
        ],
        groups: vec![],
    };
    let doc =
        auth::auth_request_xml(&form).replace("<auth id", "<opaque is-for=\"sg\"><step>2</step></opaque>\n<auth id");
    let asked = auth::parse_server_auth(doc.as_bytes()).unwrap();
    let inputs = asked.form.unwrap().inputs;
    let answers: Vec<(&str, &str)> = inputs
        .iter()
        .map(|i| match i.name.as_str() {
            "username" => (i.name.as_str(), "us<er"),
            "password" => (i.name.as_str(), "p&ss \"word\""),
            _ => (i.name.as_str(), i.value.as_deref().unwrap_or("")),
        })
        .collect();
    let reply = auth::auth_reply_xml(&answers, asked.opaque.as_deref());
    let got = auth::parse_client_auth(reply.as_bytes()).unwrap();
    assert_eq!(got.doc_type, AuthDocType::AuthReply);
    assert_eq!(got.username.as_deref(), Some("us<er"));
    assert_eq!(got.password.as_deref().map(String::as_str), Some("p&ss \"word\""));
    assert_eq!(got.opaque.as_deref(), Some("<step>2</step>"));
    let answers = auth::parse_auth_answers(reply.as_bytes()).unwrap();
    assert_eq!(answers[2].name, "state");
    assert_eq!(answers[2].value.as_str(), "s&1");
}

fn connect_options(dtls: bool, previous_address: Option<Ipv4Addr>) -> ConnectOptions<'static> {
    ConnectOptions {
        host: "vpn.test",
        user_agent: "Open AnyConnect VPN Agent v9.01-3",
        hostname: "vm",
        base_mtu: 1500,
        dtls,
        previous_address,
    }
}

#[test]
fn connect_request_reads_back() {
    for (dtls, previous) in [(true, None), (false, Some(Ipv4Addr::new(192, 168, 99, 121)))] {
        let options = connect_options(dtls, previous);
        let bytes = connect::connect_request(&options, "C00KIE");
        let Ok(Parsed::Complete { request, consumed }) = http::parse_request(&bytes, &Limits::default()) else {
            panic!("not a whole request: {}", String::from_utf8_lossy(&bytes));
        };
        assert_eq!(consumed, bytes.len());
        let c = connect::parse_connect(&request).unwrap();
        assert_eq!(c.cookie.as_deref(), Some("C00KIE"));
        assert_eq!(c.hostname.as_deref(), Some("vm"));
        assert_eq!((c.base_mtu, c.mtu), (Some(1500), Some(1390)));
        assert!(c.wants_ipv4);
        assert_eq!((c.psk_negotiate, c.dtls_requested), (dtls, dtls));
        assert_eq!(c.previous_ipv4, previous);
        assert_eq!(c.user_agent.as_deref(), Some(options.user_agent));
    }
}

fn tunnel_params() -> TunnelParams {
    TunnelParams {
        server_name: "corridor".into(),
        hostname: Some("vm".into()),
        address: Ipv4Addr::new(192, 168, 99, 121),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        dns: vec![Ipv4Addr::new(192, 168, 99, 1), Ipv4Addr::new(192, 168, 99, 2)],
        default_domain: Some("example.test".into()),
        split_include: vec![Ipv4Net::new(Ipv4Addr::new(10, 99, 0, 0), 16).unwrap()],
        split_exclude: vec![Ipv4Net::new(Ipv4Addr::new(10, 99, 5, 0), 24).unwrap()],
        base_mtu: 1500,
        mtu: 1434,
        dpd_secs: 90,
        keepalive_secs: 32400,
        idle_timeout_secs: Some(1200),
        session_timeout_secs: None,
        rekey: Some((172_800, RekeyMethod::NewTunnel)),
        banner: Some("Welcome".into()),
        dtls: Some(DtlsParams { port: 443, app_id: (1..=32).collect(), dpd_secs: 30, keepalive_secs: 20 }),
        apps: Some(vec!["/usr/bin/ssh".into(), "/opt/crm/bin/crm client".into()]),
        trusted: Some(connect::TrustedNetwork {
            url: "https://intranet.example.test:8443/".into(),
            pin: "pin-sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=".into(),
        }),
    }
}

/// What the device's half should read from `p`.
fn as_configured(p: &TunnelParams) -> TunnelConfig {
    TunnelConfig {
        server_name: Some(p.server_name.clone()),
        hostname: p.hostname.clone(),
        address: p.address,
        netmask: Some(p.netmask),
        dns: p.dns.clone(),
        default_domain: p.default_domain.clone(),
        split_include: p.split_include.clone(),
        split_exclude: p.split_exclude.clone(),
        mtu: p.mtu,
        base_mtu: Some(p.base_mtu),
        dpd_secs: p.dpd_secs,
        keepalive_secs: p.keepalive_secs,
        idle_timeout_secs: p.idle_timeout_secs,
        session_timeout_secs: p.session_timeout_secs,
        rekey: p.rekey,
        banner: p.banner.clone(),
        dtls: p.dtls.clone(),
        apps: p.apps.clone(),
        trusted: p.trusted.clone(),
    }
}

fn read_response(bytes: &[u8]) -> TunnelConfig {
    let (response, used) =
        http_response::parse_response(bytes, BodyMode::HeadOnly, &ResponseLimits::default()).unwrap().unwrap();
    assert_eq!(used, bytes.len());
    connect::parse_connect_response(&response).unwrap()
}

#[test]
fn connect_response_reads_back_as_the_same_params() {
    let full = tunnel_params();
    let cstp_only = TunnelParams {
        hostname: None,
        dns: vec![],
        default_domain: None,
        split_include: vec![],
        split_exclude: vec![],
        idle_timeout_secs: None,
        session_timeout_secs: Some(3600),
        rekey: None,
        banner: None,
        dtls: None,
        ..tunnel_params()
    };
    for p in [full, cstp_only] {
        assert_eq!(read_response(&connect::connect_response(&p)), as_configured(&p));
    }
}

#[test]
fn connect_refusal_reads_back() {
    let bytes = connect::connect_error(503, "No address available");
    let (response, _) =
        http_response::parse_response(&bytes, BodyMode::Delimited, &ResponseLimits::default()).unwrap().unwrap();
    assert_eq!(
        connect::parse_connect_response(&response),
        Err(connect::ConnectResponseError::Refused { status: 503, reason: "No address available".into() })
    );
}

proptest! {
    #[test]
    fn any_tunnel_params_read_back(
        address in any::<u32>(),
        prefix in 0u8..=32,
        mtu in 1u16..,
        base_mtu in any::<u16>(),
        dpd in any::<u32>(),
        idle in proptest::option::of(any::<u32>()),
        rekey in proptest::option::of((1u32.., any::<bool>())),
        app_id in prop::collection::vec(any::<u8>(), 1..=32),
        port in 1u16..,
        banner in proptest::option::of("[ -~]{1,40}"),
    ) {
        let net = Ipv4Net::new(Ipv4Addr::from(address), prefix).unwrap();
        let p = TunnelParams {
            address: Ipv4Addr::from(address),
            netmask: net.mask(),
            split_include: vec![Ipv4Net::new(net.network(), prefix).unwrap()],
            base_mtu,
            mtu,
            dpd_secs: dpd,
            idle_timeout_secs: idle,
            rekey: rekey.map(|(secs, ssl)| (secs, if ssl { RekeyMethod::Ssl } else { RekeyMethod::NewTunnel })),
            // Header values lose the spaces around them.
            banner: banner.map(|b| b.trim().to_owned()).filter(|b| !b.is_empty()),
            dtls: Some(DtlsParams { port, app_id, dpd_secs: dpd, keepalive_secs: 1 }),
            ..tunnel_params()
        };
        prop_assert_eq!(read_response(&connect::connect_response(&p)), as_configured(&p));
    }

    #[test]
    fn any_form_text_reads_back(
        message in "\\PC{0,40}|[<>&\"'\\t\\n\\r\\x00-\\x1f]{0,10}",
        label in "\\PC{0,20}",
        value in ".{0,20}",
        group in "[ -~]{0,20}",
        name in "[a-z_][a-z0-9_.-]{0,10}",
    ) {
        let form = AuthForm {
            message,
            error: Some(value.clone()),
            action: "/auth".into(),
            fields: vec![field(FieldKind::Hidden, &name, &label, Some(&value))],
            groups: vec![group],
        };
        let doc = auth::auth_request_xml(&form);
        // What XML cannot carry at all (most C0 controls) is dropped on the way.
        let carried = |s: &String| s.chars().filter(|&c| xml_can_carry(c)).collect::<String>();
        let sent = AuthForm {
            message: carried(&form.message),
            error: form.error.as_ref().map(carried),
            fields: vec![field(FieldKind::Hidden, &name, &carried(&label), Some(&carried(&value)))],
            ..form.clone()
        };
        let mut want = as_received(&sent);
        // A message of nothing but dropped characters still has its element.
        if !form.message.is_empty() {
            want.message = Some(sent.message.clone());
        }
        prop_assert_eq!(auth::parse_server_auth(doc.as_bytes()), Ok(want));
    }
}

fn xml_can_carry(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
}
