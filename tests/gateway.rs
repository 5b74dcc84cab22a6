//! End to end: the real `openconnect` client through `corridor gateway` to
//! servers in the organisation's namespace. Needs root (namespaces, TUN);
//! `scripts/test.sh` runs it.

use std::process::Command;
use std::time::Duration;

use testbed::*;

fn fetch(client: &Client, path: &str) -> Vec<u8> {
    run(ns(&client.ns, "curl").args(["-sS", "--max-time", "60", &format!("http://{ORG_IP}:8080/{path}")])).stdout
}

fn fetch_sha256(client: &Client, path: &str) -> String {
    let out = run(ns(&client.ns, "sh")
        .arg("-c")
        .arg(format!("curl -sS --max-time 120 http://{ORG_IP}:8080/{path} | sha256sum")));
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn password_login_dtls_tunnel_carries_http_bulk_tcp_and_udp() {
    let t = Topology::up();
    let org = Org::start(&t);
    let digest = org.file("bulk.bin", 20);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    assert!(client.address.starts_with("192.168.99."), "address from the pool: {}", client.address);
    // The client's own words: DTLS with the PSK-NEGOTIATE suite.
    let line = client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    assert!(line.contains("(DTLS1.2)-(PSK)-(AES-256-GCM)"), "{line}");
    gw.proc.log.wait_for("DTLS established on its shard", Duration::from_secs(5));

    assert_eq!(fetch(&client, "index.html"), b"<h1>org intranet</h1>\n");
    assert_eq!(fetch_sha256(&client, "bulk.bin"), digest, "bulk TCP transfer byte-identical");
    let upload = org.dir.join("bulk.bin");
    assert_eq!(tcp_upload_sha256(&t, &client.ns, &upload), digest, "bulk TCP upload byte-identical");
    assert_eq!(udp_echo(&client.ns, 50), 50, "UDP both ways");
    assert!(
        gw.metric("corridor_shard_rx_records_total") > 1000,
        "traffic went over DTLS:\n{}",
        gw.admin("GET", "/metrics")
    );
    // Offloads did the work: the download came from the TUN as TSO
    // super-packets, the upload went in as coalesced TCP super-packets,
    // and records left in UDP GSO batches.
    for metric in ["tun_super_packets", "tun_super_writes", "gso_sends"] {
        assert!(gw.metric(&format!("corridor_shard_{metric}_total")) > 0, "{metric}:\n{}", gw.admin("GET", "/metrics"));
    }
    assert_eq!(gw.metric_with("corridor_shard_drops_total", &[("reason", "offload")]), 0);
    // Every shard's latency histogram is served; the turns counted.
    let metrics = gw.admin("GET", "/metrics");
    assert!(metrics.contains("# TYPE corridor_shard_turn_seconds histogram"), "{metrics}");
    assert!(gw.metric("corridor_shard_turn_seconds_count") > 100, "{metrics}");
    let session = gw.session_of("alice").expect("alice's session");
    assert_eq!(session["address"], client.address.as_str(), "{session}");
    assert_eq!((&session["channel"], &session["via"]), (&"dtls".into(), &"direct".into()), "{session}");
}

/// The A/B baseline: no vnet header, one syscall per packet; the same bytes
/// arrive both ways.
#[test]
fn offloads_off_moves_the_same_bytes() {
    let t = Topology::up();
    let org = Org::start(&t);
    let digest = org.file("bulk.bin", 10);
    let gw = Gateway::start(&t, &GatewayOptions { offloads: false, ..GatewayOptions::default() });
    gw.proc.log.wait_for("offloads=off", Duration::from_secs(1));
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    gw.proc.log.wait_for("DTLS established on its shard", Duration::from_secs(5));
    assert_eq!(fetch_sha256(&client, "bulk.bin"), digest, "download byte-identical");
    assert_eq!(tcp_upload_sha256(&t, &client.ns, &org.dir.join("bulk.bin")), digest, "upload byte-identical");
    assert!(gw.metric("corridor_shard_rx_records_total") > 1000);
    for metric in ["tun_super_packets", "tun_super_writes", "gso_sends", "tx_records"] {
        assert_eq!(gw.metric(&format!("corridor_shard_{metric}_total")), 0, "{metric} without offloads");
    }
}

#[test]
fn certificate_login_dtls_tunnel_carries_http_bulk_tcp_and_udp() {
    let t = Topology::up();
    let org = Org::start(&t);
    let digest = org.file("bulk.bin", 10);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let client = Client::connect(&t, Login::Certificate, &[]);
    assert!(client.address.starts_with("192.168.99."), "{}", client.address);
    let line = client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    assert!(line.contains("(DTLS1.2)-(PSK)-(AES-256-GCM)"), "{line}");
    assert_eq!(fetch(&client, "index.html"), b"<h1>org intranet</h1>\n");
    assert_eq!(fetch_sha256(&client, "bulk.bin"), digest);
    assert_eq!(udp_echo(&client.ns, 30), 30);
    assert!(gw.session_of("carol").is_some(), "the certificate's CN is the user: {:?}", gw.sessions());
    gw.proc.log.wait_for("method=certificate", Duration::from_secs(1));
}

#[test]
fn blocked_udp_falls_back_to_cstp() {
    let t = Topology::up();
    let org = Org::start(&t);
    let digest = org.file("bulk.bin", 5);
    // nftables in the device namespace drops everything to the DTLS port.
    run(ns(&t.device(), "nft").args(["add table inet block"]));
    run(ns(&t.device(), "nft").arg("add chain inet block out { type filter hook output priority 0 ; }"));
    run(ns(&t.device(), "nft").args([&format!("add rule inet block out ip daddr {GATEWAY_IP} udp dport 443 drop")]));
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    assert!(!client.proc.log.contains("Established DTLS connection"));
    assert_eq!(fetch_sha256(&client, "bulk.bin"), digest);
    assert_eq!(udp_echo(&client.ns, 20), 20);
    assert!(
        gw.metric("corridor_cstp_frames_out_total") > 3000,
        "the download went over CSTP:\n{}",
        gw.admin("GET", "/metrics")
    );
    assert_eq!(gw.metric("corridor_shard_rx_records_total"), 0, "nothing reached DTLS");
}

#[test]
fn reconnect_keeps_the_address_and_logout_releases_it() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let mut client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    let first = client.address.clone();
    // SIGUSR2: openconnect drops the TLS connection and reconnects with its cookie.
    run(Command::new("kill").args(["-USR2", &client.proc.child.id().to_string()]));
    wait_until("a second CONNECT for the session", Duration::from_secs(30), || {
        (gw.proc.log.text().matches("tunnel up (CSTP)").count() >= 2).then_some(())
    });
    assert_eq!(client.wait_address(Duration::from_secs(10)), first, "same address after reconnect");
    assert_eq!(fetch(&client, "index.html"), b"<h1>org intranet</h1>\n");
    assert_eq!(
        gw.metric_with("corridor_logins_total", &[("method", "password"), ("outcome", "ok")]),
        1,
        "the reconnect used the cookie, not a new login"
    );
    assert!(gw.metric_with("corridor_logins_total", &[("method", "cookie"), ("outcome", "ok")]) >= 2, "both CONNECTs");

    client.disconnect();
    gw.proc.log.wait_for("reason=client logout", Duration::from_secs(10));
    wait_until("the session to be gone", Duration::from_secs(5), || gw.sessions().is_empty().then_some(()));
    assert_eq!(gw.metric("corridor_pool_addresses_in_use"), 0, "address returned to the pool");
}

