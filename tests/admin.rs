//! End to end: administration off the control thread. Slow admin clients
//! do not hold up a login; HTTP serves `/metrics` and `/healthz` only;
//! sessions, kill, bans and unban live on the ctl socket (`corridor ctl`),
//! which answers bad requests with a clear error. Needs root (namespaces,
//! TUN); `scripts/test.sh` runs it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use testbed::*;

/// An admin HTTP client in the gateway namespace that never finishes its
/// request: `dribble` sends one byte of an endless request head every
/// 150 ms, `silent` sends nothing. It prints `connected`, `sent N` after
/// each byte, and `answered …` or `closed` once the gateway answers or
/// closes.
fn slow_admin_client(gw: &Gateway, mode: &str) -> Proc {
    let script = "import socket,select,sys\nmode=sys.argv[1]\ns=socket.create_connection(('127.0.0.1',9443),timeout=5)\nprint('connected',flush=True)\nhead=b'GET /metrics HTTP/1.1\\r\\nX-Slow: '+b'a'*100000\ni=0\nwhile True:\n r,_,_=select.select([s],[],[],0.15)\n if r:\n  d=s.recv(4096)\n  print('answered '+repr(d[:40]) if d else 'closed',flush=True)\n  break\n if mode=='dribble':\n  s.send(head[i:i+1]); i+=1\n  print('sent',i,flush=True)";
    let mut cmd = ns(&gw.ns, "python3");
    cmd.args(["-c", script, mode]);
    Proc::spawn(&format!("{mode} admin client"), cmd)
}

