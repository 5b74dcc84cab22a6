//! End to end through the infrastructure relay: the real `openconnect`
//! client asks the relay for `vpn.test`, the relay splices its TLS to a
//! gateway that dialled out to it, and DTLS runs end to end through a relay
//! UDP port the gateway opened from inside a firewall that lets nothing in.
//! Needs root; `scripts/test.sh` runs it.

use std::time::Duration;

use testbed::*;

fn relayed(n: u8) -> GatewayOptions {
    GatewayOptions { relayed: n, ..GatewayOptions::default() }
}

fn fetch_sha256(client: &Client, path: &str) -> String {
    let out = run(ns(&client.ns, "sh")
        .arg("-c")
        .arg(format!("curl -sS --max-time 120 http://{ORG_IP}:8080/{path} | sha256sum")));
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// Whether a TCP connection from `from` to `to` completes within 2 s.
fn tcp_connects(from: &str, to: &str) -> bool {
    let script = format!(
        "import socket,sys\ntry:\n socket.create_connection(('{}',{}),timeout=2)\nexcept OSError:\n sys.exit(1)",
        to.split(':').next().unwrap_or_default(),
        to.split(':').nth(1).unwrap_or_default()
    );
    ns(from, "python3").args(["-c", &script]).status().is_ok_and(|s| s.success())
}

#[test]
fn relayed_dtls_tunnel_moves_bulk_tcp_and_udp_with_no_inbound_port() {
    let t = Topology::up_relay();
    let org = Org::start(&t);
    let digest = org.file("bulk.bin", 20);
    let relay = Relay::start(&t);
    let gw = Gateway::start(&t, &relayed(1));
    relay.wait_links(1, Duration::from_secs(10));
    gw.proc.log.wait_for("relay link up", Duration::from_secs(5));

    // The gateway's firewall lets nothing in, not even from the relay.
    assert!(!tcp_connects(&t.relay(), "10.20.0.2:443"), "the gateway accepted an inbound connection");

    let client = Client::connect_relayed(&t, &t.device(), Login::Password("alice", PASSWORD));
    let line = client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    assert!(line.contains("(DTLS1.2)-(PSK)-(AES-256-GCM)"), "{line}");
    // The shard holds the session with the relay's flow port as its peer.
    let session = gw.session_of("alice").expect("alice's session");
    assert_eq!(session["channel"], "dtls", "{session}");
    assert!(session["dtls_peer"].as_str().is_some_and(|p| p.starts_with(RELAY_GATEWAY_SIDE)), "{session}");
    assert_eq!(session["via"], format!("relay {RELAY_GATEWAY_SIDE}:3101").as_str(), "{session}");

    assert_eq!(fetch_sha256(&client, "bulk.bin"), digest, "bulk download byte-identical");
    let upload = org.dir.join("bulk.bin");
    assert_eq!(tcp_upload_sha256(&t, &client.ns, &upload), digest, "bulk upload byte-identical");
    assert_eq!(udp_echo(&client.ns, 50), 50, "UDP both ways");

    // Data went over DTLS through the relay's flow, not over CSTP.
    assert!(gw.metric("corridor_shard_rx_records_total") > 1000, "{}", gw.admin("GET", "/metrics"));
    assert_eq!(relay.metric("corridor_relay_flows_bound_total"), 1, "{}", relay.admin("/metrics"));
    assert!(
        relay.metric_with("corridor_relay_udp_bytes_total", &[("direction", "to_devices")]) > 20 << 20,
        "{}",
        relay.admin("/metrics")
    );
    assert!(
        relay.metric_with("corridor_relay_udp_bytes_total", &[("direction", "to_gateways")]) > 20 << 20,
        "{}",
        relay.admin("/metrics")
    );
    assert_eq!(relay.metric("corridor_relay_streams_spliced_total"), 1);
    assert_eq!(gw.metric("corridor_relay_flows_bound_total"), 1);

    // Still nothing can connect in, and the firewall counted the attempt.
    assert!(!tcp_connects(&t.relay(), "10.20.0.2:443"));
    let fw = run(ns(&t.gateway(), "nft").args(["list", "table", "inet", "corridor_fw"]));
    let fw = String::from_utf8_lossy(&fw.stdout);
    assert!(!fw.contains("counter packets 0 "), "the inbound drops were not counted:\n{fw}");
}

#[test]
fn bad_names_and_stray_datagrams_are_counted_drops_at_the_relay() {
    let t = Topology::up_relay();
    let relay = Relay::start(&t);
    let _gw = Gateway::start(&t, &relayed(1));
    relay.wait_links(1, Duration::from_secs(10));
    let device = t.device();
    let curl = |args: &[&str]| {
        let out = ns(&device, "curl").args(["-sS", "-k", "--max-time", "5"]).args(args).output().expect("curl");
        assert!(!out.status.success(), "curl {args:?} got through");
    };
    // A name no gateway registers, and no SNI at all (an address literal).
    curl(&["--resolve", &format!("other.test:443:{RELAY_IP}"), "https://other.test/"]);
    curl(&[&format!("https://{RELAY_IP}/")]);
    // Not TLS.
    let plain = run(ns(&device, "python3").args([
        "-c",
        &format!("import socket\ns=socket.create_connection(('{RELAY_IP}',443))\ns.sendall(b'GET / HTTP/1.1\\r\\n\\r\\n')\nprint(s.recv(10))"),
    ]));
    assert_eq!(String::from_utf8_lossy(&plain.stdout).trim(), "b''", "closed without a word");
    // UDP: a record from an unknown address, and a ClientHello whose
    // App-ID names no route.
    let stray = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.sendto(bytes([23,254,253,0,1])+bytes(40),('{RELAY_IP}',443))\n\
         sid=bytes([0xc0,9,9,9,9])+bytes(27)\n\
         body=bytes([254,253])+bytes([7])*32+bytes([32])+sid+bytes([0,0,2,0,0xa9,1,0])\n\
         n=len(body).to_bytes(3,'big')\n\
         hs=bytes([1])+n+bytes([0,0,0,0,0])+n+body\n\
         s.sendto(bytes([22,254,253,0,0,0,0,0,0,0,0])+len(hs).to_bytes(2,'big')+hs,('{RELAY_IP}',443))"
    );
    run(ns(&device, "python3").args(["-c", &stray]));
    wait_until("the relay to count every drop", Duration::from_secs(5), || {
        let drops = |reason: &str| relay.metric_with("corridor_relay_drops_total", &[("reason", reason)]);
        (drops("unknown_name") == 1
            && drops("no_sni") == 1
            && drops("bad_client_hello") == 1
            && drops("udp_unknown_peer") == 1
            && drops("udp_unknown_route") == 1)
            .then_some(())
    });
    assert!(relay.proc.log.contains("ClientHello for a name no gateway registers"), "{}", relay.proc.log.text());
}

