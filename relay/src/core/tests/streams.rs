//! Device streams: routing by SNI, Open and Attach, affinity and the
//! fewest-streams choice.

use super::*;

const GW1: &str = "10.20.0.2:50000";
const GW2: &str = "10.20.0.3:50000";
const DEVICE: &str = "203.0.113.7:40001";

#[test]
fn a_client_hello_is_routed_to_the_live_link_and_spliced_on_the_right_nonce() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW1, NAME);
    let device = sim.device(DEVICE);
    let hello = client_hello(Some(NAME));
    // The ClientHello may arrive in pieces.
    sim.read(device, &hello[..20]);
    assert!(sim.frames(l.conn).is_empty(), "nothing before the ClientHello is whole");
    sim.read(device, &hello[20..]);
    let (stream, nonce, from) = sim.open_on(l).expect("an Open on the link");
    assert_eq!(from, addr(DEVICE), "the gateway learns the device's address");
    assert!(!sim.core.wants_bytes(device), "the device's next bytes wait for the splice");

    let gateway = sim.attach("10.20.0.2:50001", stream, nonce);
    assert_eq!(sim.splices, [(device, gateway, hello)], "the ClientHello goes to the gateway first");
    assert_eq!(sim.counters().streams_spliced, 1);
    assert!(sim.core.links_page().contains("streams_opened=1 streams_active=1"), "{}", sim.core.links_page());
    assert!(sim.core.metrics_page().contains("corridor_relay_streams 1\n"));

    sim.core.handle_splice_end(device, 1000, 2000, true);
    let c = sim.counters();
    assert_eq!((c.stream_bytes_to_gateway, c.stream_bytes_to_device), (1000, 2000));
    assert!(sim.core.links_page().contains("streams_active=0"), "{}", sim.core.links_page());
    assert!(sim.core.metrics_page().contains("corridor_relay_streams 0\n"));
}

#[test]
fn an_attach_with_a_wrong_nonce_or_from_another_host_is_refused() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW1, NAME);
    let device = sim.open(DEVICE, NAME);
    let (stream, nonce, _) = sim.open_on(l).expect("an Open");
    let mut wrong = nonce;
    wrong[0] ^= 1;
    let bad_nonce = sim.attach("10.20.0.2:50001", stream, wrong);
    let elsewhere = sim.attach("10.20.0.9:50001", stream, nonce);
    let no_stream = sim.attach("10.20.0.2:50002", stream + 1, nonce);
    for conn in [bad_nonce, elsewhere, no_stream] {
        assert_eq!(sim.closed.get(&conn), Some(&"attach for no waiting stream"));
    }
    assert_eq!(sim.counters().drop_bad_attach, 3);
    assert!(sim.splices.is_empty());
    assert!(!sim.closed.contains_key(&device), "the device still waits for the real attach");
    let gateway = sim.attach("10.20.0.2:50003", stream, nonce);
    assert_eq!(sim.splices.len(), 1);
    assert_eq!((sim.splices[0].0, sim.splices[0].1), (device, gateway));
}

#[test]
fn bytes_before_the_devices_close_both_sides() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW1, NAME);
    let device = sim.open(DEVICE, NAME);
    let (stream, nonce, _) = sim.open_on(l).expect("an Open");
    let gateway = sim.accept(Listener::Gateways, "10.20.0.2:50001");
    let mut attach = Frame::Attach { stream, nonce }.to_vec();
    attach.extend(b"HTTP/1.1 200 OK\r\n");
    sim.read(gateway, &attach);
    assert!(sim.closed.contains_key(&device) && sim.closed.contains_key(&gateway));
    assert_eq!(sim.counters().drop_bad_attach, 1);
    assert!(sim.splices.is_empty());
}

#[test]
fn unknown_sni_no_sni_and_not_tls_are_counted_drops() {
    let mut sim = Sim::new();
    sim.link_up(GW1, NAME);
    let unknown = sim.open(DEVICE, "elsewhere.test");
    let no_sni = sim.device("203.0.113.8:40001");
    sim.read(no_sni, &client_hello(None));
    let plain = sim.device("203.0.113.9:40001");
    sim.read(plain, b"GET / HTTP/1.1\r\n\r\n");
    let c = sim.counters();
    assert_eq!((c.drop_unknown_name, c.drop_no_sni, c.drop_bad_client_hello), (1, 1, 1));
    assert_eq!(sim.closed.get(&unknown), Some(&"unknown SNI"));
    assert_eq!(sim.closed.get(&no_sni), Some(&"no SNI"));
    assert_eq!(sim.closed.get(&plain), Some(&"bad ClientHello"));
    assert!(sim.core.metrics_page().contains("corridor_relay_streams_pending 0\n"), "every one was let go");
}

#[test]
fn a_default_name_routes_a_hello_without_sni() {
    let text = format!(
        "[relay]\nlisten = \"198.51.100.1:443\"\ngateway_listen = \"{RELAY_GATEWAY_SIDE}\"\ndefault_name = \"{NAME}\"\n\
         [[gateway]]\nname = \"{NAME}\"\ntoken = \"{TOKEN}\"\n\
         [gateway_link]\ncert = \"link.crt\"\nkey = \"link.key\"\n"
    );
    let mut sim = Sim::new();
    sim.core = RelayCore::new(Config::parse_in(&text, Path::new(".")).expect("config"), sim.now, UNIX_START);
    let l = sim.link_up(GW1, NAME);
    let device = sim.device(DEVICE);
    sim.read(device, &client_hello(None));
    assert!(sim.open_on(l).is_some());
    assert_eq!(sim.counters().drop_no_sni, 0);
}

