//! The client's side of the XML auth documents (protocol reference
//! §2.3–§2.6): writing `init` and `auth-reply`, reading the gateway's
//! `auth-request` forms and the `success` document.
//!
//! The reader follows what openconnect's `auth.c` looks for rather than a
//! schema: the first `<auth>` with an `id`, its `<form>`'s `action` and
//! `<input>`s, `<message>`/`<error>`/`<banner>` text, a `<session-token>`,
//! and a document-level `<opaque>` copied back verbatim.

use core::fmt;

/// Largest document read (ocserv's are under 400 bytes, Appendix A.1).
pub const MAX_DOCUMENT: usize = 64 * 1024;

/// What openconnect 9.01 says about itself (§2.3); gateways do not check it.
const CLIENT_VERSION: &str = "v9.01-3";

/// Why a gateway document is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthXmlError {
    TooLarge,
    NotUtf8,
    /// A `<` without its `>`, or an attribute without a quoted value.
    Malformed,
    /// "XML response has no auth node" (§2.4).
    NoAuthNode,
    /// A form whose `method` is not POST (§2.4).
    NotPost,
    /// An `<input>` without a `name` (§2.4).
    InputWithoutName,
}

impl fmt::Display for AuthXmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "auth document too large",
            Self::NotUtf8 => "auth document is not UTF-8",
            Self::Malformed => "malformed auth document",
            Self::NoAuthNode => "XML response has no auth node",
            Self::NotPost => "auth form method is not POST",
            Self::InputWithoutName => "auth form input without a name",
        })
    }
}

impl std::error::Error for AuthXmlError {}

/// The kind of a form input (§2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    Text,
    Password,
    /// Sent back with its `value` unchanged.
    Hidden,
    /// `sso` and anything else a device cannot answer.
    Other(String),
}

/// One `<input>` the gateway asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub kind: InputKind,
    pub name: String,
    pub value: Option<String>,
}

/// An `auth-request` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// Where the answers are POSTed; `/` when absent (§2.4).
    pub action: String,
    pub inputs: Vec<Input>,
}

/// What one gateway auth document says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerAuth {
    /// The `<auth id>`: `success`, or the name of a form.
    pub id: String,
    pub message: Option<String>,
    pub error: Option<String>,
    pub banner: Option<String>,
    pub form: Option<Form>,
    /// `<session-token>`: the cookie when it is not in `Set-Cookie` (§2.6).
    pub session_token: Option<String>,
    /// The document-level `<opaque …>…</opaque>`, verbatim (§2.4).
    pub opaque: Option<String>,
}

impl ServerAuth {
    pub fn is_success(&self) -> bool {
        self.id == "success"
    }
}

