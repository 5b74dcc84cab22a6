//! `corridor connect` end to end, in namespaces: against corridor (password
//! login, DTLS, UDP echoes and a TCP transfer through its TUN, the session
//! as the gateway sees it, SIGINT logs out and takes the interface and its
//! routes away), CSTP only with `--no-dtls`, a pinned key instead of a CA,
//! and refusals (wrong password, wrong pin) with their exit status;
//! against Debian's ocserv 1.1.6 with DTLS; and `--script` with Debian's
//! vpnc-script configuring the interface instead.

use std::process::Command;
use std::time::Duration;

use testbed::*;

const IFNAME: &str = "corridor0";

/// `corridor connect` in the device namespace, the password on its stdin.
fn connect(t: &Topology, url: &str, extra: &[&str], password: Option<&str>) -> Proc {
    let mut cmd = ns(&t.device(), corridor_bin());
    cmd.args(["connect", url, "--interface", IFNAME]).args(extra);
    if password.is_some() {
        cmd.args(["--user", "alice", "--passwd-on-stdin"]);
    }
    let mut p = Proc::spawn("corridor connect", cmd);
    if let Some(pw) = password {
        if let Some(mut stdin) = p.child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(format!("{pw}\n").as_bytes());
        }
    }
    p
}

fn with_ca(t: &Topology) -> Vec<String> {
    vec!["--cafile".into(), t.dir.join("ca.crt").display().to_string()]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Waits for the process to exit and returns its status code.
fn exit_code(p: &mut Proc, timeout: Duration) -> i32 {
    let status = wait_until("corridor connect to exit", timeout, || p.child.try_wait().ok().flatten());
    status.code().unwrap_or(-1)
}

/// SIGINT, as a user's ^C.
fn interrupt(p: &Proc) {
    let _ = Command::new("kill").args(["-INT", &p.child.id().to_string()]).status();
}

fn link_exists(t: &Topology) -> bool {
    run(Command::new("ip").args(["-n", &t.device(), "-o", "link", "show"]))
        .stdout
        .windows(IFNAME.len())
        .any(|w| w == IFNAME.as_bytes())
}

fn route_to_org(t: &Topology) -> String {
    String::from_utf8_lossy(&run(Command::new("ip").args(["-n", &t.device(), "route", "show", "10.99.0.0/24"])).stdout)
        .trim()
        .to_owned()
}

#[test]
fn password_login_carries_udp_and_tcp_over_dtls_and_sigint_logs_out() {
    let t = Topology::up();
    let org = Org::start(&t);
    let digest = org.file("up.bin", 4);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let mut c = connect(&t, &format!("https://{GATEWAY_IP}/"), &strs(&with_ca(&t)), Some(PASSWORD));
    let up = c.log.wait_for("tunnel interface up", Duration::from_secs(20));
    assert!(up.contains("address=192.168.99.") && up.contains(IFNAME), "{up}");
    c.log.wait_for("DTLS up", Duration::from_secs(20));
    assert!(route_to_org(&t).contains(&format!("dev {IFNAME}")), "the pushed route: {}", route_to_org(&t));

    assert_eq!(udp_echo(&t.device(), 20), 20, "UDP both ways through the TUN");
    assert_eq!(tcp_upload_sha256(&t, &t.device(), &org.dir.join("up.bin")), digest, "TCP byte-identical");
    let s = wait_until("the session's traffic counted", Duration::from_secs(10), || {
        gw.session_of("alice").filter(|s| s["bytes_in"].as_u64() > Some(4 << 20))
    });
    assert_eq!(s["channel"], "dtls", "{s}");
    // The client's own view: `corridor connect --status`.
    let status = wait_until("the client's status to count the upload", Duration::from_secs(10), || {
        let out = ns(&t.device(), corridor_bin())
            .args(["connect", "--status", "--json", "--interface", IFNAME])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["bytes_out"].as_u64() > Some(4 << 20)).then_some(v)
    });
    assert_eq!((&status["state"], &status["channel"]), (&"tunnel".into(), &"dtls".into()), "{status}");
    assert_eq!(status["address"], s["address"], "{status}");
    assert!(status["bytes_in"].as_u64() > Some(0) && status["cipher"].is_string(), "{status}");
    let table = run(ns(&t.device(), corridor_bin()).args(["connect", "--status", "--interface", IFNAME]));
    assert!(String::from_utf8_lossy(&table.stdout).starts_with("state         tunnel\n"), "{table:?}");

    interrupt(&c);
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());
    assert!(c.log.contains("logged out"), "{}", c.log.text());
    gw.proc.log.wait_for("reason_code=\"logout\"", Duration::from_secs(5));
    assert!(!link_exists(&t), "the TUN went with the client");
    assert_eq!(route_to_org(&t), "", "and its routes");
    let none =
        ns(&t.device(), corridor_bin()).args(["connect", "--status", "--interface", IFNAME]).output().expect("status");
    assert_eq!(none.status.code(), Some(1), "no client, no status: {none:?}");
}

