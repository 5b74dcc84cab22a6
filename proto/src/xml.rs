//! The XML subset of the auth documents (protocol reference §2.3–§2.6): a
//! bounded, panic-free pull reader and the escaping our writers use. Both
//! halves of the auth exchange go through it: the gateway reading the
//! client's documents and the device reading the gateway's.
//!
//! The documents are a few hundred bytes of elements, attributes and text,
//! so this reader knows exactly that, plus what a generator may add around
//! it (XML declaration, comments, processing instructions, CDATA). Markup
//! declarations (`<!DOCTYPE`, `<!ENTITY` …) are refused outright, and only
//! the five predefined entities and character references are expanded:
//! there is nothing to resolve, so no external-entity (XXE) or expansion
//! ("billion laughs") attack. Nesting, attribute count and name length are
//! bounded; the caller bounds the document.

use core::fmt;

/// Deepest element nesting accepted. The client's documents nest three
/// deep (`config-auth/auth/username`); an `<opaque>` we issued may add a few.
pub(crate) const MAX_DEPTH: usize = 16;

/// Attributes accepted on one element (the client sends at most four).
pub(crate) const MAX_ATTRIBUTES: usize = 16;

/// Bytes in an element or attribute name.
const MAX_NAME: usize = 128;

/// Longest entity or character reference between `&` and `;` (`#x10FFFF`).
const MAX_REFERENCE: usize = 8;

/// Why bytes are not a document this reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XmlError {
    /// Not UTF-8 (the client always declares and sends UTF-8).
    NotUtf8,
    /// The input ended inside markup, before the root element closed, or
    /// without a root element.
    Truncated,
    /// Not well-formed: a bad name or attribute syntax, a stray `<`, an end
    /// tag that does not match, text or a second element outside the root.
    Malformed,
    /// A document type or other markup declaration; entity definitions are
    /// never processed.
    Declaration,
    /// An entity reference other than `&lt; &gt; &amp; &quot; &apos;` or a
    /// character reference to a character XML does not allow.
    BadReference,
    /// Elements nested deeper than the bound.
    TooDeep,
    /// Too many attributes on one element, or one attribute twice.
    BadAttributes,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotUtf8 => "XML is not UTF-8",
            Self::Truncated => "XML document is incomplete",
            Self::Malformed => "XML is not well-formed",
            Self::Declaration => "XML markup declarations (DOCTYPE, ENTITY) are not accepted",
            Self::BadReference => "unknown or invalid XML entity reference",
            Self::TooDeep => "XML elements nested too deeply",
            Self::BadAttributes => "too many or repeated XML attributes",
        })
    }
}

impl std::error::Error for XmlError {}

/// One attribute; the value is still escaped (see [`unescape_into`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attribute<'a> {
    pub(crate) name: &'a str,
    pub(crate) raw_value: &'a str,
}

