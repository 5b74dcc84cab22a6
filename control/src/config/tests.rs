//! The configuration's checks: defaults, bounds, and every mistake named.

use super::*;

const GOOD: &str = r#"
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
    assert_eq!(c.group(Some("nope")).name, "staff");
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
    let with = |key: &str, node: u32, nodes: u32| {
        Config::parse_in(&format!("{GOOD}[cluster]\nsecret_file = \"{key}\"\nnode = {node}\nnodes = {nodes}\n"), &dir)
    };
    let c = with("good.key", 2, 2).expect("valid").cluster.expect("cluster");
    assert_eq!((c.node, c.nodes, c.secret.len()), (2, 2, 32), "the newline is not part of the secret");
    for (key, node, nodes, field) in [
        ("short.key", 1, 2, "cluster.secret_file"),
        ("missing.key", 1, 2, "cluster.secret_file"),
        ("good.key", 3, 2, "cluster.node"),
        ("good.key", 0, 2, "cluster.node"),
        ("good.key", 1, 0, "cluster.nodes"),
    ] {
        let e = with(key, node, nodes).expect_err(field);
        assert_eq!(e.field, field, "{e}");
    }
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

/// The shipped example must stay a valid configuration.
#[test]
fn the_example_config_parses() {
    let text = include_str!("../../../config/gateway.example.toml");
    let c = Config::parse(text).expect("config/gateway.example.toml is valid");
    assert_eq!(c.pool.to_string(), "192.168.99.0/24");
    assert_eq!(c.groups.len(), 1);
}
