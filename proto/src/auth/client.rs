//! The device's half of the auth documents: writing `init` and
//! `auth-reply` as openconnect 9.01 does (§2.3, §2.5), reading the
//! gateway's `auth-request` forms and its `success` document (§2.4, §2.6).
//!
//! The reader walks the document the way openconnect's `auth.c` does: the
//! root or the children of a `<config-auth>` root, the first `<auth>` with
//! an `id`, its `<message>`/`<error>`/`<banner>` and `<form>`, the form's
//! `<input>`s and `group_list` select, a `<session-token>`, and a
//! document-level `<opaque>` that the next reply copies back verbatim.

use core::fmt;

use zeroize::Zeroizing;

use super::{FieldKind, MAX_DOCUMENT, MAX_OPAQUE};
use crate::xml::{self, Attribute, Event, Reader, XmlError};

/// What openconnect 9.01 says about itself (§2.3); gateways do not check it.
const CLIENT_VERSION: &str = "v9.01-3";

/// The `id` of the `<auth>` that ends a login (§2.6).
const SUCCESS_ID: &str = "success";

/// Why a gateway's auth document is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerAuthError {
    /// Over [`MAX_DOCUMENT`] bytes.
    TooLarge,
    /// Not an XML document this crate reads.
    Xml(XmlError),
    /// "XML response has no auth node" (§2.4): no `<auth id=…>` at the top.
    NoAuthNode,
    /// A form whose `method` is not POST (§2.4).
    NotPost,
    /// An `<input>` or `<select>` without a `name` (§2.4).
    InputWithoutName,
    /// An input `name` that cannot be an element name, which the answer
    /// must become (§2.5).
    BadInputName,
    /// An `<opaque>` over [`MAX_OPAQUE`] bytes.
    OpaqueTooLong,
}

impl fmt::Display for ServerAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => f.write_str("gateway auth document too large"),
            Self::Xml(e) => write!(f, "gateway auth document: {e}"),
            Self::NoAuthNode => f.write_str("XML response has no auth node"),
            Self::NotPost => f.write_str("auth form method is not POST"),
            Self::InputWithoutName => f.write_str("auth form input without a name"),
            Self::BadInputName => f.write_str("auth form input name is not an XML name"),
            Self::OpaqueTooLong => f.write_str("gateway auth document opaque too long"),
        }
    }
}

impl std::error::Error for ServerAuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Xml(e) => Some(e),
            _ => None,
        }
    }
}

impl From<XmlError> for ServerAuthError {
    fn from(e: XmlError) -> Self {
        Self::Xml(e)
    }
}

/// The `type` of a form input as the device sees it (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InputKind {
    Text,
    Password,
    /// Sent back with its `value` unchanged.
    Hidden,
    /// `sso`, a `<select>` other than `group_list`, or anything else a
    /// device cannot answer; carries the type.
    Other(String),
}

impl From<FieldKind> for InputKind {
    fn from(kind: FieldKind) -> Self {
        match kind {
            FieldKind::Text => Self::Text,
            FieldKind::Password => Self::Password,
            FieldKind::Hidden => Self::Hidden,
        }
    }
}

/// One `<input>` the gateway asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormInput {
    pub kind: InputKind,
    /// The element name the answer goes under (§2.5); always an XML name.
    pub name: String,
    /// The prompt; empty when absent.
    pub label: String,
    /// A hidden field's value, or a default.
    pub value: Option<String>,
}

/// An `auth-request` form as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerForm {
    /// Where the answers are POSTed; `/` when absent (§2.4).
    pub action: String,
    /// In document order; `submit` and `reset` inputs are left out.
    pub inputs: Vec<FormInput>,
    /// The `value`s of the `group_list` select's options, the auth groups
    /// a `<group-select>` may name.
    pub groups: Vec<String>,
}

/// What one gateway auth document says (§2.4, §2.6). Text is unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerAuth {
    /// The `<auth id>`: `success`, or the name of a form.
    pub id: String,
    pub message: Option<String>,
    /// Shown before the form is presented again (`Login failed.`).
    pub error: Option<String>,
    pub banner: Option<String>,
    pub form: Option<ServerForm>,
    /// `<session-token>`: the cookie when it is not in `Set-Cookie` (§2.6).
    pub session_token: Option<String>,
    /// The document-level `<opaque …>…</opaque>` element, verbatim and
    /// well-formed, for [`auth_reply_xml`] to copy back (§2.4).
    pub opaque: Option<String>,
}