#[test]
fn no_dtls_carries_everything_over_cstp() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let mut args = with_ca(&t);
    args.push("--no-dtls".into());
    let mut c = connect(&t, GATEWAY_IP, &strs(&args), Some(PASSWORD));
    c.log.wait_for("tunnel interface up", Duration::from_secs(20));
    assert_eq!(udp_echo(&t.device(), 10), 10);
    assert_eq!(gw.session_of("alice").expect("session")["channel"], "cstp");
    assert!(!c.log.contains("DTLS up"), "{}", c.log.text());
    interrupt(&c);
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());
}

/// A group with no split-include routes: everything goes into the tunnel
/// (`0.0.0.0/1`, `128.0.0.0/1`), the gateway's own address stays on the
/// path it had, so DTLS and TLS do not loop into the tunnel; on exit that
/// route goes too.
#[test]
fn a_full_tunnel_routes_everything_but_the_gateway_into_the_tun() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let _gw = Gateway::start(
        &t,
        &GatewayOptions { allowed: vec!["0.0.0.0/0".into()], full_tunnel: true, ..GatewayOptions::default() },
    );
    let mut c = connect(&t, GATEWAY_IP, &strs(&with_ca(&t)), Some(PASSWORD));
    c.log.wait_for("DTLS up", Duration::from_secs(20));
    let route_get = |dst: &str| {
        String::from_utf8_lossy(&run(Command::new("ip").args(["-n", &t.device(), "route", "get", dst])).stdout)
            .into_owned()
    };
    assert!(route_get("198.51.100.7").contains(&format!("dev {IFNAME}")), "{}", route_get("198.51.100.7"));
    assert!(route_get(GATEWAY_IP).contains("dev to-gw"), "{}", route_get(GATEWAY_IP));
    assert_eq!(udp_echo(&t.device(), 10), 10);
    interrupt(&c);
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());
    let left = String::from_utf8_lossy(&run(Command::new("ip").args(["-n", &t.device(), "route", "show"])).stdout)
        .into_owned();
    assert!(!left.contains(&format!("{GATEWAY_IP} dev")) && !left.contains("0.0.0.0/1"), "routes left behind:\n{left}");
}

