//! The bounded HTTP/1.1 subset spoken before the tunnel starts: the auth
//! POSTs and the CONNECT (protocol reference §2.1, §3.1), and the responses
//! to them.
//!
//! The parser is built for one peer, the openconnect client, and for hostile
//! bytes from anyone else: it reads from a caller-owned buffer, never panics,
//! borrows instead of copying, and refuses anything it does not need —
//! chunked bodies, folded headers, bare LF line ends, heads and bodies over
//! [`Limits`]. Feed it the bytes received so far; it answers
//! [`Parsed::Partial`] until a whole request is there, then the request and
//! how many bytes it used, so pipelined requests and the CSTP frames after a
//! CONNECT stay in the buffer for the next reader.

use core::fmt;

/// Size bounds for one request. Everything the client sends in the auth phase
/// is far below the defaults: the largest observed head (A.1, with the STRAP
/// keys) is under 1 KiB and the XML bodies under 1 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus headers plus the blank line, in bytes.
    pub max_head: usize,
    /// The Content-Length we accept.
    pub max_body: usize,
    /// Header lines per request.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_head: 16 * 1024, max_body: 64 * 1024, max_headers: 64 }
    }
}

/// The protocol version of a request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    Http10,
    Http11,
}

/// Why a request was refused. Every variant is fatal for the connection: the
/// stream position is lost, so answer with [`HttpError::status`] and close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpError {
    /// No end of head within `Limits::max_head` bytes.
    HeadTooLarge,
    /// Content-Length above `Limits::max_body`.
    BodyTooLarge,
    /// More than `Limits::max_headers` header lines.
    TooManyHeaders,
    /// The first line is not `METHOD SP target SP HTTP/x.y`.
    BadRequestLine,
    /// A header line without a colon, with a name that is not a token, with
    /// control characters, obsolete line folding or invalid UTF-8.
    BadHeader,
    /// Content-Length repeated, not decimal digits, or non-zero on CONNECT.
    BadContentLength,
    /// Any Transfer-Encoding: openconnect never sends one (§2.2), and
    /// refusing it removes request smuggling through length disagreements.
    UnsupportedTransferEncoding,
    /// An HTTP version other than 1.0 and 1.1.
    UnsupportedVersion,
}

impl HttpError {
    /// The status code to answer with before closing.
    pub fn status(&self) -> u16 {
        match self {
            Self::HeadTooLarge | Self::TooManyHeaders => 431,
            Self::BodyTooLarge => 413,
            Self::BadRequestLine | Self::BadHeader | Self::BadContentLength => 400,
            Self::UnsupportedTransferEncoding => 501,
            Self::UnsupportedVersion => 505,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HeadTooLarge => "request head too large",
            Self::BodyTooLarge => "request body too large",
            Self::TooManyHeaders => "too many request headers",
            Self::BadRequestLine => "malformed request line",
            Self::BadHeader => "malformed request header",
            Self::BadContentLength => "invalid Content-Length",
            Self::UnsupportedTransferEncoding => "Transfer-Encoding is not supported",
            Self::UnsupportedVersion => "unsupported HTTP version",
        })
    }
}

impl std::error::Error for HttpError {}

/// One parsed request, borrowing the caller's buffer.
#[derive(Clone)]
pub struct Request<'a> {
    /// Case-sensitive token, e.g. `POST`, `CONNECT`.
    pub method: &'a str,
    /// The request target as sent (`/`, `/auth`, `/CSCOSSLC/tunnel`).
    pub path: &'a str,
    pub version: HttpVersion,
    /// Exactly Content-Length bytes; empty without one and for CONNECT.
    pub body: &'a [u8],
    /// Name and value (optional whitespace trimmed), in arrival order.
    headers: Vec<(&'a str, &'a str)>,
}

