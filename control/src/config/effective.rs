//! What `corridor gateway --check-config` prints: the checked file as it
//! takes effect. Every field after its defaults, paths as the gateway opens
//! them, unset choices written out (`max_login_attempts`,
//! `client_to_client`), and relay tokens and the cluster secret shown only
//! by where they come from.

use std::path::{Path, PathBuf};

use service::config::{effective_toml, redact_secret};

use super::raw::RawConfig;
use super::ConfigError;

/// `raw` (a file that passed every check) as TOML; relative paths start at `base`.
pub(super) fn effective(mut raw: RawConfig, base: &Path) -> Result<String, ConfigError> {
    let resolve = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    resolve(&mut raw.server.cert);
    resolve(&mut raw.server.key);
    for p in [raw.auth.password_file.as_mut(), raw.auth.client_ca.as_mut()].into_iter().flatten() {
        resolve(p);
    }
    raw.auth.max_login_attempts = Some(raw.auth.max_login_attempts());
    for g in &mut raw.groups {
        g.client_to_client.get_or_insert(toml::Value::Boolean(false));
    }
    for p in raw.relays.iter_mut().filter_map(|r| r.ca_file.as_mut()) {
        resolve(p);
    }
    effective_toml(&raw, |table| {
        if let Some(toml::Value::Array(relays)) = table.get_mut("relay") {
            for relay in relays.iter_mut().filter_map(toml::Value::as_table_mut) {
                redact_secret(relay, "token_file", "token", base);
            }
        }
        if let Some(cluster) = table.get_mut("cluster").and_then(toml::Value::as_table_mut) {
            redact_secret(cluster, "secret_file", "secret", base);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::GOOD;
    use super::*;

    fn effective_of(text: &str, base: &Path) -> toml::Table {
        let raw: RawConfig = service::config::from_toml(text, "example").expect("valid");
        effective(raw, base).expect("effective").parse().expect("the effective configuration is TOML")
    }

    fn get<'a>(t: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
        let mut parts = path.split('.');
        let first = t.get(parts.next()?)?;
        parts.try_fold(first, |v, k| match k.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(k),
        })
    }

    #[test]
    fn defaults_are_written_out_and_paths_resolved() {
        let t = effective_of(GOOD, Path::new("/etc/corridor"));
        let int = |path: &str| get(&t, path).and_then(toml::Value::as_integer);
        assert_eq!(int("server.max_connections"), Some(10_000));
        assert_eq!(int("server.dtls_port"), Some(443));
        assert_eq!(int("auth.max_login_attempts"), Some(3));
        assert_eq!(int("timers.dpd"), Some(90));
        assert_eq!(int("limits.max_ban_score"), Some(80));
        assert_eq!(get(&t, "dataplane.io").and_then(toml::Value::as_str), Some("auto"));
        assert_eq!(get(&t, "server.key").and_then(toml::Value::as_str), Some("/etc/corridor/server.key"));
        assert_eq!(get(&t, "auth.password_file").and_then(toml::Value::as_str), Some("/etc/corridor/passwd"));
        assert_eq!(get(&t, "group.0.client_to_client").and_then(toml::Value::as_bool), Some(false));
        assert_eq!(get(&t, "server.banner"), None, "an unset option stays unset");
    }

    #[test]
    fn relay_tokens_and_the_cluster_secret_are_redacted() {
        let text = format!(
            "{GOOD}[[relay]]\naddress = \"10.0.0.1:3101\"\nname = \"vpn.test\"\ntoken = \"inline-secret-0123456789\"\n\
             pin_sha256 = \"x\"\n[[relay]]\naddress = \"10.0.0.2:3101\"\nname = \"vpn.test\"\n\
             token_file = \"relay.token\"\nca_file = \"ca.crt\"\n\
             [cluster]\nsecret_file = \"/etc/corridor/cluster.key\"\nnode = 1\nnodes = 2\n"
        );
        let t = effective_of(&text, Path::new("/etc/corridor"));
        let shown = toml::to_string(&t).expect("text");
        assert!(!shown.contains("inline-secret"), "{shown}");
        let s = |path: &str| get(&t, path).and_then(toml::Value::as_str);
        assert_eq!(s("relay.0.token"), Some("<redacted inline>"));
        assert_eq!(s("relay.1.token"), Some("<redacted, from /etc/corridor/relay.token>"));
        assert_eq!(s("relay.1.token_file"), None);
        assert_eq!(s("relay.1.ca_file"), Some("/etc/corridor/ca.crt"));
        assert_eq!(s("cluster.secret"), Some("<redacted, from /etc/corridor/cluster.key>"));
        assert_eq!(s("cluster.secret_file"), None);
    }
}