/// The device's own address changes under a running transfer (a new
/// address on its link, the old one removed): the client hears it from
/// netlink, reconnects with the cookie from the new address at once, gets
/// the same tunnel address, brings DTLS up again, and the TCP connection
/// inside the tunnel carries on: what arrives is sha256-identical.
#[test]
fn a_new_local_address_reconnects_and_a_tcp_transfer_inside_survives() {
    let t = Topology::up();
    let org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let mut c = connect(&t, GATEWAY_IP, &strs(&with_ca(&t)), Some(PASSWORD));
    c.log.wait_for("DTLS up", Duration::from_secs(20));
    let before = gw.session_of("alice").expect("session");

    // 8 MiB paced over ~4 s, from inside the tunnel to a sink in the org.
    let digest = org.file("paced.bin", 8);
    let mut sink = ns(&t.org(), "python3");
    sink.args(["-c", &format!(
        "import socket,hashlib\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{ORG_IP}',9101))\ns.listen(1)\nprint('ready',flush=True)\nc,_=s.accept()\nh=hashlib.sha256()\nwhile True:\n d=c.recv(1<<20)\n if not d: break\n h.update(d)\nprint('sha256',h.hexdigest(),flush=True)"
    )]);
    let sink = Proc::spawn("org paced sink", sink);
    sink.log.wait_for("ready", Duration::from_secs(10));
    let mut send = ns(&t.device(), "python3");
    send.args(["-c", &format!(
        "import socket,time\nd=open('{}','rb').read()\ns=socket.create_connection(('{ORG_IP}',9101),timeout=60)\nfor i in range(0,len(d),65536):\n s.sendall(d[i:i+65536])\n time.sleep(0.03)\ns.close()\nprint('sent',flush=True)",
        org.dir.join("paced.bin").display()
    )]);
    let sender = Proc::spawn("paced sender", send);
    std::thread::sleep(Duration::from_secs(1));

    let dev = t.device();
    run(Command::new("ip").args(["netns", "exec", &dev, "sysctl", "-qw", "net.ipv4.conf.to-gw.promote_secondaries=1"]));
    run(Command::new("ip").args(["-n", &dev, "addr", "add", "10.10.0.5/24", "dev", "to-gw"]));
    run(Command::new("ip").args(["-n", &dev, "addr", "del", "10.10.0.2/24", "dev", "to-gw"]));
    let changed = c.log.wait_for("network changed", Duration::from_secs(10));
    assert!(changed.contains("10.10.0.5"), "{changed}");
    wait_until("DTLS up again", Duration::from_secs(20), || {
        (c.log.text().matches("DTLS up").count() >= 2).then_some(())
    });
    sender.log.wait_for("sent", Duration::from_secs(60));
    let line = sink.log.wait_for("sha256 ", Duration::from_secs(60));
    assert_eq!(line.split_whitespace().last(), Some(digest.as_str()), "the transfer survived byte-identical");

    let after = gw.session_of("alice").expect("the same session");
    assert_eq!((&after["id"], &after["address"]), (&before["id"], &before["address"]), "{after}");
    assert!(after["peer"].as_str().is_some_and(|p| p.starts_with("10.10.0.5:")), "{after}");
    interrupt(&c);
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());
}

