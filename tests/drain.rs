//! End to end: draining one of two gateways behind a relay (the real
//! openconnect client). `corridor ctl drain` tells the relay, refuses new
//! logins and closes the tunnel without DISCONNECT; openconnect reconnects
//! with its cookie, the relay sends it to the other gateway, which adopts
//! the session with the same address; a download running across the move
//! completes sha256-identical (its TCP connection does not survive: the
//! gateways masquerade towards the org network, so curl retries it) and
//! UDP flows again. Needs root; `scripts/test.sh` runs it.

use std::time::Duration;

use testbed::*;

#[test]
fn a_drained_gateways_device_moves_to_its_peer_with_its_address() {
    let t = Topology::up_relay();
    let org = Org::start(&t);
    let digest = org.file("drain.bin", 16);
    let relay = Relay::start(&t);
    let clustered = |n| GatewayOptions { cluster: true, relayed: n, ..GatewayOptions::default() };
    let gws = [Gateway::start(&t, &clustered(1)), Gateway::start(&t, &clustered(2))];
    relay.wait_links(2, Duration::from_secs(10));
    let client = Client::connect_relayed(&t, &t.device(), Login::Password("alice", PASSWORD));
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    let holder = wait_until("a gateway holding alice", Duration::from_secs(10), || {
        gws.iter().position(|g| g.session_of("alice").is_some())
    });
    let (drained, peer) = (&gws[holder], &gws[1 - holder]);

    // A paced download (16 MiB at 4 MiB/s) across the drain; curl retries
    // a broken transfer from the start.
    let mut transfer = Proc::spawn("paced download", {
        let mut c = ns(&client.ns, "sh");
        c.arg("-c").arg(format!(
            "curl -sS --max-time 90 --retry 10 --retry-all-errors --retry-delay 1 --limit-rate 4M \
             -o /tmp/corridor-drain-{p}.bin http://{ORG_IP}:8080/drain.bin && sha256sum /tmp/corridor-drain-{p}.bin; \
             rm -f /tmp/corridor-drain-{p}.bin",
            p = t.prefix
        ));
        c
    });
    std::thread::sleep(Duration::from_secs(1));

    let answer = drained.ctl_ok(&["drain"]);
    assert_eq!((&answer["result"], &answer["sessions"]), (&"drained".into(), &1.into()), "{answer}");
    relay.proc.log.wait_for("gateway draining", Duration::from_secs(5));
    drained.proc.log.wait_for("reason_code=\"drained\"", Duration::from_secs(5));
    peer.proc.log.wait_for("session adopted from a cluster peer", Duration::from_secs(60));
    wait_until("alice's DTLS on the peer", Duration::from_secs(30), || {
        (client.proc.log.text().matches("Established DTLS connection").count() >= 2).then_some(())
    });
    assert_eq!(client.wait_address(Duration::from_secs(5)), client.address, "the same address after the move");
    assert!(peer.session_of("alice").is_some() && drained.session_of("alice").is_none());
    assert!(!client.proc.log.contains("DISCONNECT"), "a drain sends no DISCONNECT:\n{}", client.proc.log.text());
    assert_eq!(udp_echo(&client.ns, 20), 20, "alice's traffic on the peer");

    let status = transfer.child.wait().expect("wait");
    assert!(status.success(), "{}", transfer.log.text());
    transfer.log.wait_for(&digest, Duration::from_secs(5));
    // The drained gateway takes no new login.
    assert!(drained.metric("corridor_cookies_revoked_total") == 0, "a drain revokes no cookie");
}