/// Reads a gateway auth document.
pub fn parse_server_auth(body: &[u8]) -> Result<ServerAuth, AuthXmlError> {
    if body.len() > MAX_DOCUMENT {
        return Err(AuthXmlError::TooLarge);
    }
    let doc = core::str::from_utf8(body).map_err(|_| AuthXmlError::NotUtf8)?;
    let mut out = ServerAuth::default();
    let mut in_auth = false;
    let mut seen_auth = false;
    // The element whose text is being collected, and the text so far.
    let mut text_of: Option<(&str, String)> = None;
    let mut rest = doc;
    while let Some(lt) = rest.find('<') {
        let (text, tail) = rest.split_at(lt);
        if let Some((_, t)) = text_of.as_mut() {
            t.push_str(&unescape(text));
        }
        let gt = tail.find('>').ok_or(AuthXmlError::Malformed)?;
        let tag = tail.get(1..gt).ok_or(AuthXmlError::Malformed)?;
        let tag_start = doc.len() - tail.len();
        rest = tail.get(gt + 1..).unwrap_or("");
        if tag.starts_with('?') || tag.starts_with('!') {
            if let Some(comment) = tag.strip_prefix("!--") {
                // A comment may hold a '>': skip to its real end.
                if !comment.ends_with("--") {
                    let end = rest.find("-->").ok_or(AuthXmlError::Malformed)?;
                    rest = rest.get(end + 3..).unwrap_or("");
                }
            }
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            if let Some((open, t)) = text_of.take() {
                if open != name {
                    text_of = Some((open, t));
                } else {
                    let slot = match name {
                        "message" => &mut out.message,
                        "error" => &mut out.error,
                        "banner" => &mut out.banner,
                        _ => &mut out.session_token,
                    };
                    *slot = Some(t.trim().to_string());
                }
            }
            if name == "auth" {
                in_auth = false;
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.strip_suffix('/').unwrap_or(tag);
        let (name, attrs) = tag.split_once(|c: char| c.is_ascii_whitespace()).unwrap_or((tag, ""));
        let attrs = parse_attrs(attrs)?;
        let attr = |key: &str| attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
        match name {
            "auth" if !seen_auth => {
                if let Some(id) = attr("id") {
                    out.id = id;
                    seen_auth = true;
                    in_auth = !self_closing;
                }
            }
            "message" | "error" | "banner" if in_auth && !self_closing => text_of = Some((name, String::new())),
            "session-token" if !self_closing => text_of = Some((name, String::new())),
            "form" if in_auth => {
                let method = attr("method").unwrap_or_else(|| "post".into());
                if !method.eq_ignore_ascii_case("post") {
                    return Err(AuthXmlError::NotPost);
                }
                out.form = Some(Form { action: attr("action").unwrap_or_else(|| "/".into()), inputs: Vec::new() });
            }
            "input" if in_auth => {
                let kind = match attr("type").as_deref().unwrap_or("text") {
                    "text" => InputKind::Text,
                    "password" => InputKind::Password,
                    "hidden" => InputKind::Hidden,
                    "submit" | "reset" => continue,
                    other => InputKind::Other(other.to_string()),
                };
                let name = attr("name").ok_or(AuthXmlError::InputWithoutName)?;
                if let Some(form) = out.form.as_mut() {
                    form.inputs.push(Input { kind, name, value: attr("value") });
                }
            }
            "opaque" if !in_auth && out.opaque.is_none() => {
                let end = if self_closing {
                    Some(doc.len() - rest.len())
                } else {
                    rest.find("</opaque>").map(|e| doc.len() - rest.len() + e + "</opaque>".len())
                };
                let end = end.ok_or(AuthXmlError::Malformed)?;
                out.opaque = doc.get(tag_start..end).map(str::to_string);
            }
            _ => {}
        }
    }
    if !seen_auth {
        return Err(AuthXmlError::NoAuthNode);
    }
    Ok(out)
}

/// `key="value" key2='v'` → pairs, values unescaped.
fn parse_attrs(mut s: &str) -> Result<Vec<(&str, String)>, AuthXmlError> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Ok(out);
        }
        let (key, rest) = s.split_once('=').ok_or(AuthXmlError::Malformed)?;
        let rest = rest.trim_start();
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'').ok_or(AuthXmlError::Malformed)?;
        let rest = rest.get(1..).ok_or(AuthXmlError::Malformed)?;
        let end = rest.find(quote).ok_or(AuthXmlError::Malformed)?;
        out.push((key.trim(), unescape(rest.get(..end).unwrap_or(""))));
        s = rest.get(end + 1..).unwrap_or("");
    }
}