/// `curl -X METHOD http://127.0.0.1:9443PATH` in the gateway namespace:
/// the status code and the body.
fn http(gw: &Gateway, method: &str, path: &str) -> (u16, String) {
    let out = run(ns(&gw.ns, "curl").args([
        "-sS",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        &format!("http://127.0.0.1:9443{path}"),
    ]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or_default();
    (code.parse().unwrap_or(0), body.to_owned())
}

#[test]
fn slow_admin_clients_do_not_delay_a_login() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    // A login with no admin client about, for the record.
    let start = Instant::now();
    let mut first = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    let unloaded = start.elapsed();
    first.disconnect();
    gw.proc.log.wait_for("reason=client logout", Duration::from_secs(10));

    let dribbler = slow_admin_client(&gw, "dribble");
    let silent = slow_admin_client(&gw, "silent");
    dribbler.log.wait_for("sent 3", Duration::from_secs(10));
    silent.log.wait_for("connected", Duration::from_secs(10));
    let start = Instant::now();
    let _client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    let loaded = start.elapsed();
    // The login is through while both admin clients are still connected
    // and unanswered: it did not wait for either of them.
    for p in [&dribbler, &silent] {
        assert!(!p.log.contains("answered") && !p.log.contains("closed"), "{}:\n{}", p.name, p.log.text());
    }
    assert_eq!(gw.metric_with("corridor_logins_total", &[("method", "password"), ("outcome", "ok")]), 2);
    // Other admin clients are served meanwhile: HTTP and the ctl socket.
    assert_eq!(http(&gw, "GET", "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(gw.ctl_ok(&["status"])["sessions"], 1);
    for p in [&dribbler, &silent] {
        assert!(!p.log.contains("answered") && !p.log.contains("closed"), "{}:\n{}", p.name, p.log.text());
    }
    eprintln!("login took {unloaded:?} alone and {loaded:?} beside a dribbling and a silent admin client");
    // Their deadline answers them in the end.
    for p in [&dribbler, &silent] {
        let line = p.log.wait_for("answered", Duration::from_secs(30));
        assert!(line.contains("408"), "{line}");
    }
}

/// `openconnect --authenticate`: logs `user` in (the gateway makes a
/// session that waits for its CONNECT) and returns the cookie.
fn authenticate(t: &Topology, user: &str) -> String {
    let mut cmd = ns(&t.device(), "openconnect");
    cmd.args([
        "--protocol=anyconnect",
        "--authenticate",
        "--non-inter",
        "--user",
        user,
        "--passwd-on-stdin",
        "--cafile",
    ])
    .arg(t.dir.join("ca.crt"))
    .arg(format!("https://{GATEWAY_IP}/"))
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("openconnect --authenticate");
    child.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("password");
    let out = child.wait_with_output().expect("openconnect --authenticate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("COOKIE=")).unwrap_or_else(|| {
        panic!("no COOKIE= from openconnect --authenticate:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    });
    line.trim_matches('\'').to_owned()
}

/// openconnect in the device namespace, connecting with `cookie` (no login).
fn connect_with_cookie(t: &Topology, cookie: &str) -> Client {
    let mut cmd = ns(&t.device(), "openconnect");
    cmd.args(["--protocol=anyconnect", "-v", "--non-inter", "--interface", "tun0", "--cookie-on-stdin", "--cafile"])
        .arg(t.dir.join("ca.crt"))
        .arg(format!("https://{GATEWAY_IP}/"));
    let mut proc = Proc::spawn("openconnect (cookie)", cmd);
    if let Some(mut stdin) = proc.child.stdin.take() {
        let _ = stdin.write_all(format!("{cookie}\n").as_bytes());
    }
    Client { proc, ns: t.device(), address: String::new() }
}

#[test]
fn sessions_and_kill_are_on_the_ctl_socket_and_a_killed_cookie_is_refused() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let cookie = authenticate(&t, "alice");
    let mut client = connect_with_cookie(&t, &cookie);
    client.address = client.wait_address(Duration::from_secs(30));
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    let s = wait_until("alice's session on DTLS", Duration::from_secs(10), || {
        gw.session_of("alice").filter(|s| s["channel"] == "dtls")
    });
    assert_eq!(s["address"], client.address.as_str(), "{s}");
    assert_eq!((&s["group"], &s["via"]), (&"default".into(), &"direct".into()), "{s}");
    assert!(s["peer"].as_str().is_some_and(|p| p.starts_with("10.10.0.2:")), "{s}");
    assert!(s["shard"].as_u64().is_some_and(|n| n < 2), "{s}");
    assert!(s["cipher"].as_str().is_some_and(|c| c.contains("AES_256_GCM")), "{s}");
    assert!(s["since"].as_u64().is_some_and(|t| t > 1_600_000_000) && s["age_s"].is_u64(), "{s}");
    let id = s["id"].as_str().expect("an id").to_owned();
    // Traffic, counted per session by its shard: 10 echoed datagrams of
    // 100..=109 bytes of payload, 1,325 bytes of IP packets each way.
    assert_eq!(udp_echo(&t.device(), 10), 10);
    let s = wait_until("alice's traffic counted", Duration::from_secs(10), || {
        gw.session_of("alice").filter(|s| s["bytes_in"].as_u64() >= Some(1325) && s["bytes_out"].as_u64() >= Some(1325))
    });
    assert!(s["packets_in"].as_u64() >= Some(10) && s["packets_out"].as_u64() >= Some(10), "{s}");

    // Over HTTP: metrics and health, nothing that lists users or kills.
    assert_eq!(http(&gw, "GET", "/healthz"), (200, "ok\n".to_owned()));
    assert!(http(&gw, "GET", "/metrics").1.contains("corridor_sessions{state=\"tunnel\",via=\"direct\"} 1"));
    let (code, body) = http(&gw, "GET", "/sessions");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("corridor ctl"), "the 404 says where sessions went: {body}");
    assert_eq!(http(&gw, "POST", &format!("/sessions/{id}/kill")).0, 404);
    assert!(gw.session_of("alice").is_some(), "the session lives");

    // status: every shard up.
    let status = gw.ctl_ok(&["status"]);
    assert_eq!(status["result"], "status", "{status}");
    let shards = status["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2, "{status}");
    assert!(shards.iter().all(|s| s["up"] == true), "{status}");
    assert_eq!((&status["sessions"], &status["fips"]), (&1.into(), &expect_fips().into()), "{status}");
    // show, by user and by id; and the table a person reads.
    assert_eq!(gw.ctl_ok(&["show", "alice"])["sessions"][0]["id"], id.as_str());
    assert_eq!(gw.ctl_ok(&["show", &id])["sessions"][0]["user"], "alice");
    let table = run(Command::new(corridor_bin()).arg("ctl").arg("--socket").arg(&gw.ctl_socket).arg("sessions"));
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.starts_with("ID ") && table.contains(&format!("{id}  alice  default  {}", client.address)),
        "{table}"
    );

    // kill: the session ends, the device is told, the cookie is dead.
    let killed = gw.ctl_ok(&["kill", &id, "--reason", "admin test"]);
    assert_eq!((&killed["sessions"][0], &killed["reason"]), (&id.as_str().into(), &"admin test".into()), "{killed}");
    let line = gw.proc.log.wait_for("session killed by corridor ctl", Duration::from_secs(5));
    assert!(
        line.contains("reason=\"admin test\"") && line.contains("peer_uid=0") && line.contains("user=alice"),
        "{line}"
    );
    wait_until("openconnect to exit", Duration::from_secs(20), || client.proc.child.try_wait().ok().flatten());
    assert!(gw.sessions().is_empty());
    let mut again = connect_with_cookie(&t, &cookie);
    let status = wait_until("openconnect to give up on the cookie", Duration::from_secs(30), || {
        again.proc.child.try_wait().ok().flatten()
    });
    assert!(!status.success(), "{}", again.proc.log.text());
    gw.proc.log.wait_for("CONNECT with an unknown cookie", Duration::from_secs(5));
    assert!(gw.sessions().is_empty());
    let (code, json) = gw.ctl(&["kill", &id]);
    assert_eq!((code, &json["kind"]), (1, &"not_found".into()), "{json}");

    // kill --user: every session of the user, one waiting for its CONNECT too.
    authenticate(&t, "bob");
    assert_eq!(gw.session_of("bob").expect("bob's login")["channel"], "none");
    let killed = gw.ctl_ok(&["kill", "--user", "bob"]);
    assert_eq!(killed["sessions"].as_array().map(Vec::len), Some(1), "{killed}");
    assert!(gw.session_of("bob").is_none());
    let (code, json) = gw.ctl(&["kill", "--user", "bob"]);
    assert_eq!((code, &json["kind"]), (1, &"not_found".into()), "{json}");
    let (code, json) = gw.ctl(&["kill", "alice"]);
    assert_eq!((code, &json["kind"]), (2, &"bad_request".into()), "not a session id: {json}");
}

/// One raw request over the ctl socket: whatever the gateway answered.
fn raw_ctl(gw: &Gateway, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(&gw.ctl_socket).expect("connect to the ctl socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let _ = s.write_all(bytes);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn bad_ctl_requests_get_a_clear_error_and_bans_are_listed_and_lifted() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let error = |answer: &str| -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
        assert_eq!(v["result"], "error", "{v}");
        (v["kind"].as_str().unwrap_or_default().to_owned(), v["error"].as_str().unwrap_or_default().to_owned())
    };
    let (kind, e) = error(&raw_ctl(&gw, b"GET /sessions HTTP/1.1\r\n\r\n"));
    assert!(kind == "bad_request" && e.contains("not a ctl request"), "{e}");
    let (kind, e) = error(&raw_ctl(&gw, &[b'x'; 5000]));
    assert!(kind == "bad_request" && e.contains("over 4096 bytes"), "{e}");

    // A request a byte every 300 ms, and a silent one: each gets the
    // deadline's error and is closed, while others are answered.
    let socket = gw.ctl_socket.clone();
    let dribbled = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&socket).expect("connect");
        let start = Instant::now();
        for b in b"{\"command\":\"status\"}\n" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        (answer, start.elapsed())
    });
    let mut silent = UnixStream::connect(&gw.ctl_socket).expect("connect");
    assert_eq!(gw.ctl_ok(&["status"])["result"], "status", "answered while those wait");
    assert_eq!(http(&gw, "GET", "/healthz").0, 200);
    let (answer, took) = dribbled.join().expect("dribbler");
    let (kind, e) = error(&answer);
    assert!(kind == "bad_request" && e.contains("did not arrive within 1 s"), "{e}");
    let mut answer = String::new();
    silent.read_to_string(&mut answer).expect("the silent client's answer");
    assert!(error(&answer).1.contains("did not arrive within 1 s"), "{answer}");
    eprintln!("the dribbled ctl request was cut off after {took:?}");

    // Eight wrong passwords (10 points each) ban the device's source.
    let script = format!(
        "import socket,ssl\nc=ssl.create_default_context(cafile='{ca}')\nfor i in range(8):\n s=c.wrap_socket(socket.create_connection(('{GATEWAY_IP}',443),timeout=60),server_hostname='vpn.test')\n b=b'<config-auth client=\"vpn\" type=\"auth-reply\"><auth><username>alice</username><password>guess%d</password></auth></config-auth>' % i\n s.sendall(b'POST /auth HTTP/1.1\\r\\nHost: vpn.test\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(b) + b)\n s.recv(65536)\n s.close()",
        ca = t.dir.join("ca.crt").display()
    );
    run(ns(&t.device(), "python3").args(["-c", &script]));
    gw.proc.log.wait_for("source banned", Duration::from_secs(5));
    let bans = gw.ctl_ok(&["bans"]);
    let ban = &bans["bans"][0];
    assert_eq!(
        (&ban["source"], &ban["score"], &ban["banned"]),
        (&"10.10.0.2".into(), &80.into(), &true.into()),
        "{bans}"
    );
    assert!(ban["remaining_s"].as_u64().is_some_and(|s| s <= 300), "{bans}");
    assert_eq!(gw.ctl_ok(&["status"])["banned_sources"], 1);
    let unbanned = gw.ctl_ok(&["unban", "10.10.0.2"]);
    assert_eq!(unbanned["source"], "10.10.0.2", "{unbanned}");
    gw.proc.log.wait_for("unbanned by corridor ctl", Duration::from_secs(5));
    assert_eq!(gw.ctl_ok(&["bans"])["bans"], serde_json::json!([]));
    let (code, json) = gw.ctl(&["unban", "10.10.0.2"]);
    assert_eq!((code, &json["kind"]), (1, &"not_found".into()), "{json}");
    // The source logs in again.
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    assert!(gw.session_of("alice").is_some(), "{}", client.address);
}
