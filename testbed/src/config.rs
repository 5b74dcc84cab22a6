//! The gateway's and the relay's configuration files, filled in from the
//! templates the scripts fill (`scripts/lib/gateway.toml.in`,
//! `scripts/lib/relay.toml.in`): one list of fields for the scripts and the
//! tests, filled by one rule (`scripts/lib/template.sh`'s
//! `fill_template`), which a test here holds both fillers to.

use std::fmt::Display;

use crate::{GatewayOptions, RELAY_GATEWAY_SIDE, RELAY_IP, RELAY_NAME};

/// `scripts/lib/gateway.toml.in`.
pub const GATEWAY_TEMPLATE: &str = include_str!("../../scripts/lib/gateway.toml.in");
/// `scripts/lib/relay.toml.in`.
pub const RELAY_TEMPLATE: &str = include_str!("../../scripts/lib/relay.toml.in");

/// Values for a template's `@section.field@` placeholders; a field set
/// twice keeps the later value.
#[derive(Debug, Clone, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn set(&mut self, field: &str, value: impl Display) -> &mut Self {
        self.0.push((field.to_owned(), value.to_string()));
        self
    }

    /// The value of `field`; empty when it is not set.
    fn get(&self, field: &str) -> &str {
        self.0.iter().rev().find(|(f, _)| f == field).map_or("", |(_, v)| v.as_str())
    }

    /// `template` filled in the way `fill_template` does it: a line holding
    /// a field with no value is left out (the program keeps its default),
    /// `["@field@"]` takes a comma-separated list, a table left with no key
    /// is left out whole, `##` lines are left out, and so are blank lines at
    /// the end. Panics on a field the template does not hold (a typo would
    /// otherwise leave the field out silently).
    pub fn fill(&self, template: &str) -> String {
        for (field, _) in &self.0 {
            assert!(template.contains(&format!("@{field}@")), "the template has no field {field}");
        }
        let (mut out, mut block, mut has_key) = (String::new(), String::new(), true);
        for line in template.lines().filter(|l| !l.starts_with("##")) {
            let Some(line) = self.fill_line(line) else { continue };
            if line.starts_with('[') {
                if has_key {
                    out.push_str(&block);
                }
                block.clear();
                has_key = false;
            } else if !line.is_empty() && !line.starts_with('#') {
                has_key = true;
            }
            block.push_str(&line);
            block.push('\n');
        }
        if has_key {
            out.push_str(&block);
        }
        while out.ends_with("\n\n") {
            out.pop();
        }
        out
    }

    /// `None` when a field of the line has no value.
    fn fill_line(&self, line: &str) -> Option<String> {
        let mut filled = line.to_owned();
        let mut rest = line;
        while let Some((field, after)) = next_field(rest) {
            let value = self.get(field);
            if value.is_empty() {
                return None;
            }
            let token = format!("@{field}@");
            let value =
                if line.contains(&format!("[\"{token}\"]")) { value.replace(',', "\", \"") } else { value.to_owned() };
            filled = filled.replace(&token, &value);
            rest = after;
        }
        Some(filled)
    }
}

/// The first `@field@` of `s` (a field name is `[a-z0-9_.]+`) and what
/// follows it.
fn next_field(s: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(at) = s.get(from..)?.find('@').map(|i| from + i) {
        let tail = s.get(at + 1..)?;
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
            .unwrap_or(tail.len());
        if len > 0 && tail.get(len..)?.starts_with('@') {
            return Some((tail.get(..len)?, tail.get(len + 1..)?));
        }
        from = at + 1;
    }
    None
}