#[test]
fn idle_timeout_ends_the_session_with_its_reason() {
    let t = Topology::up();
    let gw = Gateway::start(&t, &GatewayOptions { idle_timeout: 3, ..GatewayOptions::default() });
    let mut client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    let line = gw.proc.log.wait_for("reason=idle timeout", Duration::from_secs(20));
    assert!(line.contains("user=alice"), "{line}");
    // The client is told: it exits on the server's DISCONNECT.
    wait_until("openconnect to exit", Duration::from_secs(20), || client.proc.child.try_wait().ok().flatten());
    assert_eq!(gw.metric("corridor_pool_addresses_in_use"), 0);
    let _ = &mut client;
}

#[test]
fn wrong_password_gets_no_session() {
    let t = Topology::up();
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let mut client = Client::spawn(&t, Login::Password("alice", "wrong"), &[], "tun0");
    let status =
        wait_until("openconnect to give up", Duration::from_secs(30), || client.proc.child.try_wait().ok().flatten());
    assert!(!status.success());
    assert!(gw.metric_with("corridor_logins_total", &[("outcome", "failed")]) >= 1);
    assert_eq!(gw.metric_with("corridor_logins_total", &[("method", "password"), ("outcome", "ok")]), 0);
    assert!(gw.sessions().is_empty());
    assert!(client.proc.log.contains("Login failed"), "the form came back with the error:\n{}", client.proc.log.text());
}