/// `corridor app -- CMD...` in the device namespace: (exit code, stdout + stderr).
fn app(t: &Topology, cmd: &[&str]) -> (i32, String) {
    let out = ns(&t.device(), corridor_bin())
        .args(["app", "--interface", IFNAME, "--"])
        .args(cmd)
        .output()
        .expect("corridor app");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// A Python one-liner: how a TCP connection to `addr:port` ends, in one
/// word (`reached`, `refused`, or the error's name).
fn tcp_probe(addr: &str, port: u16) -> Vec<String> {
    let script = format!(
        "import socket\ntry:\n socket.create_connection(('{addr}',{port}),timeout=3); print('reached')\nexcept ConnectionRefusedError: print('refused')\nexcept OSError as e: print(type(e).__name__, e.errno)"
    );
    vec!["/usr/bin/python3".into(), "-c".into(), script]
}

/// Per-app selection from the gateway's `apps` list: a listed app started
/// with `corridor app` reaches the org through the tunnel, and nothing
/// outside it (the gateway's own address is dropped for it, not for
/// others); an unlisted app has no route into the tunnel; an unlisted
/// command is refused. Fail closed: with the client killed (no logout, no
/// clean-up) the listed app still reaches nothing.
#[test]
fn only_listed_apps_use_the_tunnel_and_they_fail_closed() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3").display().to_string();
    let gw = Gateway::start(&t, &GatewayOptions { apps: vec![python.clone()], ..GatewayOptions::default() });
    let mut c = connect(&t, GATEWAY_IP, &strs(&with_ca(&t)), Some(PASSWORD));
    let line = c.log.wait_for("per-app selection", Duration::from_secs(20));
    assert!(line.contains(&python), "{line}");
    c.log.wait_for("DTLS up", Duration::from_secs(20));

    let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(2)\nok=0\nfor i in range(5):\n s.sendto(b'app',('10.99.0.2',9000))\n try:\n  ok+=s.recvfrom(100)[0]==b'app'\n except OSError: pass\nprint('echoes',ok)";
    let (code, out) = app(&t, &["/usr/bin/python3", "-c", echo]);
    assert_eq!((code, out.trim()), (0, "echoes 5"), "the listed app through the tunnel");
    // Joining takes root; the app itself need not have it.
    let as_nobody = format!("import os\n{echo}\nprint('uid', os.getuid())");
    let out = ns(&t.device(), corridor_bin())
        .args(["app", "--interface", IFNAME, "--as", "nobody", "--", "/usr/bin/python3", "-c", &as_nobody])
        .output()
        .expect("corridor app --as");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echoes 5\nuid 65534\n", "{out:?}");
    let unlisted = ns(&t.device(), "/usr/bin/python3").args(["-c", echo]).output().expect("python3");
    let unlisted = String::from_utf8_lossy(&unlisted.stderr).into_owned();
    assert!(unlisted.contains("PermissionError"), "an app started otherwise does not enter the tunnel: {unlisted}");
    let probe = tcp_probe(GATEWAY_IP, 443);
    let (_, direct) = app(&t, &strs(&probe));
    // TCP takes the local drop as a lost SYN and times out; UDP is told EPERM.
    let not_reached = |s: &str| s.starts_with("TimeoutError") || s.starts_with("PermissionError");
    assert!(not_reached(&direct), "outside the tunnel the listed app reaches nothing: {direct}");
    let rules = run(ns(&t.device(), "nft").args(["list", "table", "inet", "corridor_corridor0"]));
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    let dropped = rules.lines().find(|l| l.contains("oifname != \"corridor0\"")).unwrap_or_default().to_owned();
    assert!(!dropped.contains("packets 0 "), "the guard counted the drops: {rules}");
    let out = run(ns(&t.device(), "python3").args(&probe[1..]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "reached", "others reach the gateway directly");
    let (code, out) = app(&t, &["curl", "-sS", "http://10.99.0.2:8080/"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not one of the apps"), "{out}");
    assert!(gw.session_of("alice").is_some());

    // Killed, with no chance to clean up: the rules and the cgroup stay
    // (so does the file `corridor app` reads), the app stays shut in.
    let pid = c.child.id();
    let _ = c.child.kill();
    let _ = c.child.wait();
    let (_, out) = app(&t, &["/usr/bin/python3", "-c", echo]);
    assert!(out.contains("unreachable") || out.contains("echoes 0"), "{out}");
    let (_, shut_in) = app(&t, &strs(&probe));
    assert!(not_reached(&shut_in), "after a crash the listed app still reaches nothing: {shut_in}");
    // A new client replaces what the crashed one left, and a clean exit
    // takes its own away: no table, no rule, no cgroup.
    let mut c = connect(&t, GATEWAY_IP, &strs(&with_ca(&t)), Some(PASSWORD));
    c.log.wait_for("DTLS up", Duration::from_secs(20));
    let (code, out) = app(&t, &["/usr/bin/python3", "-c", echo]);
    assert_eq!((code, out.trim()), (0, "echoes 5"), "after a restart");
    let second = c.child.id();
    interrupt(&c);
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());
    let tables = String::from_utf8_lossy(&run(ns(&t.device(), "nft").args(["list", "tables"])).stdout).into_owned();
    let rules = String::from_utf8_lossy(&run(ns(&t.device(), "ip").args(["rule", "show"])).stdout).into_owned();
    assert!(!tables.contains("corridor_") && !rules.contains("fwmark"), "{tables}\n{rules}");
    let (code, out) = app(&t, &["/usr/bin/python3", "-c", "print(1)"]);
    assert_eq!(code, 2, "no tunnel, no app: {out}");
    let gone = run(ns(&t.device(), "sh").arg("-c").arg(format!(
        "mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup; test -e /sys/fs/cgroup/corridor-{IFNAME}-{second} && echo left || echo gone"
    )));
    assert_eq!(String::from_utf8_lossy(&gone.stdout).trim(), "gone");
    // What the crash left in the (global) cgroup tree goes.
    run(ns(&t.device(), "sh").arg("-c").arg(format!(
        "mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup; rmdir /sys/fs/cgroup/corridor-{IFNAME}-{pid}"
    )));
}

/// Certificate login (`-c`, `-k`), no password, against corridor (the
/// CN is the user) and ocserv (`auth = "certificate"`), DTLS up both times.
#[test]
fn certificate_login_against_corridor_and_ocserv() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let (cert, key) = (t.dir.join("client.crt").display().to_string(), t.dir.join("client.key").display().to_string());
    let mut args = with_ca(&t);
    args.extend(["-c".to_owned(), cert, "-k".to_owned(), key]);
    for peer in ["corridor", "ocserv"] {
        let (gw, oc) = match peer {
            "corridor" => (Some(Gateway::start(&t, &GatewayOptions::default())), None),
            _ => (None, Some(Ocserv::start_with(&t, OcservAuth::Certificate))),
        };
        let mut c = connect(&t, GATEWAY_IP, &strs(&args), None);
        c.log.wait_for("DTLS up", Duration::from_secs(20));
        assert_eq!(udp_echo(&t.device(), 5), 5, "{peer}");
        if let Some(gw) = &gw {
            assert!(gw.session_of("carol").is_some(), "the certificate's CN is the user: {:?}", gw.sessions());
        }
        interrupt(&c);
        assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{peer}: {}", c.log.text());
        drop((gw, oc));
    }
}

/// `--dns`: the gateway's DNS servers and domain in the device's
/// resolv.conf while the tunnel is up (before the old servers), the old
/// file back when it ends; and a client killed before its clean-up is
/// undone by the next one. (`ip netns exec` bind-mounts
/// /etc/netns/NAME/resolv.conf over /etc/resolv.conf, so the host's file
/// is never touched.)
#[test]
fn dns_is_used_while_the_tunnel_is_up_and_put_back() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let etc = std::path::PathBuf::from(format!("/etc/netns/{}", t.device()));
    std::fs::create_dir_all(&etc).expect("/etc/netns");
    let original = "nameserver 192.0.2.53\noptions edns0\n";
    std::fs::write(etc.join("resolv.conf"), original).expect("resolv.conf");
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(etc.clone());
    let options = GatewayOptions {
        dns: vec!["10.99.0.53".into()],
        default_domain: "corp.test".into(),
        ..GatewayOptions::default()
    };
    let _gw = Gateway::start(&t, &options);
    let resolv = || String::from_utf8_lossy(&run(ns(&t.device(), "cat").arg("/etc/resolv.conf")).stdout).into_owned();
    let mut args = with_ca(&t);
    args.push("--dns".into());

    let mut c = connect(&t, GATEWAY_IP, &strs(&args), Some(PASSWORD));
    c.log.wait_for("DTLS up", Duration::from_secs(20));
    let during = resolv();
    assert!(during.contains("nameserver 10.99.0.53\nsearch corp.test\nnameserver 192.0.2.53\n"), "{during}");
    interrupt(&c);
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());
    assert_eq!(resolv(), original, "put back as it was");

    // Killed: the next client puts it back first.
    let mut c = connect(&t, GATEWAY_IP, &strs(&args), Some(PASSWORD));
    c.log.wait_for("DTLS up", Duration::from_secs(20));
    let _ = c.child.kill();
    let _ = c.child.wait();
    assert!(resolv().contains("10.99.0.53"), "left changed by the kill");
    let mut c = connect(&t, GATEWAY_IP, &strs(&with_ca(&t)), Some(PASSWORD));
    c.log.wait_for("DTLS up", Duration::from_secs(20));
    assert_eq!(resolv(), original, "the next client (without --dns) restored it");
    interrupt(&c);
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());
}

