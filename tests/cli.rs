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

/// A gateway directory that passes `--check-config`: the example
/// configuration (with `edit` applied), the test certificate and key, and
/// a password file.
fn gateway_dir(name: &str, edit: impl FnOnce(String) -> String) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = tmp(name);
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.example.toml")).expect("example");
    std::fs::write(d.join("gateway.toml"), edit(example)).expect("write");
    for f in ["server.crt", "server.key"] {
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/device/testdata/").to_owned() + f, d.join(f))
            .expect("copy");
    }
    std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    add_user(&d.join("passwd"), "alice", "default");
    d
}

fn line_of(text: &str, start: &str) -> usize {
    text.lines().position(|l| l.starts_with(start)).expect("the line") + 1
}

#[test]
fn a_type_mistake_names_the_field_path_and_its_line() {
    let d = gateway_dir("type", |t| t.replace("max_connections = 10000", "max_connections = \"many\""));
    let text = std::fs::read_to_string(d.join("gateway.toml")).expect("read");
    for args in [&["gateway", "--config"][..], &["gateway", "--check-config", "--config"]] {
        let out = corridor().args(args).arg(d.join("gateway.toml")).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let at = format!("line {}, column 19", line_of(&text, "max_connections"));
        assert!(err.contains("`server.max_connections`") && err.contains(&at), "{err}");
        assert!(err.contains("fix: write a whole number"), "{err}");
        assert!(out.stdout.is_empty(), "no effective configuration for a bad file");
    }
}

#[test]
fn check_config_prints_the_effective_configuration_without_secrets() {
    use std::os::unix::fs::PermissionsExt;
    const INLINE: &str = "inline-relay-secret-0123456789";
    const CLUSTER: &str = "cluster-secret-0123456789abcdef0123456789";
    let relay = format!(
        "[[relay]]\naddress = \"10.20.0.1:3101\"\nname = \"vpn.test\"\ntoken = \"{INLINE}\"\n\
         pin_sha256 = \"ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=\"\n\
         [cluster]\nsecret_file = \"cluster.key\"\nnode = 1\nnodes = 2\n"
    );
    // The example writes out every default: take one out.
    let d = gateway_dir("effective", |t| t.replace("max_connections = 10000\n", "") + &relay);
    std::fs::write(d.join("cluster.key"), CLUSTER).expect("secret");
    std::fs::set_permissions(d.join("cluster.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let file = std::fs::read_to_string(d.join("gateway.toml")).expect("read");
    assert!(!file.contains("max_connections ="), "the default below is not in the file");

    let out =
        corridor().args(["gateway", "--check-config", "--config"]).arg(d.join("gateway.toml")).output().expect("run");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!shown.contains(INLINE) && !shown.contains(CLUSTER), "{shown}");
    let t: toml::Table = shown.parse().unwrap_or_else(|e| panic!("{e}\n{shown}"));
    let get = |table: &str, key: &str| t.get(table).and_then(|v| v.get(key)).cloned();
    assert_eq!(get("server", "max_connections"), Some(toml::Value::Integer(10_000)));
    assert_eq!(get("timers", "cookie_grace"), Some(toml::Value::Integer(300)));
    let key = d.join("server.key").display().to_string();
    assert_eq!(get("server", "key"), Some(toml::Value::String(key)));
    let relay = t.get("relay").and_then(|r| r.get(0)).expect("[[relay]]");
    assert_eq!(relay.get("token").and_then(toml::Value::as_str), Some("<redacted inline>"));
    let from = format!("<redacted, from {}>", d.join("cluster.key").display());
    assert_eq!(get("cluster", "secret").as_ref().and_then(toml::Value::as_str), Some(from.as_str()));
}

#[test]
fn relay_check_config_prints_its_effective_configuration_or_names_the_mistake() {
    let d = tmp("relay-check");
    for (from, to) in [("server.crt", "link.crt"), ("server.key", "link.key")] {
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/device/testdata/").to_owned() + from, d.join(to))
            .expect("copy");
    }
    const TOKEN: &str = "relay-token-0123456789abcdef";
    std::fs::write(d.join("gw.token"), TOKEN).expect("token");
    let good = "[relay]\nlisten = \"0.0.0.0:443\"\ngateway_listen = \"0.0.0.0:3101\"\n\
                [[gateway]]\nname = \"vpn.test\"\ntoken_file = \"gw.token\"\n\
                [gateway_link]\ncert = \"link.crt\"\nkey = \"link.key\"\n";
    let check = |text: &str| {
        std::fs::write(d.join("relay.toml"), text).expect("write");
        corridor().args(["relay", "--check-config", "--config"]).arg(d.join("relay.toml")).output().expect("run")
    };
    let out = check(good);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!shown.contains(TOKEN), "{shown}");
    let t: toml::Table = shown.parse().unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(t.get("limits").and_then(|l| l.get("max_flows")), Some(&toml::Value::Integer(10_000)));
    let token = t.get("gateway").and_then(|g| g.get(0)).and_then(|g| g.get("token")).and_then(toml::Value::as_str);
    assert_eq!(token, Some(format!("<redacted, from {}>", d.join("gw.token").display()).as_str()));
    let user = t.get("relay").and_then(|r| r.get("user")).and_then(toml::Value::as_str);
    assert_eq!(user, Some("corridor"), "the user it drops to, by default");

    // The user it drops to: never root, and one that exists.
    for (user, expect) in [("root", "cannot be the relay's unprivileged user"), ("no-such-corridor-user", "no user")] {
        let out = check(&good.replace("gateway_listen", &format!("user = \"{user}\"\ngateway_listen")));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{user}: {err}");
        assert!(err.contains("relay.user") && err.contains(expect), "{user}: {err}");
    }

    let bad = good.replace("[[gateway]]", "[limits]\nmax_flows = -1\n[[gateway]]");
    let out = check(&bad);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let at = format!("line {}, column 13", line_of(&bad, "max_flows"));
    assert!(err.contains("`limits.max_flows`") && err.contains(&at) && err.contains("fix:"), "{err}");

    std::fs::write(d.join("link.key"), "not a key").expect("write");
    let out = check(good);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gateway_link.key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn passwd_deletes_locks_unlocks_and_lists_users() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmp("passwd-flags");
    let file = d.join("passwd");
    add_user(&file, "alice", "staff");
    add_user(&file, "bob", "default");
    let passwd = |args: &[&str]| corridor().arg("passwd").arg("--file").arg(&file).args(args).output().expect("run");
    let opens = |user: &str| control::passwd::PasswordFile::load(&file).expect("the file").check(user, "pw").is_some();

    assert_eq!(passwd(&["--lock", "alice"]).status.code(), Some(0));
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.lines().any(|l| l.starts_with("alice:!pbkdf2-sha256:1000:")), "{text}");
    assert!(!opens("alice") && opens("bob"), "a locked user's right password opens nothing");

    let out = passwd(&["--list"]);
    assert_eq!(out.status.code(), Some(0));
    let listed = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = listed.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        [
            vec!["user", "group", "locked", "iterations"],
            vec!["alice", "staff", "yes", "1000"],
            vec!["bob", "default", "no", "1000"]
        ]
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let hash = line.split(':').nth(4).expect("a hash");
        assert!(!listed.contains(hash), "--list shows no hash: {listed}");
    }

    assert_eq!(passwd(&["--unlock", "alice"]).status.code(), Some(0));
    assert!(opens("alice"), "unlocked, with the password they had");

    assert_eq!(passwd(&["--delete", "bob"]).status.code(), Some(0));
    assert!(!std::fs::read_to_string(&file).expect("read").contains("\nbob:"));
    let again = passwd(&["--delete", "bob"]);
    assert_eq!(again.status.code(), Some(1), "no such user");
    assert!(String::from_utf8_lossy(&again.stderr).contains("no such user"));
    assert_eq!(passwd(&["--lock", "carol"]).status.code(), Some(1));
    assert_eq!(passwd(&["--lock", "alice", "--group", "x"]).status.code(), Some(2), "--group sets a password only");

    // Every write stayed atomic and private.
    assert_eq!(std::fs::metadata(&file).expect("passwd").permissions().mode() & 0o777, 0o600);
    let names: Vec<String> = std::fs::read_dir(&d)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["passwd"]);
    let missing = corridor().args(["passwd", "--list", "--file"]).arg(d.join("nope")).output().expect("run");
    assert_eq!(missing.status.code(), Some(1));
}

