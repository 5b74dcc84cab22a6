//! How the gateway and the relay write their logs: `[log] format`, `text`
//! (the default: one human line per event, `key=value` fields) or `json`
//! (one JSON object per line; every field a key, every string escaped).
//! Session events carry `event` (`login`, `tunnel_up`, `dtls_up`,
//! `adopted`, `session_end`), the session id, user, group and address, and
//! for an end a stable `reason_code` beside the prose `reason`
//! (docs/operations.md lists them).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// `[log] format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The `[log]` table of either configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    #[serde(default)]
    pub format: LogFormat,
}

impl LogFormat {
    /// The format a configuration file asks for, read before anything is
    /// logged (the logger is set up once, before the configuration is
    /// checked). A file that cannot be read or parsed asks for text: its
    /// loading will say what is wrong with it, in text.
    pub fn of_file(path: &Path) -> Self {
        let Ok(text) = std::fs::read_to_string(path) else { return Self::Text };
        let Ok(table) = text.parse::<toml::Table>() else { return Self::Text };
        match table.get("log").and_then(|l| l.get("format")).and_then(toml::Value::as_str) {
            Some("json") => Self::Json,
            _ => Self::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_read_from_the_file_and_anything_else_is_text() {
        let dir = std::env::temp_dir().join(format!("corridor-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let cases = [
            ("[log]\nformat = \"json\"\n", LogFormat::Json),
            ("[log]\nformat = \"text\"\n", LogFormat::Text),
            ("[server]\nname = \"x\"\n", LogFormat::Text),
            ("[log\nformat = \"json\"", LogFormat::Text),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let p = dir.join(format!("{i}.toml"));
            std::fs::write(&p, text).expect("write");
            assert_eq!(LogFormat::of_file(&p), *want, "{text}");
        }
        assert_eq!(LogFormat::of_file(&dir.join("missing.toml")), LogFormat::Text);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unknown_format_is_a_type_error() {
        #[derive(Debug, Deserialize)]
        struct T {
            #[allow(dead_code)]
            log: RawLog,
        }
        assert!(toml::from_str::<T>("[log]\nformat = \"xml\"\n").is_err());
        assert!(toml::from_str::<T>("[log]\nfromat = \"json\"\n").is_err());
    }
}
