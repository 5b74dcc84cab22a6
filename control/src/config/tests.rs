//! The configuration's checks: defaults, bounds, and every mistake named.

use super::*;

pub(super) const GOOD: &str = r#"
[server]
listen = "0.0.0.0:443"
cert = "server.crt"
key = "server.key"
[auth]
password_file = "passwd"
[network]
pool = "192.168.99.0/24"
dns = ["192.168.99.1"]
[[group]]
name = "staff"
allowed = ["10.99.0.0/16"]
split_include = ["10.99.0.0/16"]
"#;

#[test]
fn a_good_config_gets_defaults() {
    let c = Config::parse(GOOD).expect("valid");
    assert_eq!(c.gateway_address, Ipv4Addr::new(192, 168, 99, 1));
    assert_eq!(c.dtls_port, Some(443));
    assert_eq!(c.timers.dpd, Duration::from_secs(90));
    assert_eq!(c.group(None).map(|g| g.name.as_str()), Some("staff"), "no group named: the first");
    assert_eq!(c.group(Some("nope")), None, "an undefined group is no group, never the first's access");
    assert_eq!(c.limits, Limits::default());
    assert_eq!((c.limits.max_ban_score, c.limits.ban_time.as_secs(), c.limits.max_sessions_per_user), (80, 300, 2));
    assert_eq!(c.timers.connect_grace, Duration::from_secs(60));
    assert_eq!((c.verify_threads, c.verify_queue), (0, 1024));
}

#[test]
fn verifier_settings_are_bounded() {
    let with = |line: &str| GOOD.replace("password_file = \"passwd\"", &format!("password_file = \"passwd\"\n{line}"));
    let c = Config::parse(&with("verify_threads = 2\nverify_queue = 8")).expect("valid");
    assert_eq!((c.verify_threads, c.verify_queue), (2, 8));
    for (line, field) in [
        ("verify_threads = 65", "auth.verify_threads"),
        ("verify_queue = 0", "auth.verify_queue"),
        ("verify_queue = 65537", "auth.verify_queue"),
    ] {
        let e = Config::parse(&with(line)).expect_err(line);
        assert_eq!(e.field, field, "{e}");
        assert!(e.fix.starts_with("use 1..="), "{e}");
    }
}

#[test]
fn relays_are_checked() {
    const PIN: &str = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
    let with = |r: &str| format!("{GOOD}[[relay]]\n{r}\n");
    let good = format!(
        "address = \"10.20.0.1:3101\"\nname = \"VPN.test\"\ntoken = \"0123456789abcdef\"\npin_sha256 = \"{PIN}\""
    );
    let c = Config::parse(&with(&good)).expect("valid");
    assert_eq!(c.relays.len(), 1);
    assert_eq!(c.relays[0].name, "vpn.test");
    assert_eq!(c.relays[0].trust.pin.map(|p| service::pin::pin_base64(&p)), Some(PIN.to_owned()));
    let unpinned = "address = \"10.20.0.1:3101\"\nname = \"vpn.test\"\ntoken = \"0123456789abcdef\"";
    for (r, field) in [
        (good.replace("10.20.0.1:3101", "nowhere"), "relay[0].address"),
        (good.replace("VPN.test", "bad name"), "relay[0].name"),
        (good.replace("0123456789abcdef", "short"), "relay[0].token_file"),
        (good.replace("token = \"0123456789abcdef\"", ""), "relay[0].token_file"),
        (good.replace("token = ", "token_file = \"/nonexistent/token\"\n#"), "relay[0].token_file"),
        (unpinned.to_owned(), "relay[0].pin_sha256"),
        (good.replace(PIN, "not a pin"), "relay[0].pin_sha256"),
        (format!("{unpinned}\nca_file = \"/nonexistent/ca.crt\""), "relay[0].ca_file"),
    ] {
        let e = Config::parse(&with(&r)).expect_err(&r);
        assert_eq!(e.field, field, "{e}");
        assert!(!e.fix.is_empty());
    }
}

