//! The gateway's half of the auth documents: reading the client's `init`
//! and `auth-reply` POST bodies (§2.3, §2.5), writing the `auth-request`
//! form, the success document and the final failure document (§2.4, §2.6).

use core::fmt;

use zeroize::Zeroizing;

use super::MAX_DOCUMENT;
use crate::xml::{self, Event, Reader, XmlError};

/// Longest text value kept (user name, password, device id …).
pub const MAX_VALUE: usize = 4 * 1024;

/// Longest `<opaque>` content kept.
pub const MAX_OPAQUE: usize = 16 * 1024;

/// Most answers accepted under `<auth>`.
pub const MAX_ANSWERS: usize = 32;

/// The `type` attribute of the client's `<config-auth>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthDocType {
    /// First POST of a login (§2.3).
    Init,
    /// Answers to a form (§2.5).
    AuthReply,
    Logout,
    /// Missing or anything else.
    Other,
}

/// Why a client document was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthXmlError {
    /// Over [`MAX_DOCUMENT`] bytes.
    TooLarge,
    /// Not an XML document this crate reads.
    Xml(XmlError),
    /// The root element is not `<config-auth>`.
    NotConfigAuth,
    /// A value over [`MAX_VALUE`] (or an opaque over [`MAX_OPAQUE`]).
    ValueTooLong,
    /// A field we read appears twice; refusing beats guessing which copy
    /// another component will look at.
    DuplicateField,
    /// An element inside a field that should hold only text.
    NestedField,
    /// More than [`MAX_ANSWERS`] answers under `<auth>`.
    TooManyAnswers,
}

impl fmt::Display for AuthXmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => f.write_str("auth document too large"),
            Self::Xml(e) => write!(f, "auth document: {e}"),
            Self::NotConfigAuth => f.write_str("auth document root is not <config-auth>"),
            Self::ValueTooLong => f.write_str("auth document value too long"),
            Self::DuplicateField => f.write_str("auth document repeats a field"),
            Self::NestedField => f.write_str("auth document has markup inside a text field"),
            Self::TooManyAnswers => f.write_str("auth document has too many answers"),
        }
    }
}

impl std::error::Error for AuthXmlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Xml(e) => Some(e),
            _ => None,
        }
    }
}

impl From<XmlError> for AuthXmlError {
    fn from(e: XmlError) -> Self {
        Self::Xml(e)
    }
}

/// What the gateway needs from a client document (§2.3, §2.5). Text is
/// unescaped; absent elements are `None`, empty ones `Some("")`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientAuth {
    pub doc_type: AuthDocType,
    /// `<auth><username>`.
    pub username: Option<String>,
    /// `<auth><password>` (openconnect also sends `answer`, `whichpin` and
    /// `new_password` inputs under this name). Wiped on drop.
    pub password: Option<Zeroizing<String>>,
    /// `<group-select>`: the chosen `group_list` option, or `--authgroup`.
    pub group_select: Option<String>,
    /// `<group-access>`: the URL the user typed (`init` only).
    pub group_access: Option<String>,
    /// `<device-id>`: the platform (`linux-64`, `win`, `apple-ios` …).
    pub device_id: Option<String>,
    /// `<version who="vpn">`, e.g. `v9.01-3`.
    pub client_version: Option<String>,
    /// The content of `<opaque>`, verbatim and still escaped: the client
    /// copies the element back unchanged from our previous response (§2.4).
    pub opaque: Option<String>,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("doc_type", &self.doc_type)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("group_select", &self.group_select)
            .field("group_access", &self.group_access)
            .field("device_id", &self.device_id)
            .field("client_version", &self.client_version)
            .field("opaque", &self.opaque)
            .finish()
    }
}

/// One `<NAME>value</NAME>` under the client's `<auth>`: every input of
/// the form we sent comes back this way, hidden ones included (§2.5).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthAnswer {
    pub name: String,
    /// Wiped on drop: it may be a password or a one-time code.
    pub value: Zeroizing<String>,
}

impl fmt::Debug for AuthAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthAnswer").field("name", &self.name).field("value", &"<redacted>").finish()
    }
}

