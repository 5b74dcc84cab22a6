//! Limits: each is enforced and counted.

use super::*;

#[test]
fn one_source_cannot_hold_more_connections_than_its_limit() {
    let mut sim = Sim::with_limits("max_connections_per_source = 2");
    let held: Vec<ConnId> = (1..=2).map(|i| sim.device(&format!("203.0.113.7:{}", 40000 + i))).collect();
    let third = sim.device("203.0.113.7:40003");
    assert_eq!(sim.closed.get(&third), Some(&"per-source connection limit"));
    assert_eq!(sim.counters().refused_per_source, 1);
    let elsewhere = sim.device("203.0.113.8:40001");
    assert!(!sim.closed.contains_key(&elsewhere), "another source is not limited");
    assert!(held.iter().all(|c| !sim.closed.contains_key(c)));
    // One lets go: the source may connect again.
    sim.core.handle_end(held[0], Ended::Eof, sim.now);
    sim.drain();
    let again = sim.device("203.0.113.7:40004");
    assert!(!sim.closed.contains_key(&again));
    assert_eq!(sim.counters().device_connections, 4);
}

#[test]
fn the_relay_holds_at_most_max_connections() {
    let mut sim = Sim::with_limits("max_connections = 2");
    sim.device("203.0.113.7:40001");
    sim.device("203.0.113.8:40001");
    let third = sim.device("203.0.113.9:40001");
    assert_eq!(sim.closed.get(&third), Some(&"relay connection limit"));
    assert_eq!(sim.counters().refused_max_connections, 1);
}

#[test]
fn a_device_that_sends_no_client_hello_in_time_is_closed() {
    let mut sim = Sim::with_limits("hello_timeout = 2");
    let silent = sim.device("203.0.113.7:40001");
    let partial = sim.device("203.0.113.7:40002");
    sim.read(partial, &client_hello(Some(NAME))[..10]);
    sim.advance(Duration::from_millis(1750));
    assert!(sim.closed.is_empty(), "not before hello_timeout");
    sim.advance(Duration::from_millis(250));
    assert_eq!(sim.closed.get(&silent), Some(&"no ClientHello in time"));
    assert_eq!(sim.closed.get(&partial), Some(&"no ClientHello in time"));
    assert_eq!(sim.counters().drop_hello_timeout, 2);
    assert!(sim.core.metrics_page().contains("corridor_relay_streams_pending 0\n"));
}

#[test]
fn streams_waiting_for_their_gateway_are_limited() {
    let mut sim = Sim::with_limits("max_pending_streams = 1");
    let l = sim.link_up("10.20.0.2:50000", NAME);
    sim.open("203.0.113.7:40001", NAME);
    let second = sim.open("203.0.113.8:40001", NAME);
    assert_eq!(sim.closed.get(&second), Some(&"pending stream limit"));
    assert_eq!(sim.counters().drop_pending_streams, 1);
    assert_eq!(sim.frames(l.conn).len(), 1, "one Open only");
}

#[test]
fn flows_are_limited_in_total_and_while_unbound() {
    let mut sim = Sim::with_limits("max_flows = 2\nmax_pending_flows = 1");
    let l = sim.link_up("10.20.0.2:50000", NAME);
    let hello = dtls_client_hello(Some(l.route));
    let at = sim.now;
    assert_eq!(sim.core.handle_device_datagrams(addr("203.0.113.7:5000"), &hello, None, at), DeviceDatagrams::Taken);
    sim.drain();
    // The first is not bound yet: the second waits its turn.
    sim.core.handle_device_datagrams(addr("203.0.113.8:5000"), &hello, None, at);
    assert_eq!(sim.counters().drop_udp_pending_flows, 1);
    let (flow, nonce) = sim.allocated(l).expect("an Allocate");
    sim.bind(flow, l, nonce);
    sim.core.handle_device_datagrams(addr("203.0.113.8:5000"), &hello, None, at);
    sim.drain();
    sim.core.handle_device_datagrams(addr("203.0.113.9:5000"), &hello, None, at);
    assert_eq!(sim.counters().drop_udp_max_flows, 1);
    assert_eq!(sim.core.flow_count(), 2);
}

#[test]
fn one_app_id_sprayed_from_many_ports_stops_at_its_flow_cap() {
    let mut sim = Sim::with_limits("max_flows_per_app_id = 2");
    let l = sim.link_up("10.20.0.2:50000", NAME);
    let hello = dtls_client_hello(Some(l.route));
    let at = sim.now;
    for port in 5000..5010 {
        sim.core.handle_device_datagrams(addr(&format!("203.0.113.7:{port}")), &hello, None, at);
        sim.drain();
    }
    assert_eq!(sim.core.flow_count(), 2);
    assert_eq!(sim.counters().drop_udp_flows_per_app_id, 8);
    assert_eq!(sim.counters().drop_udp_flows_per_source, 0);
    // Another App-ID from the same device is not held back.
    sim.core.handle_device_datagrams(
        addr("203.0.113.7:6000"),
        &dtls_client_hello_with([3; 32], Some(l.route)),
        None,
        at,
    );
    sim.drain();
    assert_eq!(sim.core.flow_count(), 3);
    // A flow of the App-ID closes (its gateway refused it): one more may open.
    let flow = sim.allocated(l).expect("an Allocate").0;
    sim.send_frame(l.conn, &Frame::Refuse { flow: flow.0 });
    sim.core.handle_device_datagrams(addr("203.0.113.7:7000"), &hello, None, at);
    sim.drain();
    assert_eq!((sim.core.flow_count(), sim.counters().drop_udp_flows_per_app_id), (3, 8));
}

#[test]
fn one_source_stops_at_its_flow_cap() {
    let mut sim = Sim::with_limits("max_flows_per_source = 2");
    let l = sim.link_up("10.20.0.2:50000", NAME);
    let at = sim.now;
    for i in 0..4u8 {
        let hello = dtls_client_hello_with([i; 32], Some(l.route));
        sim.core.handle_device_datagrams(addr(&format!("203.0.113.7:{}", 5000 + u16::from(i))), &hello, None, at);
        sim.drain();
    }
    assert_eq!((sim.core.flow_count(), sim.counters().drop_udp_flows_per_source), (2, 2));
    let elsewhere = dtls_client_hello_with([9; 32], Some(l.route));
    sim.core.handle_device_datagrams(addr("203.0.113.8:5000"), &elsewhere, None, at);
    sim.drain();
    assert_eq!(sim.core.flow_count(), 3, "another source is not limited");
}