/// Raw TLS from the device namespace: what a broken or hostile client sends.
fn raw_tls(t: &Topology, payload: &str) -> String {
    let script = format!(
        "import socket,ssl\nc=ssl.create_default_context(cafile='{ca}')\ns=c.wrap_socket(socket.create_connection(('{GATEWAY_IP}',443),timeout=5),server_hostname='vpn.test')\ns.sendall({payload})\nout=b''\nwhile True:\n try:\n  d=s.recv(65536)\n except Exception as e:\n  out+=b'<'+type(e).__name__.encode()+b'>'\n  break\n if not d:\n  out+=b'<EOF>'\n  break\n out+=d\nprint(out.decode('latin1'))",
        ca = t.dir.join("ca.crt").display()
    );
    String::from_utf8_lossy(&run(ns(&t.device(), "python3").args(["-c", &script])).stdout).into_owned()
}

#[test]
fn malformed_http_gets_400_and_the_connection_closed() {
    let t = Topology::up();
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let out = raw_tls(&t, "b'THIS IS NOT HTTP\\r\\n\\r\\n'");
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.ends_with("<EOF>\n") || out.ends_with("<EOF>"), "closed after the 400: {out}");
    let out = raw_tls(&t, "b'CONNECT /CSCOSSLC/tunnel HTTP/1.1\\r\\nHost: x\\r\\nCookie: webvpn=00\\r\\n\\r\\n'");
    assert!(out.starts_with("HTTP/1.1 401"), "unknown cookie refused: {out}");
    assert!(gw.metric("corridor_bad_requests_total") >= 1);
    assert!(gw.sessions().is_empty());
}

#[test]
fn garbage_udp_and_spoofed_inner_sources_are_counted_drops() {
    let t = Topology::up();
    let org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    // Garbage to the DTLS port from another socket: never a session's data.
    run(ns(&t.device(), "python3").args([
        "-c",
        &format!("import socket,os\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(20): s.sendto(os.urandom(200),('{GATEWAY_IP}',443))"),
    ]));
    // It reaches no session, so the shard's handshakes drop it unanswered.
    wait_until("garbage counted", Duration::from_secs(5), || {
        (gw.metric_with("corridor_shard_handshakes_total", &[("outcome", "not_client_hello")]) >= 20).then_some(())
    });
    // A packet into the tunnel whose source is not the device's address.
    let spoof = format!(
        "import socket,struct\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_BINDTODEVICE,b'tun0')\nsrc=socket.inet_aton('192.168.99.222')\ndst=socket.inet_aton('{ORG_IP}')\npayload=b'spoofed!'\nudp=struct.pack('!HHHH',4000,9000,8+len(payload),0)+payload\nip=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(udp),1,0,64,17,0,src,dst)\nfor i in range(5): s.sendto(ip+udp,('{ORG_IP}',0))"
    );
    run(ns(&t.device(), "python3").args(["-c", &spoof]));
    wait_until("spoofed packets counted", Duration::from_secs(5), || {
        (gw.metric_with("corridor_shard_drops_total", &[("reason", "spoofed_source")]) >= 5).then_some(())
    });
    assert!(!org.udp.log.contains("192.168.99.222"), "a spoofed packet reached the org network");
    assert_eq!(udp_echo(&client.ns, 10), 10, "the session itself is unharmed");
}

