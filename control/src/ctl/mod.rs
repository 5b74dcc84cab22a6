//! The `corridor ctl` protocol, spoken over the gateway's unix socket
//! (`[admin] ctl_socket`): one JSON request per connection, on one line
//! (at most [`MAX_REQUEST`] bytes, newline-terminated, whole within
//! [`REQUEST_DEADLINE`]), one JSON response, then the gateway closes.
//!
//! ```text
//! {"command":"kill","session":"s3","reason":"lost laptop"}
//! {"result":"killed","sessions":["s3"],"reason":"lost laptop"}
//! ```
//!
//! Requests are [`Request`], responses [`Response`]; both sides use these
//! types (the gateway's admin thread, [`crate::admin`], and the client,
//! [`client`]). Everything here is pure, so the request parser is fuzzed
//! (`fuzz/fuzz_targets/ctl_request.rs`) apart from the socket.

pub mod client;
mod table;
mod views;

use std::net::IpAddr;
use std::time::Duration;

use proto::grant::SessionId;
use serde::{Deserialize, Serialize};

pub use views::{shard_problems, source_of, BanView, Channel, RelayView, SessionView, ShardView, Status, SHARD_STALL};

/// Where the gateway listens when `[admin] ctl_socket` is not set.
pub const DEFAULT_SOCKET: &str = "/run/corridor/ctl.sock";
/// The most bytes of one request, its newline included.
pub const MAX_REQUEST: usize = 4096;
/// How long a whole request may take to arrive.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(1);
/// The longest `reason` a kill may carry (it goes into the log line).
pub const MAX_REASON: usize = 200;

/// What a ctl client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The gateway's state: version, uptime, shards, engines, relays, counts.
    Status,
    /// Every session.
    Sessions,
    /// One session by id (`s3` or `3`), or every session of a user.
    Show { target: String },
    /// Ends a session and revokes its cookie.
    Kill {
        session: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Ends every session of a user and revokes their cookies.
    KillUser {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The ban table: sources with points, and those refused at accept.
    Bans,
    /// Lifts the ban on an address's source (its /64 for IPv6) and forgets its score.
    Unban { address: IpAddr },
    /// Rereads the configuration, the key and the password file, as SIGHUP
    /// does (`docs/operations.md`).
    Reload,
    /// Stops taking logins and closes every tunnel without DISCONNECT, so
    /// devices reconnect (through a relay: to another gateway of the name).
    Drain,
}

impl Request {
    /// Whether it changes the gateway's state (logged with the peer's
    /// credentials).
    pub fn changes_state(&self) -> bool {
        matches!(
            self,
            Request::Kill { .. } | Request::KillUser { .. } | Request::Unban { .. } | Request::Reload | Request::Drain
        )
    }

    /// The request as the client sends it: one line of JSON.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Why a request was not carried out; the client's exit status follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such session, user or ban (exit status 1).
    NotFound,
    /// The request was not understood (exit status 2).
    BadRequest,
    /// The gateway could not answer now: its control loop did not answer
    /// in time, or too many requests are in flight (exit status 1).
    Unavailable,
    /// The client could not reach the gateway (exit status 2; only the
    /// client writes this one).
    Unreachable,
    /// A reload was refused; the running configuration is unchanged (exit
    /// status 1).
    Refused,
}

/// What the gateway answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Status(Status),
    Sessions {
        sessions: Vec<SessionView>,
    },
    /// The sessions a kill ended.
    Killed {
        sessions: Vec<String>,
        reason: String,
    },
    Bans {
        bans: Vec<BanView>,
    },
    /// `source` is what the ban table keys (the address, or its /64).
    Unbanned {
        address: IpAddr,
        source: String,
    },
    /// What a reload changed.
    Reloaded {
        summary: String,
    },
    /// The gateway drains; the sessions it closed.
    Drained {
        sessions: usize,
    },
    Error {
        kind: ErrorKind,
        error: String,
    },
}

impl Response {
    pub fn error(kind: ErrorKind, error: impl Into<String>) -> Self {
        Response::Error { kind, error: error.into() }
    }

    /// One line of JSON, as the gateway writes it.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"result":"error","kind":"unavailable","error":"the response could not be written"}"#.to_owned()
        });
        s.push('\n');
        s
    }
}

/// Where a request being read stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A whole line is there: the request is `buf[..len]` (the newline left out).
    Line(usize),
    /// No newline yet, and room for more.
    Partial,
    /// [`MAX_REQUEST`] bytes and no newline.
    TooLong,
}

/// Whether `buf`, what a client sent so far, holds a whole request.
pub fn framing(buf: &[u8]) -> Framing {
    match buf.iter().position(|b| *b == b'\n') {
        Some(i) if i < MAX_REQUEST => Framing::Line(i),
        Some(_) => Framing::TooLong,
        None if buf.len() >= MAX_REQUEST => Framing::TooLong,
        None => Framing::Partial,
    }
}

