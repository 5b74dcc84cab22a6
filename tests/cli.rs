//! The command line: configuration mistakes stop start-up with status 2 and
//! name the field; `corridor passwd` writes a file the gateway accepts;
//! `corridor ctl` with no gateway says where it looked.

use std::io::Write;
use std::process::{Command, Stdio};

fn corridor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_corridor"))
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

#[test]
fn a_config_mistake_exits_2_naming_the_field_and_the_fix() {
    let d = tmp("bad");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.example.toml")).expect("example");
    std::fs::write(d.join("gateway.toml"), example.replace("pool = \"192.168.99.0/24\"", "pool = \"192.168.99.0/33\""))
        .expect("write");
    let out = corridor().args(["gateway", "--config"]).arg(d.join("gateway.toml")).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("network.pool") && err.contains("fix:"), "{err}");

    // Missing files are named too.
    let out = corridor().args(["gateway", "--config"]).arg(d.join("nope.toml")).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(d.join("ok.toml"), &example).expect("write");
    let out = corridor().args(["gateway", "--config"]).arg(d.join("ok.toml")).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.cert"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn passwd_adds_and_changes_users() {
    let d = tmp("passwd");
    let file = d.join("passwd");
    for (user, pw) in [("alice", "one"), ("bob", "two"), ("alice", "three")] {
        let mut p = corridor()
            .args(["passwd", "--iterations", "1000", "--group", "staff", "--file"])
            .arg(&file)
            .arg(user)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn");
        p.stdin.take().expect("stdin").write_all(format!("{pw}\n").as_bytes()).expect("write");
        assert!(p.wait().expect("wait").success());
    }
    let text = std::fs::read_to_string(&file).expect("read");
    assert_eq!(text.lines().filter(|l| l.starts_with("alice:")).count(), 1, "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("bob:")).count(), 1);
    assert!(!text.contains("three"), "no plaintext password in the file");
    let out = corridor().args(["passwd", "--file"]).arg(&file).arg("carol").stdin(Stdio::null()).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "no password on stdin is refused");
}

fn add_user(file: &std::path::Path, user: &str, group: &str) {
    let mut p = corridor()
        .args(["passwd", "--iterations", "1000", "--group", group, "--file"])
        .arg(file)
        .arg(user)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    p.stdin.take().expect("stdin").write_all(b"pw\n").expect("write");
    assert!(p.wait().expect("wait").success());
}

#[test]
fn check_config_refuses_undefined_groups_and_readable_keys() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmp("check");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.example.toml")).expect("example");
    std::fs::write(d.join("gateway.toml"), example).expect("write");
    for f in ["server.crt", "server.key"] {
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/device/testdata/").to_owned() + f, d.join(f))
            .expect("copy");
    }
    std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let passwd = d.join("passwd");
    add_user(&passwd, "alice", "default");
    // corridor passwd wrote it private, and left no temporary file behind.
    assert_eq!(std::fs::metadata(&passwd).expect("passwd").permissions().mode() & 0o777, 0o600);
    let names: Vec<String> = std::fs::read_dir(&d)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    let check = || {
        corridor().args(["gateway", "--check-config", "--config"]).arg(d.join("gateway.toml")).output().expect("run")
    };
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    add_user(&passwd, "mallory", "admins");
    let out = check();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth.password_file") && err.contains("mallory (group `admins`)"), "{err}");
    add_user(&passwd, "mallory", "default");
    assert_eq!(check().status.code(), Some(0));

    std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = check();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.key") && err.contains("chmod 600"), "{err}");
}

#[test]
fn check_config_refuses_root_and_unknown_users_for_the_worker() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmp("check-user");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.example.toml")).expect("example");
    for f in ["server.crt", "server.key"] {
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/device/testdata/").to_owned() + f, d.join(f))
            .expect("copy");
    }
    std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    add_user(&d.join("passwd"), "alice", "default");
    for (user, expect) in [("root", "cannot be the gateway's unprivileged user"), ("no-such-corridor-user", "no user")]
    {
        let config = example.replace("user = \"corridor\"", &format!("user = \"{user}\""));
        assert_ne!(config, example, "the example names [server] user");
        std::fs::write(d.join("gateway.toml"), config).expect("write");
        let out = corridor()
            .args(["gateway", "--check-config", "--config"])
            .arg(d.join("gateway.toml"))
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{user}: {err}");
        assert!(err.contains("server.user") && err.contains(expect), "{user}: {err}");
    }
}

/// `corridor ctl` with no gateway on its socket: status 2, naming the
/// socket and the likely fix; with `--json`, the same said in JSON. A
/// usage mistake is status 2 too, in JSON under `--json`.
#[test]
fn ctl_without_a_gateway_exits_2_naming_the_socket() {
    let socket = tmp("ctl").join("nobody.sock");
    let out = corridor().arg("ctl").arg("--socket").arg(&socket).arg("status").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&socket.display().to_string()) && err.contains("[admin] ctl_socket"), "{err}");
    for args in [&["status"][..], &["kill", "not-an-id"], &["kill"]] {
        let out = corridor().arg("ctl").arg("--socket").arg(&socket).arg("--json").args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"));
        assert_eq!(v["result"], "error", "{args:?}: {v}");
    }
}
