//! DTLS flows: Allocate by App-ID route, Bind by nonce, forwarding both
//! ways, strays, refusal and timeouts.

use proto::relay::Bind;

use super::*;
use crate::core::{DeviceDatagrams, FlowDatagrams, BIND_TIMEOUT, QUEUE_BEFORE_BIND};

const GW: &str = "10.20.0.2:50000";
/// The gateway's shards' UDP port, which binds its flows.
const GW_UDP: &str = "10.20.0.2:443";
const DEVICE: &str = "203.0.113.7:5000";

impl Sim {
    /// The flow and nonce of the Allocate link `l` was sent, if one.
    pub(super) fn allocated(&mut self, l: TestLink) -> Option<(FlowId, Nonce)> {
        self.frames(l.conn).into_iter().find_map(|f| match f {
            Frame::Allocate { flow, nonce, .. } => Some((FlowId(flow), nonce)),
            _ => None,
        })
    }

    /// The gateway of `l` binds `flow` from its UDP port.
    pub(super) fn bind(&mut self, flow: FlowId, l: TestLink, nonce: Nonce) -> FlowDatagrams {
        let bind = Bind { flow: flow.0, nonce }.to_bytes();
        let from = SocketAddr::new(l.peer.ip(), addr(GW_UDP).port());
        let verdict = self.core.handle_flow_datagrams(flow, from, &bind, None, self.now);
        self.drain();
        verdict
    }

    fn datagram_from(&mut self, device: &str, d: &[u8]) -> DeviceDatagrams {
        let verdict = self.core.handle_device_datagrams(addr(device), d, None, self.now);
        self.drain();
        verdict
    }
}

#[test]
fn a_client_hello_for_a_live_route_is_allocated_and_the_right_bind_binds_it() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW, NAME);
    let hello = dtls_client_hello(Some(l.route));
    assert_eq!(sim.datagram_from(DEVICE, &hello), DeviceDatagrams::Taken);
    let frames = sim.frames(l.conn);
    let [Frame::Allocate { flow, port, device, ref app_id, .. }] = frames[..] else { panic!("{frames:?}") };
    let flow = FlowId(flow);
    assert_eq!(device, addr(DEVICE));
    assert_eq!(Some(&port), sim.ports.get(&flow), "the port the driver opened");
    assert_eq!(proto::relay::app_id_route(app_id), Some(l.route), "the ClientHello's App-ID");
    let Frame::Allocate { nonce, .. } = frames[0] else { unreachable!() };
    // The device's next flight waits for the bind.
    assert_eq!(sim.datagram_from(DEVICE, b"\x16second"), DeviceDatagrams::Taken);
    assert!(sim.sent.is_empty());

    assert_eq!(sim.bind(flow, l, nonce), FlowDatagrams::Taken);
    assert_eq!(sim.counters().flows_bound, 1);
    let gw_udp = addr(GW_UDP);
    let held: Vec<(FlowId, SocketAddr, Vec<u8>)> = vec![(flow, gw_udp, hello), (flow, gw_udp, b"\x16second".to_vec())];
    assert_eq!(sim.sent, held, "what the device sent before the bind, in order");

    // Then both ways with a table lookup per receive.
    assert_eq!(sim.datagram_from(DEVICE, b"\x17data"), DeviceDatagrams::Forward { flow, to: gw_udp });
    let back = sim.core.handle_flow_datagrams(flow, gw_udp, b"\x17reply", None, sim.now);
    assert_eq!(back, FlowDatagrams::Forward { to: addr(DEVICE) });
    assert_eq!(sim.counters().udp_from_devices, 3);
    assert!(sim.core.links_page().contains("flows=1"), "{}", sim.core.links_page());
}

#[test]
fn a_bind_with_a_wrong_nonce_or_from_another_host_is_a_counted_stranger() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW, NAME);
    sim.datagram_from(DEVICE, &dtls_client_hello(Some(l.route)));
    let (flow, nonce) = sim.allocated(l).expect("an Allocate");
    let mut wrong = nonce;
    wrong[15] ^= 1;
    assert_eq!(sim.bind(flow, l, wrong), FlowDatagrams::Taken);
    let elsewhere = TestLink { peer: addr("10.20.0.9:50000"), ..l };
    sim.bind(flow, elsewhere, nonce);
    let bind = Bind { flow: flow.0, nonce }.to_bytes();
    let other_flow = FlowId(flow.0 + 1);
    sim.core.handle_flow_datagrams(flow, addr(GW_UDP), &Bind { flow: other_flow.0, nonce }.to_bytes(), None, sim.now);
    assert_eq!(sim.counters().drop_udp_stranger, 3);
    assert_eq!(sim.counters().flows_bound, 0);
    assert!(sim.sent.is_empty(), "nothing went to a stranger");
    // The right bind still works; then anyone else's datagrams are strangers'.
    sim.bind(flow, l, nonce);
    assert_eq!(sim.counters().flows_bound, 1);
    let stranger = sim.core.handle_flow_datagrams(flow, addr("10.20.0.9:443"), &bind, None, sim.now);
    assert_eq!(stranger, FlowDatagrams::Taken);
    assert_eq!(sim.counters().drop_udp_stranger, 4);
}