/// Reads `from` until what it gave contains `needle`; panics, showing what
/// came, if it ends first.
fn read_until(from: &mut impl std::io::Read, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = from.read(&mut buf).expect("read");
        assert_ne!(n, 0, "ended before {needle:?}: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// `corridor passwd USER` on a terminal (a pty here): two prompts, no
/// echo of what is typed, echo restored, and a mismatch refused.
#[test]
fn passwd_asks_a_terminal_twice_without_echo() {
    use nix::sys::termios::{tcgetattr, LocalFlags};
    let d = tmp("pty");
    let file = d.join("passwd");
    let type_twice = |first: &str, again: &str| {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut child = corridor()
            .args(["passwd", "--iterations", "1000", "--file"])
            .arg(&file)
            .arg("alice")
            .stdin(Stdio::from(pty.slave.try_clone().expect("dup")))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stderr = child.stderr.take().expect("stderr");
        let mut terminal = std::fs::File::from(pty.master);
        // Each prompt is written once echo is off: typing after it is private.
        read_until(&mut stderr, "New password for alice: ");
        terminal.write_all(format!("{first}\n").as_bytes()).expect("type");
        read_until(&mut stderr, "Again: ");
        terminal.write_all(format!("{again}\n").as_bytes()).expect("type");
        let status = child.wait().expect("wait");
        let flags = tcgetattr(&pty.slave).expect("tcgetattr").local_flags;
        assert!(flags.contains(LocalFlags::ECHO), "echo is restored");
        // Echoed now, so everything the terminal showed before it is read.
        terminal.write_all(b"END-OF-TEST\n").expect("type");
        let shown = read_until(&mut terminal, "END-OF-TEST");
        (status.code(), shown)
    };

    let (code, shown) = type_twice("s3cret-typed", "s3cret-typed");
    assert_eq!(code, Some(0));
    assert!(!shown.contains("s3cret"), "the terminal showed {shown:?}");
    let opens = |pw: &str| control::passwd::PasswordFile::load(&file).expect("file").check("alice", pw).is_some();
    assert!(opens("s3cret-typed"));

    let (code, shown) = type_twice("one-password", "another-password");
    assert_eq!(code, Some(2), "a mismatch is refused");
    assert!(!shown.contains("password"), "the terminal showed {shown:?}");
    assert!(opens("s3cret-typed"), "nothing changed");
}
