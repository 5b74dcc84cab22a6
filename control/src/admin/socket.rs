//! The ctl socket's file: where it may be (checked with the configuration),
//! how it is made at start (its directory, a stale socket, its mode), and
//! who is on the other end of a connection (`SO_PEERCRED`).

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crate::config::ConfigError;

const FIELD: &str = "admin.ctl_socket";
/// The socket's mode: the owner (root) and the service's group.
pub const SOCKET_MODE: u32 = 0o660;
/// The mode of a directory made for it.
pub const DIR_MODE: u32 = 0o750;
/// The longest path a unix socket address holds (`sun_path` less its NUL).
const MAX_PATH: usize = 107;

fn err(problem: String, fix: impl Into<String>) -> ConfigError {
    ConfigError::new(FIELD, problem, fix)
}

/// What the configuration check can tell before start: the path fits a
/// socket address, its parent (where it exists) is a directory, and what
/// is at the path (if anything) is a socket.
pub fn check_path(path: &Path) -> Result<(), ConfigError> {
    let len = path.as_os_str().len();
    if len == 0 || len > MAX_PATH {
        return Err(err(
            format!("`{}` is {len} bytes; a unix socket path holds 1..={MAX_PATH}", path.display()),
            "use a shorter path, e.g. /run/corridor/ctl.sock",
        ));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(m) = std::fs::metadata(parent) {
        if !m.is_dir() {
            return Err(err(
                format!("its parent {} is not a directory", parent.display()),
                "put the socket in a directory (the gateway creates a missing one, mode 750)",
            ));
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            Err(err(format!("{} exists and is not a socket", path.display()), "remove it, or choose another path"))
        }
        _ => Ok(()),
    }
}

/// Makes the socket: its directory (mode 750) if missing, a stale socket
/// (one nobody answers on, left by a gateway that died) removed, then
/// bound with mode 660. A socket another process still answers on is
/// refused: two gateways must not share one.
pub fn bind(path: &Path) -> Result<UnixListener, ConfigError> {
    check_path(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(parent).map_err(|e| {
            err(format!("cannot create its directory {}: {e}", parent.display()), "create it, or choose another path")
        })?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        match UnixStream::connect(path) {
            Ok(_) => {
                return Err(err(
                    format!("another process answers on {} (a gateway already running?)", path.display()),
                    "stop it, or give this gateway its own [admin] ctl_socket",
                ))
            }
            Err(_) => {
                tracing::info!(path = %path.display(), "removing a stale ctl socket");
                std::fs::remove_file(path).map_err(|e| {
                    err(format!("cannot remove the stale socket {}: {e}", path.display()), "remove it by hand")
                })?;
            }
        }
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| err(format!("cannot bind {}: {e}", path.display()), "check the directory's permissions"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| err(format!("cannot chmod {}: {e}", path.display()), "check the directory's permissions"))?;
    Ok(listener)
}

/// Who is on the other end of a ctl connection, as the kernel says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

/// The peer's credentials (`SO_PEERCRED`): those of the process that
/// connected, taken at `connect`.
pub fn peer_cred(stream: &impl AsFd) -> io::Result<PeerCred> {
    let c = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)?;
    Ok(PeerCred { uid: c.uid(), gid: c.gid(), pid: c.pid() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("corridor-ctl-socket-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_socket_is_made_with_its_directory_and_modes_and_a_stale_one_replaced() {
        let d = dir("make");
        let path = d.join("run/ctl.sock");
        let first = bind(&path).expect("bind");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&d.join("run")), DIR_MODE);
        assert_eq!(mode(&path), SOCKET_MODE);
        // Live: refused, and left alone.
        let e = bind(&path).expect_err("a live socket");
        assert!(e.field == FIELD && e.problem.contains("another process answers"), "{e}");
        // Stale (its listener gone): replaced.
        drop(first);
        let _again = bind(&path).expect("a stale socket is replaced");
        let client = UnixStream::connect(&path).expect("connect");
        let me = peer_cred(&client).expect("peer cred");
        assert_eq!(me.pid, std::process::id() as i32);
        assert_eq!(me.uid, nix::unistd::geteuid().as_raw());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_parent_that_is_not_a_directory_or_a_file_in_the_way_is_refused() {
        let d = dir("bad");
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join("file"), "x").expect("file");
        let e = check_path(&d.join("file/ctl.sock")).expect_err("parent is a file");
        assert!(e.field == FIELD && e.problem.contains("not a directory"), "{e}");
        let e = bind(&d.join("file")).expect_err("a regular file");
        assert!(e.problem.contains("not a socket"), "{e}");
        assert!(d.join("file").is_file(), "left alone");
        let long = Path::new("/run").join("x".repeat(120));
        assert!(check_path(&long).expect_err("too long").problem.contains("107"));
        assert!(check_path(Path::new("/nonexistent/dir/ctl.sock")).is_ok(), "made at start");
        let _ = std::fs::remove_dir_all(&d);
    }
}