impl<'a> Request<'a> {
    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers(name).next()
    }

    /// Every header called `name` (ASCII case-insensitive), in arrival order.
    pub fn headers<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, v)| v)
    }

    /// The value of cookie `name` from the `Cookie:` headers (`a=b; c=d`,
    /// RFC 6265 §5.4). Cookie names are case-sensitive; the value is returned
    /// as sent, quotes included. The first occurrence wins.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.headers("Cookie")
            .flat_map(|line| line.split(';'))
            .filter_map(|pair| pair.trim_matches(is_ows).split_once('='))
            .find(|(n, _)| n.trim_matches(is_ows) == name)
            .map(|(_, v)| v.trim_matches(is_ows))
    }

    /// Whether the connection stays open after the response (RFC 9112 §9.3):
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`. openconnect reuses the connection (§2.1).
    pub fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.headers("Connection")
                .flat_map(|v| v.split(','))
                .any(|t| t.trim_matches(is_ows).eq_ignore_ascii_case(token))
        };
        match self.version {
            HttpVersion::Http11 => !has("close"),
            HttpVersion::Http10 => has("keep-alive"),
        }
    }
}

/// Header values carry the session cookie and the DTLS master secret, so
/// `Debug` shows names only.
impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("version", &self.version)
            .field("headers", &self.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The outcome of offering the bytes received so far.
#[derive(Debug, Clone)]
pub enum Parsed<'a> {
    /// A whole request; `consumed` bytes of the buffer belong to it (leading
    /// blank lines included). What follows is the next request or, after a
    /// CONNECT, the first CSTP frame.
    Complete { request: Request<'a>, consumed: usize },
    /// Need more bytes; offer the same buffer again, extended.
    Partial,
}

const CRLF: &[u8] = b"\r\n";

/// Parses one request from the start of `buf` (RFC 9112 §2–§6, narrowed to
/// what §2.1 and §3.1 need).
///
/// The body is delimited by Content-Length only; CONNECT never has one (its
/// 200 turns the stream into CSTP, RFC 9110 §9.3.6). Errors are reported as
/// soon as the offending line is complete, so garbage is refused without
/// waiting for `max_head` bytes.
pub fn parse_request<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, HttpError> {
    // RFC 9112 §2.2: ignore empty lines before the request line.
    let mut start = 0;
    while buf.get(start..).is_some_and(|rest| rest.starts_with(CRLF)) {
        start += CRLF.len();
        if start >= limits.max_head {
            return Err(HttpError::HeadTooLarge);
        }
    }
    let rest = buf.get(start..).unwrap_or_default();
    // Never look further than the head may reach.
    let window = rest.get(..limits.max_head.saturating_sub(start)).unwrap_or(rest);

    let Some(line_end) = find(window, CRLF) else {
        return if rest.len() >= limits.max_head.saturating_sub(start) {
            Err(HttpError::HeadTooLarge)
        } else {
            Ok(Parsed::Partial)
        };
    };
    let (method, path, version) = request_line(window.get(..line_end).unwrap_or_default())?;

    let Some(at) = find(window, b"\r\n\r\n") else {
        // Check the complete header lines now, so a bad one fails early.
        let complete = window.get(..rfind(window, CRLF).unwrap_or(line_end)).unwrap_or_default();
        header_lines(complete.get(line_end..).unwrap_or_default(), limits)?;
        return if rest.len() >= limits.max_head.saturating_sub(start) {
            Err(HttpError::HeadTooLarge)
        } else {
            Ok(Parsed::Partial)
        };
    };
    // Header lines sit between the request line's CRLF and the blank line.
    let head_len = at + 4;
    let header_block = window.get(line_end..at).unwrap_or_default();
    let headers = header_lines(header_block, limits)?;

    if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("Transfer-Encoding")) {
        return Err(HttpError::UnsupportedTransferEncoding);
    }
    let mut lengths = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("Content-Length"));
    let body_len = match (lengths.next(), lengths.next()) {
        (None, _) => 0,
        (Some((_, v)), None) => content_length(v, limits)?,
        (Some(_), Some(_)) => return Err(HttpError::BadContentLength),
    };
    if method == "CONNECT" && body_len != 0 {
        return Err(HttpError::BadContentLength);
    }

    let body_start = start + head_len;
    let Some(body) = buf.get(body_start..body_start + body_len) else {
        return Ok(Parsed::Partial);
    };
    Ok(Parsed::Complete { request: Request { method, path, version, body, headers }, consumed: body_start + body_len })
}

/// `method SP request-target SP HTTP-version` (RFC 9112 §3), single spaces.
fn request_line(line: &[u8]) -> Result<(&str, &str, HttpVersion), HttpError> {
    let line = core::str::from_utf8(line).map_err(|_| HttpError::BadRequestLine)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(path), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequestLine);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(HttpError::BadRequestLine);
    }
    if path.is_empty() || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HttpError::BadRequestLine);
    }
    let version = match version {
        "HTTP/1.1" => HttpVersion::Http11,
        "HTTP/1.0" => HttpVersion::Http10,
        v => {
            let digits = v.strip_prefix("HTTP/").map(str::as_bytes);
            return Err(match digits {
                Some([major, b'.', minor]) if major.is_ascii_digit() && minor.is_ascii_digit() => {
                    HttpError::UnsupportedVersion
                }
                _ => HttpError::BadRequestLine,
            });
        }
    };
    Ok((method, path, version))
}

/// Parses `CRLF name: value` repeated; `block` starts with the CRLF that
/// ends the previous line and holds no final blank line.
fn header_lines<'a>(block: &'a [u8], limits: &Limits) -> Result<Vec<(&'a str, &'a str)>, HttpError> {
    let mut headers = Vec::new();
    let mut rest = block;
    while let Some(after) = rest.strip_prefix(CRLF) {
        let end = find(after, CRLF).unwrap_or(after.len());
        let line = after.get(..end).unwrap_or_default();
        rest = after.get(end..).unwrap_or_default();
        if headers.len() == limits.max_headers {
            return Err(HttpError::TooManyHeaders);
        }
        headers.push(header_line(line)?);
    }
    if rest.is_empty() {
        Ok(headers)
    } else {
        Err(HttpError::BadHeader)
    }
}

/// `field-name ":" OWS field-value OWS` (RFC 9112 §5). A leading space would
/// be obsolete line folding and whitespace before the colon must be refused
/// (§5.1); both fail the token check on the name.
fn header_line(line: &[u8]) -> Result<(&str, &str), HttpError> {
    let colon = line.iter().position(|&b| b == b':').ok_or(HttpError::BadHeader)?;
    let name = line.get(..colon).unwrap_or_default();
    let value = line.get(colon + 1..).unwrap_or_default();
    if name.is_empty() || !name.iter().copied().all(is_tchar) {
        return Err(HttpError::BadHeader);
    }
    // Field values: visible characters, SP, HTAB and non-ASCII text; no CTLs
    // (a bare CR or LF among them would smuggle a line).
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HttpError::BadHeader);
    }
    let name = core::str::from_utf8(name).map_err(|_| HttpError::BadHeader)?;
    let value = core::str::from_utf8(value).map_err(|_| HttpError::BadHeader)?;
    Ok((name, value.trim_matches(is_ows)))
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6); a number above the limit is
/// "too large" however many digits it has.
fn content_length(value: &str, limits: &Limits) -> Result<usize, HttpError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::BadContentLength);
    }
    let mut n: usize = 0;
    for d in value.bytes() {
        n = n.checked_mul(10).and_then(|n| n.checked_add(usize::from(d - b'0'))).ok_or(HttpError::BodyTooLarge)?;
    }
    if n > limits.max_body {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(n)
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.6.3 optional whitespace.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// Writes a complete response: status line, `headers` in the given order and
/// case, `Content-Length` (always — the client needs it to keep the
/// connection, §2.1 and trap 16; a Content-Length among `headers` is
/// dropped in favour of the real one), a blank line and `body`.
///
/// Header names, values and the reason must not contain CR or LF; that is a
/// caller bug (debug assertion), and in release builds control characters
/// are stripped so a value can never start a new header line.
pub fn write_response(out: &mut Vec<u8>, status: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) {
    debug_assert!((100..=999).contains(&status), "status code {status} out of range");
    debug_assert!(!has_line_break(reason), "CR/LF in reason phrase");
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    push_sanitized(out, reason);
    out.extend_from_slice(CRLF);
    for &(name, value) in headers {
        debug_assert!(!has_line_break(name) && !has_line_break(value), "CR/LF in header {name:?}");
        if name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        push_header(out, name, value);
    }
    push_header(out, "Content-Length", &body.len().to_string());
    out.extend_from_slice(CRLF);
    out.extend_from_slice(body);
}

/// `name: value CRLF`, with control characters (HTAB kept in values)
/// removed.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    push_sanitized(out, name);
    out.extend_from_slice(b": ");
    push_sanitized(out, value);
    out.extend_from_slice(CRLF);
}

fn push_sanitized(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t'));
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        match parse_request(buf, &Limits::default()) {
            Ok(Parsed::Complete { request, consumed }) => (request, consumed),
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    fn error(buf: &[u8]) -> HttpError {
        error_with(buf, &Limits::default())
    }

    fn error_with(buf: &[u8], limits: &Limits) -> HttpError {
        match parse_request(buf, limits) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn post_with_body() {
        let buf = b"POST /auth HTTP/1.1\r\nHost: vpn.test\r\nContent-Length: 5\r\n\r\nhello";
        let (r, consumed) = complete(buf);
        assert_eq!((r.method, r.path, r.version, r.body), ("POST", "/auth", HttpVersion::Http11, &b"hello"[..]));
        assert_eq!(consumed, buf.len());
        assert_eq!(r.header("host"), Some("vpn.test"));
    }

    #[test]
    fn header_names_are_case_insensitive_and_values_trimmed() {
        let (r, _) = complete(b"GET / HTTP/1.1\r\nX-CSTP-MTU:\t 1390 \t\r\nx-cstp-mtu: 1400\r\n\r\n");
        assert_eq!(r.header("X-Cstp-Mtu"), Some("1390"));
        assert_eq!(r.headers("X-CSTP-MTU").collect::<Vec<_>>(), ["1390", "1400"]);
        assert_eq!(r.header("X-CSTP-Base-MTU"), None);
    }

    #[test]
    fn empty_header_value_is_allowed() {
        let (r, _) = complete(b"GET / HTTP/1.1\r\nX-Empty:\r\nX-Spaces:   \r\n\r\n");
        assert_eq!(r.header("x-empty"), Some(""));
        assert_eq!(r.header("x-spaces"), Some(""));
    }

    #[test]
    fn cookies_across_headers() {
        let (r, _) =
            complete(b"GET / HTTP/1.1\r\nCookie: webvpncontext=abc; webvpn=TOKEN==\r\nCookie:  other=1;x=y \r\n\r\n");
        assert_eq!(r.cookie("webvpn"), Some("TOKEN=="));
        assert_eq!(r.cookie("webvpncontext"), Some("abc"));
        assert_eq!(r.cookie("x"), Some("y"));
        assert_eq!(r.cookie("other"), Some("1"));
        assert_eq!(r.cookie("WEBVPN"), None, "cookie names are case-sensitive");
        assert_eq!(r.cookie("missing"), None);
    }

    #[test]
    fn cookie_first_occurrence_wins_and_junk_is_skipped() {
        let (r, _) = complete(b"GET / HTTP/1.1\r\nCookie: junk; webvpn=; webvpn=second\r\n\r\n");
        assert_eq!(r.cookie("webvpn"), Some(""));
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |s: &[u8]| complete(s).0.keep_alive();
        assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn pipelined_requests() {
        let buf = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\n\r\nCONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n\r\nSTF\x01";
        let (a, n1) = complete(buf);
        assert_eq!((a.method, a.body), ("POST", &b"abc"[..]));
        let (b, n2) = complete(&buf[n1..]);
        assert_eq!((b.method, b.path, b.body), ("GET", "/x", &b""[..]));
        let (c, n3) = complete(&buf[n1 + n2..]);
        assert_eq!(c.method, "CONNECT");
        assert_eq!(&buf[n1 + n2 + n3..], b"STF\x01", "bytes after CONNECT are left for the CSTP reader");
    }

    #[test]
    fn leading_blank_lines_are_skipped_and_counted() {
        let buf = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let (r, consumed) = complete(buf);
        assert_eq!(r.method, "GET");
        assert_eq!(consumed, buf.len());
    }

    #[test]
    fn every_prefix_is_partial() {
        let buf = b"POST /auth HTTP/1.1\r\nHost: vpn.test\r\nContent-Length: 4\r\n\r\nbody";
        for n in 0..buf.len() {
            assert!(matches!(parse_request(&buf[..n], &Limits::default()), Ok(Parsed::Partial)), "prefix of {n} bytes");
        }
        assert!(matches!(parse_request(buf, &Limits::default()), Ok(Parsed::Complete { .. })));
    }

    #[test]
    fn head_too_large() {
        let limits = Limits { max_head: 64, ..Limits::default() };
        let mut buf = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        buf.extend(std::iter::repeat_n(b'0', 100));
        assert_eq!(error_with(&buf, &limits), HttpError::HeadTooLarge);
        // A request line alone that never ends.
        assert_eq!(error_with(&[b'A'; 64], &limits), HttpError::HeadTooLarge);
        assert!(matches!(parse_request(&[b'A'; 63], &limits), Ok(Parsed::Partial)));
        // Complete, but the blank line lies beyond the limit.
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(error_with(&buf, &limits), HttpError::HeadTooLarge);
        // Exactly at the limit is fine.
        let exact = b"GET / HTTP/1.1\r\nX-Pad: 0000000000000000000000000000000000000\r\n\r\n";
        assert_eq!(exact.len(), 64);
        assert!(matches!(parse_request(exact, &limits), Ok(Parsed::Complete { .. })));
        assert_eq!(error_with(&b"\r\n".repeat(40), &limits), HttpError::HeadTooLarge);
    }

    #[test]
    fn body_too_large_before_the_body_arrives() {
        let limits = Limits { max_body: 10, ..Limits::default() };
        assert_eq!(error_with(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", &limits), HttpError::BodyTooLarge);
        assert_eq!(
            error(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n"),
            HttpError::BodyTooLarge
        );
        // At the limit: waits for the body.
        assert!(matches!(
            parse_request(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n", &limits),
            Ok(Parsed::Partial)
        ));
    }

    #[test]
    fn too_many_headers() {
        let limits = Limits { max_headers: 2, ..Limits::default() };
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\n\r\n", &limits),
            Ok(Parsed::Complete { .. })
        ));
        assert_eq!(error_with(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n", &limits), HttpError::TooManyHeaders);
        // Also before the head is complete.
        assert_eq!(error_with(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n", &limits), HttpError::TooManyHeaders);
    }

    #[test]
    fn bad_request_lines() {
        for line in [
            &b"GET /  HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET /\r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET /a\x7fb HTTP/1.1\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"GET / HTTP/11\r\n\r\n",
            b"\xff / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\n\r\n",
        ] {
            assert_eq!(error(line), HttpError::BadRequestLine, "{:?}", String::from_utf8_lossy(line));
        }
        // Refused as soon as the line is complete, without waiting for the head.
        assert_eq!(error(b"GARBAGE\r\n"), HttpError::BadRequestLine);
    }

    #[test]
    fn unsupported_versions() {
        assert_eq!(error(b"GET / HTTP/2.0\r\n\r\n"), HttpError::UnsupportedVersion);
        assert_eq!(error(b"GET / HTTP/0.9\r\n\r\n"), HttpError::UnsupportedVersion);
        assert_eq!(error(b"GET / HTTP/1.2\r\n\r\n").status(), 505);
        let (r, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(r.version, HttpVersion::Http10);
    }

    #[test]
    fn bad_headers() {
        for head in [
            &b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nName : v\r\n\r\n",
            b"GET / HTTP/1.1\r\n: v\r\n\r\n",
            b"GET / HTTP/1.1\r\nN\xc3\xa4me: v\r\n\r\n",
            b"GET / HTTP/1.1\r\nNa\x01me: v\r\n\r\n",
            b"GET / HTTP/1.1\r\nName: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nName: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nName: a\nb: c\r\n\r\n",
            b"GET / HTTP/1.1\r\nName: \xff\r\n\r\n",
            b"GET / HTTP/1.1\r\nName: v\r\n folded\r\n\r\n",
        ] {
            assert_eq!(error(head), HttpError::BadHeader, "{:?}", String::from_utf8_lossy(head));
        }
        // Refused before the head is complete.
        assert_eq!(error(b"GET / HTTP/1.1\r\nNoColon\r\n"), HttpError::BadHeader);
        // Non-ASCII UTF-8 in a value is text, not a control character.
        let (r, _) = complete("GET / HTTP/1.1\r\nUser-Agent: caf\u{e9}\r\n\r\n".as_bytes());
        assert_eq!(r.header("user-agent"), Some("caf\u{e9}"));
    }

    #[test]
    fn bad_content_lengths() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n",
            b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nContent-Length: 4\r\n\r\nSTF\x01",
        ] {
            assert_eq!(error(head), HttpError::BadContentLength, "{:?}", String::from_utf8_lossy(head));
        }
        let (r, _) = complete(b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(r.body.is_empty());
        let (r, _) = complete(b"POST / HTTP/1.1\r\nContent-Length: 002\r\n\r\nab");
        assert_eq!(r.body, b"ab");
    }

    #[test]
    fn transfer_encoding_is_refused() {
        assert_eq!(
            error(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            HttpError::UnsupportedTransferEncoding
        );
        assert_eq!(
            error(b"POST / HTTP/1.1\r\nContent-Length: 3\r\ntransfer-encoding: identity\r\n\r\nabc"),
            HttpError::UnsupportedTransferEncoding
        );
    }

    #[test]
    fn statuses_and_messages() {
        use HttpError::*;
        let all = [
            HeadTooLarge,
            BodyTooLarge,
            TooManyHeaders,
            BadRequestLine,
            BadHeader,
            BadContentLength,
            UnsupportedTransferEncoding,
            UnsupportedVersion,
        ];
        let statuses: Vec<u16> = all.iter().map(HttpError::status).collect();
        assert_eq!(statuses, [431, 413, 431, 400, 400, 400, 501, 505]);
        assert!(all.iter().all(|e| !e.to_string().is_empty()));
    }

    #[test]
    fn debug_hides_header_values() {
        let (r, _) = complete(b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=SECRET\r\n\r\n");
        let shown = format!("{r:?}");
        assert!(shown.contains("Cookie") && !shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn response_bytes() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            200,
            "OK",
            &[("Connection", "Keep-Alive"), ("Content-Type", "text/xml"), ("X-Transcend-Version", "1")],
            b"<x/>",
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nContent-Type: text/xml\r\nX-Transcend-Version: 1\r\nContent-Length: 4\r\n\r\n<x/>"
        );
    }

    #[test]
    fn response_always_has_one_true_content_length() {
        let mut out = Vec::new();
        write_response(&mut out, 401, "Unauthorized", &[("content-length", "99")], b"");
        assert_eq!(out, b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "CR/LF in header"))]
    fn response_values_cannot_inject_lines() {
        let mut out = Vec::new();
        write_response(&mut out, 200, "OK", &[("X-A", "a\r\nSet-Cookie: evil=1")], b"");
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nX-A: aSet-Cookie: evil=1\r\nContent-Length: 0\r\n\r\n");
    }
}
