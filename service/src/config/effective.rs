//! A configuration as it takes effect, for `--check-config` to print: every
//! field with its value after defaults, as TOML, and no secret's value.

use std::path::Path;

use serde::Serialize;

use super::ConfigError;

/// The TOML of `raw` (a configuration after its defaults), after `redact`
/// has taken every secret out of its table (see [`redact_secret`]).
pub fn effective_toml<T: Serialize>(raw: &T, redact: impl FnOnce(&mut toml::Table)) -> Result<String, ConfigError> {
    let broken = |e: &dyn std::fmt::Display| {
        ConfigError::new("(file)", format!("cannot show the effective configuration: {e}"), "report this")
    };
    let mut table = toml::Table::try_from(raw).map_err(|e| broken(&e))?;
    redact(&mut table);
    toml::to_string(&table).map_err(|e| broken(&e))
}

/// Shows a shared secret by where it comes from, never by its value:
/// `file_key` (a path, relative to `base`) and `inline_key` (the secret
/// itself) of `table` become one `inline_key = "<redacted, from FILE>"` or
/// `inline_key = "<redacted inline>"`. A table with neither is left as it is.
pub fn redact_secret(table: &mut toml::Table, file_key: &str, inline_key: &str, base: &Path) {
    let shown = match (table.remove(file_key), table.contains_key(inline_key)) {
        (Some(toml::Value::String(file)), _) => format!("<redacted, from {}>", base.join(file).display()),
        (_, true) => "<redacted inline>".to_owned(),
        _ => return,
    };
    table.insert(inline_key.to_owned(), toml::Value::String(shown));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Raw {
        name: String,
        port: u16,
        peer: Vec<Peer>,
    }

    #[derive(Serialize)]
    struct Peer {
        token_file: Option<String>,
        token: Option<String>,
    }

    #[test]
    fn secrets_show_where_they_come_from_and_never_their_value() {
        let raw = Raw {
            name: "gw".into(),
            port: 443,
            peer: vec![
                Peer { token_file: Some("peer.token".into()), token: None },
                Peer { token_file: None, token: Some("0123456789abcdef-secret".into()) },
                Peer { token_file: Some("/etc/abs.token".into()), token: Some("both-secret".into()) },
            ],
        };
        let text = effective_toml(&raw, |t| {
            if let Some(toml::Value::Array(peers)) = t.get_mut("peer") {
                for p in peers.iter_mut().filter_map(toml::Value::as_table_mut) {
                    redact_secret(p, "token_file", "token", Path::new("/etc/corridor"));
                }
            }
        })
        .expect("effective");
        assert!(!text.contains("secret"), "{text}");
        let back: toml::Table = text.parse().expect("TOML");
        let peers = back.get("peer").and_then(toml::Value::as_array).expect("peers");
        let tokens: Vec<_> = peers.iter().map(|p| p.get("token").and_then(toml::Value::as_str)).collect();
        assert_eq!(
            tokens,
            [
                Some("<redacted, from /etc/corridor/peer.token>"),
                Some("<redacted inline>"),
                Some("<redacted, from /etc/abs.token>")
            ]
        );
        assert!(peers.iter().all(|p| p.get("token_file").is_none()), "{text}");
        assert!(text.starts_with("name = \"gw\"\nport = 443\n"), "fields keep their order: {text}");
    }
}