#[test]
fn a_second_clients_traffic_never_reaches_the_first() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let alice = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    let d2 = SecondDevice::add(&t);
    let mut cmd = ns(&d2.ns, "openconnect");
    cmd.args(["--protocol=anyconnect", "-v", "--non-inter", "--interface", "tun1", "--cafile"])
        .arg(t.dir.join("ca.crt"))
        .args(["--user", "bob", "--passwd-on-stdin", &format!("https://{GATEWAY_IP}/")]);
    let mut bob_proc = Proc::spawn("openconnect (bob)", cmd);
    if let Some(mut stdin) = bob_proc.child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(format!("{PASSWORD}\n").as_bytes());
    }
    let bob = Client { proc: bob_proc, ns: d2.ns.clone(), address: String::new() };
    let bob_addr = bob.wait_address(Duration::from_secs(30));
    assert_ne!(bob_addr, alice.address);
    bob.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));

    // Alice listens on her tunnel address; Bob aims straight at it.
    let listener = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('{}',7000))\ns.settimeout(3)\nn=0\ntry:\n while True:\n  s.recvfrom(65535); n+=1\nexcept socket.timeout:\n pass\nprint(n)",
        alice.address
    );
    let mut listen = Proc::spawn("alice listener", {
        let mut c = ns(&alice.ns, "python3");
        c.args(["-c", &listener]);
        c
    });
    std::thread::sleep(Duration::from_millis(300));
    let before = gw.metric_with("corridor_shard_drops_total", &[("reason", "client_to_client")]);
    run(ns(&bob.ns, "python3").args([
        "-c",
        &format!("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(10): s.sendto(b'from bob',('{}',7000))", alice.address),
    ]));
    let _ = listen.child.wait();
    listen.log.wait_for("0", Duration::from_secs(5));
    assert_eq!(listen.log.text().trim(), "0", "Bob's datagrams reached Alice");
    // Another session's address is denied before the group's networks are
    // even looked at (the implicit deny), and counted as such.
    wait_until("client-to-client drops counted", Duration::from_secs(5), || {
        (gw.metric_with("corridor_shard_drops_total", &[("reason", "client_to_client")]) >= before + 10).then_some(())
    });
    // Each gets their own replies from the org network, and only theirs.
    assert_eq!(udp_echo(&alice.ns, 20), 20);
    assert_eq!(udp_echo(&bob.ns, 20), 20);
}

#[test]
fn replayed_dtls_datagrams_are_counted_drops() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    // Capture one outgoing DTLS application-data datagram on the device's
    // link and put the very same frame on the wire three more times.
    let replay = "import socket\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.ntohs(3))\ns.bind(('to-gw',0))\ns.settimeout(15)\nwhile True:\n f,a=s.recvfrom(65535)\n if a[2]!=4 or f[12:14]!=b'\\x08\\x00': continue\n ip=f[14:]; h=(ip[0]&15)*4\n if ip[9]!=17: continue\n u=ip[h:]\n if u[2:4]!=(443).to_bytes(2,'big') or len(u)<9 or u[8]!=0x17: continue\n break\n# A captured outgoing frame may carry a partial (offloaded) UDP checksum; 0 means none.\nf=f[:14+h+6]+b'\\0\\0'+f[14+h+8:]\nfor i in range(3): s.send(f)\nprint('replayed',flush=True)";
    let capture = Proc::spawn("replayer", {
        let mut c = ns(&t.device(), "python3");
        c.args(["-c", replay]);
        c
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(udp_echo(&client.ns, 5), 5);
    capture.log.wait_for("replayed", Duration::from_secs(15));
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while gw.metric_with("corridor_shard_drops_total", &[("reason", "replay")]) < 3 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gw.metric_with("corridor_shard_drops_total", &[("reason", "replay")]) >= 3,
        "{}\n{}",
        gw.admin("GET", "/metrics"),
        capture.log.text()
    );
    assert_eq!(udp_echo(&client.ns, 5), 5, "the session is unharmed");
}