#[test]
fn one_source_cannot_hold_more_connections_than_its_limit() {
    let t = Topology::up_relay();
    let relay = Relay::start_with(&t, "max_connections_per_source = 3\nhello_timeout = 2");
    // Four silent connections from one device: the fourth is closed at
    // accept; the three held are closed by the hello timeout.
    let script = format!(
        "import socket,time\n\
         s=[socket.create_connection(('{RELAY_IP}',443),timeout=5) for _ in range(4)]\n\
         def closed(c):\n\
         \x20c.settimeout(5)\n\
         \x20try:\n\
         \x20\x20return c.recv(1)==b''\n\
         \x20except OSError:\n\
         \x20\x20return True\n\
         print(closed(s[3]), all(closed(c) for c in s[:3]))"
    );
    let out = run(ns(&t.device(), "python3").args(["-c", &script]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "True True");
    assert_eq!(
        relay.metric_with("corridor_relay_connections_refused_total", &[("reason", "per_source")]),
        1,
        "{}",
        relay.admin("/metrics")
    );
    assert_eq!(relay.metric_with("corridor_relay_drops_total", &[("reason", "hello_timeout")]), 3);
    assert_eq!(relay.metric("corridor_relay_streams_pending"), 0, "every held connection was let go");
}

#[test]
fn a_relay_restart_brings_the_clients_back() {
    let t = Topology::up_relay();
    let _org = Org::start(&t);
    let mut relay = Relay::start(&t);
    let gw = Gateway::start(&t, &relayed(1));
    relay.wait_links(1, Duration::from_secs(10));
    let client = Client::connect_relayed(&t, &t.device(), Login::Password("alice", PASSWORD));
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    assert_eq!(udp_echo(&client.ns, 20), 20);

    relay.proc.stop(Duration::from_secs(5));
    gw.proc.log.wait_for("relay link lost; redialling", Duration::from_secs(10));
    let relay = Relay::start(&t);
    relay.wait_links(1, Duration::from_secs(15));
    // openconnect reconnects with its cookie through the new relay and
    // keeps its address; DTLS comes back through a new flow.
    wait_until("the client's second CONNECT through the new relay", Duration::from_secs(60), || {
        (relay.metric("corridor_relay_streams_spliced_total") >= 1
            && gw.proc.log.text().matches("tunnel up (CSTP)").count() >= 2)
            .then_some(())
    });
    wait_until("DTLS through the new relay", Duration::from_secs(30), || {
        (relay.metric("corridor_relay_flows_bound_total") >= 1).then_some(())
    });
    assert_eq!(client.wait_address(Duration::from_secs(5)), client.address, "same address after the reconnect");
    assert_eq!(udp_echo(&client.ns, 20), 20, "traffic flows again");
    // The gateway asked for its old route back and got it, so App-IDs
    // issued before the restart still route.
    assert!(relay.proc.log.contains("kept_route=true"), "{}", relay.proc.log.text());
}

#[test]
fn two_gateways_behind_one_name_share_devices_and_a_dead_ones_devices_move() {
    let t = Topology::up_relay();
    let _org = Org::start(&t);
    let relay = Relay::start(&t);
    let clustered = |n| GatewayOptions { cluster: true, ..relayed(n) };
    let gw1 = Gateway::start(&t, &clustered(1));
    let gw2 = Gateway::start(&t, &clustered(2));
    relay.wait_links(2, Duration::from_secs(10));

    let c1 = Client::connect_relayed(&t, &t.device(), Login::Password("alice", PASSWORD));
    let c2 = Client::connect_relayed(&t, &t.device2(), Login::Password("bob", PASSWORD));
    for c in [&c1, &c2] {
        c.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
        assert_eq!(udp_echo(&c.ns, 20), 20, "{}", c.ns);
    }
    assert_ne!(c1.address, c2.address, "cluster nodes hand out addresses from their own shares");
    // One device on each gateway.
    let on = |gw: &Gateway, user: &str| gw.session_of(user).is_some();
    assert!(
        on(&gw1, "alice") != on(&gw2, "alice"),
        "alice on one gateway:\n{:?}\n{:?}",
        gw1.sessions(),
        gw2.sessions()
    );
    assert!(
        on(&gw1, "alice") != on(&gw1, "bob"),
        "both devices on one gateway:\n{:?}\n{:?}",
        gw1.sessions(),
        gw2.sessions()
    );

    // Kill alice's gateway (SIGKILL: a crash, no goodbye to the devices).
    // openconnect reconnects with its cookie; the relay gives it the live
    // gateway, which adopts the session from the cookie with its address.
    let (mut dead, live) = if on(&gw1, "alice") { (gw1, gw2) } else { (gw2, gw1) };
    let _ = dead.proc.child.kill();
    let _ = dead.proc.child.wait();
    relay.wait_links(1, Duration::from_secs(10));
    live.proc.log.wait_for("session adopted from a cluster peer", Duration::from_secs(60));
    wait_until("alice's DTLS on the live gateway", Duration::from_secs(30), || {
        (c1.proc.log.text().matches("Established DTLS connection").count() >= 2).then_some(())
    });
    assert_eq!(c1.wait_address(Duration::from_secs(5)), c1.address, "the same address after the move");
    assert_eq!(udp_echo(&c1.ns, 20), 20, "alice's traffic on the live gateway");
    assert!(on(&live, "alice") && on(&live, "bob"), "{:?}", live.sessions());
    assert_eq!(live.metric("corridor_sessions_adopted_total"), 1);
    assert_eq!(udp_echo(&c2.ns, 20), 20, "bob never noticed");
}

/// The route the relay gave the link, from its "gateway link up" line.
fn link_route(relay: &Relay) -> String {
    let line = relay.proc.log.wait_for("gateway link up", Duration::from_secs(5));
    let at = line.find("route=").expect("route= in the link-up line") + "route=".len();
    line.get(at..at + 8).expect("8 hex digits").to_owned()
}

#[test]
fn a_flood_of_unauthenticated_connections_is_closed_while_links_and_devices_work() {
    let t = Topology::up_relay();
    let _org = Org::start(&t);
    let relay = Relay::start_with(&t, "auth_timeout = 2\nmax_unauthenticated_per_source = 32");
    let gw = Gateway::start(&t, &relayed(1));
    relay.wait_links(1, Duration::from_secs(10));
    // 2,000 connections to 3101 from another host of the gateways' side:
    // every other one says a plaintext Hello and a Ping, the rest idle.
    // Each must be closed, and none may get a Pong.
    let flood = format!(
        "import socket,selectors,resource,time\n\
         resource.setrlimit(resource.RLIMIT_NOFILE,(8192,8192))\n\
         name=b'vpn.test'\n\
         body=bytes([1])+bytes(4)+bytes([len(name)])+name\n\
         hello=bytes([1])+len(body).to_bytes(2,'big')+body\n\
         ping=bytes([0x30,0,8])+bytes(8)\n\
         sel=selectors.DefaultSelector()\n\
         got={{}}\n\
         for i in range(2000):\n\
         \x20s=socket.create_connection(('{RELAY_GATEWAY_SIDE}',3101),timeout=10)\n\
         \x20if i%2==0:\n\
         \x20\x20try: s.sendall(hello+ping)\n\
         \x20\x20except OSError: pass\n\
         \x20s.setblocking(False)\n\
         \x20sel.register(s,selectors.EVENT_READ)\n\
         \x20got[s]=b''\n\
         closed=0\n\
         end=time.time()+40\n\
         while closed<2000 and time.time()<end:\n\
         \x20for k,_ in sel.select(1):\n\
         \x20\x20try: d=k.fileobj.recv(4096)\n\
         \x20\x20except OSError: d=b''\n\
         \x20\x20if d: got[k.fileobj]+=d; continue\n\
         \x20\x20sel.unregister(k.fileobj); closed+=1\n\
         pongs=0\n\
         for d in got.values():\n\
         \x20while len(d)>=3:\n\
         \x20\x20pongs+=d[0]==0x31; d=d[3+int.from_bytes(d[1:3],'big'):]\n\
         print(f'closed={{closed}} pongs={{pongs}}')"
    );
    let flooder = ns(&t.gateway2(), "python3")
        .args(["-c", &flood])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    wait_until("the flood to reach its per-source cap", Duration::from_secs(20), || {
        (relay.metric_with("corridor_relay_connections_refused_total", &[("reason", "unauthenticated_per_source")]) > 0)
            .then_some(())
    });

    // Meanwhile a device logs in through the relay and its traffic flows.
    let client = Client::connect_relayed(&t, &t.device(), Login::Password("alice", PASSWORD));
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    assert_eq!(udp_echo(&client.ns, 20), 20, "the device's traffic through the relay");

    let out = flooder.wait_with_output().expect("the flood");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "closed=2000 pongs=0");
    let m = |n: &str| relay.metric(&format!("corridor_relay_{n}"));
    wait_until("every flood connection to be let go", Duration::from_secs(10), || {
        (m("unauthenticated") == 0).then_some(())
    });
    let refused = |reason: &str| relay.metric_with("corridor_relay_connections_refused_total", &[("reason", reason)]);
    let drops = |reason: &str| relay.metric_with("corridor_relay_drops_total", &[("reason", reason)]);
    let refused = refused("unauthenticated_per_source") + refused("unauthenticated");
    let dropped = drops("auth_timeout") + drops("plaintext_link");
    assert_eq!(refused + dropped, 2000, "{}", relay.admin("/metrics"));
    assert!(drops("auth_timeout") > 0 && drops("plaintext_link") > 0, "{}", relay.admin("/metrics"));
    assert_eq!((m("links"), m("links_lost_total")), (1, 0), "the real link never dropped");
    assert_eq!(gw.metric("corridor_relay_links_lost_total"), 0);
}

