//! Secret files (the TLS key, the password file, relay tokens, the cluster
//! secret) must be readable by their owner only, and owned by root or the
//! user that starts the gateway (root, for a service), as OpenSSH insists
//! of its keys: a secret another local user can read or replace is no
//! secret. The unprivileged user the worker switches to (`[server] user`)
//! owns none of them, so it cannot open them. A mistake names the file and
//! the `chmod` or `chown` that fixes it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{err, ConfigError};

/// Checks that `path` (the value of `field`) is private: no group or other
/// permission bits, owned by root or the effective user.
pub fn check_private(field: &str, path: &Path) -> Result<(), ConfigError> {
    let m = std::fs::metadata(path)
        .map_err(|e| err(field, format!("cannot read {}: {e}", path.display()), "point it at an existing file"))?;
    let euid = nix::unistd::geteuid().as_raw();
    if m.uid() != 0 && m.uid() != euid {
        return Err(err(
            field,
            format!("{} is owned by uid {}, neither root nor the gateway's user (uid {euid})", path.display(), m.uid()),
            format!("chown {euid} {}", path.display()),
        ));
    }
    let mode = m.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(err(
            field,
            format!("{} has mode {mode:03o}: other users may read or change it", path.display()),
            format!("chmod 600 {}", path.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_group_or_world_readable_secret_names_the_chmod_that_fixes_it() {
        let dir = std::env::temp_dir().join(format!("corridor-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("server.key");
        std::fs::write(&p, "secret").expect("write");
        let mut got = Vec::new();
        for mode in [0o600, 0o400, 0o640, 0o604, 0o644] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            got.push((mode, check_private("server.key", &p)));
        }
        let missing = check_private("auth.password_file", &dir.join("nope"));
        let _ = std::fs::remove_dir_all(&dir);
        for (mode, r) in got {
            if mode & 0o077 == 0 {
                assert_eq!(r, Ok(()), "{mode:o}");
            } else {
                let e = r.expect_err("not private");
                assert_eq!(e.field, "server.key");
                assert!(e.problem.contains(&format!("mode {mode:03o}")), "{e}");
                assert_eq!(e.fix, format!("chmod 600 {}", p.display()));
            }
        }
        assert_eq!(missing.expect_err("missing").field, "auth.password_file");
    }
}
