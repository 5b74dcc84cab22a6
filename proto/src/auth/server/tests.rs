//! The server side of the auth exchange, tried on documents.

use super::*;
use crate::auth::{parse_server_auth, FormInput, InputKind, ServerAuth};

/// A gateway document read back by the device's half, as openconnect
/// walks it.
fn view(doc: &str) -> ServerAuth {
    parse_server_auth(doc.as_bytes()).unwrap()
}

fn login_form() -> AuthForm {
    AuthForm {
        message: "Please enter your username and password.".into(),
        error: None,
        action: "/auth".into(),
        fields: vec![
            FormField { kind: FieldKind::Text, name: "username".into(), label: "Username:".into(), value: None },
            FormField { kind: FieldKind::Password, name: "password".into(), label: "Password:".into(), value: None },
        ],
        groups: vec![],
    }
}

/// Found by the `gateway_auth` fuzz target: `testuse\0…\0r` was read
/// as the user name, which no form of ours can ask for again.
#[test]
fn a_user_name_carrying_a_nul_is_refused() {
    let doc = "<config-auth type=\"auth-reply\"><auth><username>testuse\0r</username></auth></config-auth>";
    assert_eq!(parse_client_auth(doc.as_bytes()), Err(AuthXmlError::Xml(XmlError::Malformed)));
}

#[test]
fn auth_request_has_what_the_client_needs() {
    let doc = auth_request_xml(&login_form());
    assert!(doc
        .starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"auth-request\">"));
    assert!(doc.contains("<form method=\"post\" action=\"/auth\">"));
    let v = view(&doc);
    assert_eq!(v.id, "main");
    assert_eq!(v.message.as_deref(), Some("Please enter your username and password."));
    assert_eq!(v.error, None);
    let form = v.form.unwrap();
    assert_eq!(form.action, "/auth");
    let kinds: Vec<_> = form.inputs.iter().map(|i| (i.kind.clone(), i.name.as_str())).collect();
    assert_eq!(kinds, [(InputKind::Text, "username"), (InputKind::Password, "password")]);
    assert_eq!(form.inputs[0].label, "Username:");
    assert!(form.groups.is_empty());
    assert!(doc.contains("<input type=\"text\" name=\"username\" label=\"Username:\" />"));
}

#[test]
fn auth_request_with_error_groups_hidden_and_escaping() {
    let form = AuthForm {
        message: "Hi <b>&</b>".into(),
        error: Some("Login failed.".into()),
        action: "/auth?x=1&y=\"2\"".into(),
        fields: vec![FormField {
            kind: FieldKind::Hidden,
            name: "state".into(),
            label: String::new(),
            value: Some("a\"b<c>&'d\ne".into()),
        }],
        groups: vec!["staff".into(), "R&D \"lab\"".into()],
    };
    let doc = auth_request_xml(&form);
    assert!(doc.contains("<select name=\"group_list\" label=\"Group:\">"));
    assert!(doc.contains("<option value=\"R&amp;D &quot;lab&quot;\">R&amp;D &quot;lab&quot;</option>"));
    let v = view(&doc);
    assert_eq!(v.message.as_deref(), Some("Hi <b>&</b>"));
    assert_eq!(v.error.as_deref(), Some("Login failed."));
    let got = v.form.unwrap();
    assert_eq!(got.action, "/auth?x=1&y=\"2\"");
    let hidden = FormInput {
        kind: InputKind::Hidden,
        name: "state".into(),
        label: String::new(),
        value: Some("a\"b<c>&'d\ne".into()),
    };
    assert_eq!(got.inputs, [hidden]);
    assert_eq!(got.groups, form.groups);
}

#[test]
fn success_document() {
    let doc = auth_success_xml(Some("Welcome to the test gateway"));
    assert!(doc.contains("<config-auth client=\"vpn\" type=\"complete\">"));
    let v = view(&doc);
    assert!(v.is_success());
    assert_eq!(v.banner.as_deref(), Some("Welcome to the test gateway"));
    assert!(v.form.is_none());
    assert!(doc.contains("<auth id=\"success\">"));
    let plain = view(&auth_success_xml(None));
    assert_eq!((plain.id.as_str(), plain.banner), ("success", None));
}

#[test]
fn failure_document_has_error_and_no_inputs() {
    let v = view(&auth_failure_xml("Too many attempts & locked"));
    assert_eq!(v.id, "failure");
    assert_eq!(v.error.as_deref(), Some("Too many attempts & locked"));
    assert!(v.form.is_none());
}