/// `--background --pid-file`: the command returns once the tunnel is up;
/// the client runs on as the pid in the file, carries traffic, and a
/// SIGINT to it logs out and takes the TUN away.
#[test]
fn background_returns_with_the_tunnel_up_and_a_pid_file() {
    use std::io::Write;
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let (pid_file, log) = (t.dir.join("connect.pid"), t.dir.join("connect.log"));
    let mut cmd = ns(&t.device(), corridor_bin());
    cmd.args(["connect", GATEWAY_IP, "--interface", IFNAME, "--user", "alice", "--passwd-on-stdin", "--background"])
        .arg("--pid-file")
        .arg(&pid_file)
        .args(with_ca(&t))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let mut parent = cmd.spawn().expect("corridor connect --background");
    if let Some(mut stdin) = parent.stdin.take() {
        let _ = stdin.write_all(format!("{PASSWORD}\n").as_bytes());
    }
    let status = wait_until("the command to return", Duration::from_secs(20), || parent.try_wait().ok().flatten());
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{}", text());
    let pid: u32 = std::fs::read_to_string(&pid_file).expect("pid file").trim().parse().expect("a pid");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "the client runs on");
    assert!(link_exists(&t), "its TUN is up");
    assert_eq!(udp_echo(&t.device(), 5), 5);
    assert!(gw.session_of("alice").is_some());

    let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
    wait_until("the background client to end", Duration::from_secs(10), || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    });
    assert!(text().contains("logged out"), "{}", text());
    wait_until("the TUN to go", Duration::from_secs(5), || (!link_exists(&t)).then_some(()));
}