/// What [`crate::Gateway::start`] writes for `o`, the gateway listening on
/// `listen_ip`. Relative paths are the topology directory's files.
pub fn gateway_config(o: &GatewayOptions, listen_ip: &str) -> String {
    let mut f = Fields::default();
    f.set("written_by", "testbed/src/config.rs")
        .set("server.listen", format!("{listen_ip}:443"))
        .set("server.dtls_port", if o.dtls { 443 } else { 0 })
        .set("server.cert", "server.crt")
        .set("server.key", "server.key")
        .set("auth.password_file", "passwd")
        .set("auth.client_ca", if o.client_ca { "ca.crt" } else { "" })
        .set("network.pool", "192.168.99.0/24")
        .set("network.tun_name", "cor0")
        .set("network.dns", o.dns.join(","))
        .set("network.default_domain", &o.default_domain)
        .set("timers.dpd", o.dpd)
        .set("timers.idle_timeout", o.idle_timeout)
        .set("timers.session_timeout", o.session_timeout.map_or(String::new(), |t| t.to_string()))
        .set("timers.cookie_grace", o.cookie_grace)
        .set("dataplane.shards", o.shards)
        .set("dataplane.pin_cores", false)
        .set("dataplane.offloads", o.offloads)
        // `CORRIDOR_IO=readiness` runs the suite on the readiness engine.
        .set("dataplane.io", std::env::var("CORRIDOR_IO").unwrap_or_else(|_| "auto".to_owned()))
        .set("admin.listen", &o.admin_listen)
        .set("admin.ctl_socket", &o.ctl_socket)
        .set("group.name", "default")
        .set("group.allowed", o.allowed.join(","))
        .set("group.split_include", if o.full_tunnel { "" } else { "10.99.0.0/24" })
        .set("group.client_to_client", if o.client_to_client { "true" } else { "" })
        .set("group.apps", o.apps.join(","))
        .set("group.trusted_url", o.trusted.as_ref().map_or("", |t| t.0.as_str()))
        .set("group.trusted_pin", o.trusted.as_ref().map_or("", |t| t.1.as_str()))
        .set("log.format", if o.log_json { "json" } else { "" });
    if o.relayed != 0 {
        let via = o.relay_via.clone().unwrap_or_else(|| format!("{RELAY_GATEWAY_SIDE}:3101"));
        f.set("relay.address", via)
            .set("relay.name", RELAY_NAME)
            .set("relay.token_file", "relay.token")
            .set("relay.pin_sha256", &o.relay_pin);
    }
    if o.load_generator {
        // As scripts/lib/gateway.sh's LOAD_GENERATOR_LIMITS.
        f.set("limits.max_sessions_per_user", 0)
            .set("limits.login_interval_ms", 0)
            .set("limits.max_preauth", 20000)
            .set("limits.max_preauth_per_source", 20000);
    }
    if o.cluster {
        f.set("cluster.secret_file", "cluster.key").set("cluster.node", o.relayed.max(1)).set("cluster.nodes", 2);
    }
    f.fill(GATEWAY_TEMPLATE)
}

