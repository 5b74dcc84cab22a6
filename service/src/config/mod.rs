//! What both servers' configurations share: the error a mistake becomes
//! (which field, what is wrong, how to fix it), reading the TOML with every
//! mistake placed ([`text`]), the effective configuration `--check-config`
//! prints ([`effective`]), and the shared secrets that authenticate relay
//! links.

use std::path::Path;

pub mod effective;
pub mod text;

pub use effective::{effective_toml, redact_secret};
pub use text::{from_toml, locate, read};

/// A configuration mistake: which field, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config field `{}`: {}; fix: {}", self.field, self.problem, self.fix)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn new(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { field: field.to_string(), problem: problem.into(), fix: fix.into() }
    }
}

/// The shortest relay link token, at either end of a link: 128 bits of secret.
pub const MIN_RELAY_TOKEN: usize = 16;

/// A shared secret given as `PREFIX.token_file` (relative to `base`) or
/// `PREFIX.token`, exactly one, of at least `min` bytes. A file's
/// surrounding whitespace (its newline) is not part of the secret.
/// `what`: whose secret it is, for the fixes.
pub fn secret(
    prefix: &str,
    file: Option<&Path>,
    inline: Option<&str>,
    base: &Path,
    min: usize,
    what: &str,
) -> Result<Vec<u8>, ConfigError> {
    let field = format!("{prefix}.token_file");
    let token = match (file, inline) {
        (Some(p), None) => {
            let p = if p.is_relative() { base.join(p) } else { p.to_path_buf() };
            let t = std::fs::read_to_string(&p).map_err(|e| {
                ConfigError::new(&field, format!("cannot read {}: {e}", p.display()), format!("point it at {what}"))
            })?;
            t.trim().as_bytes().to_vec()
        }
        (None, Some(t)) => t.as_bytes().to_vec(),
        _ => {
            return Err(ConfigError::new(
                &field,
                "give exactly one of token_file and token",
                format!("prefer token_file: {what}"),
            ))
        }
    };
    if token.len() < min {
        return Err(ConfigError::new(
            &field,
            format!("the token has {} bytes", token.len()),
            format!("use at least {min} random bytes, e.g. `openssl rand -hex 32`"),
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(file: Option<&Path>, inline: Option<&str>, base: &Path) -> Result<Vec<u8>, ConfigError> {
        secret("gateway[0]", file, inline, base, MIN_RELAY_TOKEN, "the shared secret")
    }

    #[test]
    fn an_inline_token_is_taken_as_is() {
        assert_eq!(read(None, Some("0123456789abcdef"), Path::new(".")), Ok(b"0123456789abcdef".to_vec()));
    }

    #[test]
    fn a_token_file_is_relative_to_the_config_and_loses_its_newline() {
        let dir = std::env::temp_dir().join(format!("corridor-service-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("gw.token"), "0123456789abcdef0123\n").expect("write");
        let got = read(Some(Path::new("gw.token")), None, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got, Ok(b"0123456789abcdef0123".to_vec()));
    }

    #[test]
    fn mistakes_name_the_token_file_field() {
        let cases = [
            read(None, Some("short"), Path::new(".")),
            read(None, None, Path::new(".")),
            read(Some(Path::new("x")), Some("0123456789abcdef"), Path::new(".")),
            read(Some(Path::new("/nonexistent/corridor.token")), None, Path::new(".")),
        ];
        for e in cases {
            let e = e.expect_err("a mistake");
            assert_eq!(e.field, "gateway[0].token_file", "{e}");
            assert!(!e.fix.is_empty(), "{e}");
        }
        let short = read(None, Some("short"), Path::new(".")).expect_err("short");
        assert_eq!(short.problem, "the token has 5 bytes");
        assert!(short.to_string().starts_with("config field `gateway[0].token_file`: "), "{short}");
    }
}
