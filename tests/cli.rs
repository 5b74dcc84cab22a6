//! The command line: configuration mistakes stop start-up with status 2 and
//! name the field; `corridor passwd` writes a file the gateway accepts.

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