#[test]
fn stray_datagrams_are_counted_drops() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW, NAME);
    sim.datagram_from(DEVICE, b"\x17\xfe\xfd\x00\x01stray");
    sim.datagram_from(DEVICE, &dtls_client_hello(None));
    sim.datagram_from(DEVICE, &dtls_client_hello(Some(l.route ^ 1)));
    let c = sim.counters();
    assert_eq!((c.drop_udp_unknown_peer, c.drop_udp_unknown_app_id, c.drop_udp_unknown_route), (1, 1, 1));
    assert_eq!((c.flows_allocated, sim.core.flow_count()), (0, 0));
    assert!(sim.ports.is_empty());
}

#[test]
fn datagrams_before_the_bind_are_held_up_to_a_limit() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW, NAME);
    sim.datagram_from(DEVICE, &dtls_client_hello(Some(l.route)));
    for _ in 0..QUEUE_BEFORE_BIND + 2 {
        sim.datagram_from(DEVICE, b"\x16again");
    }
    assert_eq!(sim.counters().drop_udp_queue_full, 3, "the ClientHello and 7 more are held");
    let (flow, nonce) = sim.allocated(l).expect("an Allocate");
    sim.bind(flow, l, nonce);
    assert_eq!(sim.sent.len(), QUEUE_BEFORE_BIND);
}

#[test]
fn an_unbound_flow_times_out_and_an_idle_one_is_closed() {
    let mut sim = Sim::with_limits("flow_idle_timeout = 20");
    let l = sim.link_up(GW, NAME);
    sim.datagram_from(DEVICE, &dtls_client_hello(Some(l.route)));
    assert!(sim.allocated(l).is_some(), "an Allocate the gateway ignores");
    sim.advance(BIND_TIMEOUT);
    assert_eq!((sim.counters().flows_unbound, sim.counters().flows_closed), (1, 1));
    assert!(sim.ports.is_empty(), "its port is closed");

    sim.send_frame(l.conn, &Frame::Pong { token: 0 });
    sim.datagram_from(DEVICE, &dtls_client_hello(Some(l.route)));
    let (flow, nonce) = sim.allocated(l).expect("a second Allocate");
    sim.bind(flow, l, nonce);
    assert_eq!(sim.counters().flows_bound, 1);
    sim.advance(Duration::from_secs(15));
    sim.datagram_from(DEVICE, b"\x17keep");
    sim.send_frame(l.conn, &Frame::Pong { token: 0 });
    sim.advance(Duration::from_secs(15));
    assert_eq!(sim.counters().flows_idle, 0, "traffic keeps it");
    sim.advance(Duration::from_secs(5));
    assert_eq!((sim.counters().flows_idle, sim.core.flow_count()), (1, 0), "{:?}", sim.counters());
}

#[test]
fn a_refused_flow_and_a_lost_links_unbound_flows_are_closed() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW, NAME);
    sim.datagram_from(DEVICE, &dtls_client_hello(Some(l.route)));
    let (flow, _) = sim.allocated(l).expect("an Allocate");
    sim.send_frame(l.conn, &Frame::Refuse { flow: flow.0 });
    assert_eq!((sim.counters().flows_refused, sim.core.flow_count()), (1, 0));

    sim.datagram_from("203.0.113.8:5000", &dtls_client_hello(Some(l.route)));
    assert_eq!(sim.core.flow_count(), 1);
    sim.core.handle_end(l.conn, Ended::Eof, sim.now);
    sim.drain();
    assert_eq!(sim.core.flow_count(), 0, "unbound flows go with their link");
    assert!(sim.ports.is_empty());
}

#[test]
fn a_client_hello_for_another_route_starts_a_new_flow() {
    let mut sim = Sim::new();
    let a = sim.link_up(GW, NAME);
    let b = sim.link_up("10.20.0.3:50000", NAME);
    sim.datagram_from(DEVICE, &dtls_client_hello(Some(a.route)));
    let (flow, nonce) = sim.allocated(a).expect("an Allocate on a");
    sim.bind(flow, a, nonce);
    // The device reconnected through the other gateway.
    sim.datagram_from(DEVICE, &dtls_client_hello(Some(b.route)));
    assert!(sim.allocated(b).is_some(), "an Allocate on b");
    assert!(!sim.ports.contains_key(&flow), "the old flow is closed");
    assert_eq!(sim.core.flow_count(), 1);
}

#[test]
fn a_port_that_cannot_be_opened_is_counted() {
    let mut sim = Sim::new();
    let l = sim.link_up(GW, NAME);
    sim.ports_fail = true;
    sim.datagram_from(DEVICE, &dtls_client_hello(Some(l.route)));
    assert_eq!(sim.counters().drop_udp_socket_failed, 1);
    assert!(sim.allocated(l).is_none(), "no Allocate without a port");
    assert_eq!(sim.core.flow_count(), 0);
}