#[test]
fn the_cluster_is_checked() {
    let dir = std::env::temp_dir().join(format!("corridor-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("good.key"), "0123456789abcdef0123456789abcdef\n").expect("key");
    std::fs::write(dir.join("short.key"), "tooshort").expect("key");
    std::fs::write(dir.join("open.key"), "0123456789abcdef0123456789abcdef\n").expect("key");
    for (k, mode) in [("good.key", 0o600), ("short.key", 0o600), ("open.key", 0o644)] {
        std::fs::set_permissions(dir.join(k), std::os::unix::fs::PermissionsExt::from_mode(mode)).expect("chmod");
    }
    let with = |key: &str, node: u32, nodes: u32| {
        Config::parse_with(
            &format!("{GOOD}[cluster]\nsecret_file = \"{key}\"\nnode = {node}\nnodes = {nodes}\n"),
            &dir,
            &Disk,
        )
    };
    let c = with("good.key", 2, 2).expect("valid").cluster.expect("cluster");
    assert_eq!((c.node, c.nodes, c.secret.len()), (2, 2, 32), "the newline is not part of the secret");
    for (key, node, nodes, field) in [
        ("short.key", 1, 2, "cluster.secret_file"),
        ("missing.key", 1, 2, "cluster.secret_file"),
        ("good.key", 3, 2, "cluster.node"),
        ("good.key", 0, 2, "cluster.node"),
        ("good.key", 1, 0, "cluster.nodes"),
        ("open.key", 1, 2, "cluster.secret_file"),
    ] {
        let e = with(key, node, nodes).expect_err(field);
        assert_eq!(e.field, field, "{e}");
    }
    let open = with("open.key", 1, 2).expect_err("world-readable");
    assert_eq!(open.fix, format!("chmod 600 {}", dir.join("open.key").display()), "{open}");
    // A cluster's cookies must expire: session_timeout = 0 is refused.
    let never = Config::parse_with(
        &format!("{GOOD}[timers]\nsession_timeout = 0\n[cluster]\nsecret_file = \"good.key\"\nnode = 1\nnodes = 2\n"),
        &dir,
        &Disk,
    )
    .expect_err("a cluster without a session timeout");
    assert_eq!(never.field, "timers.session_timeout", "{never}");
    assert!(never.fix.contains("session timeout"), "{never}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mistakes_name_the_field() {
    let bad = GOOD.replace("192.168.99.0/24", "192.168.99.7/24");
    assert_eq!(Config::parse(&bad).err().map(|e| e.field), Some("network.pool".into()));
    let bad = GOOD.replace("listen = \"0.0.0.0:443\"", "listen = \"localhost\"");
    assert_eq!(Config::parse(&bad).err().map(|e| e.field), Some("server.listen".into()));
    let bad = GOOD.replace("[[group]]", "[[group]]\nbogus = 1");
    let e = Config::parse(&bad).expect_err("unknown field");
    assert!(e.problem.contains("bogus"), "{e}");
    let bad = GOOD.replace("allowed = [\"10.99.0.0/16\"]", "allowed = [\"10.99.0.0/40\"]");
    assert_eq!(Config::parse(&bad).err().map(|e| e.field), Some("group[0].allowed".into()));
}

#[test]
fn type_mistakes_name_the_field_path_and_its_line() {
    let server = |line: &str| GOOD.replace("key = \"server.key\"", &format!("key = \"server.key\"\n{line}"));
    for (text, field, at) in [
        (server("max_connections = \"many\""), "server.max_connections", "line 6, column 19: invalid type"),
        (server("dtls_port = 70000"), "server.dtls_port", "line 6, column 13: invalid value"),
        (server("bogus = 1"), "server.bogus", "line 6, column 1: unknown field `bogus`"),
        (
            GOOD.replace("[[group]]", "[[group]]\nname = \"x\"\nallowed = []\n[[group]]")
                .replace("allowed = [\"10.99.0.0/16\"]", "allowed = \"10.99.0.0/16\""),
            "group[1].allowed",
            "line 16, column 11: invalid type",
        ),
    ] {
        let e = Config::parse(&text).expect_err(field);
        assert_eq!(e.field, field, "{e}");
        assert!(e.problem.starts_with(at), "{e}");
        assert!(e.fix.contains("config/gateway.example.toml"), "{e}");
    }
}

#[test]
fn checked_mistakes_gain_the_line_of_their_field() {
    let e = Config::parse(&GOOD.replace("192.168.99.0/24", "192.168.99.7/24")).expect_err("host bits");
    assert_eq!(e.field, "network.pool");
    assert!(e.problem.starts_with("line 9: "), "{e}");
    let e = Config::parse(&GOOD.replace("\"10.99.0.0/16\"]\nsplit", "\"10.99.0.0/40\"]\nsplit")).expect_err("prefix");
    assert_eq!(e.field, "group[0].allowed");
    assert!(e.problem.starts_with("line 13: "), "{e}");
}

/// The shipped example must stay a valid configuration.
#[test]
fn the_example_config_parses() {
    let text = include_str!("../../../config/gateway.example.toml");
    let c = Config::parse(text).expect("config/gateway.example.toml is valid");
    assert_eq!(c.pool.to_string(), "192.168.99.0/24");
    assert_eq!(c.groups.len(), 1);
}

#[test]
fn limits_are_read_and_checked() {
    let with = |body: &str| Config::parse(&format!("{GOOD}[limits]\n{body}\n"));
    let c = with(
        "max_ban_score = 30\nban_reset_time = 60\nban_time = 5\nban_points_wrong_password = 3\nban_points_malformed = 4\n\
         ban_points_tls_failure = 0\nlogin_interval_ms = 0\nfailure_delay_ms = 10\nfailure_delay_max_ms = 20\n\
         max_preauth = 10\nmax_preauth_per_source = 2\ntls_handshake_timeout = 3\nauth_timeout = 7\n\
         close_timeout = 4\ntcp_user_timeout = 0\nmax_sessions_per_user = 0",
    )
    .expect("valid");
    let l = c.limits;
    assert_eq!((l.max_ban_score, l.ban_reset_time.as_secs(), l.ban_time.as_secs()), (30, 60, 5));
    assert_eq!(l.points, BanPoints { wrong_password: 3, malformed: 4, tls_failure: 0 });
    assert_eq!(
        (l.login_interval, l.failure_delay.as_millis(), l.failure_delay_max.as_millis()),
        (Duration::ZERO, 10, 20)
    );
    assert_eq!((l.max_preauth, l.max_preauth_per_source, l.max_sessions_per_user), (10, 2, 0));
    assert_eq!((l.tls_handshake_timeout.as_secs(), l.auth_timeout.as_secs(), l.close_timeout.as_secs()), (3, 7, 4));
    assert!(l.tcp_user_timeout.is_zero());
    for (body, field, fix) in [
        ("ban_time = 0", "limits.ban_time", "1..=86400"),
        ("auth_timeout = 0", "limits.auth_timeout", "1..=86400"),
        ("tls_handshake_timeout = 0", "limits.tls_handshake_timeout", "1..=86400"),
        ("close_timeout = 100000", "limits.close_timeout", "1..=86400"),
        ("max_preauth = 0", "limits.max_preauth", "at least 1"),
        ("max_preauth = 4\nmax_preauth_per_source = 5", "limits.max_preauth_per_source", "limits.max_preauth"),
        ("failure_delay_ms = 500\nfailure_delay_max_ms = 100", "limits.failure_delay_max_ms", "at least the first"),
        ("tcp_user_timeout = 100000", "limits.tcp_user_timeout", "0..=86400"),
        ("ban_points_malformed = 2000000", "limits.ban_points_malformed", "0..="),
    ] {
        let e = with(body).expect_err(body);
        assert_eq!(e.field, field, "{e}");
        assert!(e.fix.contains(fix), "{e}");
    }
    let e = with("max_ban_scor = 1").expect_err("a typo");
    assert!(e.problem.contains("max_ban_scor"), "unknown fields are named: {e}");
    let c = Config::parse(&GOOD.replace("[[group]]", "[timers]\nconnect_grace = 15\n[[group]]")).expect("valid");
    assert_eq!(c.timers.connect_grace, Duration::from_secs(15));
}

#[test]
fn password_file_users_of_undefined_groups_are_named() {
    use crate::passwd::{Entry, PasswordFile};
    let c = Config::parse(GOOD).expect("valid");
    let mut f = PasswordFile::default();
    f.set(Entry::new("alice", "pw", Some("staff"), 1).expect("entry"));
    f.set(Entry::new("bob", "pw", None, 1).expect("entry"));
    assert_eq!(c.check_password_groups(&f), Ok(()));
    f.set(Entry::new("mallory", "pw", Some("admins"), 1).expect("entry"));
    let e = c.check_password_groups(&f).expect_err("an undefined group");
    assert_eq!(e.field, "auth.password_file");
    assert!(e.problem.contains("mallory (group `admins`)") && !e.problem.contains("alice"), "{e}");
    assert!(e.fix.contains("[[group]]"), "{e}");
}

#[test]
fn load_refuses_a_readable_key_or_password_file_naming_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("corridor-load-perms-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for f in ["server.crt", "server.key", "passwd"] {
        std::fs::write(dir.join(f), "x").expect("write");
    }
    let set = |f: &str, mode: u32| {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    std::fs::write(dir.join("gateway.toml"), GOOD).expect("config");
    set("server.crt", 0o644);
    set("server.key", 0o600);
    set("passwd", 0o600);
    let good = Config::load(&dir.join("gateway.toml")).map(|_| ());
    set("server.key", 0o640);
    let key = Config::load(&dir.join("gateway.toml")).map(|_| ());
    set("server.key", 0o600);
    set("passwd", 0o644);
    let passwd = Config::load(&dir.join("gateway.toml")).map(|_| ());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(good, Ok(()), "a world-readable certificate is fine");
    let key = key.expect_err("a group-readable key");
    assert_eq!(
        (key.field.as_str(), key.fix.clone()),
        ("server.key", format!("chmod 600 {}", dir.join("server.key").display()))
    );
    let passwd = passwd.expect_err("a world-readable password file");
    assert_eq!(passwd.field, "auth.password_file", "{passwd}");
    assert!(passwd.fix.starts_with("chmod 600 "), "{passwd}");
}

/// The implicit deny: every group's policy names the gateway's addresses
/// and the pool; `client_to_client` lifts it, off by default.
#[test]
fn groups_deny_the_gateway_and_other_sessions_unless_client_to_client() {
    let with = |line: &str| {
        GOOD.replace("listen = \"0.0.0.0:443\"", "listen = \"203.0.113.5:443\"")
            .replace("[[group]]\n", &format!("[[group]]\n{line}\n"))
            + "[admin]\nlisten = \"10.0.0.9:9443\"\n"
    };
    let c = Config::parse(&with("")).expect("valid");
    let p = &c.group(None).expect("the first group").policy;
    assert_eq!(p.gateway, [Ipv4Addr::new(192, 168, 99, 1), Ipv4Addr::new(203, 0, 113, 5), Ipv4Addr::new(10, 0, 0, 9)]);
    assert_eq!(p.pool, Some(c.pool));
    assert!(!p.client_to_client);
    assert!(
        Config::parse(&with("client_to_client = true"))
            .expect("valid")
            .group(None)
            .expect("the first group")
            .policy
            .client_to_client
    );
    let e = Config::parse(&with("client_to_client = \"yes\"")).expect_err("not a bool");
    assert_eq!(e.field, "group[0].client_to_client", "{e}");
    // A wildcard listen address names no address of its own.
    let c = Config::parse(GOOD).expect("valid");
    assert_eq!(c.group(None).expect("the first group").policy.gateway, [Ipv4Addr::new(192, 168, 99, 1)]);
}

/// Per-app selection: "all" or absent is every app; a list of absolute
/// paths is kept as given; anything else names the field.
#[test]
fn group_apps_are_all_or_absolute_paths() {
    let with = |line: &str| GOOD.replace("[[group]]\n", &format!("[[group]]\n{line}\n"));
    let apps = |line: &str| Config::parse(&with(line)).map(|c| c.group(None).expect("the first group").apps.clone());
    assert_eq!(apps("").expect("valid"), None);
    assert_eq!(apps("apps = \"all\"").expect("valid"), None);
    assert_eq!(
        apps("apps = [\"/usr/bin/ssh\", \"/opt/crm/crm client\"]").expect("valid"),
        Some(vec!["/usr/bin/ssh".to_owned(), "/opt/crm/crm client".to_owned()])
    );
    for bad in ["apps = []", "apps = [\"ssh\"]", "apps = \"some\"", "apps = true", "apps = [\"/bin/a\\nb\"]"] {
        let e = apps(bad).expect_err(bad);
        assert_eq!(e.field, "group[0].apps", "{bad}: {e}");
    }
}

/// Trusted-network detection: both fields or neither, an https URL and a pin.
#[test]
fn group_trusted_network_needs_an_https_url_and_a_pin() {
    let with = |lines: &str| GOOD.replace("[[group]]\n", &format!("[[group]]\n{lines}\n"));
    let pin = "pin-sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
    let c = Config::parse(&with(&format!("trusted_url = \"https://10.98.0.1:8443/\"\ntrusted_pin = \"{pin}\"")))
        .expect("valid");
    let t = c.group(None).expect("the first group").trusted.clone().expect("trusted network");
    assert_eq!((t.url.as_str(), t.pin.as_str()), ("https://10.98.0.1:8443/", pin));
    assert_eq!(Config::parse(GOOD).expect("valid").group(None).expect("group").trusted, None);
    for (lines, field) in [
        ("trusted_url = \"https://x/\"", "group[0].trusted_pin"),
        (&format!("trusted_pin = \"{pin}\"") as &str, "group[0].trusted_url"),
        (&format!("trusted_url = \"http://x/\"\ntrusted_pin = \"{pin}\"") as &str, "group[0].trusted_url"),
        ("trusted_url = \"https://x/\"\ntrusted_pin = \"sha1:abc\"", "group[0].trusted_pin"),
    ] {
        let e = Config::parse(&with(lines)).expect_err(lines);
        assert_eq!(e.field, field, "{lines}: {e}");
    }
}

/// `[admin] ctl_socket`: a default, relative to the configuration file
/// like every path, and refused where no socket can be made.
#[test]
fn the_ctl_socket_defaults_resolves_and_needs_a_directory_above_it() {
    let c = Config::parse(GOOD).expect("valid");
    assert_eq!(c.ctl_socket, Path::new(crate::ctl::DEFAULT_SOCKET));
    let e = Config::parse(&format!("{GOOD}[admin]\nctl_socket = \"\"\n")).expect_err("empty");
    assert_eq!(e.field, "admin.ctl_socket", "{e}");

    let dir = std::env::temp_dir().join(format!("corridor-load-ctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (f, mode) in [("server.crt", 0o644), ("server.key", 0o600), ("passwd", 0o600), ("not-a-dir", 0o644)] {
        std::fs::write(dir.join(f), "x").expect("write");
        std::fs::set_permissions(
            dir.join(f),
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode),
        )
        .expect("chmod");
    }
    let load = |socket: &str| {
        std::fs::write(dir.join("gateway.toml"), format!("{GOOD}[admin]\nctl_socket = \"{socket}\"\n"))
            .expect("config");
        Config::load(&dir.join("gateway.toml"))
    };
    let relative = load("run/gw.sock").map(|c| c.ctl_socket);
    let in_a_file = load("not-a-dir/gw.sock").map(|_| ());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(relative, Ok(dir.join("run/gw.sock")), "relative to the configuration file");
    let e = in_a_file.expect_err("its parent is a file");
    assert_eq!(e.field, "admin.ctl_socket", "{e}");
    assert!(e.problem.contains("not a directory"), "{e}");
}
