//! `corridor connect --background [--pid-file F]`, as openconnect's: the
//! client runs on in a child process of its own process group (a ^C at the
//! terminal does not reach it) and the command returns once the tunnel is
//! up, having written the child's pid. The child is this same program with
//! the same arguments, less these two, given the password (or the cookie)
//! on its standard input, and told to say `up` on its standard output when
//! the tunnel is; it logs to the standard error it inherits.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

/// The environment variable that makes the child say `up`.
pub(super) const NOTIFY_ENV: &str = "CORRIDOR_CONNECT_NOTIFY";

/// Starts the child and waits for its tunnel; the exit status is 0 once
/// it is up, else the child's.
pub(super) fn start(options: &connect::Options, pid_file: Option<&Path>) -> ExitCode {
    let fail = |why: String| {
        eprintln!("corridor connect: {why}");
        ExitCode::FAILURE
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("--background: this program's path: {e}")),
    };
    let mut args = child_args(std::env::args_os().skip(1));
    let secret = match (&options.cookie, &options.password) {
        (Some(cookie), _) => {
            args.push("--cookie-on-stdin".into());
            Some(cookie.as_str())
        }
        (None, Some(password)) => {
            args.push("--passwd-on-stdin".into());
            Some(password.as_str())
        }
        (None, None) => None,
    };
    let mut child = match Command::new(exe)
        .args(&args)
        .env(NOTIFY_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("--background: {e}")),
    };
    if let (Some(secret), Some(mut stdin)) = (secret, child.stdin.take()) {
        let _ = stdin.write_all(format!("{secret}\n").as_bytes());
    }
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "up" {
        // It ended before its tunnel came up; its log said why.
        let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(1);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let pid = child.id();
    if let Some(f) = pid_file {
        if let Err(e) = std::fs::write(f, format!("{pid}\n")) {
            return fail(format!("--pid-file {}: {e} (the client runs on as pid {pid})", f.display()));
        }
    }
    eprintln!("corridor connect: tunnel up; running in the background as pid {pid}");
    ExitCode::SUCCESS
}

/// The arguments without `--background` and `--pid-file`, and without the
/// stdin flags (the child gets the one it needs).
fn child_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in args {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        match a.to_str() {
            Some("--background" | "-b" | "--passwd-on-stdin" | "--cookie-on-stdin") => {}
            Some("--pid-file") => skip_next = true,
            Some(s) if s.starts_with("--pid-file=") => {}
            _ => out.push(a),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_child_gets_the_arguments_less_the_backgrounding_ones() {
        let args = ["connect", "-b", "--pid-file", "/run/c.pid", "--user", "alice", "--passwd-on-stdin", "vpn.test"];
        let out = super::child_args(args.iter().map(Into::into));
        assert_eq!(out, ["connect", "--user", "alice", "vpn.test"]);
        let out = super::child_args(["connect", "--pid-file=/x", "--background", "h"].iter().map(Into::into));
        assert_eq!(out, ["connect", "h"]);
    }
}