#[test]
fn traffic_moves_to_cstp_when_dtls_dies() {
    let t = Topology::up();
    let org = Org::start(&t);
    let digest = org.file("bulk.bin", 2);
    let gw = Gateway::start(&t, &GatewayOptions { dpd: 2, ..GatewayOptions::default() });
    let client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    assert_eq!(udp_echo(&client.ns, 5), 5);
    // UDP to the gateway disappears mid-session.
    run(ns(&t.device(), "nft").args(["add table inet block"]));
    run(ns(&t.device(), "nft").arg("add chain inet block out { type filter hook output priority 0 ; }"));
    run(ns(&t.device(), "nft").args([&format!("add rule inet block out ip daddr {GATEWAY_IP} udp dport 443 drop")]));
    // nftables makes sends fail at once, so openconnect sees its DTLS
    // session break and retries the handshake in vain.
    client.proc.log.wait_for("DTLS handshake failed", Duration::from_secs(30));
    assert_eq!(udp_echo(&client.ns, 10), 10, "UDP through the tunnel over CSTP");
    gw.proc.log.wait_for("device fell back to CSTP; DTLS grant revoked", Duration::from_secs(5));
    assert_eq!(fetch_sha256(&client, "bulk.bin"), digest, "and TCP both ways");
}

#[test]
fn a_slow_password_check_does_not_stall_other_sessions() {
    let t = Topology::up();
    let _org = Org::start(&t);
    // A user whose PBKDF2 needs 4e9 iterations: over half an hour of CPU,
    // far longer than this test. `corridor passwd` would have to compute
    // that hash, so the line is written by hand (the hash never matches).
    // Gateway::start adds alice and bob after it.
    std::fs::write(
        t.dir.join("passwd"),
        format!("slow:pbkdf2-sha256:4000000000:{}:{}\n", "00".repeat(16), "00".repeat(32)),
    )
    .expect("passwd");
    // No DTLS: alice's traffic goes over CSTP, through the control thread.
    run(ns(&t.device(), "nft").args(["add table inet block"]));
    run(ns(&t.device(), "nft").arg("add chain inet block out { type filter hook output priority 0 ; }"));
    run(ns(&t.device(), "nft").args([&format!("add rule inet block out ip daddr {GATEWAY_IP} udp dport 443 drop")]));
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let alice = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    assert_eq!(udp_echo(&alice.ns, 5), 5);

    let body = r#"<?xml version="1.0" encoding="UTF-8"?>\n<config-auth client="vpn" type="auth-reply"><auth><username>slow</username><password>whatever</password></auth></config-auth>"#;
    let script = format!(
        "import socket,ssl\nc=ssl.create_default_context(cafile='{ca}')\ns=c.wrap_socket(socket.create_connection(('{GATEWAY_IP}',443),timeout=600),server_hostname='vpn.test')\nb=b'{body}'\ns.sendall(b'POST /auth HTTP/1.1\\r\\nHost: vpn.test\\r\\nContent-Type: application/xml\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(b) + b)\nprint('sent',flush=True)\nprint(s.recv(65536).decode('latin1'),flush=True)",
        ca = t.dir.join("ca.crt").display()
    );
    let slow = Proc::spawn("slow login", {
        let mut c = ns(&t.device(), "python3");
        c.args(["-c", &script]);
        c
    });
    slow.log.wait_for("sent", Duration::from_secs(10));
    wait_until("the slow check to reach a verifier", Duration::from_secs(10), || {
        (gw.metric("corridor_password_checks_pending") == 1).then_some(())
    });

    // While that check runs, the control thread carries alice's tunnel and
    // takes a new TLS connection through its HTTP exchange.
    assert_eq!(udp_echo(&alice.ns, 20), 20, "CSTP traffic during the slow check");
    let out = raw_tls(&t, "b'GET / HTTP/1.1\\r\\nHost: vpn.test\\r\\n\\r\\n'");
    assert!(out.starts_with("HTTP/1.1 200") && out.contains("auth-request"), "a login form: {out}");

    // ... and all of it happened before the check finished.
    assert_eq!(gw.metric("corridor_password_checks_pending"), 1, "{}", gw.admin("GET", "/metrics"));
    assert!(!slow.log.contains("HTTP/1.1"), "the slow login has no answer yet: {}", slow.log.text());
    assert_eq!(
        gw.metric_with("corridor_logins_total", &[("method", "password"), ("outcome", "ok")]),
        1,
        "only alice logged in"
    );
    assert_eq!(gw.metric_with("corridor_logins_total", &[("outcome", "failed")]), 0);
}