/// `corridor connect ARGS` in the device namespace with `stdin` on its
/// standard input, run to its end: (exit code, stdout, stderr).
fn run_with_stdin(t: &Topology, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = ns(&t.device(), corridor_bin());
    cmd.arg("connect").args(args);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("corridor connect");
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("its output");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// The value of `NAME='value'` in what `--authenticate` printed.
fn assignment(out: &str, name: &str) -> String {
    let line = out.lines().find(|l| l.starts_with(&format!("{name}="))).unwrap_or_else(|| panic!("no {name} in {out}"));
    line.split_once('=').map(|(_, v)| v.trim_matches('\'').to_owned()).unwrap_or_default()
}

/// NetworkManager's two steps: `--authenticate` logs in and prints the
/// cookie and the gateway's key pin (standard output holds only those
/// lines; no TUN is made), then `--cookie-on-stdin --servercert PIN`
/// brings the tunnel up with that cookie, no login; against corridor and
/// ocserv.
#[test]
fn authenticate_then_connect_with_the_cookie() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let ca = t.dir.join("ca.crt").display().to_string();
    for peer in ["corridor", "ocserv"] {
        let (gw, oc) = match peer {
            "corridor" => (Some(Gateway::start(&t, &GatewayOptions::default())), None),
            _ => (None, Some(Ocserv::start(&t))),
        };
        let (code, out, err) = run_with_stdin(
            &t,
            &["--authenticate", "--user", "alice", "--passwd-on-stdin", "--cafile", &ca, GATEWAY_IP],
            &format!("{PASSWORD}\n"),
        );
        assert_eq!(code, 0, "{peer}: {out}\n{err}");
        assert_eq!(out.lines().count(), 5, "{peer}: only the assignments on stdout: {out}");
        assert_eq!(assignment(&out, "HOST"), GATEWAY_IP);
        assert_eq!(assignment(&out, "FINGERPRINT"), gateway_pin(&t), "{peer}");
        let cookie = assignment(&out, "COOKIE");
        assert!(!cookie.is_empty() && !link_exists(&t), "{peer}: {out}");
        if let Some(gw) = &gw {
            assert_eq!(gw.session_of("alice").expect("the login's session")["channel"], "none");
        }

        let pin = assignment(&out, "FINGERPRINT");
        let mut c = connect(&t, &assignment(&out, "CONNECT_URL"), &["--cookie-on-stdin", "--servercert", &pin], None);
        if let Some(mut stdin) = c.child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(format!("{cookie}\n").as_bytes());
        }
        c.log.wait_for("DTLS up", Duration::from_secs(20));
        assert!(!c.log.contains("logged in"), "{peer}: no second login: {}", c.log.text());
        assert_eq!(udp_echo(&t.device(), 5), 5, "{peer}");
        if let Some(gw) = &gw {
            assert_eq!(gw.sessions().len(), 1, "the same session: {:?}", gw.sessions());
        }
        interrupt(&c);
        assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{peer}: {}", c.log.text());
        drop((gw, oc));
    }

    // A cookie nobody issued: refused, exit 1.
    let _gw = Gateway::start(&t, &GatewayOptions::default());
    let (code, _, err) = run_with_stdin(&t, &["--cookie-on-stdin", "--cafile", &ca, GATEWAY_IP], "not-a-cookie\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("401") || err.contains("refused"), "{err}");
}