#[test]
fn a_name_with_no_live_link_is_counted() {
    let mut sim = Sim::new();
    sim.link_up(GW1, NAME);
    let device = sim.open(DEVICE, OTHER_NAME);
    assert_eq!(sim.closed.get(&device), Some(&"no live gateway"));
    assert_eq!(sim.counters().drop_no_gateway, 1);
}

#[test]
fn a_device_sticks_to_its_gateway_and_new_ones_go_to_the_fewest_streams() {
    let mut sim = Sim::new();
    let a = sim.link_up(GW1, NAME);
    let b = sim.link_up(GW2, NAME);
    let which = |sim: &mut Sim| match (sim.open_on(a), sim.open_on(b)) {
        (Some(_), None) => a.conn,
        (None, Some(_)) => b.conn,
        other => panic!("one Open on one link, got {other:?}"),
    };
    sim.open("203.0.113.7:40001", NAME);
    let first = which(&mut sim);
    // The same device again: its gateway, though the other has fewer streams.
    sim.open("203.0.113.7:40002", NAME);
    assert_eq!(which(&mut sim), first, "affinity");
    // Another device: the link with fewer active streams.
    sim.open("203.0.113.8:40001", NAME);
    let second = which(&mut sim);
    assert_ne!(second, first, "fewest streams");
    sim.open("203.0.113.9:40001", NAME);
    assert_eq!(which(&mut sim), second, "1 active there against 2");
}

#[test]
fn a_dead_links_devices_land_on_the_live_one() {
    let mut sim = Sim::new();
    let a = sim.link_up(GW1, NAME);
    let b = sim.link_up(GW2, NAME);
    sim.open(DEVICE, NAME);
    let (dead, live) = if sim.open_on(a).is_some() { (a, b) } else { (b, a) };
    sim.frames(live.conn);
    sim.core.handle_end(dead.conn, Ended::Eof, sim.now);
    sim.drain();
    sim.open("203.0.113.7:40002", NAME);
    assert!(sim.open_on(live).is_some(), "the same device goes to the live gateway");
}

#[test]
fn a_declined_stream_closes_its_device() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW1, NAME);
    let other = sim.link_up(GW2, NAME);
    let device = sim.open(DEVICE, NAME);
    let (stream, on) = match (sim.open_on(l), sim.open_on(other)) {
        (Some((s, ..)), _) => (s, l),
        (_, Some((s, ..))) => (s, other),
        _ => panic!("no Open"),
    };
    let bystander = if on.conn == l.conn { other } else { l };
    sim.send_frame(bystander.conn, &Frame::Decline { stream });
    assert!(!sim.closed.contains_key(&device), "only the link asked may decline");
    sim.send_frame(on.conn, &Frame::Decline { stream });
    assert_eq!(sim.closed.get(&device), Some(&"declined by the gateway"));
    assert_eq!(sim.counters().streams_declined, 1);
}

#[test]
fn a_stream_not_attached_in_time_is_closed_and_a_lost_link_closes_its_waiting_streams() {
    let mut sim = Sim::with_limits("attach_timeout = 3");
    let l = sim.link_up(GW1, NAME);
    let late = sim.open(DEVICE, NAME);
    sim.advance(Duration::from_secs(2));
    assert!(!sim.closed.contains_key(&late));
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.closed.get(&late), Some(&"the gateway did not attach in time"));
    assert_eq!(sim.counters().drop_attach_timeout, 1);

    let orphan = sim.open("203.0.113.8:40001", NAME);
    sim.core.handle_end(l.conn, Ended::Eof, sim.now);
    sim.drain();
    assert_eq!(sim.closed.get(&orphan), Some(&"gateway link lost"));
    assert!(sim.core.metrics_page().contains("corridor_relay_streams_pending 0\n"));
}

#[test]
fn a_draining_links_devices_and_new_devices_go_to_the_other_link() {
    let mut sim = Sim::new();
    let a = sim.link_up(GW1, NAME);
    let b = sim.link_up(GW2, NAME);
    sim.open(DEVICE, NAME);
    let (draining, other) = if sim.open_on(a).is_some() { (a, b) } else { (b, a) };
    sim.frames(other.conn);
    sim.send_frame(draining.conn, &Frame::Drain);
    assert_eq!(sim.core.counters().links_draining, 1);
    // The device that had it, on its next stream, and a new device: the other.
    for device in ["203.0.113.7:40002", "203.0.113.50:40001", "203.0.113.51:40001"] {
        sim.open(device, NAME);
        assert!(sim.open_on(other).is_some(), "{device} went to the draining gateway");
        assert!(sim.open_on(draining).is_none());
    }
    // The draining link stays up (its streams and flows go on).
    assert!(sim.core.links_page().contains(" draining"), "{}", sim.core.links_page());
}