/// Reads a client `config-auth` document (§2.3, §2.5).
///
/// Tolerates the XML declaration, a byte-order mark, whitespace, comments
/// and elements it does not know (`capabilities`, `host-scan-token` …).
/// Refuses DOCTYPE and entity declarations, unknown entities, documents
/// over [`MAX_DOCUMENT`] and values over [`MAX_VALUE`].
pub fn parse_client_auth(body: &[u8]) -> Result<ClientAuth, AuthXmlError> {
    read(body).map(|(auth, _)| auth)
}

/// Every answer under the client's `<auth>`, in document order, for forms
/// with more than a user name and password (hidden fields, second factors).
/// Same acceptance rules as [`parse_client_auth`]; an answer name repeated
/// is [`AuthXmlError::DuplicateField`].
pub fn parse_auth_answers(body: &[u8]) -> Result<Vec<AuthAnswer>, AuthXmlError> {
    read(body).map(|(_, answers)| answers)
}

/// Where a text element's content goes. `username` and `password` are
/// answers like any other and copied out when stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    GroupSelect,
    GroupAccess,
    DeviceId,
    Version,
    /// Index into the answers.
    Answer(usize),
}

/// A text element being read: its slot, depth and content so far.
struct Capture {
    slot: Slot,
    depth: usize,
    text: Zeroizing<String>,
}

fn read(body: &[u8]) -> Result<(ClientAuth, Vec<AuthAnswer>), AuthXmlError> {
    if body.len() > MAX_DOCUMENT {
        return Err(AuthXmlError::TooLarge);
    }
    let doc = core::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = Reader::new(doc);
    let mut auth = ClientAuth {
        doc_type: AuthDocType::Other,
        username: None,
        password: None,
        group_select: None,
        group_access: None,
        device_id: None,
        client_version: None,
        opaque: None,
    };
    let mut answers: Vec<AuthAnswer> = Vec::new();
    let mut capture: Option<Capture> = None;
    // Depth and content offset of an open <opaque>.
    let mut opaque: Option<(usize, usize)> = None;

    while let Some(event) = reader.next_event()? {
        match event {
            Event::Start { name, attributes } => {
                if capture.is_some() {
                    return Err(AuthXmlError::NestedField);
                }
                let depth = reader.depth();
                if opaque.is_some() {
                    continue;
                }
                let slot = match (reader.path(), name) {
                    ([_], "config-auth") => {
                        let kind = attributes.iter().find(|a| a.name == "type").map(|a| a.raw_value);
                        auth.doc_type = match kind {
                            Some("init") => AuthDocType::Init,
                            Some("auth-reply") => AuthDocType::AuthReply,
                            Some("logout") => AuthDocType::Logout,
                            _ => AuthDocType::Other,
                        };
                        None
                    }
                    ([_], _) => return Err(AuthXmlError::NotConfigAuth),
                    ([_, _], "version") => Some(Slot::Version),
                    ([_, _], "device-id") => Some(Slot::DeviceId),
                    ([_, _], "group-select") => Some(Slot::GroupSelect),
                    ([_, _], "group-access") => Some(Slot::GroupAccess),
                    ([_, _], "opaque") => {
                        if auth.opaque.is_some() {
                            return Err(AuthXmlError::DuplicateField);
                        }
                        opaque = Some((depth, reader.position()));
                        None
                    }
                    ([_, "auth", _], answer) => {
                        if answers.iter().any(|a| a.name == answer) {
                            return Err(AuthXmlError::DuplicateField);
                        }
                        if answers.len() == MAX_ANSWERS {
                            return Err(AuthXmlError::TooManyAnswers);
                        }
                        answers.push(AuthAnswer { name: answer.to_owned(), value: Zeroizing::new(String::new()) });
                        Some(Slot::Answer(answers.len() - 1))
                    }
                    _ => None,
                };
                if let Some(slot) = slot {
                    capture = Some(Capture { slot, depth, text: Zeroizing::new(String::new()) });
                }
            }
            Event::Text(raw) => {
                if let Some(c) = capture.as_mut() {
                    append(&mut c.text, raw, true)?;
                }
            }
            Event::CData(literal) => {
                if let Some(c) = capture.as_mut() {
                    append(&mut c.text, literal, false)?;
                }
            }
            Event::End { .. } => {
                let depth = reader.depth() + 1;
                if let Some((opaque_depth, from)) = opaque {
                    if depth == opaque_depth {
                        let content = reader.slice(from, reader.token_start());
                        if content.len() > MAX_OPAQUE {
                            return Err(AuthXmlError::ValueTooLong);
                        }
                        auth.opaque = Some(content.to_owned());
                        opaque = None;
                    }
                    continue;
                }
                if let Some(c) = capture.take_if(|c| c.depth == depth) {
                    store(&mut auth, &mut answers, c)?;
                }
            }
        }
    }
    Ok((auth, answers))
}

