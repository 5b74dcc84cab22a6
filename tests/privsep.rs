//! End to end: `corridor gateway` as two processes (docs/security.md,
//! "Process model"). The network-facing worker runs unprivileged, without
//! capabilities, with `no_new_privs` and a seccomp filter on every thread,
//! and the server key and password hashes are nowhere in its memory; the
//! keeper holds them, root under a seccomp filter of its own. Logins and
//! TLS work through the keeper, and the worker ends when the keeper does.
//! `corridor relay` drops privileges the same way and still carries a
//! device end to end. Needs root; `scripts/test.sh` runs it.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::process::Command;
use std::time::{Duration, Instant};

use testbed::*;

/// The `Name:` line of a `/proc/…/status` text, whitespace-split.
fn status_field(status: &str, name: &str) -> Vec<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in status:\n{status}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// Checks every thread of `pid` runs as a non-root uid and gid with one
/// group, no capabilities, `no_new_privs` and a seccomp filter; returns
/// the uid, the gid and how many threads there are.
fn assert_confined(pid: u32) -> (String, String, usize) {
    let (mut uid, mut gid, mut threads) = (String::new(), String::new(), 0);
    for task in fs::read_dir(format!("/proc/{pid}/task")).expect("tasks").flatten() {
        let status = fs::read_to_string(task.path().join("status")).expect("status");
        let uids = status_field(&status, "Uid:");
        let gids = status_field(&status, "Gid:");
        assert!(uids.iter().all(|u| u != "0"), "uids {uids:?}");
        assert!(gids.iter().all(|g| g != "0"), "gids {gids:?}");
        uid = uids.first().cloned().expect("a uid");
        gid = gids.first().cloned().expect("a gid");
        assert_eq!(status_field(&status, "Groups:"), vec![gid.clone()], "supplementary groups");
        assert_eq!(status_field(&status, "CapEff:"), vec!["0000000000000000"]);
        assert_eq!(status_field(&status, "CapPrm:"), vec!["0000000000000000"]);
        assert_eq!(status_field(&status, "CapAmb:"), vec!["0000000000000000"]);
        assert_eq!(status_field(&status, "NoNewPrivs:"), vec!["1"]);
        assert_eq!(status_field(&status, "Seccomp:"), vec!["2"]);
        threads += 1;
    }
    (uid, gid, threads)
}

/// Whether the uid and gid `(uid, gid)`, with no other group, can read `path`.
fn readable_by(uid: &str, gid: &str, path: &std::path::Path) -> bool {
    let out = Command::new("setpriv")
        .args(["--reuid", uid, "--regid", gid, "--clear-groups", "cat"])
        .arg(path)
        .output()
        .expect("setpriv");
    out.status.success()
}

/// Whether `needle` occurs anywhere in the readable memory of `pid`.
fn memory_contains(pid: u32, needle: &[u8]) -> bool {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mut mem = fs::File::open(format!("/proc/{pid}/mem")).expect("mem");
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else { continue };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else { continue };
        let Ok(len) = usize::try_from(end - start) else { continue };
        let mut buf = vec![0u8; len];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue; // a mapping the kernel will not hand out (device memory, guard pages)
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2).expect("even"), 16).expect("hex")).collect()
}

/// The P-256 private scalar of a PEM key, big endian (`openssl pkey -text`).
fn private_scalar(key: &std::path::Path) -> Vec<u8> {
    let out = run(Command::new("openssl").args(["pkey", "-noout", "-text", "-in"]).arg(key));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut hex = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("priv:") {
            inside = true;
        } else if inside && line.starts_with("    ") {
            hex.extend(line.trim().split(':'));
        } else if inside {
            break;
        }
    }
    let mut scalar = unhex(&hex);
    // openssl prints a leading 00 when the top bit is set.
    while scalar.len() > 32 && scalar.first() == Some(&0) {
        scalar.remove(0);
    }
    assert_eq!(scalar.len(), 32, "P-256 scalar from:\n{text}");
    scalar
}

