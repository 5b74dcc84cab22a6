//! Reading the gateway's HTTP responses on the client side (protocol
//! reference §2.1, §3.2): what a device needs to drive the auth POSTs and
//! the CONNECT over one kept-alive TLS connection.
//!
//! Incremental: [`parse_response`] returns `Ok(None)` until the whole
//! response (head, and body when one is expected) is buffered, then the
//! response and how many bytes it used. Bytes after it belong to the next
//! response or, after a CONNECT, to the CSTP stream.

use core::fmt;

/// Bounds on what is buffered for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Status line plus headers plus the blank line.
    pub max_head: usize,
    pub max_headers: usize,
    pub max_body: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        // ocserv's CONNECT head is ~1.3 KB with 40 headers (Appendix A.1).
        Self { max_head: 16 * 1024, max_headers: 100, max_body: 64 * 1024 }
    }
}

/// Whether the response carries a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// An auth response: the body is delimited by `Content-Length` (§2.1).
    Delimited,
    /// A CONNECT success: the head ends the response, CSTP follows (§3.2).
    HeadOnly,
}

/// The response's HTTP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseVersion {
    Http10,
    Http11,
}

/// Why bytes are not a response we can use. Every one ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// The head grew past [`ResponseLimits::max_head`] without a blank line.
    HeadTooLarge,
    TooManyHeaders,
    /// Not `HTTP/1.x NNN reason` (§2.1).
    BadStatusLine,
    /// A header line without a colon, or not UTF-8.
    BadHeader,
    BadContentLength,
    /// The body is longer than [`ResponseLimits::max_body`].
    BodyTooLarge,
    /// `Transfer-Encoding` (chunked bodies are not read).
    UnsupportedTransferEncoding,
    /// An HTTP/1.1 body with no length and no `Connection: close` (§2.1:
    /// "Cannot receive HTTP 1.0 body without closing connection").
    UndelimitedBody,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HeadTooLarge => "response head too large",
            Self::TooManyHeaders => "too many response headers",
            Self::BadStatusLine => "malformed status line",
            Self::BadHeader => "malformed response header",
            Self::BadContentLength => "malformed Content-Length",
            Self::BodyTooLarge => "response body too large",
            Self::UnsupportedTransferEncoding => "Transfer-Encoding is not supported",
            Self::UndelimitedBody => "HTTP/1.1 body without length or Connection: close",
        })
    }
}

impl std::error::Error for ResponseError {}

/// One parsed response. Header names keep the server's spelling; look-ups
/// ignore case (§2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub version: ResponseVersion,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn headers<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie` as `(name, value)`: the value is the text up to
    /// the first `;` (§2.6); attributes are dropped.
    pub fn set_cookies(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.headers("Set-Cookie").filter_map(|v| {
            let pair = v.split(';').next()?;
            let (name, value) = pair.split_once('=')?;
            Some((name.trim(), value.trim()))
        })
    }

    /// Whether the server keeps the connection for the next request (§2.1).
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("Connection").unwrap_or("");
        let token = |t: &str| connection.split(',').any(|c| c.trim().eq_ignore_ascii_case(t));
        match self.version {
            ResponseVersion::Http11 => !token("close"),
            ResponseVersion::Http10 => token("keep-alive"),
        }
    }
}

/// Parses one response from the start of `buf`: `Ok(None)` while it is
/// incomplete, else the response and the number of bytes it took.
pub fn parse_response(
    buf: &[u8],
    mode: BodyMode,
    limits: &ResponseLimits,
) -> Result<Option<(Response, usize)>, ResponseError> {
    let Some(head_len) = find_head_end(buf) else {
        return if buf.len() > limits.max_head { Err(ResponseError::HeadTooLarge) } else { Ok(None) };
    };
    if head_len > limits.max_head {
        return Err(ResponseError::HeadTooLarge);
    }
    let head = buf.get(..head_len).ok_or(ResponseError::HeadTooLarge)?;
    let head = core::str::from_utf8(head).map_err(|_| ResponseError::BadHeader)?;
    let mut lines = head.split("\r\n").map(|l| l.strip_suffix('\r').unwrap_or(l));
    let (version, status, reason) = status_line(lines.next().unwrap_or(""))?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if headers.len() == limits.max_headers {
            return Err(ResponseError::TooManyHeaders);
        }
        let (name, value) = line.split_once(':').ok_or(ResponseError::BadHeader)?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(ResponseError::BadHeader);
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut response = Response { version, status, reason: reason.to_string(), headers, body: Vec::new() };
    if mode == BodyMode::HeadOnly {
        return Ok(Some((response, head_len)));
    }
    if response.header("Transfer-Encoding").is_some() {
        return Err(ResponseError::UnsupportedTransferEncoding);
    }
    let body_len = match response.header("Content-Length") {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse::<usize>().map_err(|_| ResponseError::BadContentLength)?
        }
        Some(_) => return Err(ResponseError::BadContentLength),
        // A close-delimited body would need the end of the stream; the
        // gateways a device talks to always send a length.
        None => return Err(ResponseError::UndelimitedBody),
    };
    if body_len > limits.max_body {
        return Err(ResponseError::BodyTooLarge);
    }
    let end = head_len.checked_add(body_len).ok_or(ResponseError::BodyTooLarge)?;
    let Some(body) = buf.get(head_len..end) else {
        return Ok(None);
    };
    response.body = body.to_vec();
    Ok(Some((response, end)))
}