/// What the reader found next. A self-closing element yields `Start` and
/// then `End`, so callers track nesting one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    Start {
        name: &'a str,
        attributes: Vec<Attribute<'a>>,
    },
    End {
        name: &'a str,
    },
    /// Character data between tags, still escaped.
    Text(&'a str),
    /// The literal content of a CDATA section.
    CData(&'a str),
}

/// Pulls [`Event`]s from a document, checking well-formedness as it goes.
/// Comments, processing instructions and the XML declaration are skipped.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    doc: &'a str,
    pos: usize,
    /// Byte offset where the markup of the last event began.
    token_start: usize,
    open: Vec<&'a str>,
    /// End event owed for a self-closing element.
    pending_end: bool,
    root_seen: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(doc: &'a str) -> Self {
        let doc = doc.strip_prefix('\u{feff}').unwrap_or(doc);
        Self { doc, pos: 0, token_start: 0, open: Vec::new(), pending_end: false, root_seen: false }
    }

    /// Names of the open elements, root first.
    pub(crate) fn path(&self) -> &[&'a str] {
        &self.open
    }

    pub(crate) fn depth(&self) -> usize {
        self.open.len()
    }

    /// Byte offset just past the last event.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Byte offset where the last event's markup began (for an `End`, the
    /// `<` of the end tag; for the `End` of a self-closing element, the end
    /// of its tag).
    pub(crate) fn token_start(&self) -> usize {
        self.token_start
    }

    /// The document text between two offsets the reader reported.
    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a str {
        self.doc.get(from..to).unwrap_or_default()
    }

    fn rest(&self) -> &'a str {
        self.doc.get(self.pos..).unwrap_or_default()
    }

    /// Moves to where `rest` (a suffix of the document) starts.
    fn advance_to(&mut self, rest: &'a str) {
        self.pos = self.doc.len().saturating_sub(rest.len());
    }

    /// The next event, `Ok(None)` at a complete end of document.
    pub(crate) fn next_event(&mut self) -> Result<Option<Event<'a>>, XmlError> {
        if self.pending_end {
            self.pending_end = false;
            self.token_start = self.pos;
            let name = self.open.pop().ok_or(XmlError::Malformed)?;
            return Ok(Some(Event::End { name }));
        }
        loop {
            self.token_start = self.pos;
            let rest = self.rest();
            if rest.is_empty() {
                return if self.root_seen && self.open.is_empty() { Ok(None) } else { Err(XmlError::Truncated) };
            }
            let Some(markup) = rest.strip_prefix('<') else {
                let end = rest.find('<').unwrap_or(rest.len());
                let text = rest.get(..end).unwrap_or_default();
                self.advance_to(rest.get(end..).unwrap_or_default());
                // XML 1.0 §2.2: a NUL or another C0 control is no character
                // of a document, written out or as a reference.
                if !text.chars().all(is_xml_char) {
                    return Err(XmlError::Malformed);
                }
                if !self.open.is_empty() {
                    return Ok(Some(Event::Text(text)));
                }
                if !text.chars().all(is_space) {
                    return Err(XmlError::Malformed);
                }
                continue;
            };
            if let Some(body) = markup.strip_prefix("!--") {
                let end = body.find("-->").ok_or(XmlError::Truncated)?;
                self.advance_to(body.get(end + 3..).unwrap_or_default());
                continue;
            }
            if let Some(body) = markup.strip_prefix("![CDATA[") {
                if self.open.is_empty() {
                    return Err(XmlError::Malformed);
                }
                let end = body.find("]]>").ok_or(XmlError::Truncated)?;
                let literal = body.get(..end).unwrap_or_default();
                if !literal.chars().all(is_xml_char) {
                    return Err(XmlError::Malformed);
                }
                self.advance_to(body.get(end + 3..).unwrap_or_default());
                return Ok(Some(Event::CData(literal)));
            }
            if markup.starts_with('!') {
                return Err(XmlError::Declaration);
            }
            if let Some(body) = markup.strip_prefix('?') {
                let end = body.find("?>").ok_or(XmlError::Truncated)?;
                self.advance_to(body.get(end + 2..).unwrap_or_default());
                continue;
            }
            if let Some(body) = markup.strip_prefix('/') {
                return self.end_tag(body).map(Some);
            }
            return self.start_tag(markup).map(Some);
        }
    }

    /// `name S? '>'` after `</`.
    fn end_tag(&mut self, body: &'a str) -> Result<Event<'a>, XmlError> {
        let (name, after) = split_name(body)?;
        let after = after.trim_start_matches(is_space);
        let after =
            after.strip_prefix('>').ok_or(if after.is_empty() { XmlError::Truncated } else { XmlError::Malformed })?;
        if self.open.last() != Some(&name) {
            return Err(XmlError::Malformed);
        }
        self.open.pop();
        self.advance_to(after);
        Ok(Event::End { name })
    }

    /// `name (S attr)* S? ('>' | '/>')` after `<`.
    fn start_tag(&mut self, body: &'a str) -> Result<Event<'a>, XmlError> {
        if self.open.is_empty() && self.root_seen {
            return Err(XmlError::Malformed);
        }
        if self.open.len() == MAX_DEPTH {
            return Err(XmlError::TooDeep);
        }
        let (name, mut cur) = split_name(body)?;
        let mut attributes: Vec<Attribute<'a>> = Vec::new();
        let empty = loop {
            let trimmed = cur.trim_start_matches(is_space);
            let spaced = trimmed.len() != cur.len();
            cur = trimmed;
            if let Some(after) = cur.strip_prefix("/>") {
                cur = after;
                break true;
            }
            if let Some(after) = cur.strip_prefix('>') {
                cur = after;
                break false;
            }
            if cur.is_empty() {
                return Err(XmlError::Truncated);
            }
            if !spaced {
                return Err(XmlError::Malformed);
            }
            let (attribute, after) = split_attribute(cur)?;
            if attributes.len() == MAX_ATTRIBUTES || attributes.iter().any(|a| a.name == attribute.name) {
                return Err(XmlError::BadAttributes);
            }
            attributes.push(attribute);
            cur = after;
        };
        self.advance_to(cur);
        self.root_seen = true;
        self.open.push(name);
        self.pending_end = empty;
        Ok(Event::Start { name, attributes })
    }
}

/// Splits a name off the front of `s` (XML 1.0 §2.3, simplified: ASCII
/// letters, digits, `-_.:` and any non-ASCII character XML allows; not
/// starting with a digit, `-` or `.`).
fn split_name(s: &str) -> Result<(&str, &str), XmlError> {
    let len = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
    let name = s.get(..len).unwrap_or_default();
    let first_ok = name.chars().next().is_some_and(|c| !(c.is_ascii_digit() || c == '-' || c == '.'));
    if !first_ok || len > MAX_NAME {
        return Err(if s.is_empty() { XmlError::Truncated } else { XmlError::Malformed });
    }
    Ok((name, s.get(len..).unwrap_or_default()))
}

/// `name S? '=' S? ('"' value '"' | "'" value "'")`.
fn split_attribute(s: &str) -> Result<(Attribute<'_>, &str), XmlError> {
    let (name, after) = split_name(s)?;
    let after = after.trim_start_matches(is_space);
    let after = after.strip_prefix('=').ok_or(XmlError::Malformed)?;
    let after = after.trim_start_matches(is_space);
    let mut chars = after.chars();
    let quote = chars.next().ok_or(XmlError::Truncated)?;
    if quote != '"' && quote != '\'' {
        return Err(XmlError::Malformed);
    }
    let value_and_rest = chars.as_str();
    let end = value_and_rest.find(quote).ok_or(XmlError::Truncated)?;
    let raw_value = value_and_rest.get(..end).unwrap_or_default();
    if raw_value.contains('<') || !raw_value.chars().all(is_xml_char) {
        return Err(XmlError::Malformed);
    }
    Ok((Attribute { name, raw_value }, value_and_rest.get(end + 1..).unwrap_or_default()))
}

/// Whether `s` can be an element name: an answer's name becomes one in the
/// client's `auth-reply` (§2.5), where nothing can escape it.
pub(crate) fn is_name(s: &str) -> bool {
    split_name(s).is_ok_and(|(_, rest)| rest.is_empty())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') || (!c.is_ascii() && is_xml_char(c))
}

/// XML 1.0 §2.3 `S`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// XML 1.0 §2.2 `Char` (Rust's `char` already excludes surrogates).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
}