#[test]
fn the_worker_is_unprivileged_confined_and_holds_no_key_or_password_hash() {
    let t = Topology::up();
    let org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    // Logins (password through the keeper's PBKDF2, certificate through
    // the keeper's signature) and the tunnel work.
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    let page = run(ns(&client.ns, "curl").args(["-sS", "--max-time", "30", &format!("http://{ORG_IP}:8080/")])).stdout;
    assert!(!page.is_empty(), "a page through the tunnel");
    drop(org);

    let worker = gw.proc.child.id();
    let keepers = children(worker);
    assert_eq!(keepers.len(), 1, "the worker's one child, the keeper: {keepers:?}");
    let keeper = keepers[0];
    let cmdline = fs::read_to_string(format!("/proc/{keeper}/cmdline")).expect("cmdline").replace('\0', " ");
    assert!(cmdline.contains(" keeper "), "{cmdline}");

    // Every thread of the worker: no uid or gid 0, no capabilities,
    // no_new_privs, seccomp filter mode.
    let (uid, gid, threads) = assert_confined(worker);
    assert!(threads >= 4, "control, shards, verifiers: {threads} threads");
    // The keeper stays root (it rereads root-only files) but never talks
    // to the network: a seccomp filter on every one of its threads.
    let mut keeper_threads = 0;
    for task in fs::read_dir(format!("/proc/{keeper}/task")).expect("keeper tasks").flatten() {
        let kstatus = fs::read_to_string(task.path().join("status")).expect("keeper status");
        assert_eq!(status_field(&kstatus, "Uid:")[0], "0");
        assert_eq!(status_field(&kstatus, "Seccomp:"), vec!["2"], "keeper thread {:?}", task.file_name());
        assert_eq!(status_field(&kstatus, "NoNewPrivs:"), vec!["1"]);
        keeper_threads += 1;
    }
    assert!(keeper_threads >= 2, "the reading thread and the password checks: {keeper_threads} threads");

    // The ctl socket: root's and the worker's group's (mode 0660), and
    // the confined worker answers on it.
    {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(&gw.ctl_socket).expect("ctl socket");
        assert_eq!((m.uid(), m.gid().to_string(), m.mode() & 0o777), (0, gid.clone(), 0o660));
        let status = gw.ctl_ok(&["status"]);
        assert!(status.to_string().contains("shard"), "{status}");
    }

    // The worker's user cannot open the key or the password file.
    let key = t.dir.join("server.key");
    let passwd = t.dir.join("passwd");
    for secret in [&key, &passwd] {
        assert!(!readable_by(&uid, &gid, secret), "uid {uid} read {}", secret.display());
    }

    // The key's private scalar and alice's password hash: in the keeper
    // (which shows the search finds them), nowhere in the worker.
    let scalar = private_scalar(&key);
    let reversed: Vec<u8> = scalar.iter().rev().copied().collect();
    let line = fs::read_to_string(&passwd).expect("passwd");
    let alice = line.lines().find(|l| l.starts_with("alice:")).expect("alice");
    let hash = unhex(alice.split(':').nth(4).expect("hash field"));
    assert_eq!(hash.len(), 32);
    let in_keeper = memory_contains(keeper, &scalar) || memory_contains(keeper, &reversed);
    assert!(in_keeper, "the key's scalar is in the keeper's memory (either byte order)");
    assert!(memory_contains(keeper, &hash), "alice's hash is in the keeper's memory");
    assert!(!memory_contains(worker, &scalar), "the key's scalar is in the worker");
    assert!(!memory_contains(worker, &reversed), "the key's scalar (little endian) is in the worker");
    assert!(!memory_contains(worker, &hash), "alice's password hash is in the worker");
    drop(client);
}

#[test]
fn the_gateway_ends_when_its_keeper_does() {
    let t = Topology::up();
    let mut gw = Gateway::start(&t, &GatewayOptions::default());
    let worker = gw.proc.child.id();
    let keepers = children(worker);
    assert_eq!(keepers.len(), 1, "{keepers:?}");
    run(Command::new("kill").args(["-KILL", &keepers[0].to_string()]));
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(s)) = gw.proc.child.try_wait() {
            break s;
        }
        assert!(Instant::now() < end, "the gateway outlived its keeper:\n{}", gw.proc.log.text());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "exits with a failure status so it is restarted: {status:?}");
    assert!(gw.proc.log.contains("the keeper process ended"), "{}", gw.proc.log.text());
}

#[test]
fn a_key_the_keeper_cannot_load_stops_start_up_naming_the_field() {
    let t = Topology::up();
    let _gw = Gateway::start(&t, &GatewayOptions::default());
    drop(_gw);
    // A key that is not a key: the keeper refuses it, and the gateway's
    // start-up fails with the keeper's words and the configuration status.
    write_private(&t.dir.join("server.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let out = ns(&t.gateway(), corridor_bin())
        .args(["gateway", "--config"])
        .arg(t.dir.join("gateway.toml"))
        .output()
        .expect("corridor gateway");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("server.key"), "{stderr}");
}

#[test]
fn the_relay_is_unprivileged_confined_and_still_carries_a_device() {
    let t = Topology::up_relay();
    let org = Org::start(&t);
    let relay = Relay::start(&t);
    let _gw = Gateway::start(&t, &GatewayOptions { relayed: 1, ..GatewayOptions::default() });
    relay.wait_links(1, Duration::from_secs(10));

    // Its one thread (and any other): no uid or gid 0, no capabilities,
    // no_new_privs, seccomp filter mode, from the moment it said so.
    let line = relay.proc.log.wait_for("privileges dropped", Duration::from_secs(1));
    let (uid, gid, threads) = assert_confined(relay.proc.child.id());
    assert!(threads >= 1);
    assert!(line.contains(&format!("uid={uid}")), "{line}");

    // A device end to end through it: TLS spliced to the gateway, DTLS
    // through a flow port the confined relay opened.
    let client = Client::connect_relayed(&t, &t.device(), Login::Password("alice", PASSWORD));
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    let page = run(ns(&client.ns, "curl").args(["-sS", "--max-time", "30", &format!("http://{ORG_IP}:8080/")])).stdout;
    assert_eq!(String::from_utf8_lossy(&page), "<h1>org intranet</h1>\n", "a page through the relay");
    assert_eq!(udp_echo(&client.ns, 20), 20, "UDP both ways through the relay's flow");
    assert_eq!(relay.metric("corridor_relay_flows_bound_total"), 1, "{}", relay.admin("/metrics"));
    assert_eq!(relay.metric("corridor_relay_streams_spliced_total"), 1);

    // What it loaded as root stays root's: the relay's user can read
    // neither its link key nor the gateways' token (both mode 0600).
    for secret in [t.dir.join("relay-link.key"), t.dir.join("relay.token")] {
        assert!(!readable_by(&uid, &gid, &secret), "uid {uid} read {}", secret.display());
    }
    drop(client);
    drop(org);
}