#[test]
fn fifty_wrong_passwords_from_one_source_get_it_banned_while_another_source_logs_in() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    // 50 guesses at alice's password, each over a fresh TLS connection,
    // from the device namespace (10.10.0.2).
    let script = format!(
        "import socket,ssl\nc=ssl.create_default_context(cafile='{ca}')\nfailed=refused=0\nfor i in range(50):\n try:\n  s=c.wrap_socket(socket.create_connection(('{GATEWAY_IP}',443),timeout=60),server_hostname='vpn.test')\n  b=b'<config-auth client=\"vpn\" type=\"auth-reply\"><auth><username>alice</username><password>guess%d</password></auth></config-auth>' % i\n  s.sendall(b'POST /auth HTTP/1.1\\r\\nHost: vpn.test\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(b) + b)\n  out=s.recv(65536)\n  if b'Login failed' in out: failed+=1\n  else: refused+=1\n  s.close()\n except (OSError, ssl.SSLError):\n  refused+=1\nprint('failed=%d refused=%d' % (failed, refused), flush=True)",
        ca = t.dir.join("ca.crt").display()
    );
    let out = String::from_utf8_lossy(&run(ns(&t.device(), "python3").args(["-c", &script])).stdout).into_owned();
    // 8 wrong passwords (10 points each) reach the ban score of 80; the
    // rest are refused at accept.
    assert_eq!(out.trim(), "failed=8 refused=42", "{out}");
    assert_eq!(gw.metric("corridor_bans_total"), 1, "{}", gw.admin("GET", "/metrics"));
    assert_eq!(gw.metric("corridor_banned_sources"), 1);
    assert!(gw.metric_with("corridor_connections_refused_total", &[("reason", "banned")]) >= 42);
    assert_eq!(gw.metric_with("corridor_logins_total", &[("outcome", "failed")]), 8);
    gw.proc.log.wait_for("source banned", Duration::from_secs(1));
    // Another source logs in normally, as alice herself.
    let d2 = SecondDevice::add(&t);
    let alice = d2.client(&t, "alice", PASSWORD);
    assert!(alice.address.starts_with("192.168.99."), "{}", alice.address);
    assert_eq!(gw.metric_with("corridor_logins_total", &[("method", "password"), ("outcome", "ok")]), 1);
    // The banned source is still refused, before TLS.
    let probe = format!(
        "import socket,ssl\nc=ssl.create_default_context(cafile='{ca}')\ntry:\n c.wrap_socket(socket.create_connection(('{GATEWAY_IP}',443),timeout=5),server_hostname='vpn.test')\n print('accepted')\nexcept (OSError, ssl.SSLError):\n print('refused')",
        ca = t.dir.join("ca.crt").display()
    );
    let out = String::from_utf8_lossy(&run(ns(&t.device(), "python3").args(["-c", &probe])).stdout).into_owned();
    assert_eq!(out.trim(), "refused");
}