#[test]
fn one_app_id_from_many_ports_stops_at_its_flow_cap() {
    let t = Topology::up_relay();
    let relay = Relay::start_with(&t, "max_flows_per_app_id = 4\nmax_flows_per_source = 6");
    let gw = Gateway::start(&t, &relayed(1));
    relay.wait_links(1, Duration::from_secs(10));
    let route = link_route(&relay);
    // The gateway would refuse these App-IDs (no session has them) and so
    // free their flows: stopped, it leaves them waiting for a bind, and
    // what is held is what the caps allow. (The gateway is one process.)
    let pid = gw.proc.child.id().to_string();
    run(std::process::Command::new("kill").args(["-STOP", &pid]));
    // One App-ID from 50 ports, then 10 App-IDs from one port each.
    let spray = format!(
        "import socket\n\
         def hello(tail):\n\
         \x20sid=bytes([0xc0])+bytes.fromhex('{route}')+tail\n\
         \x20body=bytes([254,253])+bytes([7])*32+bytes([32])+sid+bytes([0,0,2,0,0xa9,1,0])\n\
         \x20n=len(body).to_bytes(3,'big')\n\
         \x20hs=bytes([1])+n+bytes([0,0,0,0,0])+n+body\n\
         \x20return bytes([22,254,253,0,0,0,0,0,0,0,0])+len(hs).to_bytes(2,'big')+hs\n\
         socks=[socket.socket(socket.AF_INET,socket.SOCK_DGRAM) for _ in range(60)]\n\
         for s in socks[:50]: s.sendto(hello(bytes([9])*27),('{RELAY_IP}',443))\n\
         for i,s in enumerate(socks[50:]): s.sendto(hello(bytes([i])*27),('{RELAY_IP}',443))"
    );
    run(ns(&t.device(), "python3").args(["-c", &spray]));
    let m = |n: &str| relay.metric(&format!("corridor_relay_{n}"));
    let counted = || relay.metric_with("corridor_relay_udp_datagrams_total", &[("direction", "from_devices")]) == 60;
    let seen = std::iter::repeat_with(|| std::thread::sleep(Duration::from_millis(100))).take(100).any(|_| counted());
    run(std::process::Command::new("kill").args(["-CONT", &pid]));
    assert!(seen, "the relay did not see the 60 ClientHellos: {}", relay.admin("/metrics"));
    // 4 flows for the sprayed App-ID, 2 more App-IDs up to the source's 6.
    let drops = |reason: &str| relay.metric_with("corridor_relay_drops_total", &[("reason", reason)]);
    assert_eq!(drops("udp_flows_per_app_id"), 46, "{}", relay.admin("/metrics"));
    assert_eq!(drops("udp_flows_per_source"), 8, "{}", relay.admin("/metrics"));
    assert_eq!(m("flows_allocated_total"), 6);
}