impl ServerAuth {
    /// `<auth id="success">`: logged in (§2.6).
    pub fn is_success(&self) -> bool {
        self.id == SUCCESS_ID
    }
}

/// Where a text element's content goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Message,
    Error,
    Banner,
    SessionToken,
}

/// Reads a gateway auth document (§2.4, §2.6).
///
/// Tolerates what the gateway's reader on the other side tolerates (XML
/// declaration, comments, CDATA, elements it does not know) and refuses the
/// same things: markup declarations, unknown entities, documents over
/// [`MAX_DOCUMENT`]. A document without an `<auth id=…>` at the top is
/// [`ServerAuthError::NoAuthNode`], as openconnect says.
pub fn parse_server_auth(body: &[u8]) -> Result<ServerAuth, ServerAuthError> {
    if body.len() > MAX_DOCUMENT {
        return Err(ServerAuthError::TooLarge);
    }
    let doc = core::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = Reader::new(doc);
    let mut out = ServerAuth::default();
    // Depths of the open <auth>, <form> and group_list <select> being read.
    let mut auth_depth: Option<usize> = None;
    let mut form_depth: Option<usize> = None;
    let mut groups_depth: Option<usize> = None;
    let mut seen_auth = false;
    // A text element being read: slot, depth, text so far. Text of elements
    // nested in it counts, as libxml2's node content does.
    let mut capture: Option<(Slot, usize, String)> = None;
    // Depth and start offset of the open <opaque>; its content is not ours
    // to interpret.
    let mut opaque: Option<(usize, usize)> = None;

    while let Some(event) = reader.next_event()? {
        match event {
            Event::Start { name, attributes } => {
                let depth = reader.depth();
                if opaque.is_some() || capture.is_some() {
                    continue;
                }
                let top_level = matches!(reader.path(), [_] | ["config-auth", _]);
                let parent = depth.saturating_sub(1);
                match name {
                    "auth" if top_level && !seen_auth => {
                        if let Some(id) = attribute(&attributes, "id")? {
                            out.id = id;
                            seen_auth = true;
                            auth_depth = Some(depth);
                        }
                    }
                    "opaque" if top_level && depth > 1 && out.opaque.is_none() => {
                        opaque = Some((depth, reader.token_start()));
                    }
                    "session-token" => capture = Some((Slot::SessionToken, depth, String::new())),
                    "message" | "error" | "banner" if auth_depth == Some(parent) => {
                        let slot = match name {
                            "message" => Slot::Message,
                            "error" => Slot::Error,
                            _ => Slot::Banner,
                        };
                        capture = Some((slot, depth, String::new()));
                    }
                    "form" if auth_depth == Some(parent) && form_depth.is_none() => {
                        let method = attribute(&attributes, "method")?;
                        if !method.as_deref().unwrap_or("post").eq_ignore_ascii_case("post") {
                            return Err(ServerAuthError::NotPost);
                        }
                        let action = attribute(&attributes, "action")?.unwrap_or_else(|| "/".to_owned());
                        out.form = Some(ServerForm { action, inputs: Vec::new(), groups: Vec::new() });
                        form_depth = Some(depth);
                    }
                    "input" | "select" if form_depth == Some(parent) => {
                        let Some(input) = form_input(name, &attributes)? else { continue };
                        if name == "select" && input.name == "group_list" {
                            groups_depth = Some(depth);
                        } else if let Some(form) = out.form.as_mut() {
                            form.inputs.push(input);
                        }
                    }
                    "option" if groups_depth == Some(parent) => {
                        if let (Some(value), Some(form)) = (attribute(&attributes, "value")?, out.form.as_mut()) {
                            form.groups.push(value);
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(raw) => {
                if let (Some((_, _, text)), None) = (capture.as_mut(), opaque) {
                    xml::unescape_into(raw, text)?;
                }
            }
            Event::CData(literal) => {
                if let (Some((_, _, text)), None) = (capture.as_mut(), opaque) {
                    text.push_str(literal);
                }
            }
            Event::End { .. } => {
                let depth = reader.depth() + 1;
                if let Some((opaque_depth, from)) = opaque {
                    if depth == opaque_depth {
                        let element = reader.slice(from, reader.position());
                        if element.len() > MAX_OPAQUE {
                            return Err(ServerAuthError::OpaqueTooLong);
                        }
                        out.opaque = Some(element.to_owned());
                        opaque = None;
                    }
                    continue;
                }
                if let Some((slot, _, text)) = capture.take_if(|(_, d, _)| *d == depth) {
                    // A repeated element replaces the earlier one, as in
                    // openconnect's walk of the children.
                    *match slot {
                        Slot::Message => &mut out.message,
                        Slot::Error => &mut out.error,
                        Slot::Banner => &mut out.banner,
                        Slot::SessionToken => &mut out.session_token,
                    } = Some(text);
                }
                for open in [&mut auth_depth, &mut form_depth, &mut groups_depth] {
                    if *open == Some(depth) {
                        *open = None;
                    }
                }
            }
        }
    }
    if !seen_auth {
        return Err(ServerAuthError::NoAuthNode);
    }
    Ok(out)
}

/// An `<input>` or `<select>` of a form; `None` for `submit` and `reset`.
fn form_input(element: &str, attributes: &[Attribute<'_>]) -> Result<Option<FormInput>, ServerAuthError> {
    let kind = if element == "select" {
        InputKind::Other("select".to_owned())
    } else {
        match attribute(attributes, "type")?.as_deref().unwrap_or("text") {
            "text" => InputKind::Text,
            "password" => InputKind::Password,
            "hidden" => InputKind::Hidden,
            "submit" | "reset" => return Ok(None),
            other => InputKind::Other(other.to_owned()),
        }
    };
    let name = attribute(attributes, "name")?.ok_or(ServerAuthError::InputWithoutName)?;
    if !xml::is_name(&name) {
        return Err(ServerAuthError::BadInputName);
    }
    let label = attribute(attributes, "label")?.unwrap_or_default();
    Ok(Some(FormInput { kind, name, label, value: attribute(attributes, "value")? }))
}

/// The unescaped value of attribute `name`.
fn attribute(attributes: &[Attribute<'_>], name: &str) -> Result<Option<String>, XmlError> {
    let Some(a) = attributes.iter().find(|a| a.name == name) else {
        return Ok(None);
    };
    let mut value = String::with_capacity(a.raw_value.len());
    xml::unescape_into(a.raw_value, &mut value)?;
    Ok(Some(value))
}

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Everything openconnect writes before a document's own content (§2.3).
fn preamble(doc_type: &str) -> String {
    format!(
        "{XML_DECLARATION}<config-auth client=\"vpn\" type=\"{doc_type}\" aggregate-auth-version=\"2\">\
         <version who=\"vpn\">{CLIENT_VERSION}</version><device-id>linux-64</device-id><capabilities>\
         <auth-method>single-sign-on-v2</auth-method><auth-method>single-sign-on-external-browser</auth-method>\
         </capabilities>"
    )
}

/// libxml2 ends a dumped document with a line break, which openconnect's
/// Content-Length counts (363 for the A.1 `init`).
const END: &str = "</config-auth>\n";

/// The `init` document openconnect 9.01 POSTs first (§2.3), byte for byte
/// (Appendix A.1), with `group_access` the URL the user typed
/// (`https://vpn.test/`).
pub fn init_xml(group_access: &str) -> String {
    let mut x = preamble("init");
    x.push_str("<group-access>");
    xml::escape_into(group_access, &mut x);
    x.push_str("</group-access>");
    x.push_str(END);
    x
}

/// An `auth-reply` (§2.5), byte for byte as openconnect 9.01 writes it
/// (Appendix A.1): the gateway's `opaque` element (from
/// [`ServerAuth::opaque`]) copied back first, then each answer as
/// `<NAME>value</NAME>` under `<auth>`, with `answer`, `whichpin` and
/// `new_password` renamed `password` as openconnect does.
///
/// A name that is not an XML name ([`parse_server_auth`] never yields one)
/// is left out: it could not be written without breaking the document.
/// The result is sized once and wiped on drop, since it holds the password.
pub fn auth_reply_xml(answers: &[(&str, &str)], opaque: Option<&str>) -> Zeroizing<String> {
    let preamble = preamble("auth-reply");
    let answers: Vec<(&str, &str)> = answers
        .iter()
        .filter(|(name, _)| xml::is_name(name))
        .map(|&(name, value)| match name {
            "answer" | "whichpin" | "new_password" => ("password", value),
            _ => (name, value),
        })
        .collect();
    let length = preamble.len()
        + opaque.map_or(0, str::len)
        + "<auth></auth>".len()
        + answers.iter().map(|(name, value)| 2 * name.len() + "<></>".len() + xml::escaped_len(value)).sum::<usize>()
        + END.len();
    let mut x = Zeroizing::new(String::with_capacity(length));
    x.push_str(&preamble);
    if let Some(opaque) = opaque {
        x.push_str(opaque);
    }
    x.push_str("<auth>");
    for (name, value) in answers {
        x.push('<');
        x.push_str(name);
        x.push('>');
        xml::escape_into(value, &mut x);
        x.push_str("</");
        x.push_str(name);
        x.push('>');
    }
    x.push_str("</auth>");
    x.push_str(END);
    debug_assert_eq!(x.len(), length, "auth-reply sized exactly");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{parse_auth_answers, parse_client_auth, AuthDocType};

    // Appendix A.1: ocserv's user-name form and success document.
    const OCSERV_USERNAME: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<config-auth client=\"vpn\" type=\"auth-request\">\n<version who=\"sg\">0.1(1)</version>\n<auth id=\"main\">\n\
<message>Please enter your username.</message>\n<form method=\"post\" action=\"/auth\">\n\
<input type=\"text\" name=\"username\" label=\"Username:\" />\n</form></auth>\n</config-auth>";

    const OCSERV_SUCCESS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<config-auth client=\"vpn\" type=\"complete\">\n<version who=\"sg\">0.1(1)</version>\n<auth id=\"success\">\n\
<title>SSL VPN Service</title><banner>Welcome to the test gateway</banner></auth></config-auth>\n";

    #[test]
    fn reads_ocserv_username_form() {
        let a = parse_server_auth(OCSERV_USERNAME.as_bytes()).unwrap();
        assert_eq!(a.id, "main");
        assert!(!a.is_success());
        assert_eq!(a.message.as_deref(), Some("Please enter your username."));
        let form = a.form.unwrap();
        assert_eq!(form.action, "/auth");
        let username =
            FormInput { kind: InputKind::Text, name: "username".into(), label: "Username:".into(), value: None };
        assert_eq!(form.inputs, [username]);
        assert!(form.groups.is_empty());
    }

    #[test]
    fn reads_ocserv_success() {
        let a = parse_server_auth(OCSERV_SUCCESS.as_bytes()).unwrap();
        assert!(a.is_success());
        assert_eq!(a.banner.as_deref(), Some("Welcome to the test gateway"));
        assert_eq!((a.form, a.message, a.error), (None, None, None));
    }

    #[test]
    fn error_hidden_opaque_token_and_groups() {
        let doc = r#"<config-auth><opaque is-for="sg"><x>1 &amp; 2</x><auth id="not-this"/></opaque><auth id="main">
<error>Login &quot;failed&quot;.</error><form action="/a"><select name="group_list" label="Group:">
<option value="staff">Staff</option><option value="R&amp;D">R&amp;D</option></select>
<input type="hidden" name="tok" value="a&amp;b"/><input type="submit" name="go"/>
<input type="password" name="password"/><input type="sso" name="sso-token"/></form></auth>
<session-token>T0K</session-token></config-auth>"#;
        let a = parse_server_auth(doc.as_bytes()).unwrap();
        assert_eq!(a.id, "main");
        assert_eq!(a.error.as_deref(), Some("Login \"failed\"."));
        assert_eq!(a.opaque.as_deref(), Some(r#"<opaque is-for="sg"><x>1 &amp; 2</x><auth id="not-this"/></opaque>"#));
        assert_eq!(a.session_token.as_deref(), Some("T0K"));
        let form = a.form.unwrap();
        assert_eq!(form.groups, ["staff", "R&D"]);
        let kinds: Vec<_> = form.inputs.iter().map(|i| (i.kind.clone(), i.name.as_str(), i.value.as_deref())).collect();
        assert_eq!(
            kinds,
            [
                (InputKind::Hidden, "tok", Some("a&b")),
                (InputKind::Password, "password", None),
                (InputKind::Other("sso".into()), "sso-token", None),
            ]
        );
    }

    #[test]
    fn legacy_bare_auth_and_self_closing_opaque() {
        let a = parse_server_auth(b"<auth id=\"success\"><banner><![CDATA[<hi>]]> &#x21;</banner></auth>").unwrap();
        assert!(a.is_success());
        assert_eq!(a.banner.as_deref(), Some("<hi> !"));
        let a = parse_server_auth(b"<config-auth><opaque/><auth id=\"main\"/></config-auth>").unwrap();
        assert_eq!((a.opaque.as_deref(), a.form), (Some("<opaque/>"), None));
    }

    #[test]
    fn refusals() {
        use ServerAuthError::*;
        let cases: [(&[u8], ServerAuthError); 11] = [
            (b"<config-auth></config-auth>", NoAuthNode),
            (b"<config-auth><auth>no id</auth></config-auth>", NoAuthNode),
            (b"<config-auth><x><auth id=\"deep\"/></x></config-auth>", NoAuthNode),
            (b"<auth id=\"x\"><form method=\"get\"/></auth>", NotPost),
            (b"<auth id=\"x\"><form><input type=\"text\"/></form></auth>", InputWithoutName),
            (b"<auth id=\"x\"><form><input name=\"a&gt;b\"/></form></auth>", BadInputName),
            (b"<auth id=\"x\"", Xml(XmlError::Truncated)),
            (b"<auth id=x/>", Xml(XmlError::Malformed)),
            (b"<!DOCTYPE auth [<!ENTITY e \"x\">]><auth id=\"x\"/>", Xml(XmlError::Declaration)),
            (b"<auth id=\"x\"><message>&nbsp;</message></auth>", Xml(XmlError::BadReference)),
            (b"<auth id=\"\xff\"/>", Xml(XmlError::NotUtf8)),
        ];
        for (doc, want) in cases {
            assert_eq!(parse_server_auth(doc), Err(want), "{}", String::from_utf8_lossy(doc));
        }
        let big = vec![b' '; MAX_DOCUMENT + 1];
        assert_eq!(parse_server_auth(&big), Err(TooLarge));
        let opaque = format!("<config-auth><opaque>{}</opaque><auth id=\"x\"/></config-auth>", "o".repeat(MAX_OPAQUE));
        assert_eq!(parse_server_auth(opaque.as_bytes()), Err(OpaqueTooLong));
    }

    #[test]
    fn documents_match_openconnect() {
        let init = init_xml("https://vpn.test/");
        assert_eq!(init.len(), 363, "A.1 Content-Length");
        assert!(init.ends_with("<group-access>https://vpn.test/</group-access></config-auth>\n"));
        let reply = auth_reply_xml(&[("username", "testuser")], None);
        assert_eq!(reply.len(), 365, "A.1 Content-Length");
        assert!(reply.ends_with("</capabilities><auth><username>testuser</username></auth></config-auth>\n"));
    }

    #[test]
    fn reply_renames_escapes_and_copies_opaque() {
        let opaque = "<opaque is-for=\"sg\"><x>1</x></opaque>";
        let reply = auth_reply_xml(
            &[("username", "a<b"), ("answer", "p&\"'\t\n"), ("bad name", "dropped"), ("state", "")],
            Some(opaque),
        );
        assert!(reply.contains(&format!("</capabilities>{opaque}<auth><username>a&lt;b</username>")), "{}", *reply);
        assert!(!reply.contains("dropped"));
        let back = parse_client_auth(reply.as_bytes()).unwrap();
        assert_eq!(back.doc_type, AuthDocType::AuthReply);
        assert_eq!(back.username.as_deref(), Some("a<b"));
        assert_eq!(back.password.as_deref().map(String::as_str), Some("p&\"'\t\n"));
        assert_eq!(back.opaque.as_deref(), Some("<x>1</x>"));
        let names: Vec<_> = parse_auth_answers(reply.as_bytes()).unwrap().into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["username", "password", "state"]);
    }

    #[test]
    fn error_messages() {
        assert!(ServerAuthError::NoAuthNode.to_string().contains("no auth node"));
        assert!(std::error::Error::source(&ServerAuthError::Xml(XmlError::Malformed)).is_some());
    }
}