#[test]
fn a_pre_auth_flood_from_one_source_stops_at_its_cap_while_sessions_reconnect_and_log_in() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions::default());
    let d2 = SecondDevice::add(&t);
    let alice = d2.client(&t, "alice", PASSWORD);
    // From the device namespace: 70 idle TCP connections (past the
    // per-source cap of 64), 3 of TLS garbage, 3 TLS connections that
    // pipeline requests and never read; all held open.
    let flood = format!(
        "import socket,ssl,time\nc=ssl.create_default_context(cafile='{ca}')\nheld=[]\nfor i in range(3):\n try:\n  s=c.wrap_socket(socket.create_connection(('{GATEWAY_IP}',443),timeout=5),server_hostname='vpn.test')\n  s.setblocking(False)\n  try:\n   for j in range(2000): s.send(b'GET / HTTP/1.1\\r\\nHost: vpn.test\\r\\n\\r\\n')\n  except (OSError, ssl.SSLError): pass\n  held.append(s)\n except (OSError, ssl.SSLError): pass\nfor i in range(3):\n s=socket.create_connection(('{GATEWAY_IP}',443),timeout=5); s.sendall(b'\\x16\\x03\\x01garbage'*10); held.append(s)\nfor i in range(70):\n try: held.append(socket.create_connection(('{GATEWAY_IP}',443),timeout=5))\n except OSError: pass\nprint('flooding',flush=True)\ntime.sleep(120)",
        ca = t.dir.join("ca.crt").display()
    );
    let _flood = Proc::spawn("pre-auth flood", {
        let mut c = ns(&t.device(), "python3");
        c.args(["-c", &flood]);
        c
    });
    _flood.log.wait_for("flooding", Duration::from_secs(30));
    wait_until("the flood to reach its cap", Duration::from_secs(10), || {
        (gw.metric_with("corridor_connections_refused_total", &[("reason", "preauth")]) >= 1).then_some(())
    });
    assert!(gw.metric("corridor_preauth_connections") <= 64, "{}", gw.admin("GET", "/metrics"));
    assert_eq!(gw.metric("corridor_bans_total"), 0, "at its cap, not banned");
    // The existing session reconnects with its cookie (SIGUSR2: openconnect
    // drops its TLS connection and comes back with the cookie).
    run(Command::new("kill").args(["-USR2", &alice.proc.child.id().to_string()]));
    wait_until("alice's second CONNECT", Duration::from_secs(30), || {
        (gw.proc.log.text().matches("tunnel up (CSTP)").count() >= 2).then_some(())
    });
    assert_eq!(alice.wait_address(Duration::from_secs(10)), alice.address);
    // A new device logs in from the other source.
    let body = "<config-auth client=\\\"vpn\\\" type=\\\"auth-reply\\\"><auth><username>bob</username><password>correct horse battery staple</password></auth></config-auth>";
    let login = format!(
        "import socket,ssl\nc=ssl.create_default_context(cafile='{ca}')\ns=c.wrap_socket(socket.create_connection(('{GATEWAY_IP}',443),timeout=30),server_hostname='vpn.test')\nb=b\"{body}\"\ns.sendall(b'POST /auth HTTP/1.1\\r\\nHost: vpn.test\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(b) + b)\nprint(s.recv(65536).decode('latin1'),flush=True)",
        ca = t.dir.join("ca.crt").display()
    );
    let out = String::from_utf8_lossy(&run(ns(&d2.ns, "python3").args(["-c", &login])).stdout).into_owned();
    assert!(out.contains("Set-Cookie: webvpn="), "bob logged in: {out}");
    assert_eq!(gw.metric_with("corridor_logins_total", &[("method", "password"), ("outcome", "ok")]), 2);
    // The idle connections never finish TLS: the handshake deadline (10 s) closes them.
    wait_until("the idle flood closed by the TLS handshake deadline", Duration::from_secs(30), || {
        (gw.metric("corridor_tls_handshake_timeouts_total") >= 50).then_some(())
    });
}