/// The five XML entities and numeric references; anything else is kept.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or(""));
        let tail = rest.get(amp..).unwrap_or("");
        let Some(semi) = tail.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = tail.get(1..).unwrap_or("");
            continue;
        };
        let entity = tail.get(1..semi).unwrap_or("");
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = tail.get(semi + 1..).unwrap_or("");
            }
            None => {
                out.push('&');
                rest = tail.get(1..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn preamble(kind: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"{kind}\" \
         aggregate-auth-version=\"2\"><version who=\"vpn\">{CLIENT_VERSION}</version>\
         <device-id>linux-64</device-id><capabilities><auth-method>single-sign-on-v2</auth-method>\
         <auth-method>single-sign-on-external-browser</auth-method></capabilities>"
    )
}

/// The `init` document openconnect 9.01 sends first (§2.3), with
/// `group_access` the URL the user typed (`https://vpn.test/`).
pub fn init_xml(group_access: &str) -> String {
    let mut out = preamble("init");
    out.push_str(&format!("<group-access>{}</group-access></config-auth>", escape(group_access)));
    out
}

/// An `auth-reply` (§2.5): each answer as `<NAME>value</NAME>` under
/// `<auth>`, the gateway's `<opaque>` copied back first.
pub fn auth_reply_xml(answers: &[(&str, &str)], opaque: Option<&str>) -> String {
    let mut out = preamble("auth-reply");
    if let Some(o) = opaque {
        out.push_str(o);
    }
    out.push_str("<auth>");
    for (name, value) in answers {
        // openconnect renames these to `password` (§2.5).
        let name = match *name {
            "answer" | "whichpin" | "new_password" => "password",
            n => n,
        };
        out.push_str(&format!("<{name}>{}</{name}>", escape(value)));
    }
    out.push_str("</auth></config-auth>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Appendix A.1: ocserv's two-step password login.
    const OCSERV_USERNAME: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="auth-request">
<version who="sg">0.1(1)</version>
<auth id="main">
<message>Please enter your username.</message>
<form method="post" action="/auth">
<input type="text" name="username" label="Username:" />
</form></auth>
</config-auth>"#;

    const OCSERV_SUCCESS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="complete">
<version who="sg">0.1(1)</version>
<auth id="success">
<title>SSL VPN Service</title><banner>Welcome to the test gateway</banner></auth></config-auth>"#;

    #[test]
    fn reads_ocserv_username_form() {
        let a = parse_server_auth(OCSERV_USERNAME.as_bytes()).unwrap();
        assert_eq!(a.id, "main");
        assert!(!a.is_success());
        assert_eq!(a.message.as_deref(), Some("Please enter your username."));
        let form = a.form.unwrap();
        assert_eq!(form.action, "/auth");
        assert_eq!(form.inputs, [Input { kind: InputKind::Text, name: "username".into(), value: None }]);
    }

    #[test]
    fn reads_ocserv_success() {
        let a = parse_server_auth(OCSERV_SUCCESS.as_bytes()).unwrap();
        assert!(a.is_success());
        assert_eq!(a.banner.as_deref(), Some("Welcome to the test gateway"));
        assert_eq!(a.form, None);
    }

    #[test]
    fn error_hidden_opaque_and_token() {
        let doc = r#"<config-auth><opaque is-for="sg"><x>1 &amp; 2</x></opaque><auth id="main">
<error>Login &quot;failed&quot;.</error><form action="/a"><input type="hidden" name="tok" value="a&amp;b"/>
<input type="submit" name="go"/><input type="password" name="password"/></form></auth>
<session-token>T0K</session-token></config-auth>"#;
        let a = parse_server_auth(doc.as_bytes()).unwrap();
        assert_eq!(a.error.as_deref(), Some("Login \"failed\"."));
        assert_eq!(a.opaque.as_deref(), Some(r#"<opaque is-for="sg"><x>1 &amp; 2</x></opaque>"#));
        assert_eq!(a.session_token.as_deref(), Some("T0K"));
        let inputs = a.form.unwrap().inputs;
        assert_eq!(inputs.len(), 2);
        assert_eq!((inputs[0].kind.clone(), inputs[0].value.as_deref()), (InputKind::Hidden, Some("a&b")));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_server_auth(b"<config-auth></config-auth>"), Err(AuthXmlError::NoAuthNode));
        assert_eq!(parse_server_auth(b"<auth id=\"x\"><form method=\"get\">"), Err(AuthXmlError::NotPost));
        assert_eq!(parse_server_auth(b"<auth id=\"x\""), Err(AuthXmlError::Malformed));
        assert_eq!(parse_server_auth(b"<auth id=x>"), Err(AuthXmlError::Malformed));
        assert_eq!(
            parse_server_auth(b"<auth id=\"x\"><form><input type=\"text\"/>"),
            Err(AuthXmlError::InputWithoutName)
        );
    }

    #[test]
    fn documents_match_openconnect() {
        // Appendix A.1, byte for byte after the declaration line.
        let init = init_xml("https://vpn.test/");
        assert!(init.ends_with(
            "<config-auth client=\"vpn\" type=\"init\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version><device-id>linux-64</device-id><capabilities><auth-method>single-sign-on-v2</auth-method><auth-method>single-sign-on-external-browser</auth-method></capabilities><group-access>https://vpn.test/</group-access></config-auth>"
        ));
        let reply = auth_reply_xml(&[("username", "a<b")], None);
        assert!(reply.ends_with("</capabilities><auth><username>a&lt;b</username></auth></config-auth>"), "{reply}");
    }
}
