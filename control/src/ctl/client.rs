//! The client side of `corridor ctl`: connect to the socket, send one
//! request, read the response, say it to a person (tables) or a program
//! (`--json`: the response as the gateway wrote it, always one JSON
//! object, errors included).
//!
//! Exit status: 0 done; 1 the command failed (no such session, nothing to
//! unban, the gateway could not answer in time); 2 a usage mistake or no
//! gateway on the socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{table, ErrorKind, Request, Response};

/// How long the client waits for the gateway's answer (it answers within
/// a few seconds, an error included).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a response that is read.
const MAX_RESPONSE: u64 = 16 << 20;

/// What to print and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

/// Asks the gateway listening on `socket` and says what it answered.
pub fn run(socket: &Path, json: bool, request: &Request) -> Outcome {
    let response = exchange(socket, request).unwrap_or_else(|(kind, error)| Response::error(kind, error));
    outcome(&response, json)
}

/// A usage mistake found before anything was sent, said the same way.
pub fn usage_error(message: &str, json: bool) -> Outcome {
    outcome(&Response::error(ErrorKind::BadRequest, message), json)
}

/// One request and its response; the `Err` is the error the client
/// reports when it cannot reach the gateway or understand it.
fn exchange(socket: &Path, request: &Request) -> Result<Response, (ErrorKind, String)> {
    let mut stream = UnixStream::connect(socket).map_err(|e| (ErrorKind::Unreachable, unreachable(socket, &e)))?;
    let io =
        |e: std::io::Error| (ErrorKind::Unavailable, format!("talking to the gateway on {}: {e}", socket.display()));
    stream.set_write_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
    stream.write_all(request.to_line().as_bytes()).map_err(io)?;
    let mut text = String::new();
    stream.take(MAX_RESPONSE).read_to_string(&mut text).map_err(io)?;
    serde_json::from_str(&text).map_err(|e| {
        let problem = format!("the answer on {} is not a ctl response ({e}): {:?}", socket.display(), text.trim_end());
        (ErrorKind::Unavailable, problem)
    })
}

fn unreachable(socket: &Path, e: &std::io::Error) -> String {
    let hint = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "the socket is for root and the gateway's group: run as one of them".to_owned()
        }
        _ => format!(
            "is the gateway running? is `[admin] ctl_socket` in its configuration this path? (another path: --socket PATH; \
             the default is {})",
            super::DEFAULT_SOCKET
        ),
    };
    format!("cannot connect to {}: {e}; {hint}", socket.display())
}

fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound | ErrorKind::Unavailable | ErrorKind::Refused => 1,
        ErrorKind::BadRequest | ErrorKind::Unreachable => 2,
    }
}

fn outcome(response: &Response, json: bool) -> Outcome {
    let code = match response {
        Response::Error { kind, .. } => exit_code(*kind),
        _ => 0,
    };
    if json {
        return Outcome { stdout: response.to_line(), stderr: String::new(), code };
    }
    let stdout = match response {
        Response::Status(s) => table::status(s),
        Response::Sessions { sessions } => table::sessions(sessions),
        Response::Killed { sessions, reason } => format!("killed {} (reason: {reason})\n", sessions.join(", ")),
        Response::Bans { bans } => table::bans(bans),
        Response::Unbanned { address, source } => format!("unbanned {source} ({address})\n"),
        Response::Reloaded { summary } => format!("reloaded: {summary}\n"),
        Response::Drained { sessions } => {
            format!("draining: {sessions} sessions closed to reconnect elsewhere; no new logins\n")
        }
        Response::Error { error, .. } => {
            return Outcome { stdout: String::new(), stderr: format!("corridor ctl: {error}\n"), code };
        }
    };
    Outcome { stdout, stderr: String::new(), code }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_gateway_is_exit_2_naming_the_socket_and_the_fix() {
        let path = Path::new("/nonexistent/corridor/ctl.sock");
        let o = run(path, false, &Request::Status);
        assert_eq!(o.code, 2);
        assert!(o.stdout.is_empty());
        assert!(o.stderr.contains("/nonexistent/corridor/ctl.sock") && o.stderr.contains("ctl_socket"), "{}", o.stderr);
        let o = run(path, true, &Request::Status);
        assert_eq!(o.code, 2);
        let v: Response = serde_json::from_str(&o.stdout).expect("--json is JSON even then");
        assert!(matches!(v, Response::Error { kind: ErrorKind::Unreachable, .. }), "{v:?}");
    }

    #[test]
    fn a_failed_command_is_exit_1_and_a_bad_one_exit_2() {
        let o = outcome(&Response::error(ErrorKind::NotFound, "no session s9"), false);
        assert_eq!((o.code, o.stderr.as_str()), (1, "corridor ctl: no session s9\n"));
        assert_eq!(outcome(&Response::error(ErrorKind::BadRequest, "x"), true).code, 2);
        let o = outcome(&Response::Killed { sessions: vec!["s1".into()], reason: "test".into() }, false);
        assert_eq!((o.code, o.stdout.as_str()), (0, "killed s1 (reason: test)\n"));
    }

    /// A stand-in gateway on a socket: reads one line, answers `answer`.
    #[test]
    fn one_request_one_response_over_the_socket() {
        let dir = std::env::temp_dir().join(format!("corridor-ctl-client-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("ctl.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while s.read(&mut b).expect("read") == 1 && b[0] != b'\n' {
                line.push(b[0]);
            }
            let answer = Response::Sessions { sessions: Vec::new() };
            s.write_all(answer.to_line().as_bytes()).expect("write");
            String::from_utf8(line).expect("utf-8")
        });
        let o = run(&path, false, &Request::Sessions);
        assert_eq!(server.join().expect("server"), r#"{"command":"sessions"}"#);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!((o.code, o.stdout.as_str()), (0, "no sessions\n"));
    }
}