/// The request in `line` (the bytes before the newline), checked: ids are
/// session ids, users could be users, a reason is short and printable.
/// The error is what the client is told.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "the request is not UTF-8".to_owned())?;
    let request: Request = serde_json::from_str(text).map_err(|e| format!("not a ctl request: {e}"))?;
    match &request {
        Request::Show { target } if target.is_empty() || target.len() > 64 => {
            return Err("`target` must be a session id or a user name".into())
        }
        Request::Kill { session, .. } if parse_session_id(session).is_none() => {
            return Err(format!("`{}` is not a session id (s3, or 3)", session.escape_debug()))
        }
        Request::KillUser { user, .. } if !crate::passwd::valid_user(user) => {
            return Err(format!("`{}` is not a user name", user.escape_debug()))
        }
        _ => {}
    }
    if let Request::Kill { reason: Some(r), .. } | Request::KillUser { reason: Some(r), .. } = &request {
        check_reason(r)?;
    }
    Ok(request)
}

/// A kill's reason goes into a log line: short, and no control characters.
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(format!("the reason must be at most {MAX_REASON} printable characters"));
    }
    Ok(())
}

/// A session id as the gateway prints it (`s3`) or bare (`3`).
pub fn parse_session_id(s: &str) -> Option<SessionId> {
    let digits = s.strip_prefix('s').unwrap_or(s);
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(SessionId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_line() {
        let all = [
            Request::Status,
            Request::Sessions,
            Request::Show { target: "alice".into() },
            Request::Kill { session: "s3".into(), reason: Some("lost laptop".into()) },
            Request::Kill { session: "4".into(), reason: None },
            Request::KillUser { user: "bob".into(), reason: None },
            Request::Bans,
            Request::Unban { address: "2001:db8::1".parse().expect("v6") },
        ];
        for r in all {
            let line = r.to_line();
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "{line}");
            assert_eq!(framing(line.as_bytes()), Framing::Line(line.len() - 1));
            assert_eq!(parse_request(line.trim_end().as_bytes()), Ok(r), "{line}");
        }
        assert_eq!(Request::Sessions.to_line(), "{\"command\":\"sessions\"}\n");
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let bad = |s: &str| parse_request(s.as_bytes()).expect_err(s);
        assert!(bad("GET /sessions HTTP/1.1").contains("not a ctl request"));
        assert!(bad(r#"{"command":"reboot"}"#).contains("reboot"));
        assert!(bad(r#"{"command":"kill","session":"s1","resaon":"typo"}"#).contains("resaon"));
        assert!(bad(r#"{"command":"kill"}"#).contains("session"));
        assert!(bad(r#"{"command":"kill","session":"alice"}"#).contains("not a session id"));
        assert!(bad(r#"{"command":"kill_user","user":"a b"}"#).contains("not a user name"));
        assert!(bad(r#"{"command":"kill","session":"s1","reason":"a\u001b[2Jb"}"#).contains("printable"));
        assert!(bad(r#"{"command":"unban","address":"10.0.0.300"}"#).contains("not a ctl request"));
        assert!(bad("\u{ff}").contains("not a ctl request"));
        assert_eq!(parse_request(b"\xff\xfe"), Err("the request is not UTF-8".into()));
    }

    #[test]
    fn a_request_ends_at_its_newline_within_the_limit() {
        assert_eq!(framing(b""), Framing::Partial);
        assert_eq!(framing(b"{\"command\":"), Framing::Partial);
        assert_eq!(framing(b"{}\n{}"), Framing::Line(2));
        assert_eq!(framing(&[b' '; MAX_REQUEST]), Framing::TooLong);
        let mut long = vec![b' '; MAX_REQUEST];
        long.push(b'\n');
        assert_eq!(framing(&long), Framing::TooLong, "the newline must be within the limit");
        long.truncate(MAX_REQUEST - 1);
        long.push(b'\n');
        assert_eq!(framing(&long), Framing::Line(MAX_REQUEST - 1));
    }

    #[test]
    fn session_ids_are_printed_or_bare_digits() {
        assert_eq!(parse_session_id("s12"), Some(SessionId(12)));
        assert_eq!(parse_session_id("12"), Some(SessionId(12)));
        for bad in ["", "s", "ss1", "s+1", "-1", "s1 ", "99999999999", "s4294967296"] {
            assert_eq!(parse_session_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let all = [
            Response::Killed { sessions: vec!["s1".into(), "s2".into()], reason: "test".into() },
            Response::Bans {
                bans: vec![BanView { source: "10.0.0.9".into(), score: 80, banned: true, remaining_s: Some(870) }],
            },
            Response::Unbanned { address: "10.0.0.9".parse().expect("v4"), source: "10.0.0.9".into() },
            Response::error(ErrorKind::NotFound, "no session s9"),
            Response::Sessions { sessions: Vec::new() },
        ];
        for r in all {
            let line = r.to_line();
            let back: Response = serde_json::from_str(&line).expect(&line);
            assert_eq!(back, r);
        }
        assert_eq!(
            Response::error(ErrorKind::BadRequest, "x").to_line(),
            "{\"result\":\"error\",\"kind\":\"bad_request\",\"error\":\"x\"}\n"
        );
    }
}