#[test]
fn a_tampered_link_record_is_rejected_and_the_link_redials() {
    let t = Topology::up_relay();
    let relay = Relay::start(&t);
    // A proxy on the relay's host that flips one byte of the fourth record
    // the first link sends after its ClientHello (Finished, Hello and Auth
    // come first: the fourth is a frame on the live link). Streams and
    // later links pass untouched.
    let proxy = format!(
        "import socket,threading\n\
         l=socket.socket(); l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         l.bind(('{RELAY_GATEWAY_SIDE}',3102)); l.listen(64)\n\
         print('listening',flush=True)\n\
         first=[True]\n\
         def pipe(a,b,tamper):\n\
         \x20buf=b''; records=0\n\
         \x20while True:\n\
         \x20\x20try: d=a.recv(65536)\n\
         \x20\x20except OSError: d=b''\n\
         \x20\x20if not d: break\n\
         \x20\x20if tamper:\n\
         \x20\x20\x20buf+=d; out=b''\n\
         \x20\x20\x20while len(buf)>=5 and len(buf)>=5+int.from_bytes(buf[3:5],'big'):\n\
         \x20\x20\x20\x20n=5+int.from_bytes(buf[3:5],'big'); rec=bytearray(buf[:n]); buf=buf[n:]\n\
         \x20\x20\x20\x20if rec[0]==23:\n\
         \x20\x20\x20\x20\x20records+=1\n\
         \x20\x20\x20\x20\x20if records==4: rec[-1]^=1; print('tampered',flush=True)\n\
         \x20\x20\x20\x20out+=bytes(rec)\n\
         \x20\x20\x20d=out\n\
         \x20\x20try: b.sendall(d)\n\
         \x20\x20except OSError: break\n\
         \x20for s in (a,b):\n\
         \x20\x20try: s.shutdown(socket.SHUT_RDWR)\n\
         \x20\x20except OSError: pass\n\
         while True:\n\
         \x20c,_=l.accept(); r=socket.create_connection(('{RELAY_GATEWAY_SIDE}',3101))\n\
         \x20head=c.recv(1,socket.MSG_PEEK)\n\
         \x20tamper=first[0] and head==b'\\x16'\n\
         \x20if tamper: first[0]=False\n\
         \x20threading.Thread(target=pipe,args=(c,r,tamper),daemon=True).start()\n\
         \x20threading.Thread(target=pipe,args=(r,c,False),daemon=True).start()"
    );
    let proxy = Proc::spawn("tampering proxy", {
        let mut c = ns(&t.relay(), "python3");
        c.args(["-u", "-c", &proxy]);
        c
    });
    proxy.log.wait_for("listening", Duration::from_secs(5));
    let via = GatewayOptions { relay_via: Some(format!("{RELAY_GATEWAY_SIDE}:3102")), ..relayed(1) };
    let gw = Gateway::start(&t, &via);
    proxy.log.wait_for("tampered", Duration::from_secs(20));
    let m = |n: &str| relay.metric(&format!("corridor_relay_{n}"));
    wait_until("the relay to reject the altered record", Duration::from_secs(10), || {
        (relay.metric_with("corridor_relay_drops_total", &[("reason", "link_tls")]) == 1).then_some(())
    });
    gw.proc.log.wait_for("relay link lost; redialling", Duration::from_secs(10));
    wait_until("the link to come back", Duration::from_secs(20), || {
        (m("links_up_total") == 2 && m("links") == 1).then_some(())
    });
    assert_eq!(m("links_lost_total"), 1, "{}", relay.admin("/metrics"));
    let drops = |reason: &str| relay.metric_with("corridor_relay_drops_total", &[("reason", reason)]);
    assert_eq!(drops("bad_gateway_frame"), 0, "no altered frame was taken for a frame");
}