/// What [`crate::Relay::start_with`] writes: `limits` holds more `[limits]`
/// lines, `field = value` each.
pub fn relay_config(limits: &str) -> String {
    let mut f = Fields::default();
    f.set("written_by", "testbed/src/config.rs")
        .set("relay.listen", format!("{RELAY_IP}:443"))
        .set("relay.gateway_listen", format!("{RELAY_GATEWAY_SIDE}:3101"))
        .set("limits.link_timeout", 6);
    for line in limits.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (field, value) = line.split_once('=').unwrap_or_else(|| panic!("`{line}` is not `field = value`"));
        f.set(&format!("limits.{}", field.trim()), value.trim());
    }
    f.set("gateway.name", RELAY_NAME)
        .set("gateway.token_file", "relay.token")
        .set("gateway_link.cert", "relay-link.crt")
        .set("gateway_link.key", "relay-link.key")
        .set("admin.listen", "127.0.0.1:9101");
    f.fill(RELAY_TEMPLATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        let mut f = Fields::default();
        for (k, v) in pairs {
            f.set(k, v);
        }
        f
    }

    #[test]
    fn unset_fields_and_empty_tables_are_left_out() {
        let t =
            "## note\n# by @written_by@\n\n[a]\nx = \"@a.x@\"\ny = @a.y@\n\n[[b]]\nl = [\"@b.l@\"]\n\n[c]\nz = @c.z@\n";
        let out = fields(&[("a.y", "1"), ("b.l", "p,q"), ("c.z", "")]).fill(t);
        assert_eq!(out, "\n[a]\ny = 1\n\n[[b]]\nl = [\"p\", \"q\"]\n");
        // A later value wins.
        assert_eq!(fields(&[("a.y", "1"), ("a.y", "2")]).fill("[a]\ny = @a.y@\n"), "[a]\ny = 2\n");
    }

    #[test]
    #[should_panic(expected = "the template has no field server.lisen")]
    fn a_misspelt_field_is_refused() {
        fields(&[("server.lisen", "10.10.0.1:443")]).fill(GATEWAY_TEMPLATE);
    }

    /// `scripts/lib/template.sh` and [`Fields::fill`] give the same bytes.
    #[test]
    fn the_scripts_fill_templates_alike() {
        let lib = crate::repo().join("scripts/lib");
        let cases: [(&str, &[(&str, &str)]); 4] = [
            (
                "gateway.toml.in",
                &[
                    ("written_by", "scripts/demo.sh"),
                    ("server.name", "corridor-demo"),
                    ("server.listen", "10.20.0.2:443"),
                    ("server.dtls_port", "443"),
                    ("server.cert", "certs/server.crt"),
                    ("auth.password_file", "passwd"),
                    ("dataplane.shards", "0"),
                    ("group.name", "org"),
                    ("group.allowed", "10.99.0.0/24"),
                    ("relay.address", "10.20.0.1:3101"),
                    ("relay.name", "vpn.test"),
                    ("relay.token_file", "relay.token"),
                    ("relay.pin_sha256", "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="),
                ],
            ),
            (
                "gateway.toml.in",
                &[
                    ("server.listen", "10.10.0.1:443"),
                    ("dataplane.io", "readiness"),
                    ("dataplane.pin_cores", ""),
                    ("group.allowed", "10.99.0.0/24,10.98.0.0/16"),
                    ("admin.listen", "127.0.0.1:9443"),
                    ("cluster.secret_file", "cluster.key"),
                    ("cluster.node", "1"),
                    ("cluster.nodes", "2"),
                ],
            ),
            (
                "relay.toml.in",
                &[
                    ("relay.listen", "10.10.0.1:443"),
                    ("gateway.name", "vpn.test"),
                    ("gateway_link.cert", "certs/relay-link.crt"),
                    ("limits.max_flows_per_app_id", "2"),
                ],
            ),
            ("relay.toml.in", &[]),
        ];
        for (template, pairs) in cases {
            let path = lib.join(template);
            let out = Command::new("bash")
                .arg("-c")
                .arg("set -euo pipefail; . \"$1\"; shift; fill_template \"$@\"")
                .arg("fill_template")
                .arg(lib.join("template.sh"))
                .arg(&path)
                .args(pairs.iter().map(|(k, v)| format!("{k}={v}")))
                .output()
                .expect("bash");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let text = std::fs::read_to_string(&path).expect("template");
            assert_eq!(String::from_utf8_lossy(&out.stdout), fields(pairs).fill(&text), "{template} {pairs:?}");
        }
    }

    #[test]
    fn gateway_configs_are_valid() {
        let variants = [
            GatewayOptions::default(),
            GatewayOptions { dtls: false, client_ca: false, offloads: false, ..Default::default() },
            GatewayOptions { allowed: vec!["10.99.0.0/24".into(), "10.98.0.0/16".into()], ..Default::default() },
        ];
        for o in &variants {
            let text = gateway_config(o, crate::GATEWAY_IP);
            if let Err(e) = control::Config::parse(&text) {
                panic!("{e}\n{text}");
            }
        }
        let text = gateway_config(&GatewayOptions::default(), crate::GATEWAY_IP);
        assert!(text.contains("client_ca = \"ca.crt\"\n") && text.contains("tun_name = \"cor0\"\n"), "{text}");
        assert!(!text.contains("[[relay]]") && !text.contains("[cluster]"), "{text}");
        let pinned = GatewayOptions { relayed: 2, cluster: true, relay_pin: "PIN".into(), ..Default::default() };
        let text = gateway_config(&pinned, "10.20.0.3");
        assert!(text.contains("[[relay]]\naddress = \"10.20.0.1:3101\"\nname = \"vpn.test\"\n"), "{text}");
        assert!(text.contains("\npin_sha256 = \"PIN\"\n"), "{text}");
        assert!(text.contains("[cluster]\nsecret_file = \"cluster.key\"\nnode = 2\nnodes = 2\n"), "{text}");
    }

    #[test]
    fn relay_configs_are_valid() {
        let dir = std::env::temp_dir().join(format!("corridor-testbed-relay-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("relay.token"), crate::RELAY_TOKEN).expect("token");
        for limits in ["", "max_connections_per_source = 3\nhello_timeout = 2"] {
            let text = relay_config(limits);
            if let Err(e) = relay::config::Config::parse_in(&text, &dir) {
                panic!("{e}\n{text}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(relay_config("hello_timeout = 2").contains("[limits]\nhello_timeout = 2\nlink_timeout = 6\n"));
        assert!(relay_config("").contains("[gateway_link]\ncert = \"relay-link.crt\"\nkey = \"relay-link.key\"\n"));
    }
}