/// Adds `raw` (escaped when `escaped`) to a field, bounded by [`MAX_VALUE`].
/// A field that must grow moves to a new buffer and the old one is wiped
/// on drop, so a password never sits in freed memory unwiped.
fn append(text: &mut Zeroizing<String>, raw: &str, escaped: bool) -> Result<(), AuthXmlError> {
    // Unescaping never lengthens text, so this buffer never reallocates.
    let mut expanded = Zeroizing::new(String::with_capacity(raw.len()));
    if escaped {
        xml::unescape_into(raw, &mut expanded)?;
    } else {
        expanded.push_str(raw);
    }
    let needed = text.len().saturating_add(expanded.len());
    if needed > MAX_VALUE {
        return Err(AuthXmlError::ValueTooLong);
    }
    if needed > text.capacity() {
        let mut grown = Zeroizing::new(String::with_capacity(needed));
        grown.push_str(text);
        grown.push_str(&expanded);
        *text = grown;
    } else {
        text.push_str(&expanded);
    }
    Ok(())
}

/// Moves a finished text field into its place.
fn store(auth: &mut ClientAuth, answers: &mut [AuthAnswer], c: Capture) -> Result<(), AuthXmlError> {
    fn set(field: &mut Option<String>, text: &str) -> Result<(), AuthXmlError> {
        if field.is_some() {
            return Err(AuthXmlError::DuplicateField);
        }
        *field = Some(text.to_owned());
        Ok(())
    }
    match c.slot {
        Slot::Version => set(&mut auth.client_version, &c.text),
        Slot::DeviceId => set(&mut auth.device_id, &c.text),
        Slot::GroupSelect => set(&mut auth.group_select, &c.text),
        Slot::GroupAccess => set(&mut auth.group_access, &c.text),
        Slot::Answer(i) => {
            // `i` was the index of the answer pushed with this capture.
            let answer = answers.get_mut(i).ok_or(AuthXmlError::DuplicateField)?;
            match answer.name.as_str() {
                "username" => auth.username = Some(c.text.as_str().to_owned()),
                "password" => auth.password = Some(c.text.clone()),
                _ => {}
            }
            answer.value = c.text;
            Ok(())
        }
    }
}

/// The kind of a form input (§2.4). openconnect also knows `sso`, which
/// this gateway does not offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    Text,
    /// Not echoed by the client.
    Password,
    /// Not shown; the client sends `value` back unchanged.
    Hidden,
}

impl FieldKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Password => "password",
            Self::Hidden => "hidden",
        }
    }
}

/// One `<input>` of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    pub kind: FieldKind,
    /// Becomes the element name of the answer (§2.5), so it must be an XML
    /// name such as `username`; `answer`, `whichpin` and `new_password`
    /// come back as `password`.
    pub name: String,
    /// The prompt, e.g. `Username:`.
    pub label: String,
    /// The value a hidden field carries; a default for the others.
    pub value: Option<String>,
}

/// An `auth-request` form (§2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthForm {
    /// Shown above the form; empty for none.
    pub message: String,
    /// Shown as an error before the form is presented again
    /// (e.g. `Login failed.`, as ocserv does after a wrong password).
    pub error: Option<String>,
    /// Path the answers are POSTed to (the client's default is `/`).
    pub action: String,
    pub fields: Vec<FormField>,
    /// Auth groups offered in a `group_list` select when non-empty; the
    /// choice comes back as `<group-select>`.
    pub groups: Vec<String>,
}

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// ocserv's server version element; the client does not check it (§2.4).
const SERVER_VERSION: &str = "<version who=\"sg\">0.1(1)</version>\n";

