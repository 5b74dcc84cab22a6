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
    let with = |r: &str| format!("{GOOD}[[relay]]\n{r}\n");
    let c = Config::parse(&with("address = \"10.20.0.1:3101\"\nname = \"VPN.test\"\ntoken = \"0123456789abcdef\""))
        .expect("valid");
    assert_eq!(c.relays.len(), 1);
    assert_eq!(c.relays[0].name, "vpn.test");
    for (r, field) in [
        ("address = \"nowhere\"\nname = \"vpn.test\"\ntoken = \"0123456789abcdef\"", "relay[0].address"),
        ("address = \"10.20.0.1:3101\"\nname = \"bad name\"\ntoken = \"0123456789abcdef\"", "relay[0].name"),
        ("address = \"10.20.0.1:3101\"\nname = \"vpn.test\"\ntoken = \"short\"", "relay[0].token_file"),
        ("address = \"10.20.0.1:3101\"\nname = \"vpn.test\"", "relay[0].token_file"),
        (
            "address = \"10.20.0.1:3101\"\nname = \"vpn.test\"\ntoken_file = \"/nonexistent/token\"",
            "relay[0].token_file",
        ),
    ] {
        let e = Config::parse(&with(r)).expect_err(r);
        assert_eq!(e.field, field, "{e}");
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
    let p = &c.group(None).policy;
    assert_eq!(p.gateway, [Ipv4Addr::new(192, 168, 99, 1), Ipv4Addr::new(203, 0, 113, 5), Ipv4Addr::new(10, 0, 0, 9)]);
    assert_eq!(p.pool, Some(c.pool));
    assert!(!p.client_to_client);
    assert!(Config::parse(&with("client_to_client = true")).expect("valid").group(None).policy.client_to_client);
    let e = Config::parse(&with("client_to_client = \"yes\"")).expect_err("not a bool");
    assert_eq!(e.field, "group[0].client_to_client", "{e}");
    // A wildcard listen address names no address of its own.
    let c = Config::parse(GOOD).expect("valid");
    assert_eq!(c.group(None).policy.gateway, [Ipv4Addr::new(192, 168, 99, 1)]);
}