#[test]
fn reply_with_everything() {
    let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="auth-reply" aggregate-auth-version="2">
  <version who="vpn">v9.01-3</version>
  <device-id platform-version="14" device-type="Pixel" unique-id="ABC">android</device-id>
  <opaque is-for="sg"><tunnel-group>x&amp;y</tunnel-group><!-- keep --></opaque>
  <auth><username>us&lt;er</username><password><![CDATA[p&ss]]>&#x21;</password><state>s1</state></auth>
  <group-select>staff</group-select>
  <host-scan-token>tok</host-scan-token>
</config-auth>
"#;
    let a = parse_client_auth(doc).unwrap();
    assert_eq!(a.doc_type, AuthDocType::AuthReply);
    assert_eq!(a.client_version.as_deref(), Some("v9.01-3"));
    assert_eq!(a.device_id.as_deref(), Some("android"));
    assert_eq!(a.opaque.as_deref(), Some("<tunnel-group>x&amp;y</tunnel-group><!-- keep -->"));
    assert_eq!(a.username.as_deref(), Some("us<er"));
    assert_eq!(a.password.as_deref().map(String::as_str), Some("p&ss!"));
    assert_eq!(a.group_select.as_deref(), Some("staff"));
    assert_eq!(a.group_access, None);
    let answers = parse_auth_answers(doc).unwrap();
    let names: Vec<_> = answers.iter().map(|a| (a.name.as_str(), a.value.as_str())).collect();
    assert_eq!(names, [("username", "us<er"), ("password", "p&ss!"), ("state", "s1")]);
}

#[test]
fn empty_and_self_closing_fields() {
    let a = parse_client_auth(
        b"<config-auth type=\"auth-reply\"><auth><username></username><password/></auth><opaque/></config-auth>",
    )
    .unwrap();
    assert_eq!(a.username.as_deref(), Some(""));
    assert_eq!(a.password.as_deref().map(String::as_str), Some(""));
    assert_eq!(a.opaque.as_deref(), Some(""));
}

#[test]
fn doc_types() {
    for (t, want) in [
        ("init", AuthDocType::Init),
        ("auth-reply", AuthDocType::AuthReply),
        ("logout", AuthDocType::Logout),
        ("whatever", AuthDocType::Other),
    ] {
        let doc = format!("<config-auth client=\"vpn\" type=\"{t}\"/>");
        assert_eq!(parse_client_auth(doc.as_bytes()).unwrap().doc_type, want);
    }
    assert_eq!(parse_client_auth(b"<config-auth/>").unwrap().doc_type, AuthDocType::Other);
}

#[test]
fn refusals() {
    use AuthXmlError::*;
    let cases: [(&[u8], AuthXmlError); 10] = [
        (b"<auth><username>x</username></auth>", NotConfigAuth),
        (
            b"<!DOCTYPE config-auth [<!ENTITY xxe SYSTEM \"file:///etc/shadow\">]><config-auth/>",
            Xml(XmlError::Declaration),
        ),
        (b"<config-auth><auth><username>&xxe;</username></auth></config-auth>", Xml(XmlError::BadReference)),
        (b"<config-auth><auth><username>a</username><username>b</username></auth></config-auth>", DuplicateField),
        (b"<config-auth><device-id>a</device-id><device-id>b</device-id></config-auth>", DuplicateField),
        (b"<config-auth><opaque/><opaque/></config-auth>", DuplicateField),
        (b"<config-auth><auth><username>a<b/></username></auth></config-auth>", NestedField),
        (b"<config-auth><auth><username>a</username></auth>", Xml(XmlError::Truncated)),
        (b"<config-auth>\xff</config-auth>", Xml(XmlError::NotUtf8)),
        (b"", Xml(XmlError::Truncated)),
    ];
    for (doc, want) in cases {
        assert_eq!(parse_client_auth(doc), Err(want), "{}", String::from_utf8_lossy(doc));
    }
}

#[test]
fn size_bounds() {
    let big = vec![b' '; MAX_DOCUMENT + 1];
    assert_eq!(parse_client_auth(&big), Err(AuthXmlError::TooLarge));
    let long = format!("<config-auth><auth><password>{}</password></auth></config-auth>", "p".repeat(MAX_VALUE + 1));
    assert_eq!(parse_client_auth(long.as_bytes()), Err(AuthXmlError::ValueTooLong));
    let exact = format!("<config-auth><auth><password>{}</password></auth></config-auth>", "p".repeat(MAX_VALUE));
    assert_eq!(parse_client_auth(exact.as_bytes()).unwrap().password.unwrap().len(), MAX_VALUE);
    // Escapes count after expansion.
    let escaped = format!("<config-auth><auth><password>{}</password></auth></config-auth>", "&amp;".repeat(MAX_VALUE));
    assert_eq!(parse_client_auth(escaped.as_bytes()).unwrap().password.unwrap().len(), MAX_VALUE);
    let answers: String = (0..=MAX_ANSWERS).map(|i| format!("<a{i}/>")).collect();
    let many = format!("<config-auth><auth>{answers}</auth></config-auth>");
    assert_eq!(parse_client_auth(many.as_bytes()), Err(AuthXmlError::TooManyAnswers));
}

#[test]
fn debug_redacts_secrets() {
    let a = parse_client_auth(b"<config-auth><auth><password>hunter2</password></auth></config-auth>").unwrap();
    assert!(!format!("{a:?}").contains("hunter2"));
    let answers = parse_auth_answers(b"<config-auth><auth><otp>123456</otp></auth></config-auth>").unwrap();
    assert!(!format!("{answers:?}").contains("123456"));
}

#[test]
fn error_messages() {
    assert!(AuthXmlError::Xml(XmlError::Declaration).to_string().contains("DOCTYPE"));
    assert!(std::error::Error::source(&AuthXmlError::Xml(XmlError::Malformed)).is_some());
}