/// Length of the head including the blank line, once it is all there.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// `HTTP/1.1 200 OK` → version, status, reason.
fn status_line(line: &str) -> Result<(ResponseVersion, u16, &str), ResponseError> {
    let (version, rest) = line.split_once(' ').ok_or(ResponseError::BadStatusLine)?;
    let version = match version {
        "HTTP/1.1" => ResponseVersion::Http11,
        "HTTP/1.0" => ResponseVersion::Http10,
        _ => return Err(ResponseError::BadStatusLine),
    };
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ResponseError::BadStatusLine);
    }
    let status = code.parse().map_err(|_| ResponseError::BadStatusLine)?;
    Ok((version, status, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUCCESS: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nContent-Type: text/xml\r\n\
Content-Length: 5\r\nX-Transcend-Version: 1\r\n\
Set-Cookie: webvpncontext=SID; Secure; HttpOnly\r\n\
Set-Cookie: webvpn=COOKIE; Secure; HttpOnly\r\n\
Set-Cookie: webvpnc=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure; HttpOnly\r\n\r\nhello";

    #[test]
    fn reads_ocserv_success_with_cookies() {
        let (r, used) = parse_response(SUCCESS, BodyMode::Delimited, &ResponseLimits::default()).unwrap().unwrap();
        assert_eq!(used, SUCCESS.len());
        assert_eq!((r.status, r.reason.as_str(), r.body.as_slice()), (200, "OK", &b"hello"[..]));
        assert!(r.keep_alive());
        let cookies: Vec<_> = r.set_cookies().collect();
        assert_eq!(cookies, [("webvpncontext", "SID"), ("webvpn", "COOKIE"), ("webvpnc", "")]);
        assert_eq!(r.header("content-type"), Some("text/xml"));
    }

    #[test]
    fn incomplete_until_every_byte_is_there() {
        for cut in 0..SUCCESS.len() {
            let got = parse_response(&SUCCESS[..cut], BodyMode::Delimited, &ResponseLimits::default());
            assert_eq!(got, Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn head_only_leaves_the_stream_after_it() {
        let mut buf = b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1434\r\n\r\n".to_vec();
        let head = buf.len();
        buf.extend_from_slice(b"STF\x01\x00\x00\x07\x00");
        let (r, used) = parse_response(&buf, BodyMode::HeadOnly, &ResponseLimits::default()).unwrap().unwrap();
        assert_eq!((used, r.header("X-CSTP-MTU")), (head, Some("1434")));
    }

    #[test]
    fn refuses_what_openconnect_refuses() {
        let l = ResponseLimits::default();
        let p = |b: &[u8]| parse_response(b, BodyMode::Delimited, &l);
        assert_eq!(p(b"HTTP/2 200 OK\r\n\r\n"), Err(ResponseError::BadStatusLine));
        assert_eq!(p(b"HTTP/1.1 2000 OK\r\n\r\n"), Err(ResponseError::BadStatusLine));
        assert_eq!(p(b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n"), Err(ResponseError::BadHeader));
        assert_eq!(p(b"HTTP/1.1 200 OK\r\n\r\n"), Err(ResponseError::UndelimitedBody));
        assert_eq!(p(b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n"), Err(ResponseError::BadContentLength));
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(ResponseError::UnsupportedTransferEncoding)
        );
        assert_eq!(p(&[b'a'; 20 * 1024]), Err(ResponseError::HeadTooLarge));
    }

    #[test]
    fn connection_close_and_http10() {
        let l = ResponseLimits::default();
        let (r, _) = parse_response(
            b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            BodyMode::Delimited,
            &l,
        )
        .unwrap()
        .unwrap();
        assert!(!r.keep_alive());
        let (r, _) =
            parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", BodyMode::Delimited, &l).unwrap().unwrap();
        assert_eq!(r.version, ResponseVersion::Http10);
        assert!(!r.keep_alive());
    }
}