/// Appends `raw` to `out` with references expanded (XML 1.0 §4.1, §4.6):
/// the five predefined entities and `&#N;` / `&#xH;`. Never grows `out`
/// beyond `raw.len()` bytes of new content, so a caller that reserves that
/// much leaves no reallocated copies of a secret behind.
pub(crate) fn unescape_into(raw: &str, out: &mut String) -> Result<(), XmlError> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let semi = after.find(';').filter(|&n| n <= MAX_REFERENCE).ok_or(XmlError::BadReference)?;
        let c = match after.get(..semi).unwrap_or_default() {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            reference => character_reference(reference).ok_or(XmlError::BadReference)?,
        };
        out.push(c);
        rest = after.get(semi + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(())
}

/// `#` decimal or `#x` hex digits, naming a character XML allows.
fn character_reference(reference: &str) -> Option<char> {
    let (digits, radix) = match reference.strip_prefix("#x") {
        Some(hex) => (hex, 16),
        None => (reference.strip_prefix('#')?, 10),
    };
    // from_str_radix would also take a sign.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let code = u32::from_str_radix(digits, radix).ok()?;
    char::from_u32(code).filter(|&c| is_xml_char(c))
}

/// Appends `s` escaped for use as text or as a double-quoted attribute
/// value. Line breaks and tabs become character references, so attribute
/// value normalisation cannot change them; characters XML cannot carry at
/// all (most C0 controls) are dropped.
pub(crate) fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// The bytes [`escape_into`] appends for `s`, so a writer holding a secret
/// can size its buffer once and never leave a reallocated copy behind.
pub(crate) fn escaped_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '&' | '\n' | '\r' => 5,
            '<' | '>' | '\t' => 4,
            '"' | '\'' => 6,
            c if is_xml_char(c) => c.len_utf8(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(doc: &str) -> Result<Vec<Event<'_>>, XmlError> {
        let mut r = Reader::new(doc);
        let mut out = Vec::new();
        while let Some(e) = r.next_event()? {
            out.push(e);
        }
        Ok(out)
    }

    fn unescape(raw: &str) -> Result<String, XmlError> {
        let mut s = String::new();
        unescape_into(raw, &mut s).map(|()| s)
    }

    #[test]
    fn elements_attributes_text() {
        let ev = events("<?xml version=\"1.0\"?>\n<a x=\"1\" y='2'><b/>t&amp;<![CDATA[<c>]]><!-- c --></a>\n").unwrap();
        assert_eq!(
            ev,
            [
                Event::Start {
                    name: "a",
                    attributes: vec![Attribute { name: "x", raw_value: "1" }, Attribute { name: "y", raw_value: "2" }]
                },
                Event::Start { name: "b", attributes: vec![] },
                Event::End { name: "b" },
                Event::Text("t&amp;"),
                Event::CData("<c>"),
                Event::End { name: "a" },
            ]
        );
    }

    /// Found by the `gateway_auth` fuzz target: a NUL written out in a text
    /// field was read into the user name (`&#0;` was already refused), and
    /// the gateway's next form could not carry it back.
    #[test]
    fn raw_control_characters_are_refused_as_references_are() {
        for doc in ["<a>x\0y</a>", "<a><![CDATA[\u{1}]]></a>", "<a x=\"\u{1b}\"/>", "<a>\u{fffe}</a>"] {
            assert_eq!(events(doc), Err(XmlError::Malformed), "{doc:?}");
        }
        assert!(events("<a x=\"\t\">\r\n\u{80}</a>").is_ok(), "tab, line ends and C1 are XML characters");
    }

    /// Found by the `gateway_auth` fuzz target: `<us.rna\u{ffff}ma/>` was
    /// read as an answer whose name no form of ours can write (the escaper
    /// drops U+FFFF), so the name asked for and the name read differed.
    #[test]
    fn a_name_with_a_noncharacter_is_refused() {
        for doc in ["<a\u{ffff}/>", "<a><b\u{fffe}c/></a>", "<a x\u{ffff}=\"1\"/>"] {
            assert_eq!(events(doc), Err(XmlError::Malformed), "{doc:?}");
        }
        assert!(is_name("n\u{e9}\u{fffd}") && !is_name("n\u{ffff}"));
    }

    #[test]
    fn byte_order_mark_and_whitespace_in_tags() {
        let ev = events("\u{feff}<a  x = \"1\"\n/><!---->").unwrap();
        assert_eq!(ev.len(), 2);
    }

    #[test]
    fn declarations_are_refused() {
        for doc in [
            "<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>",
            "<?xml version=\"1.0\"?><!DOCTYPE a><a/>",
            "<a><!ENTITY x \"y\"></a>",
        ] {
            assert_eq!(events(doc), Err(XmlError::Declaration), "{doc}");
        }
    }

    #[test]
    fn malformed_documents() {
        use XmlError::*;
        for (doc, want) in [
            ("", Truncated),
            ("   ", Truncated),
            ("<a>", Truncated),
            ("<a", Truncated),
            ("<a x=\"1", Truncated),
            ("<a><!-- x", Truncated),
            ("<a></b>", Malformed),
            ("<a/><b/>", Malformed),
            ("x<a/>", Malformed),
            ("<a/>x", Malformed),
            ("<1a/>", Malformed),
            ("<a x=1/>", Malformed),
            ("<a x=\"1\"y=\"2\"/>", Malformed),
            ("<a x=\"<\"/>", Malformed),
            ("<a x/>", Malformed),
            ("< a/>", Malformed),
            ("<![CDATA[x]]><a/>", Malformed),
            ("<a x=\"1\" x=\"2\"/>", BadAttributes),
        ] {
            assert_eq!(events(doc), Err(want), "{doc:?}");
        }
    }

    #[test]
    fn depth_and_attribute_bounds() {
        let deep = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(events(&deep).is_ok());
        let deeper = "<a>".repeat(MAX_DEPTH + 1);
        assert_eq!(events(&deeper), Err(XmlError::TooDeep));
        let attrs: String = (0..=MAX_ATTRIBUTES).map(|i| format!(" a{i}=\"\"")).collect();
        assert_eq!(events(&format!("<a{attrs}/>")), Err(XmlError::BadAttributes));
        let long_name = "n".repeat(MAX_NAME + 1);
        assert_eq!(events(&format!("<{long_name}/>")), Err(XmlError::Malformed));
    }

    #[test]
    fn references() {
        assert_eq!(unescape("a&lt;b&gt;c&amp;d&quot;e&apos;f").unwrap(), "a<b>c&d\"e'f");
        assert_eq!(unescape("&#65;&#x42;&#x1F600;").unwrap(), "AB\u{1f600}");
        for bad in
            ["&nbsp;", "&#0;", "&#x1;", "&#xD800;", "&#x110000;", "&#+65;", "&#x;", "&", "&lt", "&averyverylongname;"]
        {
            assert_eq!(unescape(bad), Err(XmlError::BadReference), "{bad}");
        }
    }

    #[test]
    fn escape_round_trips() {
        let original = "<tag a=\"1\"> & 'x'\ttab\nline\r\u{e9}";
        let mut escaped = String::new();
        escape_into(original, &mut escaped);
        assert!(!escaped.contains(['<', '>', '"', '\'', '\n', '\r', '\t']));
        assert_eq!(unescape(&escaped).unwrap(), original);
        assert_eq!(escaped_len(original), escaped.len());
        let mut dropped = String::new();
        escape_into("a\u{0}b\u{1b}c\u{ffff}", &mut dropped);
        assert_eq!(dropped, "abc");
        assert_eq!(escaped_len("a\u{0}b\u{1b}c\u{ffff}"), 3);
    }

    #[test]
    fn element_names() {
        for good in ["username", "group-select", "a.b", "x:y", "_1", "\u{e9}t\u{e9}"] {
            assert!(is_name(good), "{good}");
        }
        for bad in ["", "1a", "-a", "a b", "a>", "a/", "x><evil", &"n".repeat(MAX_NAME + 1)] {
            assert!(!is_name(bad), "{bad}");
        }
    }
}