/// The `auth-request` document asking for `form`'s fields (§2.4), laid out
/// byte for byte as ocserv does (Appendix A.1). All text and attribute
/// values are escaped.
///
/// ```text
/// <config-auth client="vpn" type="auth-request">
/// <version who="sg">0.1(1)</version>
/// <auth id="main">
/// <message>…</message><error>…</error>
/// <form method="post" action="/auth">
/// <select name="group_list" label="Group:"><option value="g">g</option></select>
/// <input type="text" name="username" label="Username:" />
/// </form></auth>
/// </config-auth>
/// ```
pub fn auth_request_xml(form: &AuthForm) -> String {
    let mut x = String::with_capacity(512);
    x.push_str(XML_DECLARATION);
    x.push_str("<config-auth client=\"vpn\" type=\"auth-request\">\n");
    x.push_str(SERVER_VERSION);
    x.push_str("<auth id=\"main\">\n");
    if !form.message.is_empty() {
        element(&mut x, "message", &form.message);
    }
    if let Some(error) = &form.error {
        element(&mut x, "error", error);
    }
    x.push_str("<form method=\"post\" action=\"");
    // An empty action would make the client refuse the form (auth.c).
    xml::escape_into(if form.action.is_empty() { "/" } else { &form.action }, &mut x);
    x.push_str("\">\n");
    if !form.groups.is_empty() {
        x.push_str("<select name=\"group_list\" label=\"Group:\">\n");
        for group in &form.groups {
            x.push_str("<option value=\"");
            xml::escape_into(group, &mut x);
            x.push_str("\">");
            xml::escape_into(group, &mut x);
            x.push_str("</option>\n");
        }
        x.push_str("</select>\n");
    }
    for field in &form.fields {
        x.push_str("<input type=\"");
        x.push_str(field.kind.as_str());
        x.push_str("\" name=\"");
        xml::escape_into(&field.name, &mut x);
        x.push_str("\" label=\"");
        xml::escape_into(&field.label, &mut x);
        if let Some(value) = &field.value {
            x.push_str("\" value=\"");
            xml::escape_into(value, &mut x);
        }
        x.push_str("\" />\n");
    }
    // ocserv ends the document without a line break (Content-Length 306
    // for the A.1 user-name form).
    x.push_str("</form></auth>\n</config-auth>");
    x
}

/// The login-complete document (§2.6): `type="complete"` and
/// `<auth id="success">`, with `banner` shown to the user when given;
/// byte for byte ocserv's (Appendix A.1).
///
/// The session cookie is not in here: the caller sends it as
/// `Set-Cookie: webvpn=…` on the same response (§2.6).
pub fn auth_success_xml(banner: Option<&str>) -> String {
    let mut x = String::with_capacity(256);
    x.push_str(XML_DECLARATION);
    x.push_str("<config-auth client=\"vpn\" type=\"complete\">\n");
    x.push_str(SERVER_VERSION);
    x.push_str("<auth id=\"success\">\n<title>SSL VPN Service</title>");
    if let Some(banner) = banner {
        x.push_str("<banner>");
        xml::escape_into(banner, &mut x);
        x.push_str("</banner>");
    }
    x.push_str("</auth></config-auth>\n");
    x
}

/// The document ending a login for good: `<auth id="failure">` with
/// `message` as `<error>` and no form.
///
/// Chosen because openconnect prints the error of a non-success `<auth>`
/// without inputs and stops the login (`handle_auth_form` in auth.c returns
/// `-EPERM`), rather than prompting again. Send it with a 401 and
/// `Connection: close`, as ocserv does after its retry limit (§2.1). To let
/// the user retry instead, send [`auth_request_xml`] with
/// [`AuthForm::error`] set.
pub fn auth_failure_xml(message: &str) -> String {
    let mut x = String::with_capacity(256);
    x.push_str(XML_DECLARATION);
    x.push_str("<config-auth client=\"vpn\" type=\"auth-request\">\n");
    x.push_str(SERVER_VERSION);
    x.push_str("<auth id=\"failure\">\n");
    element(&mut x, "error", message);
    x.push_str("</auth>\n</config-auth>\n");
    x
}

/// `<name>escaped text</name>` and a line break.
fn element(x: &mut String, name: &str, text: &str) {
    x.push('<');
    x.push_str(name);
    x.push('>');
    xml::escape_into(text, x);
    x.push_str("</");
    x.push_str(name);
    x.push_str(">\n");
}

#[cfg(test)]
mod tests;
