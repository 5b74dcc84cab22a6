//! Secret files (the TLS key, the password file, relay tokens, the cluster
//! secret) must be readable by their owner only, and owned by root or the
//! user that starts the gateway (root, for a service), as OpenSSH insists
//! of its keys: a secret another local user can read or replace is no
//! secret. The unprivileged user the worker switches to (`[server] user`)
//! owns none of them, so it cannot open them. A mistake names the file and
//! the `chmod` or `chown` that fixes it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{err, ConfigError};

/// How loading a configuration reaches the files it names. Three ways:
/// [`Disk`] (start-up, `--check-config`), [`Recorder`] (the keeper on
/// reload: the disk, remembering every text it read) and [`Replay`] (the
/// unprivileged worker on reload: the texts the keeper read, so it parses
/// exactly what the keeper checked without being able to open the files).
pub trait Files {
    /// The text of `path`, the value of `field`; `private`: a secret, which
    /// must pass [`check_private`] first.
    fn read(&self, field: &str, path: &Path, private: bool) -> Result<String, ConfigError>;
    /// A file the configuration names but the worker never reads itself
    /// (the key, the password file, the certificates): it exists, and is
    /// private when `private`.
    fn check(&self, field: &str, path: &Path, private: bool) -> Result<(), ConfigError>;
}

/// The filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl Files for Disk {
    fn read(&self, field: &str, path: &Path, private: bool) -> Result<String, ConfigError> {
        if private && path.exists() {
            check_private(field, path)?;
        }
        std::fs::read_to_string(path).map_err(|e| {
            err(field, format!("cannot read {}: {e}", path.display()), "point it at an existing, readable file")
        })
    }

    fn check(&self, field: &str, path: &Path, private: bool) -> Result<(), ConfigError> {
        if !path.is_file() {
            return Err(err(field, format!("{} does not exist", path.display()), "point it at an existing file"));
        }
        if private {
            check_private(field, path)?;
        }
        Ok(())
    }
}

/// The filesystem, remembering each text read (the keeper on reload).
#[derive(Debug, Default)]
pub struct Recorder {
    read: RefCell<Vec<(PathBuf, String)>>,
}

impl Recorder {
    /// Every path read and its text, in order.
    pub fn into_texts(self) -> Vec<(PathBuf, String)> {
        self.read.into_inner()
    }
}

impl Files for Recorder {
    fn read(&self, field: &str, path: &Path, private: bool) -> Result<String, ConfigError> {
        let text = Disk.read(field, path, private)?;
        self.read.borrow_mut().push((path.to_path_buf(), text.clone()));
        Ok(text)
    }

    fn check(&self, field: &str, path: &Path, private: bool) -> Result<(), ConfigError> {
        Disk.check(field, path, private)
    }
}

/// Texts another process read and checked (the worker on reload).
#[derive(Debug, Default)]
pub struct Replay(pub HashMap<PathBuf, String>);

impl Files for Replay {
    fn read(&self, field: &str, path: &Path, _private: bool) -> Result<String, ConfigError> {
        self.0.get(path).cloned().ok_or_else(|| {
            err(field, format!("{} was not among the files the keeper read", path.display()), "reload again")
        })
    }

    fn check(&self, _field: &str, _path: &Path, _private: bool) -> Result<(), ConfigError> {
        // The keeper checked every file before handing the texts over.
        Ok(())
    }
}

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
