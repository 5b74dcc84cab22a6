//! End to end: reloading a running gateway (SIGHUP) with the real
//! openconnect client connected. Tunnels stay up; a renewed certificate is
//! served to the next connection; a locked user's session ends with
//! `user_removed` while another's carries on; a narrowed ACL drops a live
//! session's traffic at once; a change to a field that cannot change live,
//! or a file that does not parse, changes nothing. Needs root;
//! `scripts/test.sh` runs it.

use std::fs;
use std::process::Command;
use std::time::Duration;

use testbed::*;

/// Sends SIGHUP and waits for the reload's outcome line (the `n`th of its
/// kind); returns it.
fn reload(gw: &Gateway, outcome: &str, n: usize) -> String {
    run(Command::new("kill").args(["-HUP", &gw.proc.child.id().to_string()]));
    wait_until(&format!("reload outcome #{n} `{outcome}`"), Duration::from_secs(10), || {
        let text = gw.proc.log.text();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(outcome)).collect();
        lines.get(n - 1).map(|l| (*l).to_owned())
    })
}

fn served_fingerprint(t: &Topology) -> String {
    let out = run(ns(&t.device(), "sh").arg("-c").arg(format!(
        "openssl s_client -connect {GATEWAY_IP}:443 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
    )));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn file_fingerprint(path: &std::path::Path) -> String {
    let out = run(Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(path));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn sighup_keeps_tunnels_and_a_transfer_and_serves_a_renewed_certificate() {
    let t = Topology::up();
    let org = Org::start(&t);
    let digest = org.file("reload.bin", 16);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    let old = served_fingerprint(&t);
    assert_eq!(old, file_fingerprint(&t.dir.join("server.crt")));

    // A transfer paced to outlast the reload (16 MiB at 4 MiB/s).
    let mut transfer = Proc::spawn("paced download", {
        let mut c = ns(&client.ns, "sh");
        c.arg("-c").arg(format!("curl -sS --max-time 60 --limit-rate 4M http://{ORG_IP}:8080/reload.bin | sha256sum"));
        c
    });
    std::thread::sleep(Duration::from_secs(1));

    // Renew the server certificate and key (same CA), then reload.
    fs::remove_file(t.dir.join("server.crt")).expect("rm crt");
    fs::remove_file(t.dir.join("server.key")).expect("rm key");
    run(Command::new("bash").arg(repo().join("scripts/certs.sh")).arg(&t.dir));
    let renewed = file_fingerprint(&t.dir.join("server.crt"));
    assert_ne!(renewed, old, "certs.sh issued a new certificate");
    let line = reload(&gw, "configuration reloaded", 1);
    assert!(line.contains("certificate"), "{line}");

    // The next connection sees the new certificate; the tunnel and the
    // transfer never noticed.
    assert_eq!(served_fingerprint(&t), renewed);
    let status = transfer.child.wait().expect("wait");
    assert!(status.success());
    transfer.log.wait_for(&digest, Duration::from_secs(5));
    assert_eq!(udp_echo(&client.ns, 10), 10, "the tunnel after the reload");
    assert!(!client.proc.log.contains("Reconnect"), "openconnect had to reconnect:\n{}", client.proc.log.text());
    assert!(gw.session_of("alice").is_some(), "{:?}", gw.sessions());
}

#[test]
fn a_reload_ends_a_removed_users_session_and_narrows_a_live_acl() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let alice = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    alice.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    let d2 = SecondDevice::add(&t);
    let bob = d2.client(&t, "bob", PASSWORD);
    bob.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));

    // Bob is locked out (`corridor passwd --lock`, as an operator does it).
    let passwd = t.dir.join("passwd");
    run(Command::new(corridor_bin()).args(["passwd", "--file"]).arg(&passwd).args(["--lock", "bob"]));
    let line = reload(&gw, "configuration reloaded", 1);
    assert!(line.contains("user_removed: bob"), "{line}");
    gw.proc.log.wait_for("user_removed", Duration::from_secs(5));
    wait_until("bob's session gone, alice's kept", Duration::from_secs(10), || {
        (gw.session_of("bob").is_none() && gw.session_of("alice").is_some()).then_some(())
    });
    assert_eq!(udp_echo(&alice.ns, 10), 10, "alice's tunnel after bob's removal");
    drop(bob);
    drop(d2);

    // The group's ACL narrows to a network without the org server: alice's
    // live session is refused at once, by the shard, and counted.
    let config = t.dir.join("gateway.toml");
    let text = fs::read_to_string(&config).expect("config");
    let narrowed = text.replace("allowed = [\"10.99.0.0/24\"]", "allowed = [\"10.99.0.128/25\"]");
    assert_ne!(narrowed, text, "the config names the org network");
    fs::write(&config, narrowed).expect("write");
    let before = gw.metric_with("corridor_shard_drops_total", &[("reason", "policy")]);
    let line = reload(&gw, "configuration reloaded", 2);
    assert!(line.contains("1 sessions got a new policy"), "{line}");
    assert_eq!(udp_echo(&alice.ns, 10), 0, "alice still reaches the org network");
    wait_until("policy drops counted", Duration::from_secs(5), || {
        (gw.metric_with("corridor_shard_drops_total", &[("reason", "policy")]) >= before + 10).then_some(())
    });
    assert!(gw.session_of("alice").is_some(), "alice's session survives the narrower ACL");
}

#[test]
fn a_reload_that_changes_a_fixed_field_or_does_not_parse_changes_nothing() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    let config = t.dir.join("gateway.toml");
    let good = fs::read_to_string(&config).expect("config");

    let moved = good.replace("pool = \"192.168.99.0/24\"", "pool = \"192.168.98.0/24\"");
    assert_ne!(moved, good, "the config names the pool");
    fs::write(&config, &moved).expect("write");
    let line = reload(&gw, "reload refused", 1);
    assert!(line.contains("network.pool") && line.contains("restart"), "{line}");

    // `corridor ctl reload` takes the same path, and says so in JSON.
    fs::write(&config, "[server\nthis is not TOML").expect("write");
    let (code, answer) = gw.ctl(&["reload"]);
    assert_eq!((code, &answer["result"], &answer["kind"]), (1, &"error".into(), &"refused".into()), "{answer}");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("unchanged")), "{answer}");
    let line = reload(&gw, "reload refused", 3);
    assert!(line.contains("unchanged"), "{line}");

    // Still the old configuration, still serving: the tunnel, and a new login.
    assert_eq!(udp_echo(&client.ns, 10), 10);
    fs::write(&config, &good).expect("write");
    let answer = gw.ctl_ok(&["reload"]);
    assert_eq!(answer["result"], "reloaded", "{answer}");
    assert!(gw.session_of("alice").is_some(), "{:?}", gw.sessions());
    assert!(!gw.proc.log.contains("user_removed"));
}
