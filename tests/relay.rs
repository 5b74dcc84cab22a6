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
    let sessions = gw.sessions();
    assert!(sessions.contains("dtls=shard") && sessions.contains(RELAY_GATEWAY_SIDE), "{sessions}");

    assert_eq!(fetch_sha256(&client, "bulk.bin"), digest, "bulk download byte-identical");
    let upload = org.dir.join("bulk.bin");
    assert_eq!(tcp_upload_sha256(&t, &client.ns, &upload), digest, "bulk upload byte-identical");
    assert_eq!(udp_echo(&client.ns, 50), 50, "UDP both ways");

    // Data went over DTLS through the relay's flow, not over CSTP.
    assert!(gw.metric("corridor_shard_rx_records_total") > 1000, "{}", gw.admin("GET", "/metrics"));
    assert_eq!(relay.metric("corridor_relay_flows_bound_total"), 1, "{}", relay.admin("/metrics"));
    assert!(relay.metric("corridor_relay_udp_bytes_to_devices_total") > 20 << 20, "{}", relay.admin("/metrics"));
    assert!(relay.metric("corridor_relay_udp_bytes_to_gateways_total") > 20 << 20, "{}", relay.admin("/metrics"));
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
        let m = |n: &str| relay.metric(&format!("corridor_relay_{n}_total"));
        (m("drop_unknown_name") == 1
            && m("drop_no_sni") == 1
            && m("drop_bad_client_hello") == 1
            && m("drop_udp_unknown_peer") == 1
            && m("drop_udp_unknown_route") == 1)
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
    assert_eq!(relay.metric("corridor_relay_refused_per_source_total"), 1, "{}", relay.admin("/metrics"));
    assert_eq!(relay.metric("corridor_relay_drop_hello_timeout_total"), 3);
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
    let on = |gw: &Gateway, user: &str| gw.sessions().contains(&format!("user={user}"));
    assert!(on(&gw1, "alice") != on(&gw2, "alice"), "alice on one gateway:\n{}\n{}", gw1.sessions(), gw2.sessions());
    assert!(
        on(&gw1, "alice") != on(&gw1, "bob"),
        "both devices on one gateway:\n{}\n{}",
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
    assert!(on(&live, "alice") && on(&live, "bob"), "{}", live.sessions());
    assert_eq!(live.metric("corridor_sessions_adopted_total"), 1);
    assert_eq!(udp_echo(&c2.ns, 20), 20, "bob never noticed");
}