/// The implicit deny with the real client in a full-tunnel (`0.0.0.0/0`)
/// group: the device reaches the org network but not the gateway's own
/// addresses (its TUN address, and the admin port listening there), and
/// the drops are counted; with `client_to_client` the same requests get
/// through, so the first half is no accident of routing.
#[test]
fn a_full_tunnel_device_cannot_reach_the_gateway_unless_client_to_client() {
    let t = Topology::up();
    let _org = Org::start(&t);
    for client_to_client in [false, true] {
        let options = GatewayOptions {
            allowed: vec!["0.0.0.0/0".into()],
            admin_listen: "0.0.0.0:9443".into(),
            client_to_client,
            ..GatewayOptions::default()
        };
        let gw = Gateway::start(&t, &options);
        let mut client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
        client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
        gw.proc.log.wait_for("DTLS established on its shard", Duration::from_secs(5));
        assert_eq!(fetch(&client, "index.html"), b"<h1>org intranet</h1>\n", "the org network is reachable");

        let admin = ns(&client.ns, "curl")
            .args(["-sS", "--max-time", "3", "http://192.168.99.1:9443/metrics"])
            .output()
            .expect("curl");
        let ping = ns(&client.ns, "ping").args(["-c", "1", "-W", "2", "192.168.99.1"]).output().expect("ping");
        let metrics = gw.admin("GET", "/metrics");
        if client_to_client {
            assert!(admin.status.success(), "the admin port answers: {}", String::from_utf8_lossy(&admin.stderr));
            assert!(ping.status.success(), "the TUN address answers ping");
            assert_eq!(gw.metric_with("corridor_shard_drops_total", &[("reason", "to_gateway")]), 0, "{metrics}");
        } else {
            assert!(
                !admin.status.success(),
                "the admin port is out of reach: {}",
                String::from_utf8_lossy(&admin.stdout)
            );
            assert!(!ping.status.success(), "the TUN address does not answer ping");
            // curl's SYN (and its retransmissions) and the ping, all over DTLS.
            assert!(gw.metric_with("corridor_shard_drops_total", &[("reason", "to_gateway")]) >= 2, "{metrics}");
            assert_eq!(gw.metric_with("corridor_shard_drops_total", &[("reason", "policy")]), 0, "{metrics}");
        }
        client.disconnect();
    }
}

/// Shard faults end the gateway (docs/security.md, "Shard faults"): a
/// shard that panics takes the process down with a clear log line and a
/// non-zero exit, so that systemd restarts it. Until then every shard
/// reads up in the metrics.
#[test]
fn a_shard_fault_ends_the_gateway_with_a_clear_log_line() {
    let t = Topology::up();
    let mut gw = Gateway::start(&t, &GatewayOptions { shard_fault: Some(0), ..GatewayOptions::default() });
    let metrics = gw.admin("GET", "/metrics");
    assert_eq!(gw.metric("corridor_shard_up"), 2, "{metrics}");
    assert!(metrics.contains("corridor_shard_last_turn_seconds{shard=\"1\"}"), "{metrics}");
    // The device's CONNECT authorises its DTLS handshake on every shard:
    // the hook makes shard 0 panic on it.
    let _client = Client::spawn(&t, Login::Password("alice", PASSWORD), &[], "tun0");
    let status = wait_until("the gateway to exit", Duration::from_secs(20), || gw.proc.child.try_wait().ok().flatten());
    assert!(!status.success(), "a non-zero exit: {status:?}");
    let log = gw.proc.log.text();
    assert!(log.contains("fault injected by CORRIDOR_TEST_SHARD_FAULT"), "the panic is logged:\n{log}");
    assert!(log.contains("data-plane shard died"), "the clear line:\n{log}");
    assert!(log.contains("corridor: event loop failed: data-plane shard0 died"), "{log}");
}