/// The SPKI pin of the gateway's certificate, as openconnect prints it.
fn gateway_pin(t: &Topology) -> String {
    spki_pin(&t.dir.join("server.crt"))
}

#[test]
fn a_pinned_key_is_trusted_without_a_ca_and_a_wrong_pin_or_password_is_refused() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let pin = gateway_pin(&t);
    let mut c = connect(&t, GATEWAY_IP, &["--servercert", &pin], Some(PASSWORD));
    c.log.wait_for("tunnel interface up", Duration::from_secs(20));
    assert_eq!(udp_echo(&t.device(), 5), 5);
    interrupt(&c);
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());

    let wrong = "pin-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let mut c = connect(&t, GATEWAY_IP, &["--servercert", wrong], Some(PASSWORD));
    assert_eq!(exit_code(&mut c, Duration::from_secs(20)), 1, "{}", c.log.text());
    let presented = pin.trim_start_matches("pin-sha256:");
    assert!(c.log.contains(presented) && c.log.contains("no --servercert names"), "{}", c.log.text());

    let mut c = connect(&t, GATEWAY_IP, &strs(&with_ca(&t)), Some("not the password"));
    assert_eq!(exit_code(&mut c, Duration::from_secs(20)), 1, "{}", c.log.text());
    assert!(c.log.contains("login refused"), "{}", c.log.text());
    assert!(!link_exists(&t), "no TUN was left behind");
    assert!(gw.sessions().is_empty());

    // The gateway's own TUN (`cor0` in the gateway namespace) is not
    // joined: a client naming an interface in use stops, saying so.
    let mut cmd = ns(&t.gateway(), corridor_bin());
    cmd.args(["connect", GATEWAY_IP, "--interface", "cor0", "--user", "alice", "--passwd-on-stdin"]).args(with_ca(&t));
    let mut c = Proc::spawn("corridor connect on the gateway's TUN", cmd);
    if let Some(mut stdin) = c.child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(format!("{PASSWORD}\n").as_bytes());
    }
    assert_eq!(exit_code(&mut c, Duration::from_secs(20)), 1, "{}", c.log.text());
    assert!(c.log.contains("in use"), "{}", c.log.text());
    assert_eq!(gw.sessions().len(), 0, "its session ended with it: {:?}", gw.sessions());

    let mut c = connect(&t, "http://10.10.0.1/", &[], Some(PASSWORD));
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 2, "a usage mistake: {}", c.log.text());
}

#[test]
fn against_ocserv_password_login_and_dtls() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let oc = Ocserv::start(&t);
    let mut c = connect(&t, GATEWAY_IP, &strs(&with_ca(&t)), Some(PASSWORD));
    let up = c.log.wait_for("tunnel interface up", Duration::from_secs(20));
    assert!(up.contains("address=192.168.99."), "{up}\nocserv:\n{}", oc.log());
    c.log.wait_for("DTLS up", Duration::from_secs(20));
    assert_eq!(udp_echo(&t.device(), 20), 20, "ocserv log:\n{}", oc.log());
    interrupt(&c);
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());
    assert!(!link_exists(&t));
}

/// Debian's vpnc-script, the one openconnect runs (`vpnc-scripts`, installed
/// with openconnect).
const VPNC_SCRIPT: &str = "/usr/share/vpnc-scripts/vpnc-script";

/// `--script`: the vpnc-script configures the interface instead of
/// corridor connect (the address as vpnc-script sets it, a /32 that is
/// its own peer; the pushed route; the host route to the gateway through the old
/// path); traffic flows; on ^C its disconnect takes the host route away,
/// and it was run for pre-init, connect and disconnect in that order.
#[test]
fn a_vpnc_script_configures_the_tunnel_instead() {
    assert!(std::path::Path::new(VPNC_SCRIPT).exists(), "{VPNC_SCRIPT} (Debian's vpnc-scripts)");
    let t = Topology::up();
    let org = Org::start(&t);
    let digest = org.file("up.bin", 2);
    let _gw = Gateway::start(&t, &GatewayOptions::default());
    let reasons = t.dir.join("reasons");
    let mut args = with_ca(&t);
    args.push("--script".into());
    args.push(format!("echo \"$reason\" >> {}; exec {VPNC_SCRIPT}", reasons.display()));
    let mut c = connect(&t, GATEWAY_IP, &strs(&args), Some(PASSWORD));
    c.log.wait_for("configured by the vpnc-script", Duration::from_secs(20));
    c.log.wait_for("DTLS up", Duration::from_secs(20));
    let ip = |args: &[&str]| {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &t.device()]).args(args);
        String::from_utf8_lossy(&run(&mut cmd).stdout).into_owned()
    };
    let addr = ip(&["-o", "addr", "show", "dev", IFNAME]);
    // vpnc-script's way: the address alone (/32, its own peer), the
    // pool's route beside it; corridor connect's own is the pool prefix.
    assert!(addr.contains("inet 192.168.99.") && addr.contains("/32 "), "the script's address: {addr}");
    assert!(route_to_org(&t).contains(&format!("dev {IFNAME}")), "the pushed route: {}", route_to_org(&t));
    assert!(!ip(&["route", "show", GATEWAY_IP]).trim().is_empty(), "the script's host route to the gateway");

    assert_eq!(udp_echo(&t.device(), 10), 10, "UDP both ways through the TUN");
    assert_eq!(tcp_upload_sha256(&t, &t.device(), &org.dir.join("up.bin")), digest, "TCP byte-identical");

    interrupt(&c);
    assert_eq!(exit_code(&mut c, Duration::from_secs(10)), 0, "{}", c.log.text());
    let ran = std::fs::read_to_string(&reasons).expect("the script wrote its reasons");
    assert_eq!(ran.split_whitespace().collect::<Vec<_>>(), ["pre-init", "connect", "disconnect"], "{ran}");
    assert!(ip(&["route", "show", GATEWAY_IP]).trim().is_empty(), "the script's disconnect removed its host route");
    assert!(!link_exists(&t), "the TUN went with the client");
}

/// Per-app selection needs corridor connect's own routes: with a gateway
/// that allows only listed apps, `--script` is refused before any route
/// changes, rather than quietly letting every app into the tunnel.
#[test]
fn a_vpnc_script_is_refused_where_only_listed_apps_may_use_the_tunnel() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let apps = GatewayOptions { apps: vec!["/usr/bin/python3".into()], ..GatewayOptions::default() };
    let _gw = Gateway::start(&t, &apps);
    let mut args = with_ca(&t);
    args.extend(["--script".into(), VPNC_SCRIPT.into()]);
    let mut c = connect(&t, GATEWAY_IP, &strs(&args), Some(PASSWORD));
    assert_eq!(exit_code(&mut c, Duration::from_secs(20)), 1, "{}", c.log.text());
    assert!(c.log.text().contains("run it without --script"), "{}", c.log.text());
    assert!(route_to_org(&t).is_empty(), "no route was added: {}", route_to_org(&t));
}
